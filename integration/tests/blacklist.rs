//! Blacklist items (direct, through symlinks, directories), the default blacklist and
//! `nodefaults`, and shared_folders, shown through a real sandbox.

use oz_integration::env::{unique, TestEnv};
use oz_integration::workspace::strict_profile;
use serde_json::json;
use std::os::unix::fs::MetadataExt;

#[test]
fn blacklisted_files_are_hidden_also_through_symlinks() {
    let mut env = TestEnv::new(json!({}));
    let dir = env.home_path(&unique("bl"));
    env.as_user(&format!(
        "set -e; mkdir {d} {d}/sub; echo topsecret > {d}/secret.txt; echo okcontent > {d}/ok.txt; \
         echo subsecret > {d}/sub/inner.txt; ln -s secret.txt {d}/alias; ln -s secret.txt {d}/another",
        d = dir.display()
    ));
    let d = dir.display();
    let p = env.profile(
        "ozbl",
        strict_profile(
            "/bin/sh",
            json!([{"path": dir}]),
            // The file through a symlink to it, and a directory.
            json!([{"path": format!("{d}/alias")}, {"path": format!("{d}/sub")}]),
        ),
    );
    let out =
        env.sh(&p, &format!("cat {d}/ok.txt; cat {d}/secret.txt {d}/another {d}/sub/inner.txt; ls {d}/sub; echo END"));
    assert!(out.stdout.contains("okcontent") && out.stdout.contains("END"), "{}", out.all());
    assert!(!out.stdout.contains("topsecret"), "a file blacklisted through a symlink is readable:\n{}", out.all());
    assert!(
        !out.stdout.contains("subsecret") && !out.stdout.contains("inner.txt"),
        "a blacklisted directory is visible:\n{}",
        out.all()
    );
    env.check_leftovers();
}

#[test]
fn blacklisting_a_path_directly_hides_it() {
    let mut env = TestEnv::new(json!({}));
    let dir = env.home_path(&unique("bld"));
    env.as_user(&format!("mkdir {d}; echo topsecret > {d}/secret.txt", d = dir.display()));
    let d = dir.display();
    let p = env.profile(
        "ozbld",
        strict_profile(
            "/bin/sh",
            json!([{"path": dir}]),
            json!([{"path": format!("${{HOME}}/{}/secret.txt", dir.file_name().unwrap().to_string_lossy())}]),
        ),
    );
    let out = env.sh(&p, &format!("cat {d}/secret.txt; echo x > {d}/secret.txt; echo END"));
    assert!(out.stdout.contains("END"), "{}", out.all());
    assert!(!out.stdout.contains("topsecret"), "a blacklisted file is readable:\n{}", out.all());
    assert_eq!(
        std::fs::read_to_string(dir.join("secret.txt")).unwrap(),
        "topsecret\n",
        "a blacklisted file was written"
    );
    env.check_leftovers();
}

const DEFAULTS_SCRIPT: &str =
    "echo SBIN=$(ls -A /usr/sbin | wc -l); head -c 4 /usr/bin/su | od -An -c | tr -d ' '; echo; \
     head -c 4 /usr/bin/mount | od -An -c | tr -d ' '; echo END";

#[test]
fn the_default_blacklist_applies_unless_nodefaults() {
    let env = TestEnv::new(json!({}));
    let p = env.profile("ozdefaults", strict_profile("/bin/sh", json!([]), json!([])));
    let out = env.sh(&p, DEFAULTS_SCRIPT);
    assert!(out.stdout.contains("END"), "{}", out.all());
    assert!(out.stdout.contains("SBIN=0"), "/usr/sbin is visible with the default blacklist:\n{}", out.all());
    assert!(!out.stdout.contains("ELF"), "su or mount is readable with the default blacklist:\n{}", out.all());

    let mut nodefaults = strict_profile("/bin/sh", json!([]), json!([]));
    nodefaults["nodefaults"] = json!(true);
    let p = env.profile("oznodefaults", nodefaults);
    let out = env.sh(&p, DEFAULTS_SCRIPT);
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(!out.stdout.contains("SBIN=0"), "nodefaults still hides /usr/sbin:\n{}", out.all());
    assert_eq!(out.stdout.matches("ELF").count(), 2, "nodefaults still hides su/mount:\n{}", out.all());
}

#[test]
fn shared_folders_map_to_a_per_profile_host_folder() {
    let mut env = TestEnv::new(json!({}));
    let name = format!("sf{}", std::process::id());
    let title = format!("Sf{}", std::process::id());
    let host_dir = env.home_path(&format!("OZ/{title}"));
    let downloads = env.user.home.join("Downloads");
    let marker = unique("shared");
    let mut p = strict_profile("/bin/sh", json!([]), json!([]));
    p["shared_folders"] = json!(["${XDG_DOWNLOAD_DIR}"]);
    let p = env.profile(&name, p);
    let out = env.sh(&p, &format!("echo shared-data > ~/Downloads/{marker}.txt && echo WROTE; ls -la ~/Downloads"));
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("WROTE"), "{}", out.all());
    let f = host_dir.join("Downloads").join(format!("{marker}.txt"));
    let content =
        std::fs::read_to_string(&f).unwrap_or_else(|e| panic!("{} on the host: {e}\n{}", f.display(), out.all()));
    assert_eq!(content, "shared-data\n");
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!(m.uid(), env.user.uid, "the shared file is not the user's");
    let dm = std::fs::metadata(host_dir.join("Downloads")).unwrap();
    assert_eq!((dm.uid(), dm.gid()), (env.user.uid, env.user.gid), "the shared folder was not created as the user");
    assert!(!downloads.join(format!("{marker}.txt")).exists(), "the real ~/Downloads was written");
    env.check_leftovers();
}
