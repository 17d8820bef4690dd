//! The profile's `landlock` key through a real sandbox. The mounts already make most of the
//! tree read-only; Landlock additionally confines writes to the sandbox's writable space (home,
//! /tmp, /dev/shm, /run/user/<uid>, writable whitelist targets, existing files under /dev and
//! /proc). `/run/lock` is a world-writable (1777) directory on the sandbox's root tmpfs that is
//! not in that set: the mounts and file modes allow creating files there, only Landlock stops it.
//! The same script runs with `"landlock": false`, where the write must succeed.

use oz_integration::env::{unique, TestEnv};
use oz_integration::workspace::strict_profile;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

/// Each line is `<what> OK` or `<what> DENIED`.
const SCRIPT: &str = r#"
try() { what=$1; shift; if ( "$@" ) 2>/dev/null; then echo "$what OK"; else echo "$what DENIED"; fi; }
try runlock touch /run/lock/oz-landlock
try home sh -c 'echo x > "$HOME/oz-landlock" && rm "$HOME/oz-landlock"'
try tmp sh -c 'echo x > /tmp/f && rm /tmp/f'
try shm sh -c 'echo x > /dev/shm/f && rm /dev/shm/f'
try null sh -c 'echo x > /dev/null'
try comm sh -c 'echo renamed > /proc/self/comm'
try wl sh -c 'echo x > /srv/oz-data/f'
try read cat /etc/passwd
"#;

fn verdicts(out: &oz_integration::run::Output) -> Vec<String> {
    out.stdout.lines().filter(|l| l.ends_with(" OK") || l.ends_with(" DENIED")).map(String::from).collect()
}

#[test]
fn landlock_confines_writes_to_the_sandboxes_writable_space() {
    let mut env = TestEnv::new(json!({}));
    // A writable whitelist item outside home and /tmp: Landlock must let it be written.
    let data = env.root_dir(&unique("lldata"), 0o755);
    std::os::unix::fs::chown(&data, Some(env.user.uid), Some(env.user.gid)).expect("chown data dir");
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
    let wl = json!([{"path": data, "target": "/srv/oz-data"}]);
    let mut on = strict_profile("/bin/sh", wl.clone(), json!([]));
    on["landlock"] = json!(true);
    let mut off = on.clone();
    off["landlock"] = json!(false);
    let on = env.profile("ozllon", on);
    let off = env.profile("ozlloff", off);

    let out = env.sh(&off, SCRIPT);
    assert_eq!(out.status, 0, "{}", out.all());
    let without = verdicts(&out);
    let out = env.sh(&on, SCRIPT);
    assert_eq!(out.status, 0, "{}", out.all());
    let with = verdicts(&out);

    let expect_off = ["runlock OK", "home OK", "tmp OK", "shm OK", "null OK", "comm OK", "wl OK", "read OK"];
    assert_eq!(without, expect_off, "landlock off");
    let expect_on = ["runlock DENIED", "home OK", "tmp OK", "shm OK", "null OK", "comm OK", "wl OK", "read OK"];
    assert_eq!(with, expect_on, "landlock on");
    assert!(data.join("f").exists(), "the whitelisted directory was not written on the host");
    env.check_leftovers();
}
