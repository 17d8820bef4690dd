//! Profile lookup for launches: by name, listing index, or executable path (wrapper mode).

use oz_profiles::Profile;
use oz_wire::{DaemonError, ProfileRef, ProfileSummary};
use std::path::Path;

/// Listing indexes are 1-based, as the original's `oz profiles` and `oz launch INDEX`.
pub fn summaries(profiles: &[Profile]) -> Vec<ProfileSummary> {
    profiles
        .iter()
        .enumerate()
        .map(|(i, p)| ProfileSummary { index: i as u32 + 1, name: p.name.clone(), path: p.path.clone() })
        .collect()
}

fn strip_path_var(p: &str) -> &str {
    p.strip_prefix("${PATH}/").unwrap_or(p)
}

fn basename(p: &str) -> &str {
    Path::new(p).file_name().and_then(|s| s.to_str()).unwrap_or(p)
}

/// Find the profile a launch names. A path matches a profile's `path` or one of its `paths`
/// exactly, else by file name (a wrapper symlink lives elsewhere than the real program).
pub fn resolve<'a>(profiles: &'a [Profile], r: &ProfileRef) -> Result<&'a Profile, DaemonError> {
    let found = match r {
        ProfileRef::Name(n) => profiles.iter().find(|p| &p.name == n),
        ProfileRef::Index(i) => i.checked_sub(1).and_then(|i| profiles.get(i as usize)),
        ProfileRef::Path(path) => {
            let want = path.to_string_lossy();
            let all = |p: &'a Profile| std::iter::once(&p.path).chain(p.paths.iter()).map(|s| strip_path_var(s));
            profiles
                .iter()
                .find(|p| all(p).any(|s| s == want))
                .or_else(|| profiles.iter().find(|p| all(p).any(|s| basename(s) == basename(&want))))
        }
    };
    found.ok_or_else(|| DaemonError::NoSuchProfile {
        profile: match r {
            ProfileRef::Name(n) => n.clone(),
            ProfileRef::Index(i) => format!("#{i}"),
            ProfileRef::Path(p) => p.display().to_string(),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(json: &str) -> Profile {
        oz_profiles::load::parse_profile(json.as_bytes(), Path::new("t.json")).unwrap().value
    }

    #[test]
    fn by_name_index_and_path() {
        let ps = vec![
            p(r#"{"name": "evince", "path": "/usr/bin/evince", "paths": ["/usr/bin/evince-previewer"]}"#),
            p(r#"{"name": "fx", "path": "${PATH}/firefox"}"#),
        ];
        assert_eq!(resolve(&ps, &ProfileRef::Name("fx".into())).unwrap().name, "fx");
        assert_eq!(resolve(&ps, &ProfileRef::Index(1)).unwrap().name, "evince");
        assert!(resolve(&ps, &ProfileRef::Index(0)).is_err());
        assert_eq!(resolve(&ps, &ProfileRef::Path("/usr/bin/evince-previewer".into())).unwrap().name, "evince");
        assert_eq!(resolve(&ps, &ProfileRef::Path("/usr/local/bin/firefox".into())).unwrap().name, "fx");
        assert_eq!(
            resolve(&ps, &ProfileRef::Index(5)).unwrap_err(),
            DaemonError::NoSuchProfile { profile: "#5".into() }
        );
        assert!(resolve(&ps, &ProfileRef::Name("nope".into())).is_err());
        assert_eq!(summaries(&ps)[1].index, 2);
    }
}
