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

const CWD: u64 = libc::AT_FDCWD as i64 as u64;
const ENOSYS_RET: u32 = 0x0005_0000 | libc::ENOSYS as u32;

fn whitelist(text: &str) -> CompiledFilter {
    compile(&policy(text), SeccompMode::Whitelist, true).unwrap()
}

/// Each legacy call of a whitelist allows its replacement as glibc calls it; without the legacy
/// call the replacement stays denied; a rule for the replacement itself is what counts.
#[test]
fn whitelisted_legacy_calls_allow_their_replacements() {
    // Legacy rule, replacement, its arguments as glibc calls it, and arguments it has otherwise.
    let cases: [(&str, i64, [u64; 6], [u64; 6]); 7] = [
        ("getdents: arg0 == 3", libc::SYS_getdents64, [3, 0, 64, 0, 0, 0], [4, 0, 64, 0, 0, 0]),
        ("stat: 1", libc::SYS_newfstatat, [CWD, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]),
        ("lstat: 1", libc::SYS_newfstatat, [CWD, 0, 0, 0x100, 0, 0], [CWD, 0, 0, 0, 0, 0]),
        ("fstat: 1", libc::SYS_newfstatat, [5, 0, 0, 0x1000, 0, 0], [5, 0, 0, 0, 0, 0]),
        ("open: 1", libc::SYS_openat, [CWD, 0, 0, 0, 0, 0], [3, 0, 0, 0, 0, 0]),
        ("getrlimit: 1", libc::SYS_prlimit64, [0, 7, 0, 0x1000, 0, 0], [1, 7, 0, 0x1000, 0, 0]),
        ("setrlimit: 1", libc::SYS_prlimit64, [0, 7, 0x1000, 0, 0, 0], [0, 7, 0x1000, 0x1000, 0, 0]),
    ];
    for (legacy, nr, as_glibc, other) in cases {
        let f = whitelist(&format!("read: 1\n{legacy}\n"));
        assert!(f.allows(nr, &as_glibc), "{legacy}: {as_glibc:?}");
        assert!(!f.allows(nr, &other), "{legacy}: {other:?} is not the legacy call");
        assert!(!whitelist("read: 1\n").allows(nr, &as_glibc), "{legacy}: denied without it");
        let modern = syscalls::name_native(nr as i32).unwrap();
        let f = whitelist(&format!("read: 1\n{legacy}\n{modern}: arg5 == 99\n"));
        assert!(!f.allows(nr, &as_glibc), "{legacy}: the rule for {modern} wins");
        assert!(f.allows(nr, &[0, 0, 0, 0, 0, 99]), "{legacy}: the rule for {modern} wins");
    }
}

#[test]
fn a_whitelist_allowing_futex_wait_allows_glibcs_bitset_waits() {
    let wait = |op: u64| [0, op, 0, 0, 0, u64::from(u32::MAX)];
    let f = whitelist("futex: arg1 == 129 || arg1 == 128\n");
    assert!(f.allows(libc::SYS_futex, &wait(129)));
    assert!(f.allows(libc::SYS_futex, &wait(137)));
    assert!(f.allows(libc::SYS_futex, &wait(393)));
    assert!(!f.allows(libc::SYS_futex, &wait(9)), "not shared, the policy allows only private waits");
    assert!(!f.allows(libc::SYS_futex, &wait(134)), "no FUTEX_TRYLOCK_PI");
    assert!(!whitelist("futex: arg1 == 129\n").allows(libc::SYS_futex, &wait(137)));
    let f = whitelist("futex: arg1 == 128 || arg1 == FUTEX_WAIT_BITSET_PRIVATE\n");
    assert!(f.allows(libc::SYS_futex, &wait(137)));
    assert!(!f.allows(libc::SYS_futex, &wait(393)), "the policy named the bitset wait itself");
}

/// A blacklist's legacy call also denies the call glibc makes in its place, exactly that call:
/// `open` denied means `openat(AT_FDCWD, ...)` denied (what `open()` is today), while `openat` on
/// a directory fd, which the blacklist never named, stays allowed; an explicit rule wins.
#[test]
fn blacklists_deny_what_glibc_makes_of_a_denied_legacy_call() {
    let f = compile(&policy("getdents: 1\nopen: arg1 & 0x40 == 0x40\n"), SeccompMode::Blacklist, true).unwrap();
    assert!(!f.allows(libc::SYS_getdents, &[0; 6]));
    assert!(!f.allows(libc::SYS_getdents64, &[0; 6]));
    let at_fdcwd = libc::AT_FDCWD as u32 as u64;
    assert!(!f.allows(libc::SYS_openat, &[at_fdcwd, 0, 0x40, 0, 0, 0]), "open(O_CREAT) as glibc makes it");
    assert!(f.allows(libc::SYS_openat, &[at_fdcwd, 0, 0, 0, 0, 0]), "open without O_CREAT");
    assert!(f.allows(libc::SYS_openat, &[3, 0, 0x40, 0, 0, 0]), "openat on a directory fd was never named");
    assert!(f.allows(libc::SYS_getpid, &[0; 6]));
    let f = compile(&policy("getdents: 1\ngetdents64: arg0 == 7\n"), SeccompMode::Blacklist, true).unwrap();
    assert!(f.allows(libc::SYS_getdents64, &[3, 0, 0, 0, 0, 0]), "the policy's own getdents64 rule decides");
    assert!(!f.allows(libc::SYS_getdents64, &[7, 0, 0, 0, 0, 0]));
}

/// `statx` and `rseq` fail with ENOSYS (glibc falls back or does without) unless the whitelist
/// names them; EPERM everything else it does not name.
#[test]
fn probed_calls_fail_with_enosys_unless_named() {
    let f = whitelist("read: 1\n");
    for nr in [libc::SYS_statx, libc::SYS_rseq, libc::SYS_clone3] {
        assert_eq!(f.policy_returns(nr, &[0; 6]), Some(ENOSYS_RET), "{nr}");
    }
    assert_eq!(f.policy_returns(libc::SYS_gettid, &[0; 6]), Some(0x0005_0000 | libc::EPERM as u32));
    let f = whitelist("read: 1\nstatx: 1\nrseq: arg1 == 32\n");
    assert!(f.allows(libc::SYS_statx, &[0; 6]));
    assert!(f.allows(libc::SYS_rseq, &[0, 32, 0, 0, 0, 0]));
    assert_eq!(f.policy_returns(libc::SYS_rseq, &[0; 6]), Some(0x0005_0000 | libc::EPERM as u32));
}

/// Compiles on a thread and fails the test, instead of hanging it, when compiling never ends.
fn compile_within(text: &str, mode: SeccompMode) -> Result<CompiledFilter, CompileError> {
    let p = policy(text);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(compile(&p, mode, true)));
    rx.recv_timeout(std::time::Duration::from_secs(20)).unwrap_or_else(|_| panic!("compiling did not finish:\n{text}"))
}

#[test]
fn rule_sets_libseccomp_never_finishes_merging_compile() {
    for text in [
        "ioctl: (arg0 != 5 && arg1 <= 1000) || (arg0 != 5 && arg1 == 2048)\n",
        "ioctl: (arg0 >= 5 && arg1 <= 1000) || (arg0 >= 5 && (arg1 & 0xfff0) == 2048)\n",
        "DEFAULT_NEGATIVE=8\nioctl: (arg0 == 1000 && arg1 != 0 && arg2 == 5) || (arg1 != 4096 && arg2 == 5)\n",
        "DEFAULT_NEGATIVE=8\nioctl: (arg0 == 21505) || (arg1 == 1074029664) || (arg1 == 1074030654)\n",
    ] {
        for mode in [SeccompMode::Whitelist, SeccompMode::Blacklist] {
            compile_within(text, mode).unwrap_or_else(|e| panic!("{e}\n{text}"));
        }
    }
}

/// The seccomp return value the compiled filter must give for `action` (enforcing, reported
/// in the kernel).
fn ret_of(action: Action) -> u32 {
    match action {
        Action::Allow => 0x7fff_0000,
        Action::Log | Action::Trace => 0x7ffc_0000,
        Action::Kill => 0x8000_0000,
        Action::Trap => 0x0003_0000,
        Action::Errno(n) => 0x0005_0000 | u32::from(n),
    }
}

#[test]
fn compiled_conditions_decide_as_the_policy_says() {
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut rnd = move |n: u64| {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed % n
    };
    let values = [0u64, 1, 5, 1000, 4096, 0xffff_ffff, 0x1_0000_0005, u64::MAX - 3];
    let ops = ["==", "!=", "<", "<=", ">", ">=", "&"];
    let ioctl = syscalls::resolve_native("ioctl").unwrap();
    let mut compiled = 0;
    for _ in 0..400 {
        let mut terms = Vec::new();
        for _ in 0..1 + rnd(5) {
            let mut atoms = Vec::new();
            for arg in 0..3 {
                if rnd(3) == 0 {
                    continue;
                }
                let v = values[rnd(values.len() as u64) as usize];
                match ops[rnd(ops.len() as u64) as usize] {
                    "&" => {
                        atoms.push(format!("(arg{arg} & 0x{:x}) == 0x{:x}", 0xffff_0000_fff0u64, v & 0xffff_0000_fff0))
                    }
                    op => atoms.push(format!("arg{arg} {op} {v}")),
                }
            }
            if atoms.is_empty() {
                atoms.push(format!("arg0 == {}", values[rnd(values.len() as u64) as usize]));
            }
            terms.push(format!("({})", atoms.join(" && ")));
        }
        let defaults = ["", "DEFAULT_NEGATIVE=8\n", "DEFAULT_POSITIVE=kill\n"][rnd(3) as usize];
        let text = format!("{defaults}ioctl: {}\nread: 1\n", terms.join(" || "));
        let whitelist = rnd(2) == 0;
        let mode = if whitelist { SeccompMode::Whitelist } else { SeccompMode::Blacklist };
        let filter = match compile_within(&text, mode) {
            Ok(filter) => filter,
            Err(CompileError::Condition {
                source: LowerError::TooLarge(_) | LowerError::MixedMaskAndRange(_), ..
            })
            | Err(CompileError::TooLarge(..)) => continue,
            Err(e) => panic!("{e}\n{text}"),
        };
        compiled += 1;
        let p = policy(&text);
        for _ in 0..64 {
            let mut args = [0u64; 6];
            for a in args.iter_mut().take(3) {
                let v = values[rnd(values.len() as u64) as usize];
                *a = match rnd(5) {
                    0 => v.wrapping_add(1),
                    1 => v.wrapping_sub(1),
                    2 => v ^ (1 << 32),
                    _ => v,
                };
            }
            let want = ret_of(oz_profiles::seccomp::eval::decide(&p, whitelist, "ioctl", &args).action);
            let got = filter.policy_returns(ioctl.into(), &args);
            assert_eq!(got, Some(want), "{text}args {args:x?}");
        }
    }
    assert!(compiled > 300, "only {compiled} of 400 policies compiled");
}
