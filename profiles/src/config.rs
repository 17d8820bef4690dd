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
    pub nm_ignore_file: PathBuf,
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
