use super::*;
use std::fs;

fn ctx() -> ExpandContext {
    let home = PathBuf::from("/home/alice");
    ExpandContext {
        xdg: XdgDirs::defaults(&home),
        home,
        uid: 1000,
        user: "alice".into(),
        sandbox_name: "evince".into(),
        display: Some(3),
        path_dirs: vec![],
    }
}

fn ex(s: &str) -> String {
    expand_vars(s, &ctx()).unwrap()
}

#[test]
fn each_variable() {
    assert_eq!(ex("${HOME}/.mozilla"), "/home/alice/.mozilla");
    assert_eq!(ex("/run/user/${UID}/gnupg"), "/run/user/1000/gnupg");
    assert_eq!(ex("/media/${USER}"), "/media/alice");
    assert_eq!(ex("/tmp/${SANDBOXNAME}.log"), "/tmp/evince.log");
    assert_eq!(ex("/tmp/.X11-unix/X${DISPLAY}"), "/tmp/.X11-unix/X3");
    assert_eq!(ex("${XDG_DOWNLOAD_DIR}"), "/home/alice/Downloads");
    assert_eq!(ex("${XDG_PUBLICSHARE_DIR}/x"), "/home/alice/Public/x");
    assert_eq!(ex("/no/variables"), "/no/variables");
}

#[test]
fn several_variables_in_one_path() {
    assert_eq!(ex("${HOME}/.cache/${SANDBOXNAME}/${UID}-${USER}"), "/home/alice/.cache/evince/1000-alice");
    assert_eq!(ex("/run/user/${UID}/${SANDBOXNAME}/X${DISPLAY}"), "/run/user/1000/evince/X3");
}

#[test]
fn errors_name_the_variable() {
    let e = expand_vars("${HOME}/${NOPE}", &ctx()).unwrap_err();
    assert_eq!(e.to_string(), "${HOME}/${NOPE}: unknown variable ${NOPE}");
    assert!(matches!(expand_vars("${XDG_FOO_DIR}", &ctx()), Err(ExpandError::UnknownVariable { .. })));
    assert!(matches!(expand_vars("${HOME", &ctx()), Err(ExpandError::Unterminated { .. })));
    assert!(matches!(expand_vars("/x/${PATH}/y", &ctx()), Err(ExpandError::PathNotPrefix { .. })));
    let mut c = ctx();
    c.display = None;
    assert!(matches!(expand_vars("X${DISPLAY}", &c), Err(ExpandError::NoDisplay { .. })));
}

#[test]
fn path_lookup_first_match_and_glob() {
    let tmp = tempfile::tempdir().unwrap();
    let (a, b) = (tmp.path().join("a"), tmp.path().join("b"));
    fs::create_dir(&a).unwrap();
    fs::create_dir(&b).unwrap();
    for f in [a.join("tool"), b.join("tool"), b.join("systemd-x"), a.join("systemd-y"), b.join("systemd-z")] {
        fs::write(f, "").unwrap();
    }
    let mut c = ctx();
    c.path_dirs = vec![a.clone(), b.clone()];
    assert_eq!(expand_vars("${PATH}/tool", &c).unwrap(), a.join("tool").to_string_lossy());
    assert_eq!(expand_glob("${PATH}/tool", &c).unwrap(), vec![a.join("tool")]);
    let all = expand_glob("${PATH}/systemd-*", &c).unwrap();
    assert_eq!(all, vec![a.join("systemd-y"), b.join("systemd-x"), b.join("systemd-z")]);
    let e = expand_vars("${PATH}/missing", &c).unwrap_err();
    assert_eq!(e, ExpandError::NotInPath { input: "${PATH}/missing".into(), name: "missing".into() });
}

#[test]
fn globs_over_a_temp_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    for d in ["x1/sub", "x2/sub", "y/sub", "x3"] {
        fs::create_dir_all(root.join(d)).unwrap();
    }
    fs::write(root.join("x1/sub/f.txt"), "").unwrap();
    fs::write(root.join("x2/sub/g.txt"), "").unwrap();
    fs::write(root.join("x2/sub/h.dat"), "").unwrap();
    let mut c = ctx();
    c.home = root.to_path_buf();
    let got = expand_glob("${HOME}/x*/sub/*.txt", &c).unwrap();
    assert_eq!(got, vec![root.join("x1/sub/f.txt"), root.join("x2/sub/g.txt")]);
    let dirs = expand_glob("${HOME}/x*", &c).unwrap();
    assert_eq!(dirs, vec![root.join("x1"), root.join("x2"), root.join("x3")]);
    assert!(expand_glob("${HOME}/nothing*", &c).unwrap().is_empty());
    assert!(expand_glob("${HOME}/missing/*", &c).unwrap().is_empty());
    // No glob: returned as is, existing or not.
    assert_eq!(expand_glob("${HOME}/absent", &c).unwrap(), vec![root.join("absent")]);
}

#[test]
fn wildcards() {
    assert!(wildcard_match(b"*", b""));
    assert!(wildcard_match(b"a*c", b"abbbc"));
    assert!(wildcard_match(b"*.txt", b".hidden.txt"));
    assert!(wildcard_match(b"a**", b"a"));
    assert!(!wildcard_match(b"a*c", b"abd"));
    assert!(!wildcard_match(b"abc", b"ab"));
    assert!(wildcard_match(b"*a*b*", b"xxaxxbxx"));
}

#[test]
fn user_dirs_file_parsing() {
    let home = Path::new("/home/alice");
    let text = "# comment\nXDG_DOWNLOAD_DIR=\"$HOME/Telechargements\"\nXDG_MUSIC_DIR=\"/home/alice/Musique\"\n\
                XDG_DESKTOP_DIR=\"$HOME\"\nXDG_PICTURES_DIR=\"/etc\"\nXDG_VIDEOS_DIR=\"$HOME/../bob\"\n\
                XDG_TEMPLATES_DIR=\"$HOMEX/t\"\ngarbage line\n";
    let x = XdgDirs::from_user_dirs_file(text, home);
    assert_eq!(x.get("DOWNLOAD"), Some(Path::new("/home/alice/Telechargements")));
    assert_eq!(x.get("MUSIC"), Some(Path::new("/home/alice/Musique")));
    assert_eq!(x.get("DESKTOP"), Some(Path::new("/home/alice")));
    // Outside the home: ignored, default kept.
    assert_eq!(x.get("PICTURES"), Some(Path::new("/home/alice/Pictures")));
    assert_eq!(x.get("VIDEOS"), Some(Path::new("/home/alice/Videos")));
    assert_eq!(x.get("TEMPLATES"), Some(Path::new("/home/alice/Templates")));
}

#[test]
fn missing_user_dirs_file_gives_defaults() {
    let tmp = tempfile::tempdir().unwrap();
    let x = XdgDirs::load(tmp.path());
    assert_eq!(x, XdgDirs::defaults(tmp.path()));
    assert_eq!(x.get("DOCUMENTS"), Some(tmp.path().join("Documents").as_path()));
    fs::create_dir(tmp.path().join(".config")).unwrap();
    fs::write(tmp.path().join(".config/user-dirs.dirs"), "XDG_DOCUMENTS_DIR=\"$HOME/Docs\"\n").unwrap();
    assert_eq!(XdgDirs::load(tmp.path()).get("DOCUMENTS"), Some(tmp.path().join("Docs").as_path()));
}

#[test]
fn odd_user_dirs_files_give_defaults_without_blocking() {
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join(".config");
    fs::create_dir(&conf).unwrap();
    let file = conf.join("user-dirs.dirs");
    nix::unistd::mkfifo(&file, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    assert_eq!(XdgDirs::load(tmp.path()), XdgDirs::defaults(tmp.path()));
    fs::remove_file(&file).unwrap();
    let real = tmp.path().join("real");
    fs::write(&real, "XDG_DOWNLOAD_DIR=\"$HOME/dl\"\n").unwrap();
    std::os::unix::fs::symlink(&real, &file).unwrap();
    assert_eq!(XdgDirs::load(tmp.path()).get("DOWNLOAD"), Some(tmp.path().join("dl").as_path()));
    fs::remove_file(&file).unwrap();
    fs::write(&file, vec![b'#'; 100 * 1024]).unwrap();
    assert_eq!(XdgDirs::load(tmp.path()), XdgDirs::defaults(tmp.path()));
}
