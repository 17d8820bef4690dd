//! Choosing and compiling the filter a profile's `seccomp` section asks for.

use std::path::{Path, PathBuf};

use super::compile::{compile, compile_reporting, CompileError, CompiledFilter, Reporting};
use oz_profiles::profile::{Seccomp, SeccompMode};
use oz_profiles::seccomp::compat::{modernize, Derived};
use oz_profiles::seccomp::default_policy::training_whitelist;
use oz_profiles::seccomp::error::PolicyError;
use oz_profiles::seccomp::generic::generic_blacklist;
use oz_profiles::seccomp::ir::Policy;
use oz_profiles::seccomp::parser::{load_policy_file, INLINE_PREFIX};

#[derive(Debug, thiserror::Error)]
pub enum ProfileSeccompError {
    #[error("seccomp mode whitelist needs a whitelist policy file")]
    MissingWhitelist,
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(transparent)]
    Compile(#[from] CompileError),
}

/// The filter for a profile's seccomp settings, or `None` when seccomp is disabled.
///
/// - `blacklist`: the profile's `blacklist` file, else `<etc_prefix>/blacklist-generic.seccomp`
///   when present, else oz's built-in default blacklist.
/// - `whitelist`: the profile's `whitelist` file (required).
/// - `train`: the profile's `whitelist` file if any, else the training whitelist (`execve: 1`),
///   compiled with enforce off: every other call is logged, nothing is denied.
///
/// Relative policy and `extradefs` paths are taken relative to `etc_prefix` (the original's
/// `/etc/oz`); `extradefs` entries starting with `{inline}` are definitions, not paths.
pub fn compile_profile(seccomp: &Seccomp, etc_prefix: &Path) -> Result<Option<CompiledFilter>, ProfileSeccompError> {
    let Some((policy, mode)) = profile_policy(seccomp, etc_prefix)? else {
        return Ok(None);
    };
    Ok(Some(compile(&policy, mode, seccomp.enforce)?))
}

/// A profile's filter compiled to report through user notification, with the policy it came
/// from (to tell which rule denied a call).
pub struct ProfileFilter {
    pub filter: CompiledFilter,
    pub policy: Policy,
    /// The effective mode: `train: true` is [`SeccompMode::Train`].
    pub mode: SeccompMode,
    pub enforce: bool,
    /// Every open is notified too, for host-path hints (audit mode, or `debug: true`).
    pub hints: bool,
    /// The rules a whitelist's legacy calls imply for their replacements
    /// ([`oz_profiles::seccomp::compat`]), compiled in and part of `policy`, to log.
    pub compat: Vec<Derived>,
}

/// As [`compile_profile`], with denials reported through user notification
/// ([`Reporting::Notify`]).
pub fn compile_profile_notify(
    seccomp: &Seccomp,
    etc_prefix: &Path,
) -> Result<Option<ProfileFilter>, ProfileSeccompError> {
    let Some((policy, mode)) = profile_policy(seccomp, etc_prefix)? else {
        return Ok(None);
    };
    let enforce = seccomp.enforce && mode != SeccompMode::Train;
    // Host-path hints cost a notification per open: in audit mode, or asked for with `debug`.
    let hints = mode != SeccompMode::Train && (!enforce || seccomp.debug);
    let reporting = if hints { Reporting::NotifyWithHints } else { Reporting::Notify };
    let filter = compile_remembered(&policy, mode, seccomp.enforce, reporting)?;
    // The compiler adds the same rules: the policy the agent evaluates is the one compiled.
    let (policy, compat) = modernize(&policy);
    Ok(Some(ProfileFilter { filter, policy, mode, enforce, hints, compat }))
}

/// The last filter [`compile_remembered`] compiled in this process, with what it was compiled
/// from. Compiling is deterministic, so an equal policy (rules, origins and lines alike) with the
/// same settings gets the same programs.
struct Remembered {
    policy: Policy,
    mode: SeccompMode,
    enforce: bool,
    reporting: Reporting,
    filter: CompiledFilter,
}

static REMEMBERED: std::sync::Mutex<Option<Remembered>> = std::sync::Mutex::new(None);

/// [`compile_reporting`], served from the last compile of this process when the policy and
/// settings are equal. An agent compiles the default policy while it waits for its launch
/// ([`precompile_default`]), so a launch with the default policy does not wait for libseccomp
/// (about 1.3 ms for the first compile of a process, 0.45 ms after).
fn compile_remembered(
    policy: &Policy,
    mode: SeccompMode,
    enforce: bool,
    reporting: Reporting,
) -> Result<CompiledFilter, CompileError> {
    let mut last = REMEMBERED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(r) = last.as_ref() {
        if r.mode == mode && r.enforce == enforce && r.reporting == reporting && r.policy == *policy {
            return Ok(r.filter.clone());
        }
    }
    let filter = compile_reporting(policy, mode, enforce, reporting)?;
    *last = Some(Remembered { policy: policy.clone(), mode, enforce, reporting, filter: filter.clone() });
    Ok(filter)
}

/// Compile the filter of the default seccomp settings (the built-in or `etc_prefix`'s blacklist,
/// enforced) ahead of a launch; errors are left to the launch that meets them.
pub fn precompile_default(etc_prefix: &Path) {
    let _ = compile_profile_notify(&Seccomp::default(), etc_prefix);
}

/// The policy a profile's seccomp settings name and the effective mode (`train: true` trains
/// whatever the mode), or `None` when seccomp is disabled.
pub fn profile_policy(
    seccomp: &Seccomp,
    etc_prefix: &Path,
) -> Result<Option<(Policy, SeccompMode)>, ProfileSeccompError> {
    let mode = if seccomp.train && seccomp.mode != SeccompMode::Disabled { SeccompMode::Train } else { seccomp.mode };
    let policy = match mode {
        SeccompMode::Disabled => return Ok(None),
        SeccompMode::Blacklist => match &seccomp.blacklist {
            Some(file) => load(seccomp, file, etc_prefix)?,
            None => generic_blacklist(etc_prefix)?,
        },
        SeccompMode::Whitelist => match &seccomp.whitelist {
            Some(file) => load(seccomp, file, etc_prefix)?,
            None => return Err(ProfileSeccompError::MissingWhitelist),
        },
        SeccompMode::Train => match &seccomp.whitelist {
            Some(file) => load(seccomp, file, etc_prefix)?,
            None => training_whitelist(),
        },
    };
    Ok(Some((policy, mode)))
}

fn load(seccomp: &Seccomp, file: &str, etc_prefix: &Path) -> Result<Policy, PolicyError> {
    let extradefs: Vec<String> = seccomp
        .extradefs
        .iter()
        .map(|d| if d.starts_with(INLINE_PREFIX) { d.clone() } else { resolve(d, etc_prefix).display().to_string() })
        .collect();
    load_policy_file(resolve(file, etc_prefix), &extradefs)
}

fn resolve(file: &str, etc_prefix: &Path) -> PathBuf {
    let path = Path::new(file);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        etc_prefix.join(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The remembered filter is used only for an equal policy and settings: after compiling
    /// another policy, or the same one with other settings, each gets its own programs.
    #[test]
    fn a_remembered_filter_serves_only_an_equal_policy() {
        use oz_profiles::seccomp::parse_policy;
        let a = parse_policy("ptrace: 1\n", Path::new("/a.seccomp")).unwrap();
        let b = parse_policy("ptrace: 1\nsysinfo: 1\n", Path::new("/a.seccomp")).unwrap();
        let bl = SeccompMode::Blacklist;
        let fresh = |p: &Policy, enforce, r| compile_reporting(p, bl, enforce, r).unwrap().to_bytes();
        let remembered = |p: &Policy, enforce, r| compile_remembered(p, bl, enforce, r).unwrap().to_bytes();
        let a_notify = fresh(&a, true, Reporting::Notify);
        assert_eq!(remembered(&a, true, Reporting::Notify), a_notify);
        assert_eq!(remembered(&a, true, Reporting::Notify), a_notify);
        let b_notify = remembered(&b, true, Reporting::Notify);
        assert_ne!(b_notify, a_notify);
        assert_eq!(b_notify, fresh(&b, true, Reporting::Notify));
        assert_eq!(remembered(&b, false, Reporting::Notify), fresh(&b, false, Reporting::Notify));
        assert_eq!(remembered(&b, false, Reporting::NotifyWithHints), fresh(&b, false, Reporting::NotifyWithHints));
        assert_ne!(remembered(&b, false, Reporting::NotifyWithHints), b_notify);
        assert_eq!(remembered(&a, true, Reporting::Notify), a_notify);
    }

    #[test]
    fn disabled_compiles_to_nothing() {
        let s = Seccomp { mode: SeccompMode::Disabled, ..Seccomp::default() };
        assert!(compile_profile(&s, Path::new("/etc/oz")).unwrap().is_none());
    }

    #[test]
    fn default_profile_gets_the_default_blacklist() {
        let f = compile_profile(&Seccomp::default(), Path::new("/nonexistent")).unwrap().unwrap();
        assert_eq!(f.programs().len(), 2);
    }

    #[test]
    fn whitelist_without_file_is_an_error() {
        let s = Seccomp { mode: SeccompMode::Whitelist, ..Seccomp::default() };
        let e = compile_profile(&s, Path::new("/etc/oz")).unwrap_err();
        assert!(matches!(e, ProfileSeccompError::MissingWhitelist));
    }

    #[test]
    fn relative_paths_and_extradefs_resolve_under_etc_prefix() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.seccomp"), "read: arg0 == MINE\nexecve: 1\n").unwrap();
        std::fs::write(dir.path().join("defs.seccomp"), "MINE=3\n").unwrap();
        let s = Seccomp {
            mode: SeccompMode::Whitelist,
            whitelist: Some("w.seccomp".into()),
            extradefs: vec!["defs.seccomp".into(), "{inline}UNUSED=1".into()],
            ..Seccomp::default()
        };
        assert!(compile_profile(&s, dir.path()).unwrap().is_some());
        let s = Seccomp { whitelist: Some("missing.seccomp".into()), ..s };
        let e = compile_profile(&s, dir.path()).unwrap_err();
        assert!(e.to_string().contains("missing.seccomp: read: "), "{e}");
    }

    /// The agent evaluates the policy the filter was compiled from: derived rules are in both,
    /// and listed to log, for a whitelist and a blacklist alike.
    #[test]
    fn derived_rules_are_in_the_filter_and_the_policy_alike() {
        use oz_profiles::seccomp::eval::decide;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.seccomp"), "read: 1\ngetdents: 1\nexecve: 1\n").unwrap();
        let s = Seccomp { mode: SeccompMode::Whitelist, whitelist: Some("w.seccomp".into()), ..Seccomp::default() };
        let pf = compile_profile_notify(&s, dir.path()).unwrap().unwrap();
        assert_eq!(pf.compat.len(), 1);
        assert_eq!(pf.compat[0].modern, "getdents64");
        assert!(pf.filter.allows(libc::SYS_getdents64, &[0; 6]));
        let verdict = decide(&pf.policy, true, "getdents64", &[0; 6]);
        assert!(!verdict.denies());
        assert_eq!(verdict.rule.map(|r| r.span.line), Some(2), "the legacy rule decides");
        // The same file as a blacklist: the derived rule denies getdents64, in the filter and in
        // the policy the agent evaluates.
        let s = Seccomp { mode: SeccompMode::Blacklist, blacklist: Some("w.seccomp".into()), ..Seccomp::default() };
        let pf = compile_profile_notify(&s, dir.path()).unwrap().unwrap();
        assert_eq!(pf.compat.len(), 1);
        assert!(!pf.filter.allows(libc::SYS_getdents64, &[0; 6]));
        let verdict = decide(&pf.policy, false, "getdents64", &[0; 6]);
        assert!(verdict.denies());
        assert_eq!(verdict.rule.map(|r| r.span.line), Some(2), "the legacy rule decides");
    }

    #[test]
    fn train_without_whitelist_uses_the_training_policy() {
        let s = Seccomp { mode: SeccompMode::Train, ..Seccomp::default() };
        assert!(compile_profile(&s, Path::new("/etc/oz")).unwrap().is_some());
    }
}
