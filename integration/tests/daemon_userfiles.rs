//! Files root handles for a user, through the real daemon as a real user: nothing root-owned
//! appears in the user's home when mounts are injected into whitelisted folders while the user
//! swaps a directory for a symlink, and argument files the user cannot reach look exactly like
//! absent ones.

mod common_daemon;

use common_daemon::inject::{root_owned, UserTree};
use common_daemon::{profile, user_a, user_b, Daemon, Out};
use oz_integration::env::unique;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

#[test]
fn nothing_root_owned_appears_in_the_home_while_the_user_races_mounts() {
    let a = user_a();
    const N: usize = 60;
    let names: Vec<String> = (0..N).map(|i| format!("x/y/f{i}")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let tree = UserTree::new(&a, &unique("race"), &refs);
    let before = root_owned(&a.home);
    let prof = profile("ozt-race", "/bin/sleep", json!({"whitelist": [{"path": tree.path}], "allow_files": true}));
    let d = Daemon::start(&[prof]);
    let id = d.launch(&a, "ozt-race", &["600"]);
    let sid = id.to_string();

    // The user swaps `x` for a symlink (and back) in a tight loop, for at most 30 s.
    let swap = "chdir $ARGV[0] or die; my $end = time + 30; \
                while (time < $end) { rename 'x', 'xd'; symlink 'xd', 'x'; unlink 'x'; rename 'xd', 'x'; }";
    let mut swapper = a.command("/usr/bin/perl").args(["-e", swap]).arg(&tree.path).spawn().expect("start the swapper");
    let mut seen = Vec::new();
    let end = Instant::now() + Duration::from_secs(10);
    for (i, name) in names.iter().enumerate() {
        if Instant::now() >= end {
            break;
        }
        let file = tree.str(name);
        // `oz mount`, and every third path as an argument file of a later launch.
        if i % 3 == 0 {
            let _ = d.oz(&a, &["launch", "ozt-race", "--", &file]);
        } else {
            let _ = d.oz(&a, &["mount", &sid, &file]);
        }
        seen.extend(root_owned(&tree.path));
    }
    common_daemon::procs::kill(swapper.id() as i32, libc::SIGKILL);
    let _ = swapper.wait();
    seen.extend(root_owned(&tree.path));
    let mut after: Vec<_> = root_owned(&a.home).into_iter().filter(|p| !before.contains(p)).collect();
    after.extend(seen);
    after.sort();
    after.dedup();
    assert!(after.is_empty(), "root-owned entries appeared in the user's home: {after:#?}");
    d.finish();
}

/// `oz launch` of a profile with `allow_files` naming `path`: exit code and stderr with the
/// path replaced, and whether it printed a sandbox id.
fn launch_outcome(d: &Daemon, path: &Path) -> (i32, String, bool) {
    let p = path.to_str().unwrap();
    let out: Out = d.oz(&user_a(), &["launch", "ozt-files", "--", p]);
    (out.code(), out.stderr.replace(p, "<path>"), out.stdout.trim().parse::<u64>().is_ok())
}

/// A 0700 directory owned by user b at `dir`, holding the file `f`.
fn private_dir_of_b(dir: &Path) {
    let b = user_b();
    std::fs::create_dir(dir).unwrap();
    std::fs::write(dir.join("f"), "secret").unwrap();
    for p in [dir.to_path_buf(), dir.join("f")] {
        std::os::unix::fs::chown(&p, Some(b.uid), Some(b.gid)).unwrap();
    }
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).unwrap();
}

#[test]
fn argument_files_the_user_cannot_reach_look_absent() {
    let (a, b) = (user_a(), user_b());
    let in_b_home = b.home.join(unique("priv"));
    let in_a_home = a.home.join(unique("priv"));
    // Removed (as root) when the test ends, passed or not.
    let _cleanup = [UserTree { path: in_b_home.clone() }, UserTree { path: in_a_home.clone() }];
    private_dir_of_b(&in_b_home);
    private_dir_of_b(&in_a_home);
    let d = Daemon::start(&[profile("ozt-files", "/bin/true", json!({"allow_files": true, "multi": true}))]);
    for dir in [&in_b_home, &in_a_home] {
        let present = launch_outcome(&d, &dir.join("f"));
        let absent = launch_outcome(&d, &dir.join("absent"));
        assert_eq!(
            present,
            absent,
            "{}: an existing file of another user is told apart from an absent one",
            dir.display()
        );
        assert!(present.2, "the launch failed: {present:?}");
    }
    std::thread::sleep(Duration::from_millis(300));
    d.finish();
}
