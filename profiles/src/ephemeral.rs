//! Ephemeral launches (`oz launch --ephemeral`, oz.conf `enable_ephemerals`): the profile as
//! such a launch builds it, with nothing of the user's home bound in, so nothing the program
//! writes in the home outlives the sandbox. The sandbox's home is then the empty directory on
//! its own tmpfs root, gone with it.
//!
//! The original Oz dropped the whitelist items whose target (or path) starts with `${HOME}` or
//! `${XDG_`, and every shared folder. This also drops an item whose *source* lies in the home
//! (a home directory bound elsewhere would persist what is written there), and items naming the
//! home by its absolute path.

use crate::profile::{Profile, WhitelistItem};
use std::path::Path;

/// `profile` for an ephemeral launch by the user whose home is `home`.
pub fn strip_home(profile: &Profile, home: &Path) -> Profile {
    let mut p = profile.clone();
    p.whitelist.retain(|item| !touches_home(item, home));
    p.shared_folders.clear();
    p
}

/// Whether binding `item` would share anything of `home` with the sandbox.
pub fn touches_home(item: &WhitelistItem, home: &Path) -> bool {
    std::iter::once(&item.path).chain(item.target.as_ref()).any(|p| in_home(p, home))
}

fn in_home(path: &str, home: &Path) -> bool {
    let home_var = path == "${HOME}" || path.starts_with("${HOME}/");
    home_var || path.starts_with("${XDG_") || path.starts_with('~') || Path::new(path).starts_with(home)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(path: &str, target: Option<&str>) -> WhitelistItem {
        WhitelistItem { path: path.into(), target: target.map(String::from), ..Default::default() }
    }

    #[test]
    fn home_items_and_shared_folders_are_dropped() {
        let home = Path::new("/home/u");
        let mut p = crate::load::parse_profile(br#"{"path": "/usr/bin/x"}"#, Path::new("x.json")).unwrap().value;
        p.whitelist = vec![
            item("${HOME}/.config/x", None),
            item("${XDG_DOWNLOAD_DIR}", None),
            item("/home/u/data", None),
            item("${HOME}/.mozilla", Some("/opt/profile")),
            item("/opt/data", Some("${HOME}/data")),
            item("/usr/share/x", None),
            item("/run/user/${UID}/pulse/native", None),
            item("${HOMEDIR}/x", None),
            item("/home/uu/x", None),
        ];
        p.shared_folders = vec!["${XDG_DOWNLOAD_DIR}".into()];
        let e = strip_home(&p, home);
        let kept: Vec<&str> = e.whitelist.iter().map(|i| i.path.as_str()).collect();
        assert_eq!(kept, ["/usr/share/x", "/run/user/${UID}/pulse/native", "${HOMEDIR}/x", "/home/uu/x"]);
        assert!(e.shared_folders.is_empty());
        assert_eq!(e.name, p.name);
    }
}
