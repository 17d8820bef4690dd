//! Runs the built oz-setup binary on the profile corpus, broken files and configs.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/compat/oz-profiles")
}

fn corpus_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .expect("read corpus dir")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

fn oz_setup(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_oz-setup")).args(args).env_remove("OZ_CONFIG").output().expect("run oz-setup")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn profile_check_on_the_corpus_prints_22_ok_lines() {
    let files = corpus_files();
    let mut args = vec!["profile".as_ref(), "check".as_ref()];
    args.extend(files.iter().map(|f| f.as_os_str()));
    let out = oz_setup(&args);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{}", text(&out.stderr));
    let ok: Vec<&str> = stdout.lines().filter(|l| l.ends_with(": ok")).collect();
    assert_eq!(ok.len(), 22, "{stdout}");
    assert!(!text(&out.stderr).contains("error"), "{}", text(&out.stderr));
}

#[test]
fn profile_check_warns_about_a_path_to_the_host_display() {
    let dir = tempfile::tempdir().unwrap();
    let leaky = dir.path().join("leaky.json");
    std::fs::write(
        &leaky,
        "{\"path\": \"/usr/bin/x\", \"whitelist\": [{\"path\": \"/tmp/.X11-unix\"}],\n \"environment\": [{\"name\": \"DISPLAY\"}]}",
    )
    .unwrap();
    let out = oz_setup(&["profile".as_ref(), "check".as_ref(), leaky.as_os_str()]);
    let all = text(&out.stdout) + &text(&out.stderr);
    let warned: Vec<&str> = all.lines().filter(|l| l.contains("warning") && l.contains("host's")).collect();
    assert_eq!(warned.len(), 2, "{all}");
    assert!(warned[0].contains("whitelist[0].path") && warned[1].contains("environment[0]"), "{all}");
}

#[test]
fn profile_check_on_a_broken_file_fails_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"path\": \"/usr/bin/x\",\n \"networking\": {\"type\": \"wifi\"}}").unwrap();
    let good = corpus_dir().join("evince.json");
    let out = oz_setup(&["profile".as_ref(), "check".as_ref(), good.as_os_str(), bad.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    let expected = format!(
        "error: {}:2:25: networking.type: invalid value \"wifi\", expected one of: none, empty, bridge, host",
        bad.display()
    );
    assert!(stderr.lines().any(|l| l == expected), "{stderr}");
    assert_eq!(text(&out.stdout), format!("{}: ok\n", good.display()));
}

#[test]
fn profile_check_survives_garbage() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty.json", vec![]),
        ("deep.json", vec![b'['; 10 * 1024 * 1024]),
        ("utf8.json", b"{\"path\": \"\xff\"}".to_vec()),
        ("missing.json", b"{}".to_vec()),
    ];
    for (name, bytes) in cases {
        let f = dir.path().join(name);
        std::fs::write(&f, bytes).unwrap();
        let out = oz_setup(&["profile".as_ref(), "check".as_ref(), f.as_os_str()]);
        assert_eq!(out.status.code(), Some(1), "{name}");
        let stderr = text(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{name}: {stderr}");
        assert!(stderr.contains(&f.display().to_string()), "{name}: {stderr}");
        assert!(!stderr.contains("panicked"), "{name}: {stderr}");
    }
}

/// A root-owned temp dir with an oz.conf pointing `profile_dir` at `profiles`.
fn config_in(dir: &Path, profiles: &Path) -> PathBuf {
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = dir.join("oz.conf");
    let body = format!("# test config\n{{\"profile_dir\": \"{}\", \"log_xpra\": false}}\n", profiles.display());
    std::fs::write(&conf, body).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    conf
}

#[test]
fn config_check_loads_every_profile() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config_in(dir.path(), &corpus_dir());
    let out = oz_setup(&["--config".as_ref(), conf.as_os_str(), "config".as_ref(), "check".as_ref()]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", text(&out.stderr));
    assert_eq!(stdout.lines().filter(|l| l.ends_with(": ok")).count(), 23, "{stdout}");
    assert!(stdout.contains("22 profiles ok, 0 failed"));
}

#[test]
fn config_check_fails_on_a_bad_profile() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("cells.d");
    std::fs::create_dir(&profiles).unwrap();
    std::fs::copy(corpus_dir().join("vlc.json"), profiles.join("vlc.json")).unwrap();
    std::fs::write(profiles.join("broken.json"), "{\"path\": 3}").unwrap();
    let conf = config_in(dir.path(), &profiles);
    let out = oz_setup(&["--config".as_ref(), conf.as_os_str(), "config".as_ref(), "check".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).contains("1 profiles ok, 1 failed"));
    assert!(text(&out.stderr).contains("broken.json:1:10: path: expected a string, found a number"));
}

#[test]
fn config_show_lists_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config_in(dir.path(), Path::new("/srv/profiles"));
    let out = oz_setup(&["--config".as_ref(), conf.as_os_str(), "config".as_ref(), "show".as_ref()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    for key in ["profile_dir", "socket_path", "state_dir", "agent_path", "etc_includes", "log_xpra"] {
        assert!(stdout.lines().any(|l| l.starts_with(key)), "{key} missing:\n{stdout}");
    }
    assert!(stdout.lines().any(|l| l.starts_with("profile_dir") && l.contains(" /srv/profiles  # directory holding")));
    assert!(stdout.lines().any(|l| l.starts_with("log_xpra") && l.contains(" false  # ")));
}

#[test]
fn config_with_unsafe_permissions_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let conf = config_in(dir.path(), Path::new("/srv/profiles"));
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o666)).unwrap();
    let out = oz_setup(&["--config".as_ref(), conf.as_os_str(), "config".as_ref(), "show".as_ref()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("unsafe permissions: file is writable by everyone"), "{stderr}");
}

#[test]
fn closed_stdout_is_not_a_panic() {
    // ~150 KB of `ok` lines: more than a pipe buffer, so writes hit the closed pipe.
    let files = corpus_files();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_oz-setup"));
    cmd.args(["profile", "check"]);
    for _ in 0..100 {
        cmd.args(&files);
    }
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = text(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
}

#[test]
fn profile_check_prints_warnings_beside_errors_in_file_order() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("mixed.json");
    std::fs::write(
        &bad,
        "{\"path\": \"/usr/bin/x\",\n \"ozt_first_unknown\": 1,\n \"networking\": {\"type\": \"wifi\"},\n \"ozt_last_unknown\": 2}",
    )
    .unwrap();
    let out = oz_setup(&["profile".as_ref(), "check".as_ref(), bad.as_os_str()]);
    assert!(!out.status.success());
    let stderr = text(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 3, "{stderr}");
    assert!(
        lines[0].starts_with("warning: ") && lines[0].contains(":2:") && lines[0].contains("ozt_first_unknown"),
        "{stderr}"
    );
    assert!(lines[1].starts_with("error: ") && lines[1].contains(":3:") && lines[1].contains("wifi"), "{stderr}");
    assert!(
        lines[2].starts_with("warning: ") && lines[2].contains(":4:") && lines[2].contains("ozt_last_unknown"),
        "{stderr}"
    );
    assert!(!text(&out.stdout).contains(": ok"), "{}", text(&out.stdout));
}
