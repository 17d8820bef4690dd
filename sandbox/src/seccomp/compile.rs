//! Compiling a policy to BPF with libseccomp, before fork, and installing it after fork.
//!
//! Semantics (oz's, documented where they differ from the original):
//! - **blacklist**: a listed call whose condition holds fails with EPERM (or the rule's action),
//!   everything else is allowed.
//! - **whitelist**: a listed call whose condition holds is allowed; everything else fails with
//!   EPERM. The original killed the process; EPERM lets applications degrade instead of crash.
//! - **train**: whitelist with `enforce` off.
//! - In every mode, a rule naming a legacy call also covers the newer call glibc makes in its
//!   place (allowed in a whitelist, denied in a blacklist), with the same meaning and the legacy
//!   rule's conditions moved to
//!   the newer call's arguments, unless the policy names the newer call itself
//!   ([`oz_profiles::seccomp::compat`]): `getdents` -> `getdents64`; `stat`, `lstat`, `fstat` ->
//!   `newfstatat` with `AT_FDCWD` and the flags each implies; `open` -> `openat(AT_FDCWD, ...)`;
//!   `getrlimit`, `setrlimit` -> `prlimit64(0, ...)` on the calling process; `futex` allowing
//!   `FUTEX_WAIT | f` -> `FUTEX_WAIT_BITSET | f`, with or without `FUTEX_CLOCK_REALTIME`. These
//!   are the same calls, so a whitelist is not widened and a blacklist not bypassed; each derived
//!   rule is listed in
//!   [`super::ProfileFilter::compat`] for the agent to log. Newer calls with no legacy meaning
//!   (`gettid`, `sched_getattr`) stay denied.
//! - In whitelist mode, [`LIBC_FALLBACKS`] the policy does not name fail with ENOSYS, so libc
//!   falls back to the older call (flatpak does the same for clone3): calls glibc or GLib only
//!   probe and do without, or replace with the older call when the kernel lacks them.
//! - `enforce: false`: every deny (errno, kill, trap) becomes SECCOMP_RET_LOG: logged, allowed;
//!   with [`Reporting::Notify`] a user notification instead, answered by the agent (the call
//!   runs, and is reported with its arguments and the rule that would deny it).
//! - With [`Reporting::Notify`], `return ENOSYS` rules stay ENOSYS whatever `enforce` says:
//!   they ask libc to fall back, they do not deny.
//! - gosecco's `trace` compiles to log (oz runs no tracer).
//! - Always, whatever `enforce` says, a second filter ([`super::hardening`]) kills foreign
//!   architectures and x32 syscalls and fails TIOCSTI/TIOCLINUX ioctls with EPERM.

use std::io::{Read, Seek};
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use libseccomp::{ScmpAction, ScmpFilterContext, ScmpSyscall};
use nix::errno::Errno;

use super::hardening;
use super::syscalls;
use oz_profiles::profile::SeccompMode;
use oz_profiles::seccomp::compat;
use oz_profiles::seccomp::dnf::{self, LowerError};
use oz_profiles::seccomp::ir::{Action, Expr, Policy, Rule, RuleAction, Span};

#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("seccomp mode disabled has no filter to compile")]
    Disabled,
    #[error("{}:{}:{}: {syscall}: {source}", origin.display(), span.line, span.col)]
    Condition { origin: PathBuf, span: Span, syscall: String, source: LowerError },
    #[error("{}:{}:{}: unknown syscall {syscall:?} on this architecture", origin.display(), span.line, span.col)]
    UnknownSyscall { origin: PathBuf, span: Span, syscall: String },
    #[error("{}:{}: rules for {syscall} at lines {first} and {second} have different actions", origin.display(), second)]
    ConflictingRules { origin: PathBuf, syscall: String, first: u32, second: u32 },
    #[error("libseccomp: {what}: {source}")]
    Seccomp { what: String, source: libseccomp::error::SeccompError },
    #[error("export seccomp bpf: {0}")]
    Export(std::io::Error),
    #[error("filter has {0} instructions, more than the kernel's {1}")]
    TooLarge(usize, usize),
    #[error("{0} syscalls with conditions, more than one filter can hold")]
    TooManyConditions(usize),
    #[error("seccomp filter bytes at offset {0}: {1}")]
    Bytes(usize, &'static str),
}

/// BPF programs ready to install: no allocation or libseccomp call is needed any more.
#[derive(Clone)]
pub struct CompiledFilter {
    /// Installed in order: the hardening filter first, so that a whitelist which does not allow
    /// `seccomp` itself cannot block installing the rest.
    programs: Vec<Vec<libc::sock_filter>>,
    /// The last program reports through user notification ([`Reporting::Notify`]): it is
    /// installed with SECCOMP_FILTER_FLAG_NEW_LISTENER.
    listener: bool,
}

/// How a compiled policy reports the calls it denies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reporting {
    /// In the kernel alone: `enforce: false` turns denials into SECCOMP_RET_LOG.
    Log,
    /// To a supervisor through SECCOMP_RET_USER_NOTIF: every errno denial (and, with `enforce`
    /// off, every kill and trap too) becomes a notification; the supervisor answers with the
    /// errno, or lets the call run in audit mode. Kill and trap stay as they are when enforcing.
    /// In training mode every call is a notification.
    Notify,
    /// As `Notify`, and every open ([`HINTED`]) is a notification too, so that the supervisor
    /// can tell which paths the program missed (it lets them run as the policy says).
    NotifyWithHints,
}

/// The calls [`Reporting::NotifyWithHints`] always notifies.
pub const HINTED: &[&str] = &["open", "openat", "openat2"];

impl std::fmt::Debug for CompiledFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let lens: Vec<usize> = self.programs.iter().map(Vec::len).collect();
        f.debug_struct("CompiledFilter").field("program_lengths", &lens).field("listener", &self.listener).finish()
    }
}

impl CompiledFilter {
    /// The raw programs, in installation order.
    pub fn programs(&self) -> &[Vec<libc::sock_filter>] {
        &self.programs
    }

    /// True when installing returns a user-notification listener.
    pub fn has_listener(&self) -> bool {
        self.listener
    }

    /// The programs as bytes, to hand the filter to another process ([`CompiledFilter::from_bytes`]):
    /// a little-endian u32 of flags (1: the last program gets a listener), then per program a
    /// little-endian u32 instruction count, then each instruction as code (u16), jt, jf (u8)
    /// and k (u32), little-endian.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&u32::from(self.listener).to_le_bytes());
        for prog in &self.programs {
            out.extend_from_slice(&(prog.len() as u32).to_le_bytes());
            for ins in prog {
                out.extend_from_slice(&ins.code.to_le_bytes());
                out.extend_from_slice(&[ins.jt, ins.jf]);
                out.extend_from_slice(&ins.k.to_le_bytes());
            }
        }
        out
    }

    /// The filter [`CompiledFilter::to_bytes`] wrote; a cut or oversized program is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<CompiledFilter, CompileError> {
        let mut programs = Vec::new();
        let flags = bytes.get(..4).ok_or(CompileError::Bytes(0, "cut flags"))?;
        let flags = u32::from_le_bytes(flags.try_into().expect("4 bytes"));
        if flags > 1 {
            return Err(CompileError::Bytes(0, "unknown flags"));
        }
        let mut at = 4;
        while at < bytes.len() {
            let count = bytes.get(at..at + 4).ok_or(CompileError::Bytes(at, "cut program length"))?;
            let count = u32::from_le_bytes(count.try_into().expect("4 bytes")) as usize;
            if count == 0 || count > libc::BPF_MAXINSNS as usize {
                return Err(CompileError::Bytes(at, "program length out of range"));
            }
            at += 4;
            let body = bytes.get(at..at + count * 8).ok_or(CompileError::Bytes(at, "cut program"))?;
            let prog = body
                .chunks_exact(8)
                .map(|i| libc::sock_filter {
                    code: u16::from_le_bytes([i[0], i[1]]),
                    jt: i[2],
                    jf: i[3],
                    k: u32::from_le_bytes([i[4], i[5], i[6], i[7]]),
                })
                .collect();
            programs.push(prog);
            at += count * 8;
        }
        if programs.is_empty() {
            return Err(CompileError::Bytes(0, "no program"));
        }
        Ok(CompiledFilter { programs, listener: flags == 1 })
    }

    /// Sets no_new_privs and loads every program into the calling thread.
    ///
    /// Async-signal-safe: only `prctl` and `seccomp` syscalls, no allocation, so it may run in a
    /// child forked from a multi-threaded process.
    pub fn install(&self) -> Result<(), Errno> {
        self.install_with_listener().map(|_| ())
    }

    /// As [`CompiledFilter::install`]; returns the user-notification listener (close-on-exec)
    /// when the filter has one. Async-signal-safe.
    pub fn install_with_listener(&self) -> Result<Option<RawFd>, Errno> {
        // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes only integer arguments.
        let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
        if rc != 0 {
            return Err(Errno::last());
        }
        let mut listener = None;
        for (i, prog) in self.programs.iter().enumerate() {
            let fprog = libc::sock_fprog { len: prog.len() as u16, filter: prog.as_ptr() as *mut libc::sock_filter };
            let last = i + 1 == self.programs.len();
            let flags = if last && self.listener { libc::SECCOMP_FILTER_FLAG_NEW_LISTENER } else { 0 };
            // SAFETY: `fprog` points at `prog`, alive and unchanged for the whole call; the
            // kernel copies the program and does not write through the pointer.
            let rc = unsafe {
                libc::syscall(
                    libc::SYS_seccomp,
                    libc::SECCOMP_SET_MODE_FILTER,
                    flags,
                    &fprog as *const libc::sock_fprog,
                )
            };
            if rc < 0 {
                return Err(Errno::last());
            }
            if flags != 0 {
                listener = Some(rc as RawFd);
            }
        }
        Ok(listener)
    }
}

/// Only the hardening filter (foreign arch, x32, TIOCSTI/TIOCLINUX), e.g. for seccomp disabled.
pub fn hardening_only() -> CompiledFilter {
    CompiledFilter { programs: vec![hardening::program()], listener: false }
}

/// Compiles `policy` for the native architecture. `Train` is whitelist with `enforce` off.
pub fn compile(policy: &Policy, mode: SeccompMode, enforce: bool) -> Result<CompiledFilter, CompileError> {
    compile_reporting(policy, mode, enforce, Reporting::Log)
}

/// As [`compile`], with denials reported as `reporting` says. With [`Reporting::Notify`],
/// training ignores the policy: every call becomes a notification.
pub fn compile_reporting(
    policy: &Policy,
    mode: SeccompMode,
    enforce: bool,
    reporting: Reporting,
) -> Result<CompiledFilter, CompileError> {
    let notify = reporting != Reporting::Log;
    let hints = reporting == Reporting::NotifyWithHints;
    let (whitelist, enforce) = match mode {
        SeccompMode::Disabled => return Err(CompileError::Disabled),
        SeccompMode::Blacklist => (false, enforce),
        SeccompMode::Whitelist => (true, enforce),
        SeccompMode::Train if notify => return notify_everything(),
        SeccompMode::Train => (true, false),
    };
    let modern = compat::modernize(policy).0;
    let policy = &modern;
    let actions = ModeActions::new(policy, whitelist, enforce, notify);
    let mut ctx = ScmpFilterContext::new(actions.default).map_err(|source| seccomp_err("create filter", source))?;
    ctx.set_act_badarch(ScmpAction::KillProcess).map_err(|source| seccomp_err("set bad-arch action", source))?;
    ctx.set_ctl_nnp(false).map_err(|source| seccomp_err("disable nnp", source))?;
    // A binary tree of syscalls keeps long whitelists fast; older libseccomp lacks it.
    let _ = ctx.set_ctl_optimize(2);
    let mut blocks = Vec::new();
    for (rules, merged) in group_rules(policy)? {
        let hinted = hints && HINTED.contains(&rules[0].syscall.as_str());
        add_rules(&mut ctx, policy, rules[0], &merged, &actions, hinted, &mut blocks)?;
    }
    if hints {
        add_hint_rules(&mut ctx, policy, &actions)?;
    }
    if whitelist {
        add_libc_fallbacks(&mut ctx, policy, &actions)?;
    }
    let program = within_kernel_limit(args::splice(export(&ctx)?, &blocks, actions.default)?)?;
    Ok(CompiledFilter { programs: vec![hardening::program(), program], listener: notify })
}

/// Training: every call goes to the supervisor, which lets it run and counts it.
fn notify_everything() -> Result<CompiledFilter, CompileError> {
    let mut ctx = ScmpFilterContext::new(ScmpAction::Notify).map_err(|source| seccomp_err("create filter", source))?;
    ctx.set_act_badarch(ScmpAction::KillProcess).map_err(|source| seccomp_err("set bad-arch action", source))?;
    ctx.set_ctl_nnp(false).map_err(|source| seccomp_err("disable nnp", source))?;
    let program = within_kernel_limit(export(&ctx)?)?;
    Ok(CompiledFilter { programs: vec![hardening::program(), program], listener: true })
}

/// `program`, unless it is longer than the kernel loads.
fn within_kernel_limit(program: Vec<libc::sock_filter>) -> Result<Vec<libc::sock_filter>, CompileError> {
    let max = libc::BPF_MAXINSNS as usize;
    if program.len() > max {
        return Err(CompileError::TooLarge(program.len(), max));
    }
    Ok(program)
}

/// Newer syscalls that libc retries with an older one when they fail with ENOSYS (and only
/// then): glibc 2.34+ creates threads with clone3, and whitelists written before that name only
/// clone. Unless a whitelist names them, they fail with ENOSYS instead of EPERM.
/// - `statx`: glibc 2.28+'s `statx()` emulates it with `fstatat` on ENOSYS (glibc does not
///   assume statx on x86_64); GLib gets file information through it.
/// - `rseq`: glibc 2.35+ registers each thread for restartable sequences and runs without them
///   when the kernel refuses.
pub const LIBC_FALLBACKS: &[&str] = &["clone3", "faccessat2", "close_range", "statx", "rseq"];

fn add_libc_fallbacks(ctx: &mut ScmpFilterContext, policy: &Policy, actions: &ModeActions) -> Result<(), CompileError> {
    // Never a notification: libc's fallback is not a denial worth reporting.
    let enosys = scmp_action(Action::Errno(libc::ENOSYS as u16), actions.enforce, false);
    if enosys == actions.default {
        return Ok(()); // log-only: libseccomp refuses rules that repeat the default
    }
    for name in LIBC_FALLBACKS {
        if policy.rules.iter().any(|r| r.syscall == *name) {
            continue;
        }
        let Some(nr) = syscalls::resolve_native(name).filter(|nr| *nr >= 0) else {
            continue;
        };
        ctx.add_rule(enosys, ScmpSyscall::from_raw_syscall(nr))
            .map_err(|source| seccomp_err(&format!("add {name} fallback rule"), source))?;
    }
    Ok(())
}

/// The libseccomp actions a mode (and the file's DEFAULT_* assignments) implies.
struct ModeActions {
    default: ScmpAction,
    positive: Action,
    negative: Action,
    enforce: bool,
    notify: bool,
}

const DENY: Action = Action::Errno(libc::EPERM as u16);

impl ModeActions {
    fn new(policy: &Policy, whitelist: bool, enforce: bool, notify: bool) -> Self {
        let (default, positive, negative) =
            if whitelist { (DENY, Action::Allow, DENY) } else { (Action::Allow, DENY, Action::Allow) };
        let d = policy.defaults;
        ModeActions {
            default: scmp_action(d.policy.unwrap_or(default), enforce, notify),
            positive: d.positive.unwrap_or(positive),
            negative: d.negative.unwrap_or(negative),
            enforce,
            notify,
        }
    }

    fn resolve(&self, rule: RuleAction) -> (ScmpAction, ScmpAction) {
        let pos = rule.positive.unwrap_or(self.positive);
        let neg = rule.negative.unwrap_or(self.negative);
        (scmp_action(pos, self.enforce, self.notify), scmp_action(neg, self.enforce, self.notify))
    }
}

fn scmp_action(a: Action, enforce: bool, notify: bool) -> ScmpAction {
    match a {
        Action::Allow => ScmpAction::Allow,
        Action::Log | Action::Trace => ScmpAction::Log,
        // `return ENOSYS` asks libc to fall back to an older call (clone3 -> clone): not a
        // denial worth a notification, and harmless in audit mode too.
        Action::Errno(n) if notify && i32::from(n) == libc::ENOSYS => ScmpAction::Errno(libc::ENOSYS),
        _ if !enforce && notify => ScmpAction::Notify,
        _ if !enforce => ScmpAction::Log,
        Action::Errno(_) if notify => ScmpAction::Notify,
        Action::Kill => ScmpAction::KillProcess,
        Action::Trap => ScmpAction::Trap,
        Action::Errno(n) => ScmpAction::Errno(i32::from(n)),
    }
}

/// Rules grouped by syscall (first-appearance order), conditions of a group or-ed together
/// as a balanced tree (many duplicate lines must not make a deep one).
/// Rules for one syscall must agree on their actions.
fn group_rules(policy: &Policy) -> Result<Vec<(Vec<&Rule>, Expr)>, CompileError> {
    let mut groups: Vec<Vec<&Rule>> = Vec::new();
    for rule in &policy.rules {
        match groups.iter_mut().find(|rs| rs[0].syscall == rule.syscall) {
            Some(rules) => {
                if rules[0].action != rule.action {
                    return Err(CompileError::ConflictingRules {
                        origin: policy.origin.clone(),
                        syscall: rule.syscall.clone(),
                        first: rules[0].span.line,
                        second: rule.span.line,
                    });
                }
                rules.push(rule);
            }
            None => groups.push(vec![rule]),
        }
    }
    Ok(groups
        .into_iter()
        .map(|rules| {
            let conds: Vec<&Expr> = rules.iter().map(|r| &r.condition).collect();
            let merged = balanced_or(&conds);
            (rules, merged)
        })
        .collect())
}

fn balanced_or(conds: &[&Expr]) -> Expr {
    match conds {
        [] => Expr::Bool(false),
        [one] => (*one).clone(),
        _ if conds.iter().any(|c| c.is_const_true()) => Expr::Bool(true),
        _ => {
            let (a, b) = conds.split_at(conds.len() / 2);
            Expr::Or(Box::new(balanced_or(a)), Box::new(balanced_or(b)))
        }
    }
}

/// Notifications for the [`HINTED`] calls no rule names (when the default lets them run).
fn add_hint_rules(ctx: &mut ScmpFilterContext, policy: &Policy, actions: &ModeActions) -> Result<(), CompileError> {
    if actions.default != ScmpAction::Allow {
        return Ok(()); // denied by default: already a notification
    }
    for name in HINTED {
        if policy.rules.iter().any(|r| r.syscall == *name) {
            continue;
        }
        let Some(nr) = syscalls::resolve_native(name).filter(|nr| *nr >= 0) else {
            continue;
        };
        ctx.add_rule(ScmpAction::Notify, ScmpSyscall::from_raw_syscall(nr))
            .map_err(|source| seccomp_err(&format!("add {name} hint rule"), source))?;
    }
    Ok(())
}

/// Adds the rules for one syscall: the positive action where the condition holds and the
/// negative one where it does not, each only when it differs from the default. With `hinted`,
/// allowing becomes a notification (answered by letting the call run). A condition that is not
/// constant becomes a block of `blocks` ([`args`]), behind a placeholder rule.
fn add_rules(
    ctx: &mut ScmpFilterContext,
    policy: &Policy,
    rule: &Rule,
    condition: &Expr,
    actions: &ModeActions,
    hinted: bool,
    blocks: &mut Vec<args::Block>,
) -> Result<(), CompileError> {
    let Some(nr) = syscalls::resolve_native(&rule.syscall) else {
        return Err(CompileError::UnknownSyscall {
            origin: rule.file(policy).to_path_buf(),
            span: rule.span,
            syscall: rule.syscall.clone(),
        });
    };
    if nr < 0 {
        return Ok(()); // exists on another architecture only
    }
    let (pos, neg) = actions.resolve(rule.action);
    let hint = |a: ScmpAction| if hinted && a == ScmpAction::Allow { ScmpAction::Notify } else { a };
    let mut block: args::Block = Vec::new();
    for (action, positive) in [(hint(pos), true), (hint(neg), false)] {
        if action == actions.default {
            continue;
        }
        let dnf = dnf::lower(condition, positive).map_err(|source| CompileError::Condition {
            origin: rule.file(policy).to_path_buf(),
            span: rule.span,
            syscall: rule.syscall.clone(),
            source,
        })?;
        block.extend(dnf.into_iter().map(|conj| (action, conj)));
    }
    let sys = ScmpSyscall::from_raw_syscall(nr);
    let what = || format!("add rule for {} ({}:{})", rule.syscall, rule.file(policy).display(), rule.span.line);
    // A term without comparisons always matches: the terms before it cannot (the positive
    // and negative conditions exclude each other), so its action is the syscall's.
    let action = match block.iter().find(|(_, atoms)| atoms.is_empty()) {
        Some((always, _)) => *always,
        None if block.is_empty() => return Ok(()),
        None => {
            blocks.push(block);
            args::placeholder(blocks.len() - 1)?
        }
    };
    ctx.add_rule(action, sys).map_err(|source| seccomp_err(&what(), source))?;
    Ok(())
}

fn seccomp_err(what: &str, source: libseccomp::error::SeccompError) -> CompileError {
    CompileError::Seccomp { what: what.to_string(), source }
}

/// The filter as BPF instructions, through a memfd (libseccomp 2.5 cannot export to memory).
fn export(ctx: &ScmpFilterContext) -> Result<Vec<libc::sock_filter>, CompileError> {
    // SAFETY: memfd_create with a valid NUL-terminated name; the result is checked below.
    let raw = unsafe { libc::memfd_create(c"oz-seccomp-bpf".as_ptr(), libc::MFD_CLOEXEC) };
    if raw < 0 {
        return Err(CompileError::Export(std::io::Error::last_os_error()));
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    ctx.export_bpf(&fd).map_err(|source| seccomp_err("export bpf", source))?;
    let mut file = std::fs::File::from(fd);
    let mut bytes = Vec::new();
    file.rewind().map_err(CompileError::Export)?;
    file.read_to_end(&mut bytes).map_err(CompileError::Export)?;
    let insns: Vec<libc::sock_filter> = bytes
        .chunks_exact(8)
        .map(|c| libc::sock_filter {
            code: u16::from_ne_bytes([c[0], c[1]]),
            jt: c[2],
            jf: c[3],
            k: u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect();
    Ok(insns)
}

mod args;
#[cfg(test)]
mod tests;
