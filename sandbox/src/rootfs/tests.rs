//! Planning and safe-opening tests: flag combinations, globs, shared folders, argument files,
//! and the symlink attacks on whitelist sources and can_create. They run as root (as CI does)
//! against a fake user (uid 54321) whose home is a temp directory.

use super::plan::Source;
use super::vars::Vars;
use super::whitelist::{self, title_case, Planner};
use super::RootfsError;
use crate::user::UserInfo;
use oz_profiles::profile::WhitelistItem;
use std::os::unix::fs::{symlink, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const FAKE_UID: u32 = 54321;

/// A temp dir with a home owned by the fake user, and that user.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub user: UserInfo,
}

impl Fixture {
    pub fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let home = dir.path().join("home/u");
        std::fs::create_dir_all(&home).unwrap();
        std::os::unix::fs::chown(&home, Some(FAKE_UID), Some(FAKE_UID)).unwrap();
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o750)).unwrap();
        let user = UserInfo {
            uid: FAKE_UID,
            gid: FAKE_UID,
            name: "ozfake".into(),
            home,
            shell: "/bin/sh".into(),
            memberships: vec![("ozfake".into(), FAKE_UID)],
        };
        Fixture { dir, user }
    }

    pub fn home(&self) -> &Path {
        &self.user.home
    }

    /// Create `rel` below home as a user-owned directory (every level of it).
    pub fn user_dir(&self, rel: &str) -> PathBuf {
        let mut p = self.home().to_path_buf();
        for comp in Path::new(rel).components() {
            p.push(comp);
            if !p.exists() {
                std::fs::create_dir(&p).unwrap();
                std::os::unix::fs::chown(&p, Some(FAKE_UID), Some(FAKE_UID)).unwrap();
            }
        }
        p
    }

    pub fn user_file(&self, rel: &str, content: &str) -> PathBuf {
        let p = self.home().join(rel);
        std::fs::write(&p, content).unwrap();
        std::os::unix::fs::chown(&p, Some(FAKE_UID), Some(FAKE_UID)).unwrap();
        p
    }

    pub fn user_link(&self, rel: &str, target: impl AsRef<Path>) {
        let p = self.home().join(rel);
        symlink(target, &p).unwrap();
        std::os::unix::fs::lchown(&p, Some(FAKE_UID), Some(FAKE_UID)).unwrap();
    }

    pub fn vars(&self) -> Vars {
        Vars::new(&self.user, "test-prof").unwrap()
    }

    /// Plan the given items; the binds, links and warnings, or the error.
    pub fn plan_items(&self, items: &[WhitelistItem]) -> Result<whitelist::Planned, RootfsError> {
        let vars = self.vars();
        let mut p = Planner::new(&self.user, &vars);
        p.add_all(items)?;
        Ok(p.finish())
    }
}

fn item(path: &str) -> WhitelistItem {
    WhitelistItem { path: path.into(), ..Default::default() }
}

fn assert_unsafe(r: Result<impl std::fmt::Debug, RootfsError>, what: &str) {
    match r {
        Err(RootfsError::Unsafe { .. }) | Err(RootfsError::NotPermitted { .. }) => {}
        other => panic!("{what}: expected a refusal, got {other:?}"),
    }
}

#[test]
fn home_symlink_to_shadow_is_refused_even_with_ignore() {
    let f = Fixture::new();
    f.user_link(".foo", "/etc/shadow");
    let err = f.plan_items(&[item("${HOME}/.foo")]).unwrap_err();
    assert!(err.to_string().contains("/etc/shadow"), "{err}");
    assert_unsafe(f.plan_items(&[item("${HOME}/.foo")]), ".foo -> /etc/shadow");
    let ignored = WhitelistItem { ignore: true, read_only: true, ..item("${HOME}/.foo") };
    assert_unsafe(f.plan_items(&[ignored]), "ignore must not turn a refusal into a skip");
}

#[test]
fn home_symlink_to_root_owned_dir_is_refused() {
    let f = Fixture::new();
    f.user_link(".bar", "/root");
    assert_unsafe(f.plan_items(&[item("${HOME}/.bar")]), ".bar -> /root");
    // Through an intermediate component too.
    f.user_link(".baz", "/etc");
    assert_unsafe(f.plan_items(&[item("${HOME}/.baz/passwd")]), ".baz/passwd");
    // Relative escapes.
    f.user_link(".rel", "../../../../etc/passwd");
    assert_unsafe(f.plan_items(&[item("${HOME}/.rel")]), ".rel -> ../../../../etc/passwd");
}

#[test]
fn symlinks_staying_in_home_are_followed() {
    let f = Fixture::new();
    f.user_dir("dotfiles/mozilla");
    f.user_link(".mozilla", f.home().join("dotfiles/mozilla"));
    f.user_link(".rel", "dotfiles");
    let (binds, _, w) = f.plan_items(&[item("${HOME}/.mozilla"), item("${HOME}/.rel/mozilla")]).unwrap();
    assert!(w.is_empty(), "{w:?}");
    assert_eq!(binds.len(), 2);
    assert_eq!(binds[0].target, f.home().join(".mozilla"), "the target keeps the unresolved path");
    let fd = whitelist::open_source(&f.user, &binds[0].source, false).unwrap();
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
    let real = std::fs::metadata(f.home().join("dotfiles/mozilla")).unwrap();
    assert_eq!((st.st_dev, st.st_ino), (real.dev(), real.ino()));
}

#[test]
fn sources_the_user_cannot_read_are_refused() {
    let f = Fixture::new();
    let secret = f.home().join("secret");
    std::fs::write(&secret, "root only").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(f.plan_items(&[item("${HOME}/secret")]), Err(RootfsError::NotPermitted { .. })));
    // A host path outside home that resolves (as the user) to /etc/shadow.
    let pubdir = f.dir.path().join("pub");
    std::fs::create_dir(&pubdir).unwrap();
    symlink("/etc/shadow", pubdir.join("shadow")).unwrap();
    let r = f.plan_items(&[item(&pubdir.join("shadow").to_string_lossy())]);
    assert!(matches!(r, Err(RootfsError::NotPermitted { .. })), "{r:?}");
    assert!(matches!(f.plan_items(&[item("/root")]), Err(RootfsError::NotPermitted { .. })));
}

#[test]
fn can_create_never_creates_outside_home() {
    let f = Fixture::new();
    let outside = f.dir.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::set_permissions(&outside, std::fs::Permissions::from_mode(0o777)).unwrap();
    f.user_link("out", &outside);
    let cc = WhitelistItem { can_create: true, ..item("${HOME}/out/new") };
    assert_unsafe(f.plan_items(&[cc]), "can_create through a symlinked parent");
    let source = Source::User { root: f.home().to_path_buf(), rel: "out/new".into() };
    assert!(whitelist::create_source(&f.user, &source).is_err());
    assert!(!outside.join("new").exists(), "created outside the home");
}

#[test]
fn can_create_creates_as_the_user() {
    let f = Fixture::new();
    let cc = WhitelistItem { can_create: true, ..item("${HOME}/.config/app") };
    let (binds, _, _) = f.plan_items(&[cc]).unwrap();
    assert!(binds[0].can_create);
    assert!(!f.home().join(".config").exists(), "planning must not write");
    whitelist::create_source(&f.user, &binds[0].source).unwrap();
    for p in [".config", ".config/app"] {
        let m = std::fs::metadata(f.home().join(p)).unwrap();
        assert!(m.is_dir());
        assert_eq!((m.uid(), m.gid()), (FAKE_UID, FAKE_UID), "{p} must belong to the user");
    }
    // can_create outside the home is not honoured: a missing system path is an error.
    let sys = WhitelistItem { can_create: true, ..item("/nonexistent-oz-test/dir") };
    assert!(matches!(f.plan_items(&[sys]), Err(RootfsError::Missing { .. })));
}

#[test]
fn the_whole_home_can_be_whitelisted() {
    let f = Fixture::new();
    let (binds, _, _) = f.plan_items(&[item("${HOME}")]).unwrap();
    assert_eq!(binds[0].source, Source::User { root: f.home().to_path_buf(), rel: PathBuf::new() });
    assert!(whitelist::open_source(&f.user, &binds[0].source, false).is_ok());
}

#[test]
fn missing_sources_need_ignore_or_can_create() {
    let f = Fixture::new();
    assert!(matches!(f.plan_items(&[item("${HOME}/nope")]), Err(RootfsError::Missing { .. })));
    let ig = WhitelistItem { ignore: true, ..item("${HOME}/nope") };
    let (binds, _, w) = f.plan_items(&[ig]).unwrap();
    assert!(binds.is_empty());
    assert_eq!(w.len(), 1);
}

#[test]
fn globs_bind_each_match_to_itself_and_refuse_targets() {
    let f = Fixture::new();
    f.user_dir("g1");
    f.user_dir("g2");
    f.user_file("other", "x");
    let (binds, _, _) = f.plan_items(&[WhitelistItem { read_only: true, ..item("${HOME}/g*") }]).unwrap();
    let targets: Vec<_> = binds.iter().map(|b| b.target.clone()).collect();
    assert_eq!(targets, vec![f.home().join("g1"), f.home().join("g2")]);
    assert!(binds.iter().all(|b| b.read_only && b.source.path() == b.target));
    let with_target = WhitelistItem { target: Some("/x".into()), ..item("${HOME}/g*") };
    assert!(matches!(f.plan_items(&[with_target]), Err(RootfsError::Invalid { .. })));
    // A glob with ignore skips matches the user may not read (other users' files).
    let secret = f.home().join("g3");
    std::fs::create_dir(&secret).unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o700)).unwrap();
    let (binds, _, w) = f.plan_items(&[WhitelistItem { ignore: true, ..item("${HOME}/g*") }]).unwrap();
    assert_eq!(binds.len(), 2);
    assert!(w.iter().any(|m| m.contains("g3")), "{w:?}");
    assert!(matches!(f.plan_items(&[item("${HOME}/g*")]), Err(RootfsError::NotPermitted { .. })));
    let glob_target = WhitelistItem { target: Some("/x*".into()), ..item("${HOME}/g1") };
    assert!(matches!(f.plan_items(&[glob_target]), Err(RootfsError::Invalid { .. })));
}

#[test]
fn flags_and_targets_are_carried_and_parents_sorted_first() {
    let f = Fixture::new();
    f.user_dir("a/b");
    f.user_dir("c");
    let items = [
        WhitelistItem { force: true, ..item("${HOME}/a/b") },
        WhitelistItem { target: Some("${HOME}/.config/c".into()), no_follow: true, ..item("${HOME}/c") },
        WhitelistItem { allow_suid: true, ..item("${HOME}/a") },
    ];
    let (binds, _, _) = f.plan_items(&items).unwrap();
    let t: Vec<_> = binds.iter().map(|b| b.target.strip_prefix(f.home()).unwrap().to_path_buf()).collect();
    assert_eq!(t, vec![PathBuf::from("a"), PathBuf::from("a/b"), PathBuf::from(".config/c")]);
    assert!(binds[0].allow_suid && binds[0].read_only, "allow_suid forces read-only");
    assert!(binds[1].force && !binds[1].read_only);
    assert!(binds[2].no_follow);
    assert_eq!(binds[2].source.path(), f.home().join("c"));
    let rel = WhitelistItem { target: Some("relative".into()), ..item("${HOME}/c") };
    assert!(matches!(f.plan_items(&[rel]), Err(RootfsError::Invalid { .. })));
}

#[test]
fn no_follow_keeps_an_escaping_symlink_as_a_link() {
    let f = Fixture::new();
    f.user_link(".lnk", "/etc/shadow");
    let nf = WhitelistItem { no_follow: true, ..item("${HOME}/.lnk") };
    let (binds, _, _) = f.plan_items(&[nf]).unwrap();
    let fd = whitelist::open_source(&f.user, &binds[0].source, true).unwrap();
    let st = nix::sys::stat::fstat(std::os::fd::AsRawFd::as_raw_fd(&fd)).unwrap();
    assert_eq!(st.st_mode & libc::S_IFMT, libc::S_IFLNK, "the link itself, never its target");
}

#[test]
fn shared_folders_map_to_per_profile_dirs() {
    let f = Fixture::new();
    let vars = f.vars();
    let mut p = Planner::new(&f.user, &vars);
    p.add_shared_folders("tor-browser", &["${HOME}/Downloads".into(), "${HOME}/a/b".into()]).unwrap();
    let (binds, links, _) = p.finish();
    let h = f.home();
    assert_eq!(binds[0].source.path(), h.join("OZ/Tor-Browser/Downloads"));
    assert_eq!(binds[0].target, h.join(".shared/Downloads"));
    assert!(binds[0].can_create);
    assert_eq!(binds[1].source.path(), h.join("OZ/Tor-Browser/a-b"));
    assert_eq!(links[0].link, h.join("Downloads"));
    assert_eq!(links[0].target, h.join(".shared/Downloads"));
    let mut p = Planner::new(&f.user, &vars);
    assert!(p.add_shared_folders("x", &["/etc".into()]).is_err());
}

#[test]
fn argument_files_must_be_below_home() {
    let f = Fixture::new();
    let doc = f.user_file("doc.pdf", "%PDF");
    let vars = f.vars();
    let mut p = Planner::new(&f.user, &vars);
    p.add_argument_file(&doc).unwrap();
    assert!(p.add_argument_file(Path::new("/etc/passwd")).is_err());
    f.user_link("evil.pdf", "/etc/shadow");
    assert!(p.add_argument_file(&f.home().join("evil.pdf")).is_err());
    let (binds, _, _) = p.finish();
    assert_eq!(binds.len(), 1);
    assert!(!binds[0].read_only, "argument files are writable (and noexec)");
}

#[test]
fn open_user_path_stays_in_user_trees() {
    let f = Fixture::new();
    f.user_file("ok", "x");
    f.user_link("bad", "/etc/shadow");
    assert!(super::open_user_path(&f.user, &f.home().join("ok")).is_ok());
    assert_unsafe(super::open_user_path(&f.user, &f.home().join("bad")), "bad");
    assert!(matches!(super::open_user_path(&f.user, Path::new("/etc/passwd")), Err(RootfsError::Invalid { .. })));
}

#[test]
fn title_case_matches_go() {
    assert_eq!(title_case("firefox"), "Firefox");
    assert_eq!(title_case("tor-browser"), "Tor-Browser");
    assert_eq!(title_case("tor_browser"), "Tor_browser");
    assert_eq!(title_case("onionshare gui"), "Onionshare Gui");
}
