//! What an installed filter answers for one concrete call: a classic-BPF interpreter over
//! `struct seccomp_data`, run on the exact programs [`CompiledFilter`] installs. Used before fork
//! to learn whether a call the launcher itself makes after installing (the listener handoff's
//! futex) passes without a notification nobody could answer yet.
//!
//! Only what seccomp filters may contain is interpreted; any other instruction, a jump out of
//! the program or a read outside `seccomp_data` makes the answer "not allowed".

use super::CompiledFilter;

/// The action part of a seccomp return value.
const RET_ACTION_FULL: u32 = 0xffff_0000;
const RET_ALLOW: u32 = 0x7fff_0000;

/// `struct seccomp_data` for a call of `nr` with `args` from the native architecture, as bytes.
fn seccomp_data(nr: i32, args: &[u64; 6]) -> [u8; 64] {
    let mut d = [0u8; 64];
    d[0..4].copy_from_slice(&nr.to_ne_bytes());
    d[4..8].copy_from_slice(&super::hardening::native_audit_arch().to_ne_bytes());
    // instruction_pointer (8..16) stays 0.
    for (i, a) in args.iter().enumerate() {
        d[16 + 8 * i..24 + 8 * i].copy_from_slice(&a.to_ne_bytes());
    }
    d
}

/// Runs one program; `None` when it is not one the interpreter can follow.
fn run(prog: &[libc::sock_filter], data: &[u8; 64]) -> Option<u32> {
    let (mut a, mut x) = (0u32, 0u32);
    let mut mem = [0u32; 16];
    let mut pc = 0usize;
    // A seccomp program has no backward jumps, so it ends within its length in steps.
    for _ in 0..=prog.len() {
        let ins = prog.get(pc)?;
        let (code, k) = (ins.code as u32, ins.k);
        pc += 1;
        let src = |x: u32| if code & 0x08 != 0 { x } else { k };
        match code & 0x07 {
            // BPF_LD
            0x00 => {
                a = match code & 0xe0 {
                    0x20 if code & 0x18 == 0x00 => {
                        let at = k as usize;
                        u32::from_ne_bytes(data.get(at..at + 4)?.try_into().ok()?)
                    }
                    0x00 => k,                     // BPF_IMM
                    0x60 => *mem.get(k as usize)?, // BPF_MEM
                    0x80 => data.len() as u32,     // BPF_LEN
                    _ => return None,
                }
            }
            // BPF_LDX
            0x01 => {
                x = match code & 0xe0 {
                    0x00 => k,
                    0x60 => *mem.get(k as usize)?,
                    0x80 => data.len() as u32,
                    _ => return None,
                }
            }
            0x02 => *mem.get_mut(k as usize)? = a, // BPF_ST
            0x03 => *mem.get_mut(k as usize)? = x, // BPF_STX
            // BPF_ALU
            0x04 => {
                let v = src(x);
                a = match code & 0xf0 {
                    0x00 => a.wrapping_add(v),
                    0x10 => a.wrapping_sub(v),
                    0x20 => a.wrapping_mul(v),
                    0x30 => a.checked_div(v)?,
                    0x40 => a | v,
                    0x50 => a & v,
                    0x60 => a.checked_shl(v).unwrap_or(0),
                    0x70 => a.checked_shr(v).unwrap_or(0),
                    0x80 => a.wrapping_neg(),
                    0x90 => a.checked_rem(v)?,
                    0xa0 => a ^ v,
                    _ => return None,
                }
            }
            // BPF_JMP
            0x05 => {
                let v = src(x);
                let (jt, jf) = (ins.jt as usize, ins.jf as usize);
                pc += match code & 0xf0 {
                    0x00 => k as usize, // BPF_JA
                    0x10 if a == v => jt,
                    0x20 if a > v => jt,
                    0x30 if a >= v => jt,
                    0x40 if a & v != 0 => jt,
                    0x10..=0x40 => jf,
                    _ => return None,
                };
            }
            // BPF_RET
            0x06 => {
                return match code & 0x18 {
                    0x00 => Some(k),
                    0x10 => Some(a),
                    _ => None,
                }
            }
            // BPF_MISC: TAX, TXA
            _ => match code & 0xf8 {
                0x00 => x = a,
                0x80 => a = x,
                _ => return None,
            },
        }
    }
    None
}

impl CompiledFilter {
    /// True when every program of the filter lets the call of `nr` with `args` run
    /// (SECCOMP_RET_ALLOW): no errno, no kill, no log, no notification.
    pub fn allows(&self, nr: i64, args: &[u64; 6]) -> bool {
        let Ok(nr) = i32::try_from(nr) else { return false };
        let data = seccomp_data(nr, args);
        self.programs().iter().all(|p| run(p, &data).is_some_and(|r| r & RET_ACTION_FULL == RET_ALLOW))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::errno::Errno;
    use oz_profiles::profile::SeccompMode;
    use oz_profiles::seccomp::parse_policy;

    fn filter(src: &str, mode: SeccompMode, reporting: super::super::Reporting) -> CompiledFilter {
        let policy = parse_policy(src, std::path::Path::new("test.seccomp")).unwrap_or_else(|e| panic!("{e}"));
        super::super::compile_reporting(&policy, mode, true, reporting).unwrap()
    }

    const NO_ARGS: [u64; 6] = [0; 6];

    #[test]
    fn a_blacklist_allows_what_it_does_not_name() {
        for reporting in [super::super::Reporting::Log, super::super::Reporting::Notify] {
            let f = filter("ptrace: 1\nsocket: arg0 == 16\n", SeccompMode::Blacklist, reporting);
            assert!(f.allows(libc::SYS_futex, &NO_ARGS));
            assert!(f.allows(libc::SYS_getpid, &NO_ARGS));
            assert!(!f.allows(libc::SYS_ptrace, &NO_ARGS));
            assert!(!f.allows(libc::SYS_socket, &[16, 0, 0, 0, 0, 0]));
            assert!(f.allows(libc::SYS_socket, &[2, 1, 0, 0, 0, 0]));
        }
    }

    #[test]
    fn a_whitelist_allows_only_what_it_names_and_the_hardening_filter_applies() {
        let f = filter(
            "futex: 1\nioctl: 1\nclone: arg0 & 0x10000000 == 0\n",
            SeccompMode::Whitelist,
            super::super::Reporting::Notify,
        );
        assert!(f.allows(libc::SYS_futex, &NO_ARGS));
        assert!(!f.allows(libc::SYS_getpid, &NO_ARGS));
        assert!(f.allows(libc::SYS_clone, &NO_ARGS));
        assert!(!f.allows(libc::SYS_clone, &[0x1000_0000, 0, 0, 0, 0, 0]));
        // TIOCSTI is refused by the hardening filter even where the policy allows ioctl.
        assert!(f.allows(libc::SYS_ioctl, &[0, libc::TCGETS, 0, 0, 0, 0]));
        assert!(!f.allows(libc::SYS_ioctl, &[0, libc::TIOCSTI, 0, 0, 0, 0]));
        // x32 numbers are killed.
        assert!(!f.allows(libc::SYS_futex | 0x4000_0000, &NO_ARGS));
    }

    #[test]
    fn what_the_interpreter_cannot_follow_is_not_allowed() {
        let jump_out = [libc::sock_filter { code: 0x05, jt: 0, jf: 0, k: 5 }];
        assert_eq!(run(&jump_out, &seccomp_data(0, &NO_ARGS)), None);
        let past_data = [
            libc::sock_filter { code: 0x20, jt: 0, jf: 0, k: 64 },
            libc::sock_filter { code: 0x06, jt: 0, jf: 0, k: RET_ALLOW },
        ];
        assert_eq!(run(&past_data, &seccomp_data(0, &NO_ARGS)), None);
        assert_eq!(run(&[], &seccomp_data(0, &NO_ARGS)), None);
    }

    /// The interpreter agrees with the kernel: a forked child installs the filter and makes
    /// each call; the calls that fail with the policy's errno are exactly those `allows` refuses.
    #[test]
    fn the_interpreter_agrees_with_the_kernel() {
        let f = filter(
            "getppid: 1\nsocket: arg0 == 16 || arg1 == 3\nfcntl: arg1 == 1030\n",
            SeccompMode::Blacklist,
            super::super::Reporting::Log,
        );
        let calls: [(i64, [u64; 6]); 6] = [
            (libc::SYS_getppid, NO_ARGS),
            (libc::SYS_getpid, NO_ARGS),
            (libc::SYS_socket, [16, 3, 0, 0, 0, 0]),
            (libc::SYS_socket, [1, 3, 0, 0, 0, 0]),
            (libc::SYS_socket, [1, 1, 0, 0, 0, 0]),
            (libc::SYS_fcntl, [0, 1030, 0, 0, 0, 0]),
        ];
        let expected: Vec<u8> = calls.iter().map(|(nr, a)| f.allows(*nr, a) as u8).collect();
        assert_eq!(expected, [0, 1, 0, 0, 1, 0]);
        let (r, w) = nix::unistd::pipe().unwrap();
        // SAFETY: the child installs a filter, makes raw syscalls, writes to a pipe and _exits.
        match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                use std::os::fd::AsRawFd;
                let mut seen = [2u8; 6];
                if f.install_with_listener().is_ok() {
                    for (i, (nr, a)) in calls.iter().enumerate() {
                        // SAFETY: calls whose arguments are plain integers; a socket made is
                        // left to the exit.
                        let rc = unsafe { libc::syscall(*nr, a[0], a[1], a[2], a[3], a[4], a[5]) };
                        seen[i] = !(rc < 0 && Errno::last() == Errno::EPERM) as u8;
                    }
                }
                // SAFETY: write a local buffer to a pipe, then leave without destructors.
                unsafe {
                    libc::write(w.as_raw_fd(), seen.as_ptr() as *const libc::c_void, seen.len());
                    libc::_exit(0)
                }
            }
            nix::unistd::ForkResult::Parent { child } => {
                drop(w);
                let mut seen = [0u8; 6];
                nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&r), &mut seen).unwrap();
                nix::sys::wait::waitpid(child, None).unwrap();
                assert_eq!(seen.to_vec(), expected);
            }
        }
    }
}
