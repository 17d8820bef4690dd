//! `shared_folders` through the real daemon as a real user, as the original Oz laid them out:
//! `${XDG_DOWNLOAD_DIR}` (from the user's `user-dirs.dirs`) is, inside, the per-profile host
//! folder `~/OZ/<Profile>/<dir>`: a file put there on the host is read inside at the XDG place,
//! a file written there inside lands in the host folder (the user's own), nothing else of the
//! home is visible, and root never creates the folder through a symlink the user planted.

mod common_daemon;

use common_daemon::{profile, user_a, Daemon, TestUser};
use oz_integration::env::unique;
use serde_json::json;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

const USER_DIRS: &str = ".config/user-dirs.dirs";

/// Puts things in the test user's home and takes them out again at the end, passed or not;
/// restores `~/.config/user-dirs.dirs` as it was.
/// Made after the daemon (which holds the host lock) and dropped before it.
struct Home {
    user: TestUser,
    paths: Vec<PathBuf>,
    user_dirs: Option<Vec<u8>>,
    had_oz: bool,
}

impl Home {
    fn new(user: &TestUser) -> Home {
        let user_dirs = std::fs::read(user.home.join(USER_DIRS)).ok();
        let had_oz = user.home.join("OZ").exists();
        Home { user: user.clone(), paths: Vec::new(), user_dirs, had_oz }
    }

    /// Run `script` as the user; remove `paths` (relative to the home) at the end.
    fn sh(&mut self, script: &str, paths: &[&str]) {
        self.paths.extend(paths.iter().map(|p| self.user.home.join(p)));
        self.user.sh(script).unwrap();
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        for p in &self.paths {
            let _ = std::fs::remove_dir_all(p).or_else(|_| std::fs::remove_file(p));
        }
        let file = self.user.home.join(USER_DIRS);
        match &self.user_dirs {
            Some(old) => {
                let _ = std::fs::write(&file, old);
            }
            None => {
                let _ = std::fs::remove_file(&file);
            }
        }
        if !self.had_oz {
            let _ = std::fs::remove_dir(self.user.home.join("OZ"));
        }
    }
}

/// The profile's folder name under `~/OZ`, as Go's `strings.Title` made it (`ozt-sf1` -> `Ozt-Sf1`).
fn title(name: &str) -> String {
    let mut prev = ' ';
    name.chars()
        .map(|c| {
            let up = !(prev.is_alphanumeric() || prev == '_');
            prev = c;
            if up {
                c.to_ascii_uppercase()
            } else {
                c
            }
        })
        .collect()
}

#[test]
fn the_per_profile_host_folder_is_the_xdg_folder_inside_and_nothing_else_of_the_home() {
    let a = user_a();
    let n = std::process::id();
    let name = format!("ozt-sf{n}");
    let d = Daemon::start(&[profile(&name, "/bin/sh", json!({"shared_folders": ["${XDG_DOWNLOAD_DIR}"]}))]);
    let mut home = Home::new(&a);
    let dl = format!("Dl-{n}");
    let host_folder = format!("OZ/{}/{dl}", title(&name));
    let secret = unique("secret");
    home.sh(
        &format!(
            "set -e; mkdir -p ~/.config ~/{host_folder}; echo 'XDG_DOWNLOAD_DIR=\"$HOME/{dl}\"' > ~/{USER_DIRS}; \
             echo from-host > ~/{host_folder}/from-host.txt; echo topsecret > ~/{secret}; mkdir ~/{dl}"
        ),
        &[&format!("OZ/{}", title(&name)), &secret, &dl],
    );
    let script = format!(
        "cat ~/{dl}/from-host.txt; echo from-inside > ~/{dl}/from-inside.txt; \
         echo LS $(ls -A ~); cat ~/{secret} 2>/dev/null; cat ~/{USER_DIRS} 2>/dev/null; echo END"
    );
    let out = d.oz(&a, &["run", &name, "--", "-c", &script]);
    out.assert_ok("oz run", &d);
    assert!(out.stdout.contains("from-host\n"), "the host folder's file is not at ~/{dl} inside: {out:?}");
    assert!(out.stdout.contains("END"), "{out:?}");
    let listed = out.stdout.lines().find_map(|l| l.strip_prefix("LS ")).unwrap_or_default();
    let mut listed: Vec<&str> = listed.split_whitespace().collect();
    listed.sort();
    assert_eq!(listed, [".shared", dl.as_str()], "the home inside shows more than the shared folder");
    assert!(!out.stdout.contains("topsecret") && !out.stdout.contains("XDG_"), "home files leaked: {out:?}");

    let written = a.home.join(&host_folder).join("from-inside.txt");
    assert_eq!(std::fs::read_to_string(&written).unwrap_or_default(), "from-inside\n", "{}", written.display());
    assert_eq!(std::fs::metadata(&written).unwrap().uid(), a.uid, "the file written inside is not the user's");
    assert!(!a.home.join(&dl).join("from-inside.txt").exists(), "the real XDG folder was written");
    drop(home);
    d.finish();
}

#[test]
fn root_does_not_create_the_folder_through_a_planted_symlink() {
    let a = user_a();
    let name = format!("ozt-sfl{}", std::process::id());
    let d = Daemon::start(&[profile(&name, "/bin/true", json!({"shared_folders": ["${HOME}/Downloads"]}))]);
    let mut home = Home::new(&a);
    // A root-owned directory the user cannot write in, and ~/OZ/<Profile> a symlink to it.
    let target = tempfile::Builder::new().prefix("oz-sf-target-").tempdir().unwrap();
    let link = format!("OZ/{}", title(&name));
    home.sh(&format!("set -e; mkdir -p ~/OZ; ln -s {} ~/{link}", target.path().display()), &[&link]);
    let out = d.oz(&a, &["run", &name]);
    let created: Vec<_> = std::fs::read_dir(target.path()).unwrap().flatten().map(|e| e.path()).collect();
    assert!(created.is_empty(), "root created {created:?} through the user's symlink ({out:?})");
    assert!(Path::new(&a.home.join(&link)).is_symlink(), "the user's symlink was replaced");
    assert!(!out.status.success(), "the launch went on through the planted symlink: {out:?}");
    drop(home);
    d.finish();
}
