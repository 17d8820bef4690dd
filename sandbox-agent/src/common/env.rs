//! What the program is given: its environment, its argv, its executable (with oz-setup's
//! divert mapping). Pure functions of the launch spec, the config and the resolved user.

use oz_profiles::expand::{ExpandContext, XdgDirs};
use oz_profiles::profile::EnvVar;
use oz_profiles::Profile;
use oz_sandbox::user::UserInfo;
use std::path::{Path, PathBuf};

pub use oz_profiles::program::{diverted_path, program_path, ProgramError, SANDBOX_PATH};

/// An ordered environment where a later assignment replaces an earlier one in place.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Env(Vec<(String, String)>);

impl Env {
    pub fn set(&mut self, name: &str, value: &str) {
        if name.is_empty() || name.contains('=') || name.contains('\0') || value.contains('\0') {
            return;
        }
        match self.0.iter_mut().find(|(n, _)| n == name) {
            Some(slot) => slot.1 = value.to_string(),
            None => self.0.push((name.to_string(), value.to_string())),
        }
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// `NAME=value` strings, in order.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(|(n, v)| format!("{n}={v}")).collect()
    }
}

fn caller_value<'a>(caller: &'a [(String, String)], name: &str) -> Option<&'a str> {
    caller.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// The program's environment (the original Oz's, without its leak of OZ_* variables): oz.conf
/// `environment_vars` (a bare name copies the caller's value, `NAME=value` sets it), then the
/// profile's `environment` (fixed value, or the caller's), then PATH, HOME, USER, LOGNAME.
/// Nothing else from the caller.
pub fn program_env(
    config_vars: &[String],
    profile_env: &[EnvVar],
    caller: &[(String, String)],
    user: &UserInfo,
) -> Env {
    let mut env = Env::default();
    for item in config_vars {
        match item.split_once('=') {
            Some((name, value)) => env.set(name, value),
            None => {
                if let Some(v) = caller_value(caller, item) {
                    env.set(item, v);
                }
            }
        }
    }
    for var in profile_env {
        match &var.value {
            Some(v) => env.set(&var.name, v),
            None => {
                if let Some(v) = caller_value(caller, &var.name) {
                    env.set(&var.name, v);
                }
            }
        }
    }
    env.set("PATH", SANDBOX_PATH);
    env.set("HOME", &user.home.to_string_lossy());
    env.set("USER", &user.name);
    env.set("LOGNAME", &user.name);
    env
}

/// The variables a program path may use, for `user` in sandbox `name` (XDG dirs at their
/// defaults: the user's own user-dirs.dirs is not read as root).
pub fn expand_context(user: &UserInfo, name: &str) -> ExpandContext {
    ExpandContext {
        home: user.home.clone(),
        uid: user.uid,
        user: user.name.clone(),
        sandbox_name: name.to_string(),
        display: None,
        xdg: XdgDirs::defaults(&user.home),
        path_dirs: SANDBOX_PATH.split(':').map(PathBuf::from).collect(),
    }
}

/// argv: the executable, the profile's default_params, then the user's args unless the
/// profile rejects them.
pub fn program_argv(exe: &Path, profile: &Profile, user_args: &[String]) -> Vec<String> {
    let mut argv = vec![exe.to_string_lossy().into_owned()];
    argv.extend(profile.default_params.iter().cloned());
    if !profile.reject_user_args {
        argv.extend(user_args.iter().cloned());
    }
    argv
}

#[cfg(test)]
mod tests {
    use super::*;
    use oz_profiles::Config;

    fn user() -> UserInfo {
        UserInfo {
            uid: 1000,
            gid: 1000,
            name: "u".into(),
            home: "/home/u".into(),
            shell: "/bin/sh".into(),
            memberships: vec![],
        }
    }

    fn caller() -> Vec<(String, String)> {
        [("LANG", "C.UTF-8"), ("LD_PRELOAD", "/tmp/evil.so"), ("HOME", "/root"), ("FOO", "bar"), ("PATH", "/tmp")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn env_keeps_only_what_config_and_profile_allow() {
        let cfg = vec!["LANG".to_string(), "TZ=UTC".to_string(), "XDG_SEAT".to_string()];
        let prof =
            vec![EnvVar { name: "FOO".into(), value: None }, EnvVar { name: "MOZ".into(), value: Some("1".into()) }];
        let env = program_env(&cfg, &prof, &caller(), &user()).to_strings();
        assert_eq!(
            env,
            vec![
                "LANG=C.UTF-8",
                "TZ=UTC",
                "FOO=bar",
                "MOZ=1",
                "PATH=/usr/bin:/bin",
                "HOME=/home/u",
                "USER=u",
                "LOGNAME=u"
            ]
        );
    }

    #[test]
    fn env_fixed_values_win_and_bad_names_are_dropped() {
        let cfg =
            vec!["HOME".to_string(), "A=1".to_string(), "A=2".to_string(), "=x".to_string(), "B=a\0b".to_string()];
        let env = program_env(&cfg, &[], &caller(), &user());
        assert_eq!(env.get("HOME"), Some("/home/u"));
        assert_eq!(env.get("A"), Some("2"));
        assert_eq!(env.get("B"), None);
        assert_eq!(env.get("LD_PRELOAD"), None);
    }

    #[test]
    fn divert_mapping_matches_oz_setup() {
        let p = Path::new("/usr/bin/evince");
        assert_eq!(diverted_path(p, "", true), Path::new("/usr/bin-oz/evince"));
        assert_eq!(diverted_path(p, "", false), Path::new("/usr/bin/evince.unsafe"));
        assert_eq!(diverted_path(p, "real", false), Path::new("/usr/bin/evince.real"));
        assert_eq!(diverted_path(p, "real", true), Path::new("/usr/bin-oz/evince.real"));
    }

    fn profile(path: &str) -> Profile {
        let mut p: Profile = test_profile();
        p.path = path.into();
        p
    }

    pub(crate) fn test_profile() -> Profile {
        let json = br#"{"name": "t", "path": "/bin/true"}"#;
        oz_profiles::load::parse_profile(json, Path::new("<bare>")).expect("bare profile is valid").value
    }

    #[test]
    fn program_path_resolution() {
        let cfg = Config::default();
        let ctx = expand_context(&user(), "t");
        let only = |set: &'static [&'static str]| move |p: &Path| set.iter().any(|s| Path::new(s) == p);
        let e = only(&["/bin/evince"]);
        assert_eq!(program_path(&profile("${PATH}/evince"), &cfg, &ctx, &e).unwrap(), Path::new("/bin/evince"));
        let e = only(&["/usr/bin/evince", "/usr/bin-oz/evince.unsafe"]);
        assert_eq!(
            program_path(&profile("/usr/bin/evince"), &cfg, &ctx, &e).unwrap(),
            Path::new("/usr/bin-oz/evince.unsafe")
        );
        assert_eq!(program_path(&profile("/usr/bin/x"), &cfg, &ctx, &only(&[])).unwrap(), Path::new("/usr/bin/x"));
        assert!(matches!(
            program_path(&profile("evince"), &cfg, &ctx, &only(&[])),
            Err(ProgramError::NotAbsolute { .. })
        ));
        assert!(matches!(
            program_path(&profile("${PATH}/nope"), &cfg, &ctx, &only(&[])),
            Err(ProgramError::NotInPath { .. })
        ));
        let e = only(&["/home/u/bin/tool"]);
        assert_eq!(program_path(&profile("${HOME}/bin/tool"), &cfg, &ctx, &e).unwrap(), Path::new("/home/u/bin/tool"));
        assert!(matches!(program_path(&profile("${NOPE}/x"), &cfg, &ctx, &e), Err(ProgramError::Expand { .. })));
    }

    #[test]
    fn argv_default_params_and_reject() {
        let mut p = profile("/usr/bin/x");
        p.default_params = vec!["--safe".into()];
        let args = vec!["file.pdf".to_string()];
        assert_eq!(program_argv(Path::new("/usr/bin/x"), &p, &args), vec!["/usr/bin/x", "--safe", "file.pdf"]);
        p.reject_user_args = true;
        assert_eq!(program_argv(Path::new("/usr/bin/x"), &p, &args), vec!["/usr/bin/x", "--safe"]);
    }
}
