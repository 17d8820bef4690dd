use super::*;
use crate::profile::*;

fn load(text: &str) -> Result<Loaded<Profile>, ProfileError> {
    parse_profile(text.as_bytes(), Path::new("t.json"))
}

fn errors(text: &str) -> Vec<String> {
    match load(text) {
        Ok(_) => panic!("expected errors for {text}"),
        Err(e) => e.lines(),
    }
}

#[test]
fn minimal_profile_gets_defaults() {
    let l = load("{\"path\": \"/usr/bin/evince\"}").unwrap();
    let p = l.value;
    assert_eq!(p.name, "evince");
    assert_eq!(p.auto_shutdown, AutoShutdown::Yes);
    assert_eq!(p.seccomp, Seccomp::default());
    assert!(p.seccomp.enforce);
    assert_eq!(p.seccomp.mode, SeccompMode::Blacklist);
    assert!(!p.xserver.enabled);
    assert_eq!(p.networking.net_type, NetType::Empty);
    assert_eq!(p.profile_path.as_deref(), Some(Path::new("t.json")));
}

#[test]
fn seccomp_mode_without_enforce_is_enforced() {
    let p = load("{\"path\": \"/x\", \"seccomp\": {\"mode\": \"disabled\"}}").unwrap().value;
    assert_eq!(p.seccomp.mode, SeccompMode::Disabled);
    let p = load("{\"path\": \"/x\", \"seccomp\": {\"mode\": \"whitelist\", \"whitelist\": \"/w\"}}").unwrap().value;
    assert!(p.seccomp.enforce);
}

#[test]
fn keys_fold_case_and_misspellings_warn() {
    let text = "{\"PATH\": \"/x\",\n\"xserver\": {\"Enabled\": true,\n  \"notifications\": true}, \"_unused\": 1}";
    let l = load(text).unwrap();
    assert!(l.value.xserver.enabled);
    assert_eq!(l.warnings.len(), 1);
    assert_eq!(
        l.warnings[0].to_string(),
        "t.json:3:3: xserver.notifications: unknown key (ignored), did you mean xserver.enable_notifications"
    );
}

#[test]
fn errors_name_line_column_and_key_path() {
    let text = "{\"path\": \"/x\",\n\"networking\": {\"sockets\": [\n {\"type\": \"client\", \"proto\": \"tcp\", \"port\": 1},\n {\"type\": \"client\", \"proto\": \"sctp\", \"port\": 2}]}}";
    assert_eq!(
        errors(text),
        vec!["t.json:4:30: networking.sockets[1].proto: invalid value \"sctp\", expected one of: tcp, udp, unix, tcp2unix, unixgram, unixpacket"]
    );
}

#[test]
fn all_errors_are_reported_in_one_run() {
    let e = errors("{\"path\": \"/x\", \"multi\": 1, \"auto_shutdown\": \"maybe\", \"paths\": [\"rel\"]}");
    assert_eq!(e.len(), 3, "{e:?}");
}

#[test]
fn missing_and_relative_path() {
    assert_eq!(errors("{\"name\": \"x\"}"), vec!["t.json:1:1: path: missing required key"]);
    assert_eq!(errors("{\"path\": \"\"}"), vec!["t.json:1:1: path: missing required key"]);
    let e = errors("{\"path\": \"bin/x\"}");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("t.json:1:10: path: path \"bin/x\" must be absolute"), "{e:?}");
    assert!(load("{\"path\": \"${PATH}/x\"}").is_ok());
    assert!(load("{\"path\": \"/x\", \"shared_folders\": [\"${XDG_DOWNLOAD_DIR}\", \"${HOME}/y\"]}").is_ok());
}

#[test]
fn validation_errors_are_positioned() {
    let text = "{\"path\": \"/x\",\n\"networking\": {\"type\": \"host\",\n\"sockets\": [{\"type\": \"client\", \"proto\": \"tcp\", \"port\": 1}]}}";
    assert_eq!(
        errors(text),
        vec!["t.json:3:12: networking.sockets: socket forwarding needs networking type empty or bridge, not host"]
    );
    let text = "{\"path\": \"/x\", \"whitelist\": [{\"path\": \"/a\"},\n {\"_path\": \"/b\"}, {\"path\": \"/\"}]}";
    assert_eq!(errors(text), vec!["t.json:2:28: whitelist[2].path: whitelisting / whole is not allowed"]);
}

#[test]
fn empty_whitelist_items_are_skipped_with_a_warning() {
    let l = load("{\"path\": \"/x\", \"whitelist\": [{\"_path\": \"/a\"}, {\"path\": \"/b\"}]}").unwrap();
    assert_eq!(l.value.whitelist.len(), 1);
    assert_eq!(l.value.whitelist[0].path, "/b");
    assert!(l.warnings[0].message.contains("without path"));
}

#[test]
fn landlock_and_limits() {
    let p = load("{\"path\": \"/x\", \"landlock\": false}").unwrap().value;
    assert_eq!(p.landlock, Landlock { enabled: false, required: false });
    let p = load("{\"path\": \"/x\", \"landlock\": {\"required\": true}, \"limits\": {\"memory\": \"512M\", \"pids\": 100, \"cpu_weight\": 50}}")
        .unwrap()
        .value;
    assert_eq!(p.landlock, Landlock { enabled: true, required: true });
    assert_eq!(p.limits, Limits { memory_bytes: Some(512 << 20), pids: Some(100), cpu_weight: Some(50) });
    let p = load("{\"path\": \"/x\", \"limits\": {\"memory\": 4096}}").unwrap().value;
    assert_eq!(p.limits.memory_bytes, Some(4096));
    assert_eq!(errors("{\"path\": \"/x\", \"limits\": {\"memory\": \"lots\"}}").len(), 1);
    assert_eq!(errors("{\"path\": \"/x\", \"limits\": {\"cpu_weight\": 20000}}").len(), 1);
    assert_eq!(errors("{\"path\": \"/x\", \"landlock\": \"yes\"}").len(), 1);
}

#[test]
fn ip_byte_outside_range_becomes_zero() {
    let l = load("{\"path\": \"/x\", \"networking\": {\"ip_byte\": 255}}").unwrap();
    assert_eq!(l.value.networking.ip_byte, 0);
    assert_eq!(l.warnings.len(), 1);
}

#[test]
fn round_trip_through_json_and_bincode() {
    let text = r#"{"path": "/usr/bin/x", "paths": ["/usr/bin/y"], "auto_shutdown": "no", "watchdog": ["w"],
        "whitelist": [{"path": "${HOME}/a", "target": "${HOME}/b", "read_only": true, "symlink": "/s"}],
        "blacklist": [{"path": "/etc/shadow", "no_follow": true}],
        "xserver": {"enabled": true, "audio_mode": "pulseaudio", "env": [{"name": "A", "value": "1"}]},
        "environment": [{"name": "B"}],
        "networking": {"type": "bridge", "bridge": "clear", "ip_byte": 7, "dns_mode": "pass",
            "sockets": [{"type": "client", "proto": "tcp2unix", "port": 9051, "dport": 1, "destination": "/run/x"}],
            "vpn": {"type": "openvpn", "configpath": "c", "dns": ["1.1.1.1"], "authfile": "a"}},
        "firewall": [{"whitelist": true, "dst_host": "h", "dst_port": 443}],
        "seccomp": {"mode": "whitelist", "whitelist": "/w", "enforce": false, "extradefs": ["/e"]},
        "external_forwarders": [{"name": "f", "dynamic": true, "proto": "tcp", "extproto": "unix", "targetport": 5}],
        "landlock": {"enabled": true, "required": true},
        "limits": {"memory": "2G", "pids": 10, "cpu_weight": 100}}"#;
    let p = load(text).unwrap().value;
    let json = to_json(&p);
    let back = load(&json).unwrap();
    assert_eq!(back.value, p);
    assert!(back.warnings.iter().all(|w| !w.message.contains("unknown")), "{:?}", back.warnings);
    let bytes = bincode::serialize(&p).unwrap();
    let mut decoded: Profile = bincode::deserialize(&bytes).unwrap();
    decoded.profile_path = p.profile_path.clone(); // not serialized
    assert_eq!(decoded, p);
}

#[test]
fn profile_dir_keeps_good_profiles() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("b.json"), "{\"path\": \"/usr/bin/b\"}").unwrap();
    std::fs::write(dir.path().join("a.json"), "{\"path\": \"/usr/bin/zz\"}").unwrap();
    std::fs::write(dir.path().join("bad.json"), "{\"path\": 1}").unwrap();
    std::fs::write(dir.path().join("dup.json"), "{\"path\": \"/usr/bin/b\"}").unwrap();
    std::fs::write(dir.path().join("notes.txt"), "not a profile").unwrap();
    let set = load_profile_dir(dir.path());
    let names: Vec<&str> = set.profiles.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["b", "zz"]);
    assert_eq!(set.failed.len(), 2);
    assert!(set.failed[0].0.ends_with("bad.json"));
    assert!(matches!(set.failed[1].1, ProfileError::DuplicateName { .. }));
    let missing = load_profile_dir(&dir.path().join("nope"));
    assert_eq!(missing.failed.len(), 1);
}
