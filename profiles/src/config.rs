//! The oz.conf model: every key and default of the original Oz's oz.conf plus oz's own.
//!
//! Loading (file selection, permission check, diagnostics) lives in `config_load.rs`.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Default config file location.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/oz/oz.conf";
/// Environment variable naming the config file (after `--config`).
pub const CONFIG_ENV: &str = "OZ_CONFIG";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Config {
    /// Directory holding the sandbox profiles (`*.json`).
    pub profile_dir: PathBuf,
    /// Shell used by `oz shell`.
    pub shell_path: PathBuf,
    /// Prefix holding the oz executables (`<prefix>/bin/oz`).
    pub prefix_path: PathBuf,
    /// Prefix for configuration files such as seccomp policies.
    pub etc_prefix: PathBuf,
    /// Base directory for sandbox working state.
    pub sandbox_path: PathBuf,
    pub openvpn_run_path: PathBuf,
    pub openvpn_conf_dir: PathBuf,
    pub openvpn_group: String,
    pub route_table_base: u32,
    /// Suffix for dpkg-divert of application executables.
    pub divert_suffix: String,
    /// Move diverted executables to `<dir>-oz/`.
    pub divert_path: bool,
    /// NetworkManager drop-in written while oz's bridge exists, so NetworkManager leaves it
    /// alone (only when its directory exists).
    pub nm_ignore_file: PathBuf,
    /// The bridge device bridged sandboxes join (created and addressed by oz).
    pub bridge_name: String,
    /// The bridge's IPv4 network (CIDR): the bridge takes the first address, sandboxes the rest.
    pub bridge_range: String,
    /// Give sandboxes the host's full /dev (not recommended).
    pub use_full_dev: bool,
    pub allow_root_shell: bool,
    pub log_xpra: bool,
    pub enable_ephemerals: bool,
    /// Variables passed to sandboxes: `NAME` copies the caller's value, `NAME=value` sets it.
    pub environment_vars: Vec<String>,
    /// Supplementary groups a sandbox may keep (when the user is a member).
    pub default_groups: Vec<String>,
    /// /etc entries bound read-only into every sandbox.
    pub etc_includes: Vec<PathBuf>,
    /// The daemon's control socket.
    pub socket_path: PathBuf,
    /// Runtime state: agent rendezvous sockets and state records.
    pub state_dir: PathBuf,
    /// The oz-agent executable; None = `oz-agent` beside the running executable.
    pub agent_path: Option<PathBuf>,
    /// Directory for daemon and per-sandbox log files.
    pub log_dir: PathBuf,
    /// Stop every sandbox when the daemon stops (default: leave them running).
    pub stop_sandboxes_on_exit: bool,
    /// How many sandboxes one user may have at once (0 = no limit): every sandbox is a root
    /// agent, so a local user must not be able to start them without bound.
    pub max_sandboxes_per_user: u32,
    /// A log file is rotated once it reaches this size (bytes; 0 = never rotated).
    pub log_max_bytes: u64,
    /// Rotated files kept per log (`<name>.1` .. `<name>.<log_keep>`); older ones are deleted.
    pub log_keep: u32,
    /// Sandbox log files untouched for this many days are deleted (0 = kept forever).
    pub log_retention_days: u32,
    /// How long a detached launch watches its program before answering (milliseconds, 0 = not
    /// at all): a program that ends unsuccessfully in that time is reported as a failed launch.
    pub launch_check_ms: u32,
}

/// The original's DefaultEtcIncludes (config.go), with its deliberately disabled
/// `/etc/xdg/-mimeapps.list` entry left out.
pub const DEFAULT_ETC_INCLUDES: &[&str] = &[
    "/etc/alternatives/",
    "/etc/ssl/certs/",
    "/etc/console-setup/",
    "/etc/dbus-1/",
    "/etc/default/locale",
    "/etc/fonts/",
    "/etc/gnome/defaults.list",
    "/etc/group",
    "/etc/gtk-2.0/",
    "/etc/gtk-3.0/",
    "/etc/host.conf",
    "/etc/inputrc",
    "/etc/locale.alias",
    "/etc/localtime",
    "/etc/magic",
    "/etc/magic.mime",
    "/etc/mailcap",
    "/etc/mailcap.order",
    "/etc/mime.types",
    "/etc/passwd",
    "/etc/protocols",
    "/etc/pulse/",
    "/etc/resolvconf/run/resolv.conf",
    "/etc/services",
    "/etc/shells",
    "/etc/terminfo/",
    "/etc/timezone",
    "/etc/vconsole.conf",
    "/etc/xdg/user-dirs.conf",
    "/etc/xdg/user-dirs.defaults",
    "/etc/xpra/",
    "/etc/X11/",
];

impl Default for Config {
    fn default() -> Self {
        Config {
            profile_dir: "/var/lib/oz/cells.d".into(),
            shell_path: "/bin/bash".into(),
            prefix_path: "/usr/local".into(),
            etc_prefix: "/etc/oz".into(),
            sandbox_path: "/srv/oz".into(),
            openvpn_run_path: "/var/run/openvpn".into(),
            openvpn_conf_dir: "/var/lib/oz/openvpn".into(),
            openvpn_group: "oz-openvpn".into(),
            route_table_base: 8000,
            divert_suffix: "unsafe".into(),
            divert_path: true,
            nm_ignore_file: "/etc/NetworkManager/conf.d/oz.conf".into(),
            bridge_name: "oz0".into(),
            bridge_range: "10.0.1.0/24".into(),
            use_full_dev: false,
            allow_root_shell: false,
            log_xpra: true,
            enable_ephemerals: false,
            environment_vars: [
                "USER",
                "USERNAME",
                "LOGNAME",
                "LANG",
                "LANGUAGE",
                "_",
                "TZ=UTC",
                "XDG_SESSION_TYPE",
                "XDG_RUNTIME_DIR",
                "XDG_DATA_DIRS",
                "XDG_SEAT",
                "XDG_SESSION_ID",
                "GNOME_DESKTOP_SESSION_ID=this-is-deprecated",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            default_groups: vec!["audio".into(), "video".into()],
            etc_includes: DEFAULT_ETC_INCLUDES.iter().map(PathBuf::from).collect(),
            socket_path: "/run/oz/control.sock".into(),
            state_dir: "/run/oz".into(),
            agent_path: None,
            log_dir: "/var/log/oz".into(),
            stop_sandboxes_on_exit: false,
            max_sandboxes_per_user: 32,
            log_max_bytes: 10 * 1024 * 1024,
            log_keep: 3,
            log_retention_days: 14,
            launch_check_ms: 300,
        }
    }
}

impl Config {
    /// The oz-agent executable: the configured one, else `oz-agent` beside the running
    /// executable, else `<prefix_path>/bin/oz-agent`.
    pub fn agent_path(&self) -> PathBuf {
        if let Some(p) = &self.agent_path {
            return p.clone();
        }
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join("oz-agent")))
            .unwrap_or_else(|| self.prefix_path.join("bin/oz-agent"))
    }
}

/// An IPv4 network `a.b.c.d/len` with host bits zero and a prefix of 8..=30 (room for the
/// bridge and at least one sandbox).
pub fn parse_ipv4_cidr(s: &str) -> Result<(std::net::Ipv4Addr, u8), String> {
    let (addr, len) = s.split_once('/').ok_or_else(|| format!("\"{s}\" is not a CIDR network (a.b.c.d/len)"))?;
    let addr: std::net::Ipv4Addr = addr.parse().map_err(|_| format!("\"{addr}\" is not an IPv4 address"))?;
    let len: u8 = len.parse().map_err(|_| format!("\"{len}\" is not a prefix length"))?;
    if !(8..=30).contains(&len) {
        return Err(format!("prefix length {len} is outside 8..30"));
    }
    let mask = u32::MAX << (32 - len);
    if u32::from(addr) & !mask != 0 {
        let net = std::net::Ipv4Addr::from(u32::from(addr) & mask);
        return Err(format!("\"{s}\" has host bits set (the network is {net}/{len})"));
    }
    Ok((addr, len))
}

/// A network interface name the kernel accepts: 1..=15 bytes of letters, digits, `-`, `_`, `.`.
pub fn valid_ifname(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        && s != "."
        && s != ".."
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_parsing() {
        assert_eq!(parse_ipv4_cidr("10.0.1.0/24"), Ok(("10.0.1.0".parse().unwrap(), 24)));
        assert!(parse_ipv4_cidr("10.0.1.1/24").unwrap_err().contains("host bits"));
        assert!(parse_ipv4_cidr("10.0.1.0/31").unwrap_err().contains("outside"));
        assert!(parse_ipv4_cidr("10.0.1.0").is_err());
        assert!(parse_ipv4_cidr("10.0.300.0/24").is_err());
        assert!(valid_ifname("oz0") && valid_ifname("ozt-bridge_1"));
        assert!(!valid_ifname("") && !valid_ifname("a/b") && !valid_ifname("sixteen-chars-xx"));
    }
}
