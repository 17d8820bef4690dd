//! Loading oz.conf: file selection, the permission check, and decoding with the same JSON parser
//! and diagnostics as profiles.
//!
//! File selection: `--config PATH`, else `$OZ_CONFIG`, else `/etc/oz/oz.conf`. A missing default
//! file means the built-in defaults; a file named explicitly (flag or environment) must exist,
//! so a typo never silently runs with defaults.
//!
//! Key semantics beyond "absent keeps the default": `environment_vars` and `default_groups`
//! replace the default list (as the original); `etc_includes` entries are *prepended* to the
//! built-in list, which cannot be shrunk from the file (as the original), and duplicates are
//! dropped. Unlike the original, `etc_prefix` and the config directory are not added: oz compiles
//! seccomp policies outside the sandbox, so nothing in them needs to be visible inside.

use crate::config::{Config, CONFIG_ENV, DEFAULT_CONFIG_PATH};
use crate::load::{parse_tree, read_capped, Decoder, Diagnostic, Fields, ProfileError};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use thiserror::Error;

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("config {}: {source}", path.display())]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {}: file larger than {} bytes", path.display(), crate::load::MAX_FILE_SIZE)]
    TooLarge { path: PathBuf },
    #[error("config {}: unsafe permissions: {reason} (make it owned by root and writable only by root)", path.display())]
    Permissions { path: PathBuf, reason: String },
    /// Syntax, type or value errors, one full diagnostic per line.
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Diagnostic>),
}

impl ConfigError {
    /// Each error as one line.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Invalid(d) => d.iter().map(ToString::to_string).collect(),
            other => vec![other.to_string()],
        }
    }
}

/// A loaded configuration and where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadedConfig {
    pub config: Config,
    /// The file that was (or would have been) read.
    pub path: PathBuf,
    /// False when the default file was missing and the defaults are in use.
    pub from_file: bool,
    pub warnings: Vec<Diagnostic>,
}

/// One row of `oz-setup config show`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    pub key: &'static str,
    pub value: String,
    pub description: &'static str,
}

/// Every key with its one-line description, in `config show` order.
pub const CONFIG_KEYS: &[(&str, &str)] = &[
    ("profile_dir", "directory holding the sandbox profiles (*.json)"),
    ("shell_path", "shell started by `oz shell`"),
    ("prefix_path", "prefix holding the oz executables (<prefix>/bin/oz)"),
    ("etc_prefix", "directory of oz configuration files such as seccomp policies"),
    ("sandbox_path", "base directory for sandbox working state"),
    ("openvpn_run_path", "directory for openvpn pid files and extracted keys"),
    ("openvpn_conf_dir", "directory that vpn configpath and authfile are relative to"),
    ("openvpn_group", "group openvpn runs as"),
    ("route_table_base", "first routing table number for per-sandbox vpn routes"),
    ("divert_suffix", "suffix appended to diverted application executables"),
    ("divert_path", "move diverted executables to <dir>-oz/"),
    ("nm_ignore_file", "NetworkManager file listing interfaces it must ignore"),
    ("bridge_name", "the bridge device of bridged sandboxes (created by oz)"),
    ("bridge_range", "IPv4 network (CIDR) of the bridge: the bridge takes its first address"),
    ("use_full_dev", "give sandboxes the host's full /dev (not recommended)"),
    ("allow_root_shell", "allow `oz shell` as root"),
    ("log_xpra", "log xpra output"),
    ("enable_ephemerals", "allow ephemeral sandboxes (-e)"),
    ("environment_vars", "variables passed to sandboxes: NAME copies the caller's, NAME=value sets it"),
    ("default_groups", "supplementary groups a sandbox may keep when the user is a member"),
    ("etc_includes", "/etc entries bound read-only into every sandbox (file entries come first)"),
    ("socket_path", "the daemon's control socket"),
    ("state_dir", "runtime state: agent sockets and sandbox records"),
    ("agent_path", "the oz-agent executable (default: beside the running executable)"),
    ("log_dir", "directory for daemon and per-sandbox logs"),
    ("stop_sandboxes_on_exit", "stop every sandbox when the daemon stops"),
    ("max_sandboxes_per_user", "how many sandboxes one user may run at once (0 = no limit)"),
    ("log_max_bytes", "rotate a log file at this size in bytes (0 = never)"),
    ("log_keep", "rotated files kept per log file"),
    ("log_retention_days", "delete sandbox log files untouched for this many days (0 = never)"),
    ("launch_check_ms", "how long `oz launch` watches the program for an immediate failure (0 = not at all)"),
];

/// Which file to read: `explicit`, else `env` (the value of `$OZ_CONFIG`), else the default.
/// The bool says whether the choice was explicit.
pub fn config_path(explicit: Option<&Path>, env: Option<&std::ffi::OsStr>) -> (PathBuf, bool) {
    match (explicit, env.filter(|v| !v.is_empty())) {
        (Some(p), _) => (p.to_path_buf(), true),
        (None, Some(v)) => (PathBuf::from(v), true),
        (None, None) => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    }
}

/// Load the configuration (see the module docs for the file selection).
pub fn load_config(explicit: Option<&Path>) -> Result<LoadedConfig, ConfigError> {
    let env = std::env::var_os(CONFIG_ENV);
    let (path, was_explicit) = config_path(explicit, env.as_deref());
    if !was_explicit && !path.exists() {
        return Ok(LoadedConfig { config: Config::default(), path, from_file: false, warnings: Vec::new() });
    }
    check_permissions(&path)?;
    let bytes = read_capped(&path).map_err(|e| match e {
        ProfileError::Read { path, source } => ConfigError::Read { path, source },
        _ => ConfigError::TooLarge { path: path.clone() },
    })?;
    let loaded = parse_config(&bytes, &path)?;
    Ok(LoadedConfig { config: loaded.value, path, from_file: true, warnings: loaded.warnings })
}

/// The file and its directory must be owned by root and writable by nobody else (the original
/// ignored ownership).
pub fn check_permissions(path: &Path) -> Result<(), ConfigError> {
    let read_err = |p: &Path, source| ConfigError::Read { path: p.to_path_buf(), source };
    let meta = std::fs::metadata(path).map_err(|e| read_err(path, e))?;
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let dir_meta = std::fs::metadata(dir).map_err(|e| read_err(dir, e))?;
    for (what, m) in [("file", &meta), ("directory", &dir_meta)] {
        let mode = m.mode() & 0o7777;
        let reason = if m.uid() != 0 {
            format!("{what} is owned by uid {}, not root", m.uid())
        } else if mode & 0o002 != 0 {
            format!("{what} is writable by everyone (mode {mode:04o})")
        } else if mode & 0o020 != 0 && m.gid() != 0 {
            format!("{what} is writable by group {} (mode {mode:04o})", m.gid())
        } else {
            continue;
        };
        return Err(ConfigError::Permissions { path: path.to_path_buf(), reason });
    }
    Ok(())
}

/// Decode oz.conf text (no permission check). Unknown keys are warnings.
pub fn parse_config(bytes: &[u8], origin: &Path) -> Result<crate::load::Loaded<Config>, ConfigError> {
    let (root, mut warnings) = parse_tree(bytes, origin).map_err(ConfigError::Invalid)?;
    let mut d = Decoder::new(origin);
    let keys: Vec<&'static str> = CONFIG_KEYS.iter().map(|(k, _)| *k).collect();
    let Some(f) = d.fields(&root, "", &keys, &[]) else {
        return Err(ConfigError::Invalid(d.errors));
    };
    let config = decode(&mut d, &f);
    warnings.append(&mut d.warnings);
    if !d.errors.is_empty() {
        return Err(ConfigError::Invalid(d.errors));
    }
    Ok(crate::load::Loaded { value: config, warnings })
}

/// An absolute path value (no variables in oz.conf).
fn path(d: &mut Decoder, f: &Fields, key: &str) -> Option<PathBuf> {
    let node = f.get(key)?;
    let s = d.string_node(node, &f.key_path(key))?;
    if !s.starts_with('/') {
        d.error(node.pos, &f.key_path(key), format!("path \"{s}\" must be absolute"));
        return None;
    }
    Some(PathBuf::from(s))
}

fn decode(d: &mut Decoder, f: &Fields) -> Config {
    let def = Config::default();
    let flag = |d: &mut Decoder, k: &str, v: bool| d.bool(f, k).unwrap_or(v);
    Config {
        profile_dir: path(d, f, "profile_dir").unwrap_or(def.profile_dir),
        shell_path: path(d, f, "shell_path").unwrap_or(def.shell_path),
        prefix_path: path(d, f, "prefix_path").unwrap_or(def.prefix_path),
        etc_prefix: path(d, f, "etc_prefix").unwrap_or(def.etc_prefix),
        sandbox_path: path(d, f, "sandbox_path").unwrap_or(def.sandbox_path),
        openvpn_run_path: path(d, f, "openvpn_run_path").unwrap_or(def.openvpn_run_path),
        openvpn_conf_dir: path(d, f, "openvpn_conf_dir").unwrap_or(def.openvpn_conf_dir),
        openvpn_group: d.string(f, "openvpn_group").unwrap_or(def.openvpn_group),
        route_table_base: d.uint(f, "route_table_base", u32::MAX as u64).map_or(def.route_table_base, |v| v as u32),
        divert_suffix: d.string(f, "divert_suffix").unwrap_or(def.divert_suffix),
        divert_path: flag(d, "divert_path", def.divert_path),
        nm_ignore_file: path(d, f, "nm_ignore_file").unwrap_or(def.nm_ignore_file),
        bridge_name: bridge_name(d, f).unwrap_or(def.bridge_name),
        bridge_range: bridge_range(d, f).unwrap_or(def.bridge_range),
        use_full_dev: flag(d, "use_full_dev", def.use_full_dev),
        allow_root_shell: flag(d, "allow_root_shell", def.allow_root_shell),
        log_xpra: flag(d, "log_xpra", def.log_xpra),
        enable_ephemerals: flag(d, "enable_ephemerals", def.enable_ephemerals),
        environment_vars: environment_vars(d, f).unwrap_or(def.environment_vars),
        default_groups: d.strings(f, "default_groups").unwrap_or(def.default_groups),
        etc_includes: etc_includes(d, f, def.etc_includes),
        socket_path: path(d, f, "socket_path").unwrap_or(def.socket_path),
        state_dir: path(d, f, "state_dir").unwrap_or(def.state_dir),
        agent_path: path(d, f, "agent_path").or(def.agent_path),
        log_dir: path(d, f, "log_dir").unwrap_or(def.log_dir),
        stop_sandboxes_on_exit: flag(d, "stop_sandboxes_on_exit", def.stop_sandboxes_on_exit),
        max_sandboxes_per_user: d
            .uint(f, "max_sandboxes_per_user", u32::MAX as u64)
            .map_or(def.max_sandboxes_per_user, |v| v as u32),
        log_max_bytes: d.uint(f, "log_max_bytes", u64::MAX).unwrap_or(def.log_max_bytes),
        log_keep: d.uint(f, "log_keep", 1000).map_or(def.log_keep, |v| v as u32),
        log_retention_days: d.uint(f, "log_retention_days", 100_000).map_or(def.log_retention_days, |v| v as u32),
        launch_check_ms: d.uint(f, "launch_check_ms", 60_000).map_or(def.launch_check_ms, |v| v as u32),
    }
}

/// A valid interface name.
fn bridge_name(d: &mut Decoder, f: &Fields) -> Option<String> {
    let node = f.get("bridge_name")?;
    let s = d.string_node(node, &f.key_path("bridge_name"))?;
    if !crate::config::valid_ifname(&s) {
        d.error(
            node.pos,
            &f.key_path("bridge_name"),
            format!("\"{s}\" is not an interface name (1-15 letters, digits, '-', '_', '.')"),
        );
        return None;
    }
    Some(s)
}

/// An IPv4 network in CIDR form.
fn bridge_range(d: &mut Decoder, f: &Fields) -> Option<String> {
    let node = f.get("bridge_range")?;
    let s = d.string_node(node, &f.key_path("bridge_range"))?;
    if let Err(e) = crate::config::parse_ipv4_cidr(&s) {
        d.error(node.pos, &f.key_path("bridge_range"), e);
        return None;
    }
    Some(s)
}

/// `NAME` or `NAME=value` entries; the name must be non-empty.
fn environment_vars(d: &mut Decoder, f: &Fields) -> Option<Vec<String>> {
    f.get("environment_vars")?;
    let mut out = Vec::new();
    for (key, node) in d.array(f, "environment_vars") {
        let Some(s) = d.string_node(node, &key) else {
            continue;
        };
        let name = s.split('=').next().unwrap_or_default();
        if name.is_empty() || s.contains('\0') {
            d.error(node.pos, &key, format!("invalid entry \"{s}\", expected NAME or NAME=value"));
            continue;
        }
        out.push(s);
    }
    Some(out)
}

/// The file's entries (each under /etc/), then the built-in ones, without duplicates.
fn etc_includes(d: &mut Decoder, f: &Fields, defaults: Vec<PathBuf>) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    for (key, node) in d.array(f, "etc_includes") {
        let Some(s) = d.string_node(node, &key) else {
            continue;
        };
        if !s.starts_with("/etc/") || s.split('/').any(|c| c == "..") {
            d.error(node.pos, &key, format!("etc include \"{s}\" must be a path under /etc/"));
            continue;
        }
        out.push(PathBuf::from(s));
    }
    for p in defaults {
        if !out.contains(&p) {
            out.push(p);
        }
    }
    out
}

fn list(items: &[impl AsRef<std::ffi::OsStr>]) -> String {
    let parts: Vec<String> = items.iter().map(|s| s.as_ref().to_string_lossy().into_owned()).collect();
    parts.join(" ")
}

impl Config {
    /// Every key with its current value and description, for `oz-setup config show`.
    pub fn describe(&self) -> Vec<ConfigEntry> {
        CONFIG_KEYS
            .iter()
            .map(|(key, description)| ConfigEntry { key, value: self.value_of(key), description })
            .collect()
    }

    fn value_of(&self, key: &str) -> String {
        let p = |p: &Path| p.display().to_string();
        match key {
            "profile_dir" => p(&self.profile_dir),
            "shell_path" => p(&self.shell_path),
            "prefix_path" => p(&self.prefix_path),
            "etc_prefix" => p(&self.etc_prefix),
            "sandbox_path" => p(&self.sandbox_path),
            "openvpn_run_path" => p(&self.openvpn_run_path),
            "openvpn_conf_dir" => p(&self.openvpn_conf_dir),
            "openvpn_group" => self.openvpn_group.clone(),
            "route_table_base" => self.route_table_base.to_string(),
            "divert_suffix" => self.divert_suffix.clone(),
            "divert_path" => self.divert_path.to_string(),
            "nm_ignore_file" => p(&self.nm_ignore_file),
            "bridge_name" => self.bridge_name.clone(),
            "bridge_range" => self.bridge_range.clone(),
            "use_full_dev" => self.use_full_dev.to_string(),
            "allow_root_shell" => self.allow_root_shell.to_string(),
            "log_xpra" => self.log_xpra.to_string(),
            "enable_ephemerals" => self.enable_ephemerals.to_string(),
            "environment_vars" => list(&self.environment_vars),
            "default_groups" => list(&self.default_groups),
            "etc_includes" => list(&self.etc_includes),
            "socket_path" => p(&self.socket_path),
            "state_dir" => p(&self.state_dir),
            "agent_path" => p(&self.agent_path()),
            "log_dir" => p(&self.log_dir),
            "stop_sandboxes_on_exit" => self.stop_sandboxes_on_exit.to_string(),
            "max_sandboxes_per_user" => self.max_sandboxes_per_user.to_string(),
            "log_max_bytes" => self.log_max_bytes.to_string(),
            "log_keep" => self.log_keep.to_string(),
            "log_retention_days" => self.log_retention_days.to_string(),
            "launch_check_ms" => self.launch_check_ms.to_string(),
            _ => String::new(),
        }
    }
}

#[cfg(test)]
mod tests;
