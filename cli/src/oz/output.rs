//! Rendering for people (aligned tables, UTC times) and for scripts (JSON).

use oz_wire::text::escape_controls;
use oz_wire::{LogRecord, ProfileSummary, SandboxRecord};
use serde_json::{json, Value};

/// Whether a profile's program is installed: None when its path depends on the user
/// (`${HOME}/...`), which only the sandbox resolves.
pub type Installed<'a> = &'a dyn Fn(&str) -> Option<bool>;

pub fn profiles_json(profiles: &[ProfileSummary], installed: Installed<'_>) -> Value {
    let one =
        |p: &ProfileSummary| json!({"index": p.index, "name": p.name, "path": p.path, "installed": installed(&p.path)});
    Value::Array(profiles.iter().map(one).collect())
}

pub fn profiles_table(profiles: &[ProfileSummary], installed: Installed<'_>) -> String {
    let path = |p: &ProfileSummary| match installed(&p.path) {
        Some(false) => format!("{} (not installed)", p.path),
        _ => p.path.clone(),
    };
    let rows: Vec<Vec<String>> = profiles.iter().map(|p| vec![p.index.to_string(), p.name.clone(), path(p)]).collect();
    table(&["INDEX", "NAME", "PATH"], &rows)
}

/// The directories a sandbox searches for a `${PATH}/name` program.
const SANDBOX_PATH: &[&str] = &["/usr/bin", "/bin"];

/// Whether the program at a profile path is installed (an executable regular file), judged
/// with `executable`; None when the path depends on the user.
pub fn program_installed(path: &str, executable: &dyn Fn(&std::path::Path) -> bool) -> Option<bool> {
    if let Some(name) = path.strip_prefix("${PATH}/") {
        return Some(SANDBOX_PATH.iter().any(|d| executable(&std::path::Path::new(d).join(name))));
    }
    if path.contains("${") {
        return None;
    }
    Some(executable(std::path::Path::new(path)))
}

/// An executable regular file (following symlinks, as exec does).
pub fn is_executable(p: &std::path::Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// One sandbox as `oz list --json` prints it: the agent's record (`state` is its phase).
pub fn sandbox_json(s: &SandboxRecord) -> Value {
    let network = s.network.as_ref().map(|n| {
        let forwarders: Vec<Value> = n
            .forwarders
            .iter()
            .map(|f| json!({"name": f.name, "direction": f.direction, "proto": f.proto, "port": f.port}))
            .collect();
        json!({"mode": n.mode, "address": n.address.map(|a| a.to_string()), "forwarders": forwarders})
    });
    let display = s.display.map(|d| json!({"backend": d.backend, "display": d.display}));
    json!({
        "id": s.id,
        "profile": s.profile,
        "uid": s.uid,
        "user": s.user,
        "init_pid": s.init_pid,
        "agent_pid": s.agent_pid,
        "state": s.phase.as_str(),
        "started_at": s.started_at,
        "mounts": s.mounts.iter().map(|m| m.display().to_string()).collect::<Vec<_>>(),
        "network": network,
        "display": display,
        "ephemeral": s.ephemeral,
    })
}

pub fn sandboxes_table(sandboxes: &[SandboxRecord]) -> String {
    let rows: Vec<Vec<String>> = sandboxes
        .iter()
        .map(|s| {
            vec![
                s.id.to_string(),
                s.profile.clone(),
                s.user.clone(),
                s.phase.as_str().to_string(),
                s.init_pid.to_string(),
                utc_time(s.started_at * 1000, false),
                s.mounts.len().to_string(),
                if s.ephemeral { "yes" } else { "no" }.to_string(),
            ]
        })
        .collect();
    table(&["ID", "PROFILE", "USER", "STATE", "INIT", "STARTED (UTC)", "MOUNTS", "EPHEMERAL"], &rows)
}

pub fn log_json(r: &LogRecord) -> Value {
    json!({
        "ts": r.ts,
        "level": r.level.as_str(),
        "sandbox": r.sandbox,
        "profile": r.profile,
        "message": r.message,
    })
}

/// One record as a line of text: control characters in program output are escaped, so no
/// program can drive the reader's terminal or forge a line (`--json` keeps the exact text).
pub fn log_line(r: &LogRecord) -> String {
    let origin = match (r.sandbox, &r.profile) {
        (Some(id), Some(p)) => format!("[{id}:{}] ", escape_controls(p)),
        (Some(id), None) => format!("[{id}] "),
        _ => String::new(),
    };
    format!("{} {:<8} {origin}{}", utc_time(r.ts, true), r.level.as_str(), escape_controls(&r.message))
}

/// Columns padded to their widest cell, two spaces apart, last column unpadded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let head: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&head).chain(rows) {
        let last = row.len().saturating_sub(1);
        for (i, cell) in row.iter().enumerate() {
            if i == last {
                out.push_str(cell);
            } else {
                out.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            }
        }
        out.push('\n');
    }
    out
}

/// `YYYY-MM-DD HH:MM:SS` (with `.mmm` when `millis`) in UTC for milliseconds since the epoch.
pub fn utc_time(ms: u64, millis: bool) -> String {
    let secs = ms / 1000;
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let tod = secs % 86_400;
    let (hh, mm, ss) = (tod / 3600, tod / 60 % 60, tod % 60);
    let base = format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}");
    if millis {
        format!("{base}.{:03}", ms % 1000)
    } else {
        base
    }
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_wire::{LogLevel, SandboxState};

    #[test]
    fn profiles_mark_programs_that_are_not_installed() {
        let exe =
            |p: &std::path::Path| p == std::path::Path::new("/usr/bin/evince") || p == std::path::Path::new("/bin/vlc");
        assert_eq!(program_installed("/usr/bin/evince", &exe), Some(true));
        assert_eq!(program_installed("/usr/bin/gimp", &exe), Some(false));
        assert_eq!(program_installed("${PATH}/vlc", &exe), Some(true));
        assert_eq!(program_installed("${PATH}/mpv", &exe), Some(false));
        assert_eq!(program_installed("${HOME}/bin/x", &exe), None);
        let ps: Vec<ProfileSummary> = ["/usr/bin/evince", "/usr/bin/gimp", "${HOME}/x"]
            .iter()
            .enumerate()
            .map(|(i, p)| ProfileSummary { index: i as u32 + 1, name: format!("p{i}"), path: p.to_string() })
            .collect();
        let installed = |p: &str| program_installed(p, &exe);
        let t = profiles_table(&ps, &installed);
        let lines: Vec<&str> = t.lines().collect();
        assert!(!lines[1].contains("not installed") && lines[2].ends_with("/usr/bin/gimp (not installed)"), "{t}");
        assert!(!lines[3].contains("not installed"), "{t}");
        let j = profiles_json(&ps, &installed);
        assert_eq!(
            (j[0]["installed"].clone(), j[1]["installed"].clone(), j[2]["installed"].clone()),
            (json!(true), json!(false), Value::Null)
        );
        assert!(is_executable(std::path::Path::new("/bin/sh")) && !is_executable(std::path::Path::new("/usr/bin")));
    }

    #[test]
    fn utc_times() {
        assert_eq!(utc_time(0, false), "1970-01-01 00:00:00");
        assert_eq!(utc_time(951_782_400_123, true), "2000-02-29 00:00:00.123");
        assert_eq!(utc_time(1_796_045_532_000, false), "2026-11-30 13:32:12");
    }

    #[test]
    fn sandbox_json_has_the_documented_keys() {
        let s = SandboxRecord {
            id: 4,
            profile: "sleep".into(),
            uid: 1001,
            user: "a".into(),
            phase: SandboxState::Running,
            init_pid: 10,
            agent_pid: 9,
            started_at: 5,
            mounts: vec!["/home/a/x".into()],
            network: Some(oz_wire::NetworkInfo {
                mode: oz_profiles::profile::NetType::Empty,
                address: None,
                forwarders: vec![oz_wire::ForwarderInfo {
                    name: "forward tcp:8080".into(),
                    direction: oz_profiles::profile::SocketDirection::Server,
                    proto: oz_profiles::profile::SocketProto::Tcp,
                    port: 8080,
                }],
            }),
            display: Some(oz_wire::DisplayInfo { backend: oz_profiles::profile::XBackend::Xpra, display: 100 }),
            ephemeral: false,
        };
        let v = sandbox_json(&s);
        for key in
            ["id", "profile", "uid", "user", "init_pid", "agent_pid", "state", "started_at", "mounts", "ephemeral"]
        {
            assert!(v.get(key).is_some(), "{key}");
        }
        assert_eq!(v["state"], "running");
        assert_eq!(v["mounts"][0], "/home/a/x");
        assert_eq!(v["network"]["mode"], "empty");
        assert_eq!(v["network"]["address"], Value::Null);
        assert_eq!(v["network"]["forwarders"][0]["direction"], "server");
        assert_eq!(v["network"]["forwarders"][0]["port"], 8080);
        assert_eq!(v["display"], json!({"backend": "xpra", "display": 100}));
        assert_eq!(v["ephemeral"], false);
        let eph = SandboxRecord { id: 5, ephemeral: true, ..s.clone() };
        assert_eq!(sandbox_json(&eph)["ephemeral"], true);
        let t = sandboxes_table(&[s, eph]);
        assert!(t.starts_with("ID  PROFILE  USER  STATE    INIT"), "{t}");
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[0].ends_with("MOUNTS  EPHEMERAL") && lines[1].ends_with(" no") && lines[2].ends_with(" yes"),
            "{t}"
        );
    }

    #[test]
    fn log_lines() {
        let r = LogRecord {
            ts: 1000,
            level: LogLevel::Info,
            sandbox: Some(3),
            profile: Some("x".into()),
            message: "hi".into(),
        };
        assert_eq!(log_line(&r), "1970-01-01 00:00:01.000 info     [3:x] hi");
        assert_eq!(log_json(&r)["sandbox"], 3);
        let r = LogRecord { message: "\x1b]0;pwned\x07\rok\tx".into(), ..r };
        assert_eq!(log_line(&r), "1970-01-01 00:00:01.000 info     [3:x] \\e]0;pwned\\x07\\rok\tx");
        assert_eq!(log_json(&r)["message"], "\x1b]0;pwned\x07\rok\tx");
    }
}
