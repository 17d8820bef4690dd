use std::path::Path;

use super::*;
use oz_profiles::seccomp::parse_policy;

fn policy(text: &str) -> Policy {
    parse_policy(text, Path::new("p.seccomp")).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn disabled_mode_is_an_error() {
    assert!(matches!(compile(&policy("read: 1"), SeccompMode::Disabled, true), Err(CompileError::Disabled)));
}

#[test]
fn every_mode_yields_hardening_then_policy() {
    for mode in [SeccompMode::Blacklist, SeccompMode::Whitelist, SeccompMode::Train] {
        let f = compile(&policy("read: arg0 == 1\n"), mode, true).unwrap();
        assert_eq!(f.programs().len(), 2);
        assert_eq!(f.programs()[0].len(), hardening::program().len());
        assert!(!f.programs()[1].is_empty());
    }
    assert_eq!(hardening_only().programs().len(), 1);
}

#[test]
fn duplicate_rules_merge_and_conflicting_ones_are_errors() {
    compile(&policy("read: arg0 == 1\nread: arg0 == 2\n"), SeccompMode::Whitelist, true).unwrap();
    let e = compile(&policy("read: 1\nwrite: 1\nread: return EPERM\n"), SeccompMode::Whitelist, true).unwrap_err();
    assert_eq!(e.to_string(), "p.seccomp:3: rules for read at lines 1 and 3 have different actions");
}

#[test]
fn uncompilable_conditions_name_the_rule() {
    let e = compile(&policy("read: 1\n  write: arg0 == arg1\n"), SeccompMode::Blacklist, true).unwrap_err();
    let msg = e.to_string();
    assert!(msg.starts_with("p.seccomp:2:3: write: cannot compile"), "{msg}");
}

#[test]
fn actions_of_every_kind_compile_in_both_modes() {
    let text = "read[+trace, -kill]: arg0 == 1\nwrite[+log]: arg0 > 2\nopen[-EACCES]: arg1 &? O_CREAT\n\
                close: arg0 == 3; return EBADF\nuname[+trap]: 1\ngetpid[+allow]: 1\n";
    for mode in [SeccompMode::Blacklist, SeccompMode::Whitelist] {
        for enforce in [true, false] {
            compile(&policy(text), mode, enforce).unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        }
    }
}

#[test]
fn file_defaults_override_the_mode() {
    let p = policy("DEFAULT_POLICY = allow\nDEFAULT_POSITIVE = EACCES\nread: 1\n");
    let actions = ModeActions::new(&p, true, true, false);
    assert_eq!(actions.default, ScmpAction::Allow);
    assert_eq!(actions.resolve(RuleAction::default()).0, ScmpAction::Errno(libc::EACCES));
    compile(&p, SeccompMode::Whitelist, true).unwrap();
}

#[test]
fn enforce_off_turns_denials_into_logging() {
    let p = policy("read: 1\n");
    let off = ModeActions::new(&p, true, false, false);
    assert_eq!(off.default, ScmpAction::Log);
    let kill = RuleAction { positive: Some(Action::Kill), negative: Some(Action::Trap) };
    assert_eq!(off.resolve(kill), (ScmpAction::Log, ScmpAction::Log));
    let on = ModeActions::new(&p, false, true, false);
    assert_eq!(on.resolve(kill), (ScmpAction::KillProcess, ScmpAction::Trap));
    assert_eq!(on.resolve(RuleAction::default()), (ScmpAction::Errno(libc::EPERM), ScmpAction::Allow));
}

#[test]
fn long_alternative_chains_and_many_duplicates_compile() {
    let chain: Vec<String> = (0..900).map(|i| format!("arg0 == {i}")).collect();
    let text = format!("read: {}\n", chain.join(" || "));
    compile(&policy(&text), SeccompMode::Whitelist, true).unwrap();
    // The deepest tree the parser accepts lowers without exhausting a test thread's stack.
    let mut text = String::from("N0 = arg0 == 1 || arg1 == 2\n");
    let mut depth = 1;
    while parse_policy(&format!("{text}N{depth} = !N{}\n", depth - 1), Path::new("p")).is_ok() {
        text.push_str(&format!("N{depth} = !N{}\n", depth - 1));
        depth += 1;
    }
    text.push_str(&format!("read: N{}\n", depth - 1));
    assert!(depth > 150, "{depth}");
    compile(&policy(&text), SeccompMode::Blacklist, true).unwrap();
    let many = "write: 1\n".repeat(20_000);
    compile(&policy(&many), SeccompMode::Blacklist, true).unwrap();
    let many: String = (0..900).map(|i| format!("close: arg0 == {i}\n")).collect();
    compile(&policy(&many), SeccompMode::Whitelist, true).unwrap();
}

#[test]
fn syscalls_newer_than_libseccomp_compile_by_number() {
    let p = policy("mseal: 1\nlistmount: 1\nlsm_list_modules: 1\nfutex_waitv: 1\nclone3: 1\n");
    compile(&p, SeccompMode::Blacklist, true).unwrap();
    compile(&p, SeccompMode::Whitelist, true).unwrap();
}

#[test]
fn bytes_round_trip_and_cut_bytes_are_errors() {
    let f = compile(&policy("read: arg0 == 1\n"), SeccompMode::Blacklist, true).unwrap();
    let bytes = f.to_bytes();
    let back = CompiledFilter::from_bytes(&bytes).unwrap();
    assert_eq!(back.programs().len(), f.programs().len());
    for (a, b) in back.programs().iter().zip(f.programs()) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert_eq!((x.code, x.jt, x.jf, x.k), (y.code, y.jt, y.jf, y.k));
        }
    }
    assert!(CompiledFilter::from_bytes(&[]).is_err());
    assert!(CompiledFilter::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(CompiledFilter::from_bytes(&bytes[..2]).is_err());
    assert!(CompiledFilter::from_bytes(&0u32.to_le_bytes()).is_err());
}

#[test]
fn notify_reporting_turns_denials_into_notifications() {
    let p = policy("read: 1\n");
    let audit = ModeActions::new(&p, true, false, true);
    assert_eq!(audit.default, ScmpAction::Notify);
    let kill = RuleAction { positive: Some(Action::Kill), negative: Some(Action::Errno(13)) };
    assert_eq!(audit.resolve(kill), (ScmpAction::Notify, ScmpAction::Notify));
    let enforcing = ModeActions::new(&p, false, true, true);
    assert_eq!(enforcing.resolve(kill), (ScmpAction::KillProcess, ScmpAction::Notify));
    for (mode, enforce) in
        [(SeccompMode::Whitelist, true), (SeccompMode::Blacklist, false), (SeccompMode::Train, false)]
    {
        let f = compile_reporting(&p, mode, enforce, Reporting::Notify).unwrap();
        assert!(f.has_listener());
        let back = CompiledFilter::from_bytes(&f.to_bytes()).unwrap();
        assert!(back.has_listener(), "{mode:?}");
    }
    assert!(!compile(&p, SeccompMode::Whitelist, true).unwrap().has_listener());
}
