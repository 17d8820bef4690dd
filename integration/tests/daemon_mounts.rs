//! `oz mount` / `oz umount` through the real daemon as a real user, probed from inside the
//! sandbox as that user: one mount per path, unmounting only the mount `oz mount` made (never
//! through a planted symlink), noexec/nosuid/nodev injected mounts (argument files of later
//! launches too), and mounts still listed and removable after the daemon restarts.

mod common_daemon;

use common_daemon::inject::{inside, listed_mounts, mounts_at, options, UserTree};
use common_daemon::{profile, user_a, wait_until, Daemon};
use oz_integration::env::unique;
use serde_json::json;
use std::time::Duration;

fn sleeper(extra: serde_json::Value) -> serde_json::Value {
    profile("ozt-mnt", "/bin/sleep", extra)
}

#[test]
fn a_second_mount_of_a_path_is_refused_and_umount_leaves_nothing() {
    let d = Daemon::start(&[sleeper(json!({}))]);
    let a = user_a();
    let tree = UserTree::new(&a, &unique("dm"), &["dir/f"]);
    let target = tree.str("dir");
    let id = d.launch(&a, "ozt-mnt", &["600"]);
    let sid = id.to_string();
    d.oz(&a, &["mount", &sid, &target]).assert_ok("first oz mount", &d);
    let again = d.oz(&a, &["mount", &sid, &target]);
    again.assert_failed("second oz mount of the same path");
    assert!(again.stderr.contains("already mounted"), "unclear refusal: {}", again.stderr);
    assert_eq!(mounts_at(&d, &a, id, &target).len(), 1, "one mount at {target}");
    assert_eq!(listed_mounts(&d, &a, id), vec![target.clone()]);

    d.oz(&a, &["umount", &sid, &target]).assert_ok("oz umount", &d);
    assert_eq!(mounts_at(&d, &a, id, &target), Vec::<String>::new(), "{target} still mounted after oz umount");
    assert!(listed_mounts(&d, &a, id).is_empty());
    d.oz(&a, &["umount", &sid, &target]).assert_failed("umount of an unmounted path");
    d.finish();
}

#[test]
fn umount_through_a_planted_symlink_is_refused_and_proc_sys_stays() {
    let a = user_a();
    let tree = UserTree::new(&a, &unique("sl"), &["a/sys/f"]);
    // The tree is bound from the host, so the user can rearrange it inside the sandbox.
    let d = Daemon::start(&[sleeper(json!({"whitelist": [{"path": tree.path}]}))]);
    let target = tree.str("a/sys");
    let id = d.launch(&a, "ozt-mnt", &["600"]);
    let sid = id.to_string();
    let proc_sys = mounts_at(&d, &a, id, "/proc/sys");
    assert!(!proc_sys.is_empty(), "/proc/sys is not a mount in the sandbox");
    d.oz(&a, &["mount", &sid, &target]).assert_ok("oz mount", &d);

    // The sandboxed program swaps a middle component for a symlink to /proc.
    let swap = format!("cd '{}' && mv a b && ln -s /proc a && echo ozt-swapped-$((1 + 1))", tree.path.display());
    assert!(inside(&d, &a, id, &swap).contains("ozt-swapped-2"), "the swap failed");
    d.oz(&a, &["umount", &sid, &target]).assert_failed("oz umount through a symlink");
    let now = mounts_at(&d, &a, id, "/proc/sys");
    assert_eq!(now, proc_sys, "/proc/sys changed");
    assert!(now.iter().all(|l| options(l).contains(&"ro".to_string())), "/proc/sys not read-only: {now:?}");

    // Put back, the same request unmounts the right mount.
    let back = format!("cd '{}' && rm a && mv b a && echo ozt-back-$((1 + 1))", tree.path.display());
    assert!(inside(&d, &a, id, &back).contains("ozt-back-2"));
    d.oz(&a, &["umount", &sid, &target]).assert_ok("oz umount", &d);
    assert!(mounts_at(&d, &a, id, &target).is_empty(), "{target} still mounted");
    assert_eq!(mounts_at(&d, &a, id, "/proc/sys"), proc_sys);
    d.finish();
}

/// A writable injected mount: `cp /bin/true` into it cannot run; the mount is nosuid, nodev
/// and noexec.
fn assert_noexec(d: &Daemon, id: u64, dir: &str, mount_point: &str) {
    let a = user_a();
    let lines = mounts_at(d, &a, id, mount_point);
    assert_eq!(lines.len(), 1, "{mount_point}: {lines:?}");
    let opts = options(&lines[0]);
    for want in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(opts.contains(&want.to_string()), "{mount_point} lacks {want}: {}", lines[0]);
    }
    let out = inside(d, &a, id, &format!("cp /bin/true '{dir}/t' && '{dir}/t'; echo ozt-rc=$?"));
    assert!(out.contains("ozt-rc=126"), "a binary copied into {dir} ran (or was not copied): {out}");
}

#[test]
fn writable_injected_mounts_and_later_argument_files_are_noexec() {
    let a = user_a();
    let tree = UserTree::new(&a, &unique("nx"), &["w/f", "r/f", "arg.txt"]);
    // The second launch runs `sleep <argument file>`, which fails at once: the launch check
    // would report that, and the test is about the mount, so the check is off.
    let d = Daemon::start_with(&[sleeper(json!({"allow_files": true}))], json!({"launch_check_ms": 0}));
    let id = d.launch(&a, "ozt-mnt", &["600"]);
    let sid = id.to_string();
    let (w, r) = (tree.str("w"), tree.str("r"));
    d.oz(&a, &["mount", &sid, &w]).assert_ok("oz mount", &d);
    assert_noexec(&d, id, &w, &w);
    d.oz(&a, &["mount", &sid, "--readonly", &r]).assert_ok("oz mount --readonly", &d);
    let ro = mounts_at(&d, &a, id, &r);
    assert_eq!(ro.len(), 1, "{ro:?}");
    for want in ["ro", "nosuid", "nodev"] {
        assert!(options(&ro[0]).contains(&want.to_string()), "read-only mount lacks {want}: {}", ro[0]);
    }

    // A second launch into the running sandbox binds its argument file in (read-write).
    let arg = tree.str("arg.txt");
    assert_eq!(d.launch(&a, "ozt-mnt", &[&arg]), id, "the second launch joins the sandbox");
    assert!(wait_until(Duration::from_secs(5), || mounts_at(&d, &a, id, &arg).len() == 1), "argument file not mounted");
    let lines = mounts_at(&d, &a, id, &arg);
    for want in ["rw", "nosuid", "nodev", "noexec"] {
        assert!(options(&lines[0]).contains(&want.to_string()), "argument file mount lacks {want}: {}", lines[0]);
    }
    let out = inside(&d, &a, id, &format!("cp /bin/true '{arg}' && '{arg}'; echo ozt-rc=$?"));
    assert!(out.contains("ozt-rc=126"), "a binary copied over the argument file ran: {out}");
    d.finish();
}

#[test]
fn mounts_survive_a_daemon_restart_and_can_still_be_unmounted() {
    let a = user_a();
    let tree = UserTree::new(&a, &unique("rs"), &["dir/f"]);
    let target = tree.str("dir");
    let mut d = Daemon::start(&[sleeper(json!({}))]);
    let id = d.launch(&a, "ozt-mnt", &["600"]);
    let sid = id.to_string();
    d.oz(&a, &["mount", &sid, &target]).assert_ok("oz mount", &d);
    assert_eq!(listed_mounts(&d, &a, id), vec![target.clone()]);

    d.kill9();
    d.spawn();
    let back = wait_until(Duration::from_secs(5), || d.list_json(&a).iter().any(|s| s["id"].as_u64() == Some(id)));
    assert!(back, "sandbox {id} not re-adopted\n{}", d.log_text());
    assert_eq!(listed_mounts(&d, &a, id), vec![target.clone()], "mounts after the restart");
    d.oz(&a, &["umount", &sid, &target]).assert_ok("oz umount after the restart", &d);
    assert!(listed_mounts(&d, &a, id).is_empty());
    assert!(mounts_at(&d, &a, id, &target).is_empty(), "{target} still mounted");
    d.finish();
}
