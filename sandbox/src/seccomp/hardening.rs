//! The filter oz installs in every seccomp mode, whatever the policy says:
//! - syscalls from a foreign architecture (i386 `int 0x80` on x86_64, ...) kill the process;
//! - on x86_64, x32-ABI syscall numbers (bit 0x40000000 set) kill the process, closing the
//!   original's x32 bypass of blacklists;
//! - the TIOCSTI and TIOCLINUX ioctls fail with EPERM (they let a sandbox push keystrokes into
//!   the user's terminal). Only the low 32 bits of the request are compared, as the kernel
//!   truncates `cmd` to `unsigned int` (flatpak's CVE-2019-10063 fix).
//!
//! It is hand-written BPF so the x32 check is explicit and independent of libseccomp's choices.

use libc::sock_filter;

const SECCOMP_DATA_NR: u32 = 0;
const SECCOMP_DATA_ARCH: u32 = 4;
/// Low 32 bits of `args[1]` (little-endian).
const SECCOMP_DATA_ARG1_LO: u32 = 16 + 8;

pub const X32_SYSCALL_BIT: u32 = 0x4000_0000;

#[cfg(target_arch = "x86_64")]
mod native {
    pub const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
    pub const NR_IOCTL: u32 = 16;
    pub const HAS_X32: bool = true;
}

#[cfg(target_arch = "aarch64")]
mod native {
    pub const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64
    pub const NR_IOCTL: u32 = 29;
    pub const HAS_X32: bool = false;
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
compile_error!("oz's seccomp hardening filter knows x86_64 and aarch64 only");

fn stmt(code: u32, k: u32) -> sock_filter {
    sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> sock_filter {
    sock_filter { code: code as u16, jt, jf, k }
}

const LD_ABS: u32 = libc::BPF_LD | libc::BPF_W | libc::BPF_ABS;
const JEQ: u32 = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
const JGE: u32 = libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K;
const RET: u32 = libc::BPF_RET | libc::BPF_K;

/// The hardening program for the architecture oz was built for.
/// The `arch` value of `struct seccomp_data` for this build's native system calls.
pub fn native_audit_arch() -> u32 {
    native::AUDIT_ARCH
}

pub fn program() -> Vec<sock_filter> {
    let tiocsti = libc::TIOCSTI as u32;
    let tioclinux = libc::TIOCLINUX as u32;
    // Layout (jump offsets count instructions skipped):
    //   ld arch; jeq NATIVE ? next : KILL
    //   ld nr; [jge X32 ? KILL : next]; jeq ioctl ? next : ALLOW
    //   ld arg1.lo; jeq TIOCSTI ? DENY : next; jeq TIOCLINUX ? DENY : next
    //   ALLOW: ret allow; DENY: ret errno(EPERM); KILL: ret kill_process
    let x32 = native::HAS_X32;
    let after_arch = if x32 { 8 } else { 7 }; // from the arch jump to KILL
    let mut p = vec![
        stmt(LD_ABS, SECCOMP_DATA_ARCH),
        jump(JEQ, native::AUDIT_ARCH, 0, after_arch),
        stmt(LD_ABS, SECCOMP_DATA_NR),
    ];
    if x32 {
        p.push(jump(JGE, X32_SYSCALL_BIT, 6, 0));
    }
    p.extend([
        jump(JEQ, native::NR_IOCTL, 0, 3),
        stmt(LD_ABS, SECCOMP_DATA_ARG1_LO),
        jump(JEQ, tiocsti, 2, 0),
        jump(JEQ, tioclinux, 1, 0),
        stmt(RET, libc::SECCOMP_RET_ALLOW),
        stmt(RET, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        stmt(RET, libc::SECCOMP_RET_KILL_PROCESS),
    ]);
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tiny interpreter for the instructions the program uses.
    fn run(p: &[sock_filter], nr: u32, arch: u32, arg1: u64) -> u32 {
        let mut data = [0u8; 64];
        data[0..4].copy_from_slice(&nr.to_le_bytes());
        data[4..8].copy_from_slice(&arch.to_le_bytes());
        data[24..32].copy_from_slice(&arg1.to_le_bytes());
        let (mut pc, mut acc) = (0usize, 0u32);
        loop {
            let i = p[pc];
            let code = u32::from(i.code);
            pc += 1;
            match code {
                c if c == LD_ABS => {
                    let k = i.k as usize;
                    acc = u32::from_le_bytes(data[k..k + 4].try_into().unwrap());
                }
                c if c == JEQ || c == JGE => {
                    let hit = if c == JEQ { acc == i.k } else { acc >= i.k };
                    pc += usize::from(if hit { i.jt } else { i.jf });
                }
                c if c == RET => return i.k,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    #[test]
    #[allow(clippy::unnecessary_cast)] // ioctl numbers are not u64 on every target
    fn decisions() {
        let p = program();
        let a = native::AUDIT_ARCH;
        let nr = native::NR_IOCTL;
        let eperm = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
        assert_eq!(run(&p, 39, a, 0), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, nr, a, libc::TCGETS as u64), libc::SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, nr, a, libc::TIOCSTI as u64), eperm);
        assert_eq!(run(&p, nr, a, 0xdead_0000_0000_0000 | libc::TIOCSTI as u64), eperm);
        assert_eq!(run(&p, nr, a, libc::TIOCLINUX as u64), eperm);
        assert_eq!(run(&p, 39, 0x4000_0003, 0), libc::SECCOMP_RET_KILL_PROCESS);
        if native::HAS_X32 {
            assert_eq!(run(&p, X32_SYSCALL_BIT | 39, a, 0), libc::SECCOMP_RET_KILL_PROCESS);
            assert_eq!(run(&p, X32_SYSCALL_BIT | nr, a, 0), libc::SECCOMP_RET_KILL_PROCESS);
        }
    }
}
