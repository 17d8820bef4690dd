//! Every whitelist flag, shown through a real sandbox: `sh -c` runs inside as the test user and
//! the host side is checked afterwards.

use oz_integration::env::{unique, TestEnv};
use oz_integration::workspace::strict_profile;
use serde_json::{json, Value};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

/// Setup failed (the standalone agent's documented status).
const SETUP_FAILED: i32 = 125;

fn profile(env: &TestEnv, name: &str, whitelist: Value) -> std::path::PathBuf {
    env.profile(name, strict_profile("/bin/sh", whitelist, json!([])))
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn read_only_items_cannot_be_written_and_writable_ones_persist() {
    let mut env = TestEnv::new(json!({}));
    let t = unique("ro");
    let ro = env.home_path(&format!("{t}-ro.txt"));
    let rw = env.home_path(&format!("{t}-rw.txt"));
    env.as_user(&format!("echo orig > {}; echo orig > {}", ro.display(), rw.display()));
    let p = profile(&env, "ozro", json!([{"path": ro, "read_only": true}, {"path": rw}]));
    let script = format!(
        "cat {ro}; echo x >> {ro} && echo RO-WROTE || echo RO-DENIED; echo changed >> {rw} && echo RW-WROTE",
        ro = ro.display(),
        rw = rw.display()
    );
    let out = env.sh(&p, &script);
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("orig") && out.stdout.contains("RO-DENIED"), "{}", out.all());
    assert!(out.stdout.contains("RW-WROTE"), "{}", out.all());
    assert_eq!(read(&ro), "orig\n", "the read-only item changed on the host");
    assert_eq!(read(&rw), "orig\nchanged\n", "a write to a writable item did not persist");
    env.check_leftovers();
}

#[test]
fn can_create_makes_missing_directories_as_the_user() {
    let mut env = TestEnv::new(json!({}));
    let t = unique("cc");
    let top = env.home_path(&t);
    let dir = top.join("sub");
    let p = profile(&env, "ozcc", json!([{"path": dir, "can_create": true}]));
    let out = env.sh(&p, &format!("test -d {d} && echo data > {d}/f && echo MADE", d = dir.display()));
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("MADE"), "{}", out.all());
    let (uid, gid) = (env.user.uid, env.user.gid);
    for p in [&top, &dir, &dir.join("f")] {
        let m = std::fs::metadata(p).unwrap_or_else(|e| panic!("{} missing on the host: {e}", p.display()));
        assert_eq!((m.uid(), m.gid()), (uid, gid), "{} is not owned by the user (never root)", p.display());
    }
    env.check_leftovers();
}

#[test]
fn can_create_never_creates_through_a_user_symlink_into_a_root_directory() {
    let mut env = TestEnv::new(json!({}));
    let t = unique("ccl");
    let rootdir = env.root_dir("rootowned", 0o755);
    let link = env.home_path(&format!("{t}-link"));
    env.as_user(&format!("ln -s {} {}", rootdir.display(), link.display()));
    let p = profile(&env, "ozccl", json!([{"path": link.join("sub"), "can_create": true}]));
    let out = env.sh(&p, "true");
    // Refusing the item (setup failure) or skipping it are both fine; following it is not.
    assert!(out.status == 0 || out.status == SETUP_FAILED, "{}", out.all());
    let left: Vec<_> = std::fs::read_dir(&rootdir).unwrap().flatten().map(|e| e.path()).collect();
    assert!(left.is_empty(), "created {left:?} in a root-owned directory through a user symlink");
    let m = std::fs::metadata(&rootdir).unwrap();
    assert_eq!((m.uid(), m.gid(), m.mode() & 0o7777), (0, 0, 0o755), "the root-owned directory was chowned");
    env.check_leftovers();
}

#[test]
fn ignore_skips_missing_items_and_without_it_setup_fails() {
    let mut env = TestEnv::new(json!({}));
    let missing = env.home_path(&unique("missing"));
    let ignored = profile(&env, "ozign", json!([{"path": missing, "ignore": true}]));
    let out = env.sh(&ignored, "echo RAN");
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("RAN"), "{}", out.all());
    let strict = profile(&env, "oznoign", json!([{"path": missing}]));
    let out = env.sh(&strict, "echo RAN");
    assert_eq!(out.status, SETUP_FAILED, "a missing item without ignore must fail the launch:\n{}", out.all());
    assert!(!out.stdout.contains("RAN"), "{}", out.all());
    env.check_leftovers();
}

#[test]
fn force_binds_over_an_existing_target_and_without_it_the_target_is_kept() {
    let mut env = TestEnv::new(json!({}));
    let src = env.home_path(&format!("{}.txt", unique("force")));
    env.as_user(&format!("echo forced-content > {}", src.display()));
    // /etc/shells is in the default etc_includes, so the target exists in every sandbox.
    let forced = profile(&env, "ozforce", json!([{"path": src, "target": "/etc/shells", "force": true}]));
    let out = env.sh(&forced, "cat /etc/shells");
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("forced-content"), "force did not bind over /etc/shells:\n{}", out.all());
    let unforced = profile(&env, "oznoforce", json!([{"path": src, "target": "/etc/shells"}]));
    let out = env.sh(&unforced, "cat /etc/shells");
    // Either the launch fails (README) or the item is skipped (the original's behaviour).
    assert!(
        out.status == SETUP_FAILED || (out.status == 0 && !out.stdout.contains("forced-content")),
        "an existing target was replaced without force:\n{}",
        out.all()
    );
    env.check_leftovers();
}

#[test]
fn target_binds_the_source_at_another_path_only() {
    let mut env = TestEnv::new(json!({}));
    let src = env.home_path(&format!("{}.txt", unique("target")));
    env.as_user(&format!("echo at-target > {}", src.display()));
    let p = profile(&env, "oztarget", json!([{"path": src, "target": "/opt/oz-it/moved.txt"}]));
    let out = env.sh(
        &p,
        &format!("cat /opt/oz-it/moved.txt; test -e {} && echo SOURCE-VISIBLE || echo SOURCE-ABSENT", src.display()),
    );
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("at-target") && out.stdout.contains("SOURCE-ABSENT"), "{}", out.all());
    env.check_leftovers();
}

#[test]
fn symlinked_items_are_resolved_unless_no_follow() {
    let mut env = TestEnv::new(json!({}));
    let t = unique("nf");
    let real = env.home_path(&format!("{t}-real.txt"));
    let link = env.home_path(&format!("{t}-link.txt"));
    env.as_user(&format!("echo real-content > {}; ln -s {t}-real.txt {}", real.display(), link.display()));
    let script =
        format!("if [ -L {l} ]; then echo IS-LINK; fi; echo CONTENT:$(cat {l} 2>/dev/null)", l = link.display());

    // Default: the symlink is resolved on the host, the content appears at the link's path.
    let follow = profile(&env, "ozfollow", json!([{"path": link}]));
    let out = env.sh(&follow, &script);
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("CONTENT:real-content") && !out.stdout.contains("IS-LINK"), "{}", out.all());

    // no_follow: the link is not followed, so its (unwhitelisted) destination stays out of reach.
    let nofollow = profile(&env, "oznofollow", json!([{"path": link, "no_follow": true}]));
    let out = env.sh(&nofollow, &script);
    assert!(
        out.status == SETUP_FAILED || (out.status == 0 && !out.stdout.contains("CONTENT:real-content")),
        "no_follow followed the symlink:\n{}",
        out.all()
    );
    env.check_leftovers();
}

/// The options of the mount at `dir` as seen inside the sandbox.
fn mount_opts_script(dir: &Path) -> String {
    format!("awk -v d={} '$5 == d {{ print \"OPTS \" $6 }}' /proc/self/mountinfo", dir.display())
}

#[test]
fn allow_suid_keeps_setuid_bits_and_other_items_are_nosuid() {
    let mut env = TestEnv::new(json!({}));
    let t = unique("suid");
    let with = env.home_path(&format!("{t}-with"));
    let without = env.home_path(&format!("{t}-without"));
    env.as_user(&format!("mkdir {} {}", with.display(), without.display()));
    let p = profile(&env, "ozsuid", json!([{"path": with, "allow_suid": true}, {"path": without}]));
    let out = env.sh(&p, &format!("{}; echo ---; {}", mount_opts_script(&with), mount_opts_script(&without)));
    assert_eq!(out.status, 0, "{}", out.all());
    let (a, b) = out.stdout.split_once("---").expect("separator");
    let opts_with = a
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("OPTS "))
        .unwrap_or_else(|| panic!("no mount at {}:\n{}", with.display(), out.all()));
    let opts_without = b
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("OPTS "))
        .unwrap_or_else(|| panic!("no mount at {}:\n{}", without.display(), out.all()));
    let has = |opts: &str, o: &str| opts.split(',').any(|x| x == o);
    assert!(!has(opts_with, "nosuid"), "allow_suid item mounted nosuid: {opts_with}");
    assert!(has(opts_with, "ro"), "allow_suid implies read-only: {opts_with}");
    assert!(has(opts_without, "nosuid") && has(opts_without, "nodev"), "plain item: {opts_without}");
    env.check_leftovers();
}

#[test]
fn writable_items_are_noexec() {
    let mut env = TestEnv::new(json!({}));
    let dir = env.home_path(&unique("noexec"));
    env.as_user(&format!(
        "mkdir {d}; printf '#!/bin/sh\\necho EXECUTED\\n' > {d}/run; chmod 755 {d}/run",
        d = dir.display()
    ));
    let p = profile(&env, "oznoexec", json!([{"path": dir}]));
    let out = env.sh(&p, &format!("{}/run; echo DONE", dir.display()));
    assert!(
        out.stdout.contains("DONE") && !out.stdout.contains("EXECUTED"),
        "a writable item is executable:\n{}",
        out.all()
    );
    env.check_leftovers();
}

#[test]
fn globs_bind_every_match_and_nothing_else() {
    let mut env = TestEnv::new(json!({}));
    let t = unique("glob");
    let dir = env.home_path(&t);
    env.as_user(&format!("mkdir {d}; echo a > {d}/a.txt; echo b > {d}/b.txt; echo c > {d}/c.dat", d = dir.display()));
    let p = profile(&env, "ozglob", json!([{"path": format!("${{HOME}}/{t}/*.txt")}]));
    let out = env.sh(&p, &format!("ls {}", dir.display()));
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("a.txt") && out.stdout.contains("b.txt"), "{}", out.all());
    assert!(!out.stdout.contains("c.dat"), "a non-matching file was bound:\n{}", out.all());
    env.check_leftovers();
}
