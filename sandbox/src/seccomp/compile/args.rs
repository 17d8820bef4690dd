//! Argument conditions as BPF of our own, spliced into libseccomp's program.
//!
//! libseccomp (2.5.4 at least) merges the rules of one syscall into a tree that, for some sets
//! of multi-argument rules, it never finishes building: `(a0 != 5 && a1 <= 9) ||
//! (a0 != 5 && a1 == 20)` loops forever inside `seccomp_rule_add`. So libseccomp only ever
//! sees unconditional rules. A syscall with a condition gets a placeholder action,
//! `SECCOMP_RET_TRACE` with the index of its condition (the policy language has no trace
//! action of its own: `trace` compiles to logging). After export, each placeholder return
//! becomes a jump to that condition's block, appended after libseccomp's program:
//!
//! ```text
//! term 1:  test each comparison, on failure jump to term 2; return term 1's action
//! term 2:  ...
//!          return the default action
//! ```
//!
//! One program, one listener: the blocks may return a notification like any other rule.
//! A 64-bit comparison is two 32-bit ones, high word first, as the kernel's BPF has no
//! 64-bit loads.

use super::CompileError;
use libseccomp::ScmpAction;
use oz_profiles::seccomp::dnf::{Atom, Test};
use oz_profiles::seccomp::ir::CmpOp;

/// The rules of one syscall with a condition: each term's action where all its comparisons
/// hold, the first matching term deciding.
pub(super) type Block = Vec<(ScmpAction, Vec<Atom>)>;

const LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
const AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
const JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
const JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
const JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
const JA: u16 = (libc::BPF_JMP | libc::BPF_JA) as u16;
const RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

/// The placeholder action for the condition at `index`.
pub(super) fn placeholder(index: usize) -> Result<ScmpAction, CompileError> {
    u16::try_from(index).map(ScmpAction::Trace).map_err(|_| CompileError::TooManyConditions(index + 1))
}

/// The seccomp return value of `action`.
fn ret_value(action: ScmpAction) -> u32 {
    match action {
        ScmpAction::KillProcess => libc::SECCOMP_RET_KILL_PROCESS,
        ScmpAction::KillThread => libc::SECCOMP_RET_KILL_THREAD,
        ScmpAction::Trap => libc::SECCOMP_RET_TRAP,
        ScmpAction::Errno(e) => libc::SECCOMP_RET_ERRNO | (e as u32 & libc::SECCOMP_RET_DATA),
        ScmpAction::Notify => libc::SECCOMP_RET_USER_NOTIF,
        ScmpAction::Trace(x) => libc::SECCOMP_RET_TRACE | u32::from(x),
        ScmpAction::Log => libc::SECCOMP_RET_LOG,
        // Allow, and any action a later libseccomp crate adds: the compiler never makes those.
        _ => libc::SECCOMP_RET_ALLOW,
    }
}

/// Where a conditional jump goes.
#[derive(Clone, Copy)]
enum To {
    /// The next instruction.
    Next,
    /// Past this comparison: it holds.
    Holds,
    /// The next term: this one does not match.
    Fails,
}

struct Insn {
    code: u16,
    k: u32,
    jt: To,
    jf: To,
}

fn op(code: u16, k: u32) -> Insn {
    Insn { code, k, jt: To::Next, jf: To::Next }
}

fn jump(code: u16, k: u32, jt: To, jf: To) -> Insn {
    Insn { code, k, jt, jf }
}

/// The instructions testing one comparison; each ends by falling through or jumping to
/// `Holds` when it holds, to `Fails` when it does not.
fn comparison(atom: &Atom) -> Vec<Insn> {
    let lo = 16 + 8 * u32::from(atom.arg);
    let hi = lo + 4;
    let split = |v: u64| ((v >> 32) as u32, v as u32);
    use To::{Fails, Holds, Next};
    match atom.test {
        Test::Masked { mask, value } => {
            let ((mh, ml), (vh, vl)) = (split(mask), split(value));
            vec![
                op(LD_W_ABS, hi),
                op(AND_K, mh),
                jump(JEQ_K, vh, Next, Fails),
                op(LD_W_ABS, lo),
                op(AND_K, ml),
                jump(JEQ_K, vl, Holds, Fails),
            ]
        }
        Test::Cmp(cmp, v) => {
            let (h, l) = split(v);
            // The high words decide unless they are equal; then the low words do.
            let (above, below) = match cmp {
                CmpOp::Eq | CmpOp::Ne => (None, None),
                CmpOp::Gt | CmpOp::Ge => (Some(Holds), Some(Fails)),
                CmpOp::Lt | CmpOp::Le => (Some(Fails), Some(Holds)),
            };
            let low = match cmp {
                CmpOp::Eq => jump(JEQ_K, l, Holds, Fails),
                CmpOp::Ne => jump(JEQ_K, l, Fails, Holds),
                CmpOp::Gt => jump(JGT_K, l, Holds, Fails),
                CmpOp::Ge => jump(JGE_K, l, Holds, Fails),
                CmpOp::Lt => jump(JGE_K, l, Fails, Holds),
                CmpOp::Le => jump(JGT_K, l, Fails, Holds),
            };
            let mut code = vec![op(LD_W_ABS, hi)];
            match (above, below) {
                (Some(above), Some(below)) => {
                    code.push(jump(JGT_K, h, above, Next));
                    code.push(jump(JEQ_K, h, Next, below));
                }
                _ => {
                    let differ = if cmp == CmpOp::Ne { Holds } else { Fails };
                    code.push(jump(JEQ_K, h, Next, differ));
                }
            }
            code.push(op(LD_W_ABS, lo));
            code.push(low);
            code
        }
    }
}

/// One term: its comparisons, then the return of its action. A failed comparison jumps to
/// the instruction after the term.
fn term(action: ScmpAction, atoms: &[Atom]) -> Result<Vec<libc::sock_filter>, CompileError> {
    let parts: Vec<Vec<Insn>> = atoms.iter().map(comparison).collect();
    let len = parts.iter().map(Vec::len).sum::<usize>() + 1;
    let mut out = Vec::with_capacity(len);
    for part in parts {
        let end = out.len() + part.len();
        for insn in part {
            let at = out.len();
            let offset = |to: To| -> Result<u8, CompileError> {
                let target = match to {
                    To::Next => at + 1,
                    To::Holds => end,
                    To::Fails => len,
                };
                u8::try_from(target - at - 1).map_err(|_| CompileError::TooLarge(len, usize::from(u8::MAX)))
            };
            out.push(libc::sock_filter { code: insn.code, jt: offset(insn.jt)?, jf: offset(insn.jf)?, k: insn.k });
        }
    }
    out.push(libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: ret_value(action) });
    Ok(out)
}

/// Most terms [`equalities`] tests at once (its jumps must stay within 255 instructions).
const MAX_RUN: usize = 200;

/// The single `argN == value` term of `term`, if that is all it is.
fn single_equality((_, atoms): &(ScmpAction, Vec<Atom>)) -> Option<(u8, u64)> {
    match atoms.as_slice() {
        [Atom { arg, test: Test::Cmp(CmpOp::Eq, v) }] => Some((*arg, *v)),
        _ => None,
    }
}

/// How many terms at the start of `terms` [`equalities`] can test together: single equalities
/// on one argument, with one action and one high word.
fn equality_run(terms: &[(ScmpAction, Vec<Atom>)]) -> usize {
    let Some((arg, v)) = terms.first().and_then(single_equality) else { return 0 };
    let action = terms[0].0;
    terms
        .iter()
        .take(MAX_RUN)
        .take_while(|t| t.0 == action && single_equality(t).is_some_and(|(a, w)| a == arg && w >> 32 == v >> 32))
        .count()
}

/// A run of `argN == value` terms (see [`equality_run`]): the high word once, then one
/// instruction per low word, so that long lists of values stay short.
fn equalities(run: &[(ScmpAction, Vec<Atom>)]) -> Vec<libc::sock_filter> {
    let insn = |code: u16, jt: usize, jf: usize, k: u32| libc::sock_filter { code, jt: jt as u8, jf: jf as u8, k };
    let (arg, first) = single_equality(&run[0]).unwrap_or_default();
    let lo = 16 + 8 * u32::from(arg);
    let n = run.len();
    // 0: load high, 1: compare it, 2: load low, 3..3+n: compare each, 3+n: skip the return,
    // 4+n: return the action; n + 5 is the next term.
    let mut out =
        vec![insn(LD_W_ABS, 0, 0, lo + 4), insn(JEQ_K, 0, n + 3, (first >> 32) as u32), insn(LD_W_ABS, 0, 0, lo)];
    for (i, t) in run.iter().enumerate() {
        let (_, v) = single_equality(t).unwrap_or_default();
        out.push(insn(JEQ_K, n - i, 0, v as u32));
    }
    out.push(insn(JA, 0, 0, 1));
    out.push(insn(RET_K, 0, 0, ret_value(run[0].0)));
    out
}

/// Appends a block per condition to `program` and turns each placeholder return into a jump
/// to its block. `default` is what a call matching no term of its block gets.
pub(super) fn splice(
    mut program: Vec<libc::sock_filter>,
    blocks: &[Block],
    default: ScmpAction,
) -> Result<Vec<libc::sock_filter>, CompileError> {
    if blocks.is_empty() {
        return Ok(program);
    }
    let mut starts = Vec::with_capacity(blocks.len());
    let mut tail = Vec::new();
    for block in blocks {
        starts.push(program.len() + tail.len());
        let mut rest = &block[..];
        while let Some((action, atoms)) = rest.first() {
            let run = equality_run(rest);
            if run > 1 {
                tail.extend(equalities(&rest[..run]));
                rest = &rest[run..];
            } else {
                tail.extend(term(*action, atoms)?);
                rest = &rest[1..];
            }
        }
        tail.push(libc::sock_filter { code: RET_K, jt: 0, jf: 0, k: ret_value(default) });
    }
    for (at, insn) in program.iter_mut().enumerate() {
        if insn.code == RET_K && insn.k & libc::SECCOMP_RET_ACTION_FULL == libc::SECCOMP_RET_TRACE {
            let index = (insn.k & libc::SECCOMP_RET_DATA) as usize;
            let start = *starts.get(index).ok_or(CompileError::Bytes(at * 8, "placeholder without a condition"))?;
            // Blocks follow the program, so every jump is forward.
            let offset = u32::try_from(start - at - 1).map_err(|_| CompileError::TooLarge(start, u32::MAX as usize))?;
            *insn = libc::sock_filter { code: JA, jt: 0, jf: 0, k: offset };
        }
    }
    program.extend(tail);
    Ok(program)
}
