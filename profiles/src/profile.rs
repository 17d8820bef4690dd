//! The typed profile model: every key the original Oz accepted, with typed enums.
//!
//! These types are the single model every part of oz builds from (daemon, agent, CLI). They are
//! plain data: loading with diagnostics lives in `load.rs`, the pure validation pass in
//! `validate.rs`. They derive serde so that they cross the daemon -> agent channel with bincode 1.3
//! and serialize back to JSON for round-trip checks. For bincode's sake: no `skip_serializing_if`,
//! no `flatten`, no `untagged`, no `serde_json::Value` in here.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// A sandbox profile (`/var/lib/oz/cells.d/NAME.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Profile name; defaults to the basename of `path`.
    pub name: String,
    /// The program to run (absolute path; may use `${PATH}/`).
    pub path: String,
    /// Further executables that map to this profile (wrapper mode).
    pub paths: Vec<String>,
    pub default_params: Vec<String>,
    pub reject_user_args: bool,
    pub auto_shutdown: AutoShutdown,
    /// Process names (argv\[0\] basenames) that keep the sandbox alive after the program exits.
    pub watchdog: Vec<String>,
    pub wrapper: Option<String>,
    /// One sandbox per launch instead of one per profile.
    pub multi: bool,
    /// Neither /proc nor /sys in the sandbox.
    pub nosysproc: bool,
    /// Skip the default blacklist.
    pub nodefaults: bool,
    pub allow_files: bool,
    pub allowed_groups: Vec<String>,
    pub log_dir: Option<String>,
    pub whitelist: Vec<WhitelistItem>,
    pub blacklist: Vec<BlacklistItem>,
    pub shared_folders: Vec<String>,
    pub xserver: XServer,
    pub environment: Vec<EnvVar>,
    pub networking: Networking,
    pub firewall: Vec<FirewallRule>,
    pub seccomp: Seccomp,
    pub external_forwarders: Vec<ExternalForwarder>,
    /// Beyond the original: Landlock filesystem confinement.
    pub landlock: Landlock,
    /// Beyond the original: cgroup resource limits.
    pub limits: Limits,
    /// The file this profile was loaded from (not a JSON key).
    #[serde(skip)]
    pub profile_path: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AutoShutdown {
    #[default]
    Yes,
    No,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct WhitelistItem {
    pub path: String,
    /// Where to bind inside the sandbox (defaults to `path`). No globs.
    pub target: Option<String>,
    pub read_only: bool,
    pub can_create: bool,
    pub ignore: bool,
    pub force: bool,
    pub no_follow: bool,
    pub allow_suid: bool,
    /// A symlink to create inside the sandbox pointing at the target (internal in the original,
    /// but accepted from JSON there too).
    pub symlink: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BlacklistItem {
    pub path: String,
    pub no_follow: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct XServer {
    pub enabled: bool,
    pub tray_icon: Option<String>,
    pub window_icon: Option<String>,
    pub enable_tray: bool,
    pub enable_notifications: bool,
    pub disable_clipboard: bool,
    pub audio_mode: AudioMode,
    /// Unused by the original; accepted.
    pub pulseaudio: bool,
    pub border: bool,
    /// Applied to the host-side xpra client only.
    pub env: Vec<EnvVar>,
    /// Beyond the original: which X server the program draws on.
    pub backend: XBackend,
}

/// `xserver.backend`: how a sandbox gets its own X display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum XBackend {
    /// An Xpra server (with its own Xvfb) in the sandbox, an Xpra client on the user's display.
    #[default]
    Xpra,
    /// Xephyr on the host as the user, a nested window on the user's display; only its socket
    /// is bound into the sandbox.
    Xephyr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioMode {
    #[default]
    None,
    Speaker,
    Full,
    Pulseaudio,
}

/// `{name}` passes the caller's value through; `{name, value}` sets a fixed value.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct EnvVar {
    pub name: String,
    pub value: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Networking {
    #[serde(rename = "type")]
    pub net_type: NetType,
    pub bridge: Option<String>,
    pub sockets: Vec<SocketForward>,
    pub hosts: Option<String>,
    pub ip_byte: u8,
    pub dns_mode: DnsMode,
    pub vpn: Option<Vpn>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NetType {
    /// New network namespace, not even loopback up.
    None,
    /// New network namespace with loopback (the original's behaviour for an unset type).
    #[default]
    Empty,
    /// New network namespace with a veth on a host bridge, NAT.
    Bridge,
    /// The host's network namespace.
    Host,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DnsMode {
    #[default]
    None,
    Pass,
    Dhcp,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SocketForward {
    #[serde(rename = "type")]
    pub direction: SocketDirection,
    pub proto: SocketProto,
    pub port: u16,
    /// Destination port on the far side (defaults to `port`).
    pub dport: Option<u16>,
    pub destination: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketDirection {
    /// Sandbox connects out to a host service.
    Client,
    /// Host connects in to a sandbox service.
    Server,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SocketProto {
    Tcp,
    Udp,
    Unix,
    Tcp2unix,
    Unixgram,
    Unixpacket,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Vpn {
    #[serde(rename = "type")]
    pub vpn_type: String,
    #[serde(rename = "configpath")]
    pub config_path: Option<String>,
    pub dns: Vec<String>,
    #[serde(rename = "authfile")]
    pub auth_file: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct FirewallRule {
    pub whitelist: bool,
    pub dst_host: String,
    /// 0 means any port.
    pub dst_port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Seccomp {
    pub mode: SeccompMode,
    /// false = log only, never kill or deny.
    pub enforce: bool,
    pub debug: bool,
    pub train: bool,
    pub train_output: Option<String>,
    /// Policy file for whitelist mode.
    pub whitelist: Option<String>,
    /// Policy file for blacklist mode (built-in default when unset).
    pub blacklist: Option<String>,
    pub extradefs: Vec<String>,
}

impl Default for Seccomp {
    /// Secure by default: the built-in blacklist, enforced (the original defaulted to disabled).
    fn default() -> Self {
        Seccomp {
            mode: SeccompMode::Blacklist,
            enforce: true,
            debug: false,
            train: false,
            train_output: None,
            whitelist: None,
            blacklist: None,
            extradefs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeccompMode {
    Disabled,
    #[default]
    Blacklist,
    Whitelist,
    Train,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ExternalForwarder {
    pub name: String,
    pub dynamic: bool,
    pub multi: bool,
    pub extproto: String,
    pub proto: String,
    pub addr: Option<String>,
    pub targethost: Option<String>,
    pub targetport: Option<u16>,
    pub socketowner: Option<String>,
}

/// Landlock: restrict filesystem access to what the sandbox was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landlock {
    pub enabled: bool,
    /// Fail the launch when the kernel lacks Landlock (default: best effort).
    pub required: bool,
}

impl Default for Landlock {
    fn default() -> Self {
        Landlock { enabled: true, required: false }
    }
}

/// cgroup limits; None = unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Limits {
    /// Memory limit in bytes (JSON key `memory`: bytes, or a string such as "512M" or "2G").
    #[serde(rename = "memory")]
    pub memory_bytes: Option<u64>,
    /// Maximum number of tasks.
    pub pids: Option<u64>,
    /// Relative CPU weight, 1..=10000 (cgroup v2 cpu.weight; mapped to v1 cpu.shares).
    pub cpu_weight: Option<u32>,
}
