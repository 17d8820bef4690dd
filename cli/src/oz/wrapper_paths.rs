//! Wrapper mode, the pure part: which executable paths argv\[0\] stands for, which profile a
//! symlink located elsewhere maps to, and how file arguments are made absolute.
//!
//! Matching rule (documented in `oz --help` too):
//! 1. exact: the daemon is asked for the profile whose `path` or one of whose `paths` equals one
//!    of the candidates, in order: argv\[0\] as invoked when absolute; argv\[0\] made absolute
//!    against the cwd when it contains a `/`; the first `$PATH` entry holding argv\[0\] when it
//!    contains no `/`; and each of those with its directory canonicalized (symlinks in the
//!    directory resolved, the last component kept, since it is the symlink to oz itself);
//! 2. otherwise by basename: the one profile whose `path` has argv\[0\]'s basename, so a symlink
//!    `~/bin/evince -> oz` launches the profile of `/usr/bin/evince`. Two such profiles are an
//!    error, never a guess.

use std::ffi::OsStr;
use std::path::{Component, Path, PathBuf};

/// The last component of argv\[0\] (`/usr/bin/evince` -> `evince`).
pub fn invoked_basename(argv0: &OsStr) -> &OsStr {
    Path::new(argv0).file_name().unwrap_or(argv0)
}

/// Candidate executable paths argv\[0\] stands for, most specific first, without duplicates.
pub fn path_candidates(
    argv0: &Path,
    cwd: &Path,
    path_env: Option<&OsStr>,
    is_file: impl Fn(&Path) -> bool,
    canonical_dir: impl Fn(&Path) -> Option<PathBuf>,
) -> Vec<PathBuf> {
    let mut direct = Vec::new();
    if argv0.is_absolute() {
        direct.push(normalize(argv0));
    } else if argv0.as_os_str().as_encoded_bytes().contains(&b'/') {
        direct.push(normalize(&cwd.join(argv0)));
    } else if let Some(path_env) = path_env {
        let found = std::env::split_paths(path_env)
            .filter(|dir| dir.is_absolute())
            .map(|dir| normalize(&dir.join(argv0)))
            .find(|p| is_file(p));
        direct.extend(found);
    }
    let mut out: Vec<PathBuf> = Vec::new();
    for p in direct {
        let resolved = match (p.parent(), p.file_name()) {
            (Some(dir), Some(name)) => canonical_dir(dir).map(|d| d.join(name)),
            _ => None,
        };
        for c in std::iter::once(p).chain(resolved) {
            if !out.contains(&c) {
                out.push(c);
            }
        }
    }
    out
}

/// Lexical normalization: drop `.`, resolve `..` against the preceding component.
fn normalize(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// Outcome of the basename fallback.
#[derive(Debug, PartialEq, Eq)]
pub enum BasenameMatch<'a> {
    None,
    One(&'a str),
    Ambiguous(Vec<&'a str>),
}

/// The profile paths (from the `Profiles` listing) whose basename equals argv\[0\]'s.
pub fn match_basename<'a>(argv0: &OsStr, profile_paths: &[&'a str]) -> BasenameMatch<'a> {
    let name = invoked_basename(argv0);
    let hits: Vec<&str> = profile_paths.iter().copied().filter(|p| Path::new(p).file_name() == Some(name)).collect();
    match hits.len() {
        0 => BasenameMatch::None,
        1 => BasenameMatch::One(hits[0]),
        _ => BasenameMatch::Ambiguous(hits),
    }
}

/// Make file arguments absolute against `cwd` so the daemon can whitelist them (allow_files):
/// `file://` URIs become percent-decoded absolute paths; an argument that does not start with
/// `-` and names an existing file relative to `cwd` becomes absolute; all else stays as is.
pub fn absolutize_file_args(args: &[String], cwd: &Path, exists: impl Fn(&Path) -> bool) -> Vec<String> {
    args.iter()
        .map(|arg| {
            if let Some(path) = file_uri_path(arg) {
                return path;
            }
            if arg.is_empty() || arg.starts_with('-') || Path::new(arg).is_absolute() {
                return arg.clone();
            }
            let abs = normalize(&cwd.join(arg));
            match (exists(&abs), abs.to_str()) {
                (true, Some(s)) => s.to_string(),
                _ => arg.clone(),
            }
        })
        .collect()
}

/// `file:///a%20b` or `file://localhost/a%20b` -> `/a b`; None for anything else (other hosts,
/// other schemes, a decoded path that is not UTF-8 or contains NUL).
pub fn file_uri_path(arg: &str) -> Option<String> {
    let rest = arg.strip_prefix("file://")?;
    let rest = rest.strip_prefix("localhost").unwrap_or(rest);
    if !rest.starts_with('/') {
        return None;
    }
    let rest = rest.split(['?', '#']).next().unwrap_or(rest);
    let decoded = String::from_utf8(percent_decode(rest)).ok()?;
    (!decoded.contains('\0')).then_some(decoded)
}

/// Decode `%XX` escapes; a `%` not followed by two hex digits stays literal.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cands(argv0: &str, path_env: &str, files: &[&str], dirs: &[(&str, &str)]) -> Vec<String> {
        path_candidates(
            Path::new(argv0),
            Path::new("/home/u/work"),
            Some(OsStr::new(path_env)),
            |p| files.iter().any(|f| Path::new(f) == p),
            |d| dirs.iter().find(|(from, _)| Path::new(from) == d).map(|(_, to)| PathBuf::from(to)),
        )
        .into_iter()
        .map(|p| p.display().to_string())
        .collect()
    }

    #[test]
    fn absolute_argv0_then_its_canonical_directory() {
        let c = cands("/usr/local/bin/../bin/evince", "", &[], &[("/usr/local/bin", "/opt/bin")]);
        assert_eq!(c, ["/usr/local/bin/evince", "/opt/bin/evince"]);
    }

    #[test]
    fn relative_argv0_is_made_absolute_against_cwd() {
        assert_eq!(cands("./bin/evince", "", &[], &[]), ["/home/u/work/bin/evince"]);
    }

    #[test]
    fn bare_name_is_looked_up_in_path() {
        let c = cands("evince", "relative:/bin:/usr/bin", &["/usr/bin/evince"], &[("/usr/bin", "/usr/bin")]);
        assert_eq!(c, ["/usr/bin/evince"]);
        assert!(cands("evince", "/bin", &[], &[]).is_empty());
    }

    #[test]
    fn basename_fallback_is_unique_or_an_error() {
        let paths = ["/usr/bin/evince", "/usr/bin/eog", "/opt/x/eog"];
        assert_eq!(match_basename(OsStr::new("/home/u/bin/evince"), &paths), BasenameMatch::One("/usr/bin/evince"));
        assert_eq!(match_basename(OsStr::new("vlc"), &paths), BasenameMatch::None);
        assert_eq!(
            match_basename(OsStr::new("eog"), &paths),
            BasenameMatch::Ambiguous(vec!["/usr/bin/eog", "/opt/x/eog"])
        );
    }

    #[test]
    fn file_uris_are_decoded() {
        assert_eq!(file_uri_path("file:///home/u/a%20b.pdf").as_deref(), Some("/home/u/a b.pdf"));
        assert_eq!(file_uri_path("file://localhost/x%C3%A9").as_deref(), Some("/xé"));
        assert_eq!(file_uri_path("file:///a?b#c").as_deref(), Some("/a"));
        assert_eq!(file_uri_path("file://otherhost/x"), None);
        assert_eq!(file_uri_path("https://example.org/x"), None);
        assert_eq!(file_uri_path("file:///a%00b"), None);
        assert_eq!(file_uri_path("file:///a%FFb"), None);
    }

    #[test]
    fn percent_decode_keeps_broken_escapes() {
        assert_eq!(percent_decode("100%"), b"100%");
        assert_eq!(percent_decode("%4"), b"%4");
        assert_eq!(percent_decode("%zz%41"), b"%zzA");
    }

    #[test]
    fn existing_relative_files_become_absolute() {
        let args: Vec<String> = ["doc.pdf", "missing.pdf", "--page=2", "-", "/abs/x", "file:///t%20t", "../up.txt"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        let exists = |p: &Path| p == Path::new("/home/u/doc.pdf") || p == Path::new("/home/up.txt");
        let out = absolutize_file_args(&args, Path::new("/home/u"), exists);
        assert_eq!(out, ["/home/u/doc.pdf", "missing.pdf", "--page=2", "-", "/abs/x", "/t t", "/home/up.txt"]);
    }
}
