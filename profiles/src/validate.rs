//! The pure validation pass: contradictions and dangerous settings in a decoded profile, found
//! before anything is cloned or mounted. No syscalls, no file system access.
//!
//! `load::parse_profile` runs it and turns every error into a load error (positioned at the key).

use crate::profile::{AudioMode, NetType, Profile, SeccompMode, SocketProto};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

/// One finding. `key_path` names the key (`networking.sockets[1].proto`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    pub severity: Severity,
    pub key_path: String,
    pub message: String,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, "{sev}: {}: {}", self.key_path, self.message)
    }
}

/// Whitelisting one of these whole would hand the host's view to the sandbox.
const FORBIDDEN_WHITELIST: &[&str] = &["/", "/proc", "/sys", "/dev", "/run", "/etc", "/home", "/root"];

#[derive(Default)]
struct Issues(Vec<Issue>);

impl Issues {
    fn error(&mut self, key_path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Issue { severity: Severity::Error, key_path: key_path.into(), message: message.into() });
    }
    fn warn(&mut self, key_path: impl Into<String>, message: impl Into<String>) {
        self.0.push(Issue { severity: Severity::Warning, key_path: key_path.into(), message: message.into() });
    }
}

/// Check a profile; errors first-class, warnings informative.
pub fn validate(p: &Profile) -> Vec<Issue> {
    let mut out = Issues::default();
    check_name(p, &mut out);
    check_paths(p, &mut out);
    check_whitelist(p, &mut out);
    check_networking(p, &mut out);
    check_seccomp(p, &mut out);
    check_environment(p, &mut out);
    check_misc(p, &mut out);
    check_host_display(p, &mut out);
    out.0
}

fn has_glob(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

fn has_dotdot(s: &str) -> bool {
    s.split('/').any(|c| c == "..")
}

/// `/proc/` and `/proc` are the same directory.
fn normalise(s: &str) -> &str {
    let t = s.trim_end_matches('/');
    if t.is_empty() {
        "/"
    } else {
        t
    }
}

fn check_name(p: &Profile, out: &mut Issues) {
    let n = &p.name;
    let ok_chars = n.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+'));
    if n.is_empty() || n == "." || n == ".." || !ok_chars {
        out.error("name", format!("invalid profile name \"{n}\" (use letters, digits, '-', '_', '.', '+')"));
    }
}

fn check_paths(p: &Profile, out: &mut Issues) {
    if p.path.is_empty() {
        return; // reported by the loader as a missing key
    }
    if has_glob(&p.path) {
        out.error("path", "the program path must not contain a glob");
    }
    let mut seen = std::collections::HashSet::new();
    for (i, extra) in p.paths.iter().enumerate() {
        if !seen.insert(extra) || *extra == p.path {
            out.warn(format!("paths[{i}]"), format!("{extra} is listed twice"));
        }
    }
    let dotdot = p.paths.iter().enumerate().map(|(i, s)| (format!("paths[{i}]"), s));
    let shared = p.shared_folders.iter().enumerate().map(|(i, s)| (format!("shared_folders[{i}]"), s));
    let black = p.blacklist.iter().enumerate().map(|(i, b)| (format!("blacklist[{i}].path"), &b.path));
    for (key, s) in std::iter::once(("path".to_string(), &p.path)).chain(dotdot).chain(shared).chain(black) {
        if has_dotdot(s) {
            out.error(key, format!("path {s} must not contain '..'"));
        }
    }
}

fn check_whitelist(p: &Profile, out: &mut Issues) {
    for (i, w) in p.whitelist.iter().enumerate() {
        let key = format!("whitelist[{i}]");
        if FORBIDDEN_WHITELIST.contains(&normalise(&w.path)) {
            out.error(format!("{key}.path"), format!("whitelisting {} whole is not allowed", w.path));
        }
        if has_dotdot(&w.path) {
            out.error(format!("{key}.path"), format!("path {} must not contain '..'", w.path));
        }
        if let Some(t) = &w.target {
            if has_glob(t) {
                out.error(format!("{key}.target"), format!("target {t} must not contain a glob"));
            }
            if has_glob(&w.path) {
                out.error(format!("{key}.path"), "a globbed path cannot have a target");
            }
            if has_dotdot(t) {
                out.error(format!("{key}.target"), format!("target {t} must not contain '..'"));
            }
            if normalise(t) == "/" {
                out.error(format!("{key}.target"), "target must not be /");
            }
        }
        if w.allow_suid && !w.read_only {
            out.warn(format!("{key}.allow_suid"), "allow_suid implies read_only");
        }
    }
}

fn check_networking(p: &Profile, out: &mut Issues) {
    let n = &p.networking;
    if !n.sockets.is_empty() && matches!(n.net_type, NetType::Host | NetType::None) {
        let t = if n.net_type == NetType::Host { "host" } else { "none" };
        out.error("networking.sockets", format!("socket forwarding needs networking type empty or bridge, not {t}"));
    }
    if n.bridge.is_some() && n.net_type != NetType::Bridge {
        out.error("networking.bridge", "bridge is set but networking type is not bridge");
    }
    if let Some(b) = &n.bridge {
        if b.is_empty() || b.len() > 10 || !b.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            out.error("networking.bridge", format!("invalid bridge name \"{b}\" (1-10 letters, digits, '-', '_')"));
        }
    }
    if n.vpn.is_some() && n.net_type != NetType::Bridge {
        out.error("networking.vpn", "a vpn needs networking type bridge");
    }
    for (i, s) in n.sockets.iter().enumerate() {
        let key = format!("networking.sockets[{i}]");
        if s.port == 0 {
            out.error(format!("{key}.port"), "port must be 1..65535");
        }
        let unixy = matches!(
            s.proto,
            SocketProto::Unix | SocketProto::Tcp2unix | SocketProto::Unixgram | SocketProto::Unixpacket
        );
        match (&s.destination, s.proto) {
            (_, SocketProto::Unixpacket) => out.error(format!("{key}.proto"), "unixpacket forwarding is not supported"),
            (None, SocketProto::Tcp2unix) => {
                out.error(format!("{key}.destination"), "tcp2unix needs a destination socket path")
            }
            (None, SocketProto::Unix | SocketProto::Unixgram) => {
                out.error(format!("{key}.destination"), "a unix forwarder needs a destination socket path")
            }
            (Some(d), SocketProto::Tcp | SocketProto::Udp) if !is_loopback(d) => out.error(
                format!("{key}.destination"),
                format!("{d} is not a loopback address (forwarders reach only the host's loopback)"),
            ),
            (Some(d), _) if unixy && !d.starts_with('/') => {
                out.error(format!("{key}.destination"), format!("unix socket destination {d} must be an absolute path"))
            }
            _ => {}
        }
    }
    check_external_forwarders(p, out);
    if !p.firewall.is_empty() && n.net_type != NetType::Bridge {
        out.error("firewall", "firewall rules need networking type bridge");
    }
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// `external_forwarders`: a unix socket on the host to a TCP port on the sandbox's loopback.
fn check_external_forwarders(p: &Profile, out: &mut Issues) {
    if !p.external_forwarders.is_empty() && matches!(p.networking.net_type, NetType::Host | NetType::None) {
        out.error("external_forwarders", "external forwarders need networking type empty or bridge");
    }
    for (i, f) in p.external_forwarders.iter().enumerate() {
        let key = format!("external_forwarders[{i}]");
        if f.name.is_empty() {
            out.error(format!("{key}.name"), "an external forwarder needs a name");
        }
        if !matches!(f.extproto.as_str(), "" | "unix") {
            out.error(format!("{key}.extproto"), format!("extproto {} is not supported (only unix)", f.extproto));
        }
        if !matches!(f.proto.as_str(), "" | "tcp") {
            out.error(format!("{key}.proto"), format!("proto {} is not supported (only tcp)", f.proto));
        }
        if let Some(h) = f.targethost.as_deref().filter(|h| !is_loopback(h)) {
            out.error(format!("{key}.targethost"), format!("{h} is not a loopback address"));
        }
    }
}

fn check_seccomp(p: &Profile, out: &mut Issues) {
    let s = &p.seccomp;
    match s.mode {
        SeccompMode::Whitelist if s.whitelist.is_none() => {
            out.error("seccomp.whitelist", "seccomp mode whitelist needs a whitelist policy file");
        }
        SeccompMode::Whitelist if s.blacklist.is_some() => {
            out.warn("seccomp.blacklist", "blacklist policy is ignored in whitelist mode");
        }
        SeccompMode::Blacklist if s.whitelist.is_some() => {
            out.warn("seccomp.whitelist", "whitelist policy is ignored in blacklist mode");
        }
        SeccompMode::Disabled => out.warn("seccomp.mode", "seccomp is disabled for this sandbox"),
        _ => {}
    }
    if !matches!(s.mode, SeccompMode::Disabled | SeccompMode::Train) && !s.enforce {
        out.warn("seccomp.enforce", "seccomp is not enforced: violations are only reported (oz why)");
    }
    let training = s.mode == SeccompMode::Train || s.train && s.mode != SeccompMode::Disabled;
    match &s.train_output {
        Some(path) if !path.starts_with('/') => {
            out.error("seccomp.train_output", format!("\"{path}\" is not an absolute host path"));
        }
        None if training => {
            out.warn("seccomp.train_output", "training without train_output: the recorded calls are not kept");
        }
        _ => {}
    }
}

fn check_environment(p: &Profile, out: &mut Issues) {
    let all = p.environment.iter().enumerate().map(|(i, e)| (format!("environment[{i}]"), e));
    let xenv = p.xserver.env.iter().enumerate().map(|(i, e)| (format!("xserver.env[{i}]"), e));
    for (key, e) in all.chain(xenv) {
        if e.name.contains('=') || e.name.contains('\0') {
            out.error(format!("{key}.name"), format!("invalid variable name \"{}\"", e.name));
        }
        if e.value.as_deref().is_some_and(|v| v.contains('\0')) {
            out.error(format!("{key}.value"), "value contains a NUL byte");
        }
    }
}

/// Ways a profile still leads to the host's display: its X sockets or an Xauthority whitelisted,
/// or the caller's DISPLAY/XAUTHORITY passed to a program without its own X server.
fn check_host_display(p: &Profile, out: &mut Issues) {
    for (i, w) in p.whitelist.iter().enumerate() {
        if w.path.contains("X11-unix") || w.path.contains("Xauthority") {
            out.warn(
                format!("whitelist[{i}].path"),
                format!("{} gives the sandbox the host's X display (use xserver.enabled)", w.path),
            );
        }
    }
    if p.xserver.enabled {
        return;
    }
    for (i, e) in p.environment.iter().enumerate() {
        if e.value.is_none() && (e.name == "DISPLAY" || e.name == "XAUTHORITY") {
            out.warn(
                format!("environment[{i}]"),
                format!("passes the host's {} to the program (use xserver.enabled)", e.name),
            );
        }
    }
}

fn check_misc(p: &Profile, out: &mut Issues) {
    if !p.xserver.enabled && p.xserver.audio_mode != AudioMode::None {
        out.warn("xserver.audio_mode", "audio needs xserver.enabled");
    }
    if p.xserver.enabled && p.nosysproc {
        out.warn("nosysproc", "x11 applications usually need /proc");
    }
    if p.landlock.required && !p.landlock.enabled {
        out.error("landlock.required", "landlock is required but not enabled");
    }
    let l = &p.limits;
    if l.memory_bytes == Some(0) {
        out.error("limits.memory", "memory limit must be greater than 0");
    }
    if l.pids == Some(0) {
        out.error("limits.pids", "pids limit must be greater than 0");
    }
    if matches!(l.cpu_weight, Some(w) if !(1..=10_000).contains(&w)) {
        out.error("limits.cpu_weight", "cpu_weight must be 1..10000");
    }
    if p.auto_shutdown == crate::profile::AutoShutdown::Yes && !p.watchdog.is_empty() {
        out.warn("watchdog", "watchdog only matters with auto_shutdown no");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profile::*;

    fn base() -> Profile {
        Profile {
            name: "t".into(),
            path: "/usr/bin/t".into(),
            paths: vec![],
            default_params: vec![],
            reject_user_args: false,
            auto_shutdown: AutoShutdown::Yes,
            watchdog: vec![],
            wrapper: None,
            multi: false,
            nosysproc: false,
            nodefaults: false,
            allow_files: false,
            allowed_groups: vec![],
            log_dir: None,
            whitelist: vec![],
            blacklist: vec![],
            shared_folders: vec![],
            xserver: XServer::default(),
            environment: vec![],
            networking: Networking::default(),
            firewall: vec![],
            seccomp: Seccomp::default(),
            external_forwarders: vec![],
            landlock: Landlock::default(),
            limits: Limits::default(),
            profile_path: None,
        }
    }

    fn errors(p: &Profile) -> Vec<String> {
        validate(p)
            .into_iter()
            .filter(|i| i.severity == Severity::Error)
            .map(|i| i.key_path + ": " + &i.message)
            .collect()
    }

    fn sock() -> SocketForward {
        SocketForward {
            direction: SocketDirection::Client,
            proto: SocketProto::Tcp,
            port: 9050,
            dport: None,
            destination: None,
        }
    }

    #[test]
    fn training_output_must_be_an_absolute_host_path() {
        let mut p = base();
        p.seccomp =
            Seccomp { mode: SeccompMode::Train, train_output: Some("out.seccomp".into()), ..Seccomp::default() };
        assert_eq!(errors(&p), vec!["seccomp.train_output: \"out.seccomp\" is not an absolute host path"]);
        p.seccomp.train_output = None;
        assert!(errors(&p).is_empty());
        let warned = validate(&p).into_iter().any(|i| i.key_path == "seccomp.train_output");
        assert!(warned, "training without an output is warned about");
        p.seccomp.train_output = Some("/home/u/app.seccomp".into());
        assert!(validate(&p).into_iter().all(|i| i.key_path != "seccomp.train_output"));
    }

    #[test]
    fn paths_to_the_host_display_are_warned_about() {
        let mut p = base();
        p.whitelist.push(WhitelistItem { path: "/tmp/.X11-unix".into(), ..Default::default() });
        p.whitelist.push(WhitelistItem { path: "${HOME}/.Xauthority".into(), ..Default::default() });
        p.environment.push(EnvVar { name: "DISPLAY".into(), value: None });
        let warned: Vec<String> =
            validate(&p).into_iter().filter(|i| i.severity == Severity::Warning).map(|i| i.key_path).collect();
        assert_eq!(warned, ["whitelist[0].path", "whitelist[1].path", "environment[0]"]);
        p.xserver.enabled = true;
        assert_eq!(validate(&p).len(), 2, "oz sets DISPLAY itself for an X profile");
    }

    #[test]
    fn clean_profile_has_no_errors() {
        assert!(errors(&base()).is_empty());
    }

    #[test]
    fn sockets_need_a_namespace_network() {
        for t in [NetType::Host, NetType::None] {
            let mut p = base();
            p.networking.net_type = t;
            p.networking.sockets.push(sock());
            assert_eq!(errors(&p).len(), 1, "{t:?}");
            assert!(errors(&p)[0].starts_with("networking.sockets: "));
        }
        let mut p = base();
        p.networking.sockets.push(sock());
        assert!(errors(&p).is_empty());
    }

    #[test]
    fn whitelist_roots_and_glob_targets() {
        let mut p = base();
        for path in ["/", "/proc/", "/sys", "/dev"] {
            p.whitelist.push(WhitelistItem { path: path.into(), ..Default::default() });
        }
        p.whitelist.push(WhitelistItem { path: "/a".into(), target: Some("/b/*".into()), ..Default::default() });
        p.whitelist.push(WhitelistItem { path: "/a/../etc/shadow".into(), ..Default::default() });
        let e = errors(&p);
        assert_eq!(e.len(), 6, "{e:?}");
        assert!(e[4].starts_with("whitelist[4].target: "));
        assert!(e[5].contains("'..'"));
    }

    #[test]
    fn bridge_vpn_and_seccomp_contradictions() {
        let mut p = base();
        p.networking.bridge = Some("clear".into());
        p.seccomp.mode = SeccompMode::Whitelist;
        assert_eq!(
            errors(&p),
            vec![
                "networking.bridge: bridge is set but networking type is not bridge",
                "seccomp.whitelist: seccomp mode whitelist needs a whitelist policy file",
            ]
        );
        p.networking.net_type = NetType::Bridge;
        p.seccomp.whitelist = Some("/x.seccomp".into());
        p.seccomp.blacklist = Some("/y.seccomp".into());
        assert!(errors(&p).is_empty());
        assert!(validate(&p).iter().any(|i| i.key_path == "seccomp.blacklist"));
    }

    #[test]
    fn firewall_needs_bridge_networking() {
        let mut p = base();
        p.firewall.push(FirewallRule { whitelist: true, dst_host: "10.1.2.3".into(), dst_port: 80 });
        assert_eq!(errors(&p), vec!["firewall: firewall rules need networking type bridge"]);
        p.networking.net_type = NetType::Bridge;
        assert!(errors(&p).is_empty());
    }

    #[test]
    fn socket_details() {
        let mut p = base();
        p.networking.sockets.push(SocketForward { proto: SocketProto::Tcp2unix, ..sock() });
        p.networking.sockets.push(SocketForward { port: 0, ..sock() });
        p.networking.sockets.push(SocketForward {
            proto: SocketProto::Unix,
            destination: Some("rel".into()),
            ..sock()
        });
        p.networking.sockets.push(SocketForward { destination: Some("10.0.0.1".into()), ..sock() });
        p.networking.sockets.push(SocketForward { destination: Some("127.0.0.2".into()), ..sock() });
        p.networking.sockets.push(SocketForward { proto: SocketProto::Unixgram, ..sock() });
        p.networking.sockets.push(SocketForward { proto: SocketProto::Unixpacket, ..sock() });
        let e = errors(&p);
        assert_eq!(e.len(), 6, "{e:?}");
        assert!(e[0].starts_with("networking.sockets[0].destination"));
        assert!(e[1].starts_with("networking.sockets[1].port"));
        assert!(e[2].starts_with("networking.sockets[2].destination"));
        assert!(e[3].starts_with("networking.sockets[3].destination: 10.0.0.1 is not a loopback"));
        assert!(e[4].starts_with("networking.sockets[5].destination: a unix forwarder needs"));
        assert!(e[5].starts_with("networking.sockets[6].proto: unixpacket"));
    }

    #[test]
    fn external_forwarders_reach_only_a_loopback_tcp_port() {
        let mut p = base();
        let ok = crate::profile::ExternalForwarder {
            name: "onion".into(),
            extproto: "unix".into(),
            proto: "tcp".into(),
            targethost: Some("127.0.0.1".into()),
            ..Default::default()
        };
        p.external_forwarders.push(ok.clone());
        assert!(errors(&p).is_empty());
        p.external_forwarders.push(crate::profile::ExternalForwarder {
            name: String::new(),
            proto: "udp".into(),
            targethost: Some("192.168.1.1".into()),
            ..ok
        });
        p.networking.net_type = NetType::None;
        let e = errors(&p);
        assert_eq!(e.len(), 4, "{e:?}");
        assert!(e[0].starts_with("external_forwarders: "));
        assert!(e[1].starts_with("external_forwarders[1].name"));
        assert!(e[2].starts_with("external_forwarders[1].proto"));
        assert!(e[3].starts_with("external_forwarders[1].targethost"));
    }

    #[test]
    fn names_env_limits_landlock() {
        let mut p = base();
        p.name = "../x".into();
        p.environment.push(EnvVar { name: "A=B".into(), value: None });
        p.limits.cpu_weight = Some(0);
        p.limits.pids = Some(0);
        p.landlock = Landlock { enabled: false, required: true };
        let e = errors(&p);
        assert_eq!(e.len(), 5, "{e:?}");
    }
}
