//! Where `oz-setup install` moves a wrapped program (dpkg-divert), shared by oz-setup and the
//! agent that runs the real binary.

use crate::Config;
use std::path::{Path, PathBuf};

/// The diverted name of `path`, as the original Oz's oz-setup named it: append `.<suffix>` when
/// a suffix is set, then move to `<dir>-oz/` when `divert_path`; with neither, the suffix is
/// `unsafe`. With the defaults `/usr/bin/evince` becomes `/usr/bin-oz/evince.unsafe`.
pub fn diverted_path(path: &Path, divert_suffix: &str, divert_path: bool) -> PathBuf {
    let suffix = if divert_suffix.is_empty() && !divert_path { "unsafe" } else { divert_suffix };
    let mut name = path.file_name().map(|n| n.to_os_string()).unwrap_or_default();
    if !suffix.is_empty() {
        name.push(".");
        name.push(suffix);
    }
    let dir = path.parent().unwrap_or(Path::new("/"));
    if divert_path {
        let mut d = dir.as_os_str().to_os_string();
        d.push("-oz");
        PathBuf::from(d).join(name)
    } else {
        dir.join(name)
    }
}

impl Config {
    /// [`diverted_path`] with this config's `divert_suffix` and `divert_path`.
    pub fn diverted_path(&self, path: &Path) -> PathBuf {
        diverted_path(path, &self.divert_suffix, self.divert_path)
    }

    /// The `oz` client every wrapped program is a symlink to: `<prefix_path>/bin/oz`.
    pub fn oz_wrapper(&self) -> PathBuf {
        self.prefix_path.join("bin/oz")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapping_matches_the_original() {
        let p = Path::new("/usr/bin/evince");
        assert_eq!(diverted_path(p, "", true), Path::new("/usr/bin-oz/evince"));
        assert_eq!(diverted_path(p, "", false), Path::new("/usr/bin/evince.unsafe"));
        assert_eq!(diverted_path(p, "real", false), Path::new("/usr/bin/evince.real"));
        assert_eq!(diverted_path(p, "unsafe", true), Path::new("/usr/bin-oz/evince.unsafe"));
        assert_eq!(Config::default().diverted_path(p), Path::new("/usr/bin-oz/evince.unsafe"));
    }
}
