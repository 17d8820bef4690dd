//! The profile schema: which keys each object has, and how each decodes into `profile.rs` types.
//!
//! Every key that is absent (or null) keeps the model's default, also inside objects that are
//! present: a `seccomp` object with a `mode` but no `enforce` is enforced (secure by default; the
//! original defaulted `enforce` to false).

use super::decode::{Decoder, Fields};
use crate::json::Node;
use crate::profile::*;

const TOP: &[&str] = &[
    "name",
    "path",
    "paths",
    "default_params",
    "reject_user_args",
    "auto_shutdown",
    "watchdog",
    "wrapper",
    "multi",
    "nosysproc",
    "nodefaults",
    "allow_files",
    "allowed_groups",
    "log_dir",
    "whitelist",
    "blacklist",
    "shared_folders",
    "xserver",
    "environment",
    "networking",
    "firewall",
    "seccomp",
    "external_forwarders",
    "landlock",
    "limits",
];
const TOP_HINTS: &[(&str, &str)] = &[
    ("notifications", "xserver.enable_notifications"),
    ("enable_notifications", "xserver.enable_notifications"),
    ("audio_mode", "xserver.audio_mode"),
    ("sockets", "networking.sockets"),
    ("enforce", "seccomp.enforce"),
    ("env", "environment"),
];
const XSERVER: &[&str] = &[
    "enabled",
    "tray_icon",
    "window_icon",
    "enable_tray",
    "enable_notifications",
    "disable_clipboard",
    "audio_mode",
    "pulseaudio",
    "border",
    "env",
    "backend",
];
const XSERVER_HINTS: &[(&str, &str)] = &[
    ("notifications", "xserver.enable_notifications"),
    ("tray", "xserver.enable_tray"),
    ("clipboard", "xserver.disable_clipboard"),
    ("audio", "xserver.audio_mode"),
    ("enable", "xserver.enabled"),
];
const WHITELIST: &[&str] =
    &["path", "target", "read_only", "can_create", "ignore", "force", "no_follow", "allow_suid", "symlink"];
const BLACKLIST: &[&str] = &["path", "no_follow"];
const ENV: &[&str] = &["name", "value"];
const NETWORKING: &[&str] = &["type", "bridge", "sockets", "hosts", "ip_byte", "dns_mode", "vpn"];
const SOCKET: &[&str] = &["type", "proto", "port", "dport", "destination"];
const VPN: &[&str] = &["type", "configpath", "dns", "authfile"];
const FIREWALL: &[&str] = &["whitelist", "dst_host", "dst_port"];
const SECCOMP: &[&str] = &["mode", "enforce", "debug", "train", "train_output", "whitelist", "blacklist", "extradefs"];
const FORWARDER: &[&str] =
    &["name", "dynamic", "multi", "extproto", "proto", "addr", "targethost", "targetport", "socketowner"];
const LANDLOCK: &[&str] = &["enabled", "required"];
const LIMITS: &[&str] = &["memory", "pids", "cpu_weight"];

/// The objects below the top level, by key path (`[]`: the items of a list), with their keys.
const NESTED: &[(&str, &[&str])] = &[
    ("whitelist[]", WHITELIST),
    ("blacklist[]", BLACKLIST),
    ("xserver", XSERVER),
    ("xserver.env[]", ENV),
    ("environment[]", ENV),
    ("networking", NETWORKING),
    ("networking.sockets[]", SOCKET),
    ("networking.vpn", VPN),
    ("firewall[]", FIREWALL),
    ("seccomp", SECCOMP),
    ("external_forwarders[]", FORWARDER),
    ("landlock", LANDLOCK),
    ("limits", LIMITS),
];

/// Every key a profile may have, as a key path (`xserver.enabled`, `whitelist[].path`), in
/// schema order: the keys the decoder accepts, nothing else.
pub(crate) fn profile_keys() -> Vec<String> {
    let mut out: Vec<String> = TOP.iter().map(|k| k.to_string()).collect();
    for (prefix, keys) in NESTED {
        out.extend(keys.iter().map(|k| format!("{prefix}.{k}")));
    }
    out
}

pub(crate) const AUTO_SHUTDOWN: &[(&str, AutoShutdown)] = &[("yes", AutoShutdown::Yes), ("no", AutoShutdown::No)];
pub(crate) const AUDIO_MODES: &[(&str, AudioMode)] = &[
    ("none", AudioMode::None),
    ("speaker", AudioMode::Speaker),
    ("full", AudioMode::Full),
    ("pulseaudio", AudioMode::Pulseaudio),
];
pub(crate) const X_BACKENDS: &[(&str, XBackend)] = &[("xpra", XBackend::Xpra), ("xephyr", XBackend::Xephyr)];
pub(crate) const NET_TYPES: &[(&str, NetType)] =
    &[("none", NetType::None), ("empty", NetType::Empty), ("bridge", NetType::Bridge), ("host", NetType::Host)];
const DNS_MODES: &[(&str, DnsMode)] = &[("none", DnsMode::None), ("pass", DnsMode::Pass), ("dhcp", DnsMode::Dhcp)];
const DIRECTIONS: &[(&str, SocketDirection)] =
    &[("client", SocketDirection::Client), ("server", SocketDirection::Server)];
const PROTOS: &[(&str, SocketProto)] = &[
    ("tcp", SocketProto::Tcp),
    ("udp", SocketProto::Udp),
    ("unix", SocketProto::Unix),
    ("tcp2unix", SocketProto::Tcp2unix),
    ("unixgram", SocketProto::Unixgram),
    ("unixpacket", SocketProto::Unixpacket),
];
pub(crate) const SECCOMP_MODES: &[(&str, SeccompMode)] = &[
    ("disabled", SeccompMode::Disabled),
    ("blacklist", SeccompMode::Blacklist),
    ("whitelist", SeccompMode::Whitelist),
    ("train", SeccompMode::Train),
];

const U16: u64 = u16::MAX as u64;

/// Decode a whole profile. Returns None only when the root is not an object; every other
/// problem is recorded in the decoder (the caller checks `d.errors`) and the value keeps its
/// default, so one run reports all errors.
pub(crate) fn decode_profile(d: &mut Decoder, root: &Node) -> Option<Profile> {
    let f = d.fields(root, "", TOP, TOP_HINTS)?;
    let path = d.abs_path(&f, "path").filter(|p| !p.is_empty());
    if path.is_none() && !d.errors.iter().any(|e| e.key_path == "path") {
        d.missing(&f, "path");
    }
    let path = path.unwrap_or_default();
    let name = d.string(&f, "name").filter(|n| !n.is_empty()).unwrap_or_else(|| basename(&path));
    Some(Profile {
        name,
        path,
        paths: d.abs_paths(&f, "paths").unwrap_or_default(),
        default_params: d.strings(&f, "default_params").unwrap_or_default(),
        reject_user_args: d.bool(&f, "reject_user_args").unwrap_or(false),
        auto_shutdown: d.choice(&f, "auto_shutdown", AUTO_SHUTDOWN).unwrap_or_default(),
        watchdog: d.strings(&f, "watchdog").unwrap_or_default(),
        wrapper: d.string(&f, "wrapper"),
        multi: d.bool(&f, "multi").unwrap_or(false),
        nosysproc: d.bool(&f, "nosysproc").unwrap_or(false),
        nodefaults: d.bool(&f, "nodefaults").unwrap_or(false),
        allow_files: d.bool(&f, "allow_files").unwrap_or(false),
        allowed_groups: d.strings(&f, "allowed_groups").unwrap_or_default(),
        log_dir: d.abs_path(&f, "log_dir"),
        whitelist: whitelist(d, &f),
        blacklist: blacklist(d, &f),
        shared_folders: d.abs_paths(&f, "shared_folders").unwrap_or_default(),
        xserver: sub(d, &f, "xserver", XSERVER, XSERVER_HINTS, xserver).unwrap_or_default(),
        environment: env_list(d, &f, "environment"),
        networking: sub(d, &f, "networking", NETWORKING, &[], networking).unwrap_or_default(),
        firewall: objects(d, &f, "firewall", FIREWALL, firewall_rule),
        seccomp: sub(d, &f, "seccomp", SECCOMP, &[], seccomp).unwrap_or_default(),
        external_forwarders: objects(d, &f, "external_forwarders", FORWARDER, forwarder),
        landlock: landlock(d, &f),
        limits: sub(d, &f, "limits", LIMITS, &[], limits).unwrap_or_default(),
        profile_path: None,
    })
}

fn basename(path: &str) -> String {
    path.rsplit('/').next().unwrap_or(path).to_string()
}

/// Decode the object under `key` with `decode`, if present.
fn sub<T>(
    d: &mut Decoder,
    f: &Fields,
    key: &str,
    known: &[&'static str],
    hints: &[(&str, &str)],
    decode: fn(&mut Decoder, &Fields) -> T,
) -> Option<T> {
    let node = f.get(key)?;
    let g = d.fields(node, &f.key_path(key), known, hints)?;
    Some(decode(d, &g))
}

/// Decode each object of the array under `key`; `decode` returns None to drop an item.
fn objects<T>(
    d: &mut Decoder,
    f: &Fields,
    key: &str,
    known: &[&'static str],
    decode: fn(&mut Decoder, &Fields) -> Option<T>,
) -> Vec<T> {
    let items = d.array(f, key);
    let mut out = Vec::new();
    let mut json_index = Vec::new();
    for (i, (path, node)) in items.into_iter().enumerate() {
        d.positions.insert(path.clone(), node.pos);
        let Some(g) = d.fields(node, &path, known, &[]) else {
            continue;
        };
        if let Some(item) = decode(d, &g) {
            out.push(item);
            json_index.push(i);
        }
    }
    d.index_map.insert(f.key_path(key), json_index);
    out
}

/// A required, non-empty path of a list item; an item without one is skipped with a warning
/// (firefox's `{"_path": ...}` item).
fn item_path(d: &mut Decoder, g: &Fields) -> Option<String> {
    match d.abs_path(g, "path") {
        Some(p) if !p.is_empty() => Some(p),
        Some(_) => {
            d.warn(g.pos, &g.key_path("path"), "empty path, item skipped");
            None
        }
        None if g.get("path").is_none() => {
            d.warn(g.pos, &g.path, "item without path, skipped");
            None
        }
        None => None,
    }
}

fn whitelist(d: &mut Decoder, f: &Fields) -> Vec<WhitelistItem> {
    objects(d, f, "whitelist", WHITELIST, |d, g| {
        let path = item_path(d, g)?;
        Some(WhitelistItem {
            path,
            target: d.abs_path(g, "target"),
            read_only: d.bool(g, "read_only").unwrap_or(false),
            can_create: d.bool(g, "can_create").unwrap_or(false),
            ignore: d.bool(g, "ignore").unwrap_or(false),
            force: d.bool(g, "force").unwrap_or(false),
            no_follow: d.bool(g, "no_follow").unwrap_or(false),
            allow_suid: d.bool(g, "allow_suid").unwrap_or(false),
            symlink: d.abs_path(g, "symlink"),
        })
    })
}

fn blacklist(d: &mut Decoder, f: &Fields) -> Vec<BlacklistItem> {
    objects(d, f, "blacklist", BLACKLIST, |d, g| {
        let path = item_path(d, g)?;
        Some(BlacklistItem { path, no_follow: d.bool(g, "no_follow").unwrap_or(false) })
    })
}

fn env_list(d: &mut Decoder, f: &Fields, key: &str) -> Vec<EnvVar> {
    objects(d, f, key, ENV, |d, g| {
        let name = d.string(g, "name").filter(|n| !n.is_empty());
        if name.is_none() && g.get("name").is_none() {
            d.missing(g, "name");
        }
        Some(EnvVar { name: name?, value: d.string(g, "value") })
    })
}

fn xserver(d: &mut Decoder, g: &Fields) -> XServer {
    XServer {
        enabled: d.bool(g, "enabled").unwrap_or(false),
        tray_icon: d.abs_path(g, "tray_icon"),
        window_icon: d.abs_path(g, "window_icon"),
        enable_tray: d.bool(g, "enable_tray").unwrap_or(false),
        enable_notifications: d.bool(g, "enable_notifications").unwrap_or(false),
        disable_clipboard: d.bool(g, "disable_clipboard").unwrap_or(false),
        audio_mode: d.choice(g, "audio_mode", AUDIO_MODES).unwrap_or_default(),
        pulseaudio: d.bool(g, "pulseaudio").unwrap_or(false),
        border: d.bool(g, "border").unwrap_or(false),
        env: env_list(d, g, "env"),
        backend: d.choice(g, "backend", X_BACKENDS).unwrap_or_default(),
    }
}

fn networking(d: &mut Decoder, g: &Fields) -> Networking {
    let ip_byte = match d.uint(g, "ip_byte", u64::MAX) {
        Some(b @ 2..=254) => b as u8,
        Some(0) | None => 0,
        Some(b) => {
            let pos = g.get("ip_byte").map_or(g.pos, |n| n.pos);
            d.warn(pos, &g.key_path("ip_byte"), format!("{b} is outside 2..254, using 0 (automatic)"));
            0
        }
    };
    Networking {
        net_type: d.choice(g, "type", NET_TYPES).unwrap_or_default(),
        bridge: d.string(g, "bridge"),
        sockets: objects(d, g, "sockets", SOCKET, socket),
        hosts: d.string(g, "hosts"),
        ip_byte,
        dns_mode: d.choice(g, "dns_mode", DNS_MODES).unwrap_or_default(),
        vpn: sub(d, g, "vpn", VPN, &[], |d, v| Vpn {
            vpn_type: d.string(v, "type").unwrap_or_default(),
            config_path: d.string(v, "configpath"),
            dns: d.strings(v, "dns").unwrap_or_default(),
            auth_file: d.string(v, "authfile"),
        }),
    }
}

fn socket(d: &mut Decoder, g: &Fields) -> Option<SocketForward> {
    for key in ["type", "proto"] {
        if g.get(key).is_none() {
            d.missing(g, key);
        }
    }
    let direction = d.choice(g, "type", DIRECTIONS);
    let proto = d.choice(g, "proto", PROTOS);
    let port = d.uint(g, "port", U16).unwrap_or(0) as u16;
    let dport = d.uint(g, "dport", U16).map(|p| p as u16);
    let destination = d.string(g, "destination");
    Some(SocketForward { direction: direction?, proto: proto?, port, dport, destination })
}

fn firewall_rule(d: &mut Decoder, g: &Fields) -> Option<FirewallRule> {
    Some(FirewallRule {
        whitelist: d.bool(g, "whitelist").unwrap_or(false),
        dst_host: d.string(g, "dst_host").unwrap_or_default(),
        dst_port: d.uint(g, "dst_port", U16).unwrap_or(0) as u16,
    })
}

fn seccomp(d: &mut Decoder, g: &Fields) -> Seccomp {
    let def = Seccomp::default();
    Seccomp {
        mode: d.choice(g, "mode", SECCOMP_MODES).unwrap_or(def.mode),
        enforce: d.bool(g, "enforce").unwrap_or(def.enforce),
        debug: d.bool(g, "debug").unwrap_or(def.debug),
        train: d.bool(g, "train").unwrap_or(def.train),
        train_output: d.abs_path(g, "train_output"),
        whitelist: d.abs_path(g, "whitelist").filter(|p| !p.is_empty()),
        blacklist: d.abs_path(g, "blacklist").filter(|p| !p.is_empty()),
        extradefs: d.strings(g, "extradefs").unwrap_or_default(),
    }
}

fn forwarder(d: &mut Decoder, g: &Fields) -> Option<ExternalForwarder> {
    Some(ExternalForwarder {
        name: d.string(g, "name").unwrap_or_default(),
        dynamic: d.bool(g, "dynamic").unwrap_or(false),
        multi: d.bool(g, "multi").unwrap_or(false),
        extproto: d.string(g, "extproto").unwrap_or_default(),
        proto: d.string(g, "proto").unwrap_or_default(),
        addr: d.string(g, "addr"),
        targethost: d.string(g, "targethost"),
        targetport: d.uint(g, "targetport", U16).map(|p| p as u16),
        socketowner: d.string(g, "socketowner"),
    })
}

/// `landlock`: a boolean (enabled, best effort) or `{enabled, required}`.
fn landlock(d: &mut Decoder, f: &Fields) -> Landlock {
    let def = Landlock::default();
    let Some(node) = f.get("landlock") else {
        return def;
    };
    if let crate::json::Value::Bool(enabled) = node.value {
        return Landlock { enabled, required: false };
    }
    sub(d, f, "landlock", LANDLOCK, &[], |d, g| Landlock {
        enabled: d.bool(g, "enabled").unwrap_or(Landlock::default().enabled),
        required: d.bool(g, "required").unwrap_or(Landlock::default().required),
    })
    .unwrap_or(def)
}

fn limits(d: &mut Decoder, g: &Fields) -> Limits {
    Limits {
        memory_bytes: memory(d, g),
        pids: d.uint(g, "pids", u64::MAX),
        cpu_weight: d.uint(g, "cpu_weight", 10_000).map(|w| w as u32),
    }
}

/// `limits.memory`: bytes as a number, or a string with a binary suffix (`512M`, `2G`).
fn memory(d: &mut Decoder, g: &Fields) -> Option<u64> {
    let node = g.get("memory")?;
    if let crate::json::Value::String(s) = &node.value {
        let parsed = parse_size(s);
        if parsed.is_none() {
            let msg = format!("invalid size \"{s}\", expected bytes or a number with K, M, G or T");
            d.error(node.pos, &g.key_path("memory"), msg);
        }
        return parsed;
    }
    d.uint(g, "memory", u64::MAX)
}

/// `123`, `512K`, `512M`, `2G`, `1T` (binary multiples; a trailing `B`/`iB` is accepted).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let t = s.trim();
    let t = t.strip_suffix("iB").or_else(|| t.strip_suffix('B')).unwrap_or(t);
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let shift = match unit.to_ascii_uppercase().as_str() {
        "" => 0,
        "K" => 10,
        "M" => 20,
        "G" => 30,
        "T" => 40,
        _ => return None,
    };
    num.parse::<u64>().ok()?.checked_mul(1u64 << shift)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("123"), Some(123));
        assert_eq!(parse_size("512M"), Some(512 << 20));
        assert_eq!(parse_size("2G"), Some(2 << 30));
        assert_eq!(parse_size("2GiB"), Some(2 << 30));
        assert_eq!(parse_size("4k"), Some(4096));
        assert_eq!(parse_size("1X"), None);
        assert_eq!(parse_size("G"), None);
        assert_eq!(parse_size("99999999999T"), None);
    }

    #[test]
    fn basenames() {
        assert_eq!(basename("/usr/bin/evince"), "evince");
        assert_eq!(basename("${PATH}/vlc"), "vlc");
    }
}
