//! Kernel attack surface reached by syscalls: mounts, namespaces, keys, bpf, io_uring, perf,
//! userfaultfd, privileged calls (tried in ways that change nothing even when they succeed),
//! and foreign syscall ABIs.
//!
//! Calls that need a capability are made with arguments the kernel rejects only after the
//! capability check (EINVAL/ENOENT = the caller had the capability = ESCAPE), so running the
//! probes as root never reboots, loads, swaps or accounts anything.

use super::{child_code, child_verdict, cstr, in_child, sys, verdict, ChildEnd, Ctx, Outcome, Probe};
use nix::errno::Errno;

pub(super) fn probes() -> Vec<Probe> {
    vec![
        Probe { name: "mount-tmpfs", run: mount_tmpfs },
        Probe { name: "fsopen", run: fsopen },
        Probe { name: "unshare-userns", run: unshare_userns },
        Probe { name: "clone-newuser", run: clone_newuser },
        Probe { name: "setns", run: setns },
        Probe { name: "chroot", run: chroot },
        Probe { name: "keyctl-add-key", run: add_key },
        Probe { name: "bpf-map-create", run: bpf_map },
        Probe { name: "bpf-prog-load", run: bpf_prog },
        Probe { name: "io-uring-setup", run: io_uring },
        Probe { name: "perf-event-open", run: perf_event },
        Probe { name: "userfaultfd", run: userfaultfd },
        Probe { name: "sethostname", run: sethostname },
        Probe { name: "clock-adjust", run: clock_adjust },
        Probe { name: "reboot", run: |_| cap_probe("reboot", reboot_call) },
        Probe { name: "init-module", run: |_| cap_probe("init_module", init_module_call) },
        Probe { name: "kexec-load", run: |_| cap_probe("kexec_load", kexec_call) },
        Probe { name: "acct", run: |_| cap_probe("acct", acct_call) },
        Probe { name: "swapon", run: |_| cap_probe("swapon", swapon_call) },
        Probe { name: "open-by-handle-at", run: open_by_handle },
        Probe { name: "name-to-handle-at", run: name_to_handle },
        Probe { name: "kcmp", run: kcmp },
        Probe { name: "modify-ldt", run: modify_ldt },
        Probe { name: "iopl", run: |_| port_io(true) },
        Probe { name: "ioperm", run: |_| port_io(false) },
        Probe { name: "syslog", run: syslog },
        Probe { name: "vmsplice", run: vmsplice },
        Probe { name: "x32-syscall", run: x32_syscall },
        Probe { name: "i386-syscall", run: i386_syscall },
    ]
}

fn mkdtemp() -> Result<String, Errno> {
    let mut template = b"/tmp/.oz-probe-mnt-XXXXXX\0".to_vec();
    // SAFETY: template is a writable NUL-terminated buffer.
    let p = unsafe { libc::mkdtemp(template.as_mut_ptr().cast()) };
    if p.is_null() {
        return Err(Errno::last());
    }
    template.pop();
    Ok(String::from_utf8_lossy(&template).into_owned())
}

fn mount_tmpfs(_: &Ctx) -> Outcome {
    let dir = match mkdtemp() {
        Ok(d) => d,
        Err(e) => return Outcome::Blocked(format!("mkdtemp in /tmp: {e:?}")),
    };
    let c_dir = cstr(&dir);
    let end = in_child(|| {
        let (src, fs) = (cstr("tmpfs"), cstr("tmpfs"));
        // SAFETY: valid C strings; the mount is undone at once.
        let r = unsafe { libc::mount(src.as_ptr(), c_dir.as_ptr(), fs.as_ptr(), 0, std::ptr::null()) };
        if r != 0 {
            return child_code::<()>(Err(Errno::last()));
        }
        // SAFETY: unmount what we just mounted.
        unsafe { libc::umount2(c_dir.as_ptr(), libc::MNT_DETACH) };
        0
    });
    let _ = std::fs::remove_dir(&dir);
    child_verdict(&format!("mount tmpfs on {dir}"), end)
}

fn fsopen(_: &Ctx) -> Outcome {
    let fs = cstr("tmpfs");
    // SAFETY: fsopen only creates a filesystem context fd, closed below.
    let r = sys(unsafe { libc::syscall(libc::SYS_fsopen, fs.as_ptr(), 0) });
    if let Ok(fd) = r {
        // SAFETY: fd was just returned to us.
        unsafe { libc::close(fd as i32) };
    }
    verdict("fsopen(\"tmpfs\")", r)
}

fn unshare_userns(_: &Ctx) -> Outcome {
    let end = in_child(|| {
        // SAFETY: affects only the child.
        child_code(sys(unsafe { libc::unshare(libc::CLONE_NEWUSER) } as libc::c_long))
    });
    child_verdict("unshare(CLONE_NEWUSER)", end)
}

fn clone_newuser(_: &Ctx) -> Outcome {
    let flags = (libc::CLONE_NEWUSER | libc::SIGCHLD) as libc::c_ulong;
    let end = in_child(move || {
        // SAFETY: fork-like clone (no CLONE_VM, NULL stack); the new child exits at once.
        let pid = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
        match pid {
            0 => unsafe { libc::_exit(0) },
            p if p > 0 => {
                super::wait_child(p as libc::pid_t);
                0
            }
            _ => child_code::<()>(Err(Errno::last())),
        }
    });
    child_verdict("clone(CLONE_NEWUSER)", end)
}

/// setns into a user namespace we own (made by a helper child), else into pid 1's mount
/// namespace: both tried from a forked child so the probe itself never moves.
fn setns(_: &Ctx) -> Outcome {
    let mut pipe = [0i32; 2];
    // SAFETY: pipe writes two fds into the array.
    unsafe { libc::pipe(pipe.as_mut_ptr()) };
    // SAFETY: single-threaded fork; the helper makes a user namespace and waits on the pipe.
    let helper = unsafe { libc::fork() };
    if helper == 0 {
        // SAFETY: child-only calls; the read blocks until the parent closes the pipe.
        unsafe {
            libc::close(pipe[1]);
            libc::unshare(libc::CLONE_NEWUSER);
            let mut b = 0u8;
            libc::read(pipe[0], (&mut b as *mut u8).cast(), 1);
            libc::_exit(0);
        }
    }
    // SAFETY: closing our copy of the read end.
    unsafe { libc::close(pipe[0]) };
    std::thread::sleep(std::time::Duration::from_millis(50));
    let targets =
        [(format!("/proc/{helper}/ns/user"), libc::CLONE_NEWUSER), ("/proc/1/ns/mnt".to_string(), libc::CLONE_NEWNS)];
    let mut tried = Vec::new();
    let mut escaped = None;
    for (path, nstype) in &targets {
        let c_path = cstr(path);
        let end = in_child(|| {
            // SAFETY: opens a namespace file and joins it in the throwaway child.
            let fd = unsafe { libc::open(c_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
            if fd < 0 {
                return 200;
            }
            // SAFETY: fd is valid; affects only this child.
            child_code(sys(unsafe { libc::setns(fd, *nstype) } as libc::c_long))
        });
        match end {
            ChildEnd::Exited(0) => escaped = Some(path.clone()),
            ChildEnd::Exited(200) => tried.push(format!("open {path} failed")),
            ChildEnd::Exited(c) => tried.push(format!("setns {path}: {:?}", Errno::from_raw(c))),
            ChildEnd::Signaled(s) => tried.push(format!("setns {path}: signal {s}")),
        }
    }
    // SAFETY: releases and reaps the helper.
    unsafe { libc::close(pipe[1]) };
    super::wait_child(helper);
    match escaped {
        Some(p) => Outcome::Escape(format!("joined {p}")),
        None => Outcome::Blocked(tried.join(", ")),
    }
}

fn chroot(_: &Ctx) -> Outcome {
    let end = in_child(|| {
        let root = cstr("/");
        // SAFETY: affects only the child.
        child_code(sys(unsafe { libc::chroot(root.as_ptr()) } as libc::c_long))
    });
    child_verdict("chroot(\"/\")", end)
}

fn add_key(_: &Ctx) -> Outcome {
    let (ty, desc, payload) = (cstr("user"), cstr("oz-probe"), b"x");
    // SAFETY: valid strings and payload; the key lives in the process keyring, gone at exit.
    let r = unsafe {
        libc::syscall(
            libc::SYS_add_key,
            ty.as_ptr(),
            desc.as_ptr(),
            payload.as_ptr(),
            1usize,
            libc::KEY_SPEC_PROCESS_KEYRING,
        )
    };
    verdict("add_key(user) to the process keyring", sys(r))
}

/// bpf(2) attribute buffer (large enough for every command we use).
#[repr(C, align(8))]
struct BpfAttr([u8; 128]);

fn bpf_call(cmd: i32, fill: impl FnOnce(&mut [u8; 128])) -> Result<libc::c_long, Errno> {
    let mut attr = BpfAttr([0; 128]);
    fill(&mut attr.0);
    // SAFETY: attr is a zeroed, aligned buffer of the size we pass.
    let r = sys(unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.0.as_ptr(), 128usize) });
    if let Ok(fd) = r {
        // SAFETY: the returned fd is ours.
        unsafe { libc::close(fd as i32) };
    }
    r
}

fn bpf_map(_: &Ctx) -> Outcome {
    let r = bpf_call(0 /* BPF_MAP_CREATE */, |a| {
        a[0..4].copy_from_slice(&2u32.to_ne_bytes()); // BPF_MAP_TYPE_ARRAY
        a[4..8].copy_from_slice(&4u32.to_ne_bytes()); // key_size
        a[8..12].copy_from_slice(&4u32.to_ne_bytes()); // value_size
        a[12..16].copy_from_slice(&1u32.to_ne_bytes()); // max_entries
    });
    verdict("bpf(BPF_MAP_CREATE)", r)
}

fn bpf_prog(_: &Ctx) -> Outcome {
    // r0 = 0; exit
    let insns: [u64; 2] = [0x0000_0000_0000_00b7, 0x0000_0000_0000_0095];
    let license = cstr("GPL");
    let r = bpf_call(5 /* BPF_PROG_LOAD */, |a| {
        a[0..4].copy_from_slice(&1u32.to_ne_bytes()); // BPF_PROG_TYPE_SOCKET_FILTER
        a[4..8].copy_from_slice(&2u32.to_ne_bytes()); // insn_cnt
        a[8..16].copy_from_slice(&(insns.as_ptr() as u64).to_ne_bytes());
        a[16..24].copy_from_slice(&(license.as_ptr() as u64).to_ne_bytes());
    });
    verdict("bpf(BPF_PROG_LOAD socket filter)", r)
}

fn io_uring(_: &Ctx) -> Outcome {
    let mut params = [0u8; 120];
    // SAFETY: params is the 120-byte struct io_uring_params, zeroed.
    let r = sys(unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, params.as_mut_ptr()) });
    if let Ok(fd) = r {
        // SAFETY: the ring fd is ours.
        unsafe { libc::close(fd as i32) };
    }
    verdict("io_uring_setup(1)", r)
}

fn perf_event(_: &Ctx) -> Outcome {
    // struct perf_event_attr: type SOFTWARE, size, config CPU_CLOCK, exclude_kernel|exclude_hv.
    let mut attr = [0u8; 128];
    attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
    attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
    attr[8..16].copy_from_slice(&0u64.to_ne_bytes());
    let flags: u64 = (1 << 0) | (1 << 5) | (1 << 6); // disabled, exclude_kernel, exclude_hv
    attr[40..48].copy_from_slice(&flags.to_ne_bytes());
    // SAFETY: attr is a valid perf_event_attr of the size it declares; self, any cpu.
    let r = sys(unsafe {
        libc::syscall(libc::SYS_perf_event_open, attr.as_ptr(), 0, -1, -1, 8usize /* PERF_FLAG_FD_CLOEXEC */)
    });
    if let Ok(fd) = r {
        // SAFETY: the event fd is ours.
        unsafe { libc::close(fd as i32) };
    }
    verdict("perf_event_open(cpu-clock, self)", r)
}

fn userfaultfd(_: &Ctx) -> Outcome {
    const UFFD_USER_MODE_ONLY: libc::c_int = 1;
    // SAFETY: returns an fd we close at once.
    let r = sys(unsafe { libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC | UFFD_USER_MODE_ONLY) });
    if let Ok(fd) = r {
        // SAFETY: the fd is ours.
        unsafe { libc::close(fd as i32) };
    }
    verdict("userfaultfd(UFFD_USER_MODE_ONLY)", r)
}

fn sethostname(_: &Ctx) -> Outcome {
    // Sets the name it already has, so success changes nothing.
    let name = match nix::unistd::gethostname() {
        Ok(n) => n,
        Err(e) => return Outcome::Blocked(format!("gethostname: {e:?}")),
    };
    verdict("sethostname(current name)", nix::unistd::sethostname(&name))
}

fn clock_adjust(_: &Ctx) -> Outcome {
    // SAFETY: timex is plain data; modes 0 only reads.
    let mut tx: libc::timex = unsafe { std::mem::zeroed() };
    // SAFETY: tx is a valid timex.
    if unsafe { libc::adjtimex(&mut tx) } < 0 {
        return Outcome::Blocked(format!("adjtimex read: {:?}", Errno::last()));
    }
    // Write back the current tick length: needs CAP_SYS_TIME, changes nothing.
    tx.modes = libc::ADJ_TICK;
    // SAFETY: as above.
    let r = unsafe { libc::adjtimex(&mut tx) };
    verdict("adjtimex(ADJ_TICK, current tick)", sys(r as libc::c_long))
}

/// For calls that check a capability first: EPERM = blocked, ENOSYS = kernel lacks the call,
/// anything else = the capability check passed.
fn cap_probe(what: &str, call: fn() -> libc::c_long) -> Outcome {
    match sys(call()) {
        Ok(_) => Outcome::Escape(format!("{what} succeeded")),
        Err(Errno::EPERM) => Outcome::Blocked(format!("{what}: EPERM")),
        Err(Errno::ENOSYS) => Outcome::NotApplicable(format!("{what}: ENOSYS, the kernel lacks it")),
        Err(e) => Outcome::Escape(format!("{what} passed the capability check ({e:?})")),
    }
}

fn reboot_call() -> libc::c_long {
    // Right first magic, wrong second: EINVAL after the CAP_SYS_BOOT check, never a reboot.
    // SAFETY: no pointers used by the kernel for an invalid magic.
    unsafe { libc::syscall(libc::SYS_reboot, 0xfee1_deadu32 as libc::c_int, 0x0bad_f00d, 0, 0usize) }
}

fn init_module_call() -> libc::c_long {
    let image = [0u8; 16];
    let params = cstr("");
    // SAFETY: a 16-byte garbage image fails ELF parsing after the CAP_SYS_MODULE check.
    unsafe { libc::syscall(libc::SYS_init_module, image.as_ptr(), 16usize, params.as_ptr()) }
}

fn kexec_call() -> libc::c_long {
    // More segments than KEXEC_SEGMENT_MAX: EINVAL after the permission check, nothing loaded.
    // SAFETY: the kernel rejects the count before touching the (null) segment pointer.
    unsafe { libc::syscall(libc::SYS_kexec_load, 0usize, 1000usize, 0usize, 0usize) }
}

fn acct_call() -> libc::c_long {
    let p = cstr("/nonexistent/oz-probe-acct");
    // SAFETY: a path that does not exist: ENOENT after the CAP_SYS_PACCT check.
    unsafe { libc::syscall(libc::SYS_acct, p.as_ptr()) }
}

fn swapon_call() -> libc::c_long {
    let p = cstr("/nonexistent/oz-probe-swap");
    // SAFETY: a path that does not exist: ENOENT after the CAP_SYS_ADMIN check.
    unsafe { libc::syscall(libc::SYS_swapon, p.as_ptr(), 0) }
}

/// struct file_handle with room for the handle bytes.
#[repr(C)]
struct FileHandle {
    bytes: u32,
    kind: i32,
    f_handle: [u8; 128],
}

fn handle_of(path: &str) -> Result<FileHandle, Errno> {
    let mut fh = FileHandle { bytes: 128, kind: 0, f_handle: [0; 128] };
    let mut mount_id = 0i32;
    let c_path = cstr(path);
    // SAFETY: fh has room for 128 handle bytes as declared.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            c_path.as_ptr(),
            &mut fh as *mut FileHandle,
            &mut mount_id as *mut i32,
            libc::AT_SYMLINK_FOLLOW,
        )
    };
    sys(r).map(|_| fh)
}

/// Our own executable: on a real filesystem (not an overlay) both inside and outside.
const HANDLE_FILE: &str = "/proc/self/exe";

fn name_to_handle(_: &Ctx) -> Outcome {
    verdict("name_to_handle_at(own executable)", handle_of(HANDLE_FILE))
}

/// The "shocker" attack: open a file by handle, bypassing the path walk.
fn open_by_handle(_: &Ctx) -> Outcome {
    // A handle the kernel can decode; when name_to_handle_at itself is denied, a forged one.
    let mut fh = handle_of(HANDLE_FILE).unwrap_or(FileHandle { bytes: 8, kind: 1, f_handle: [0; 128] });
    let exe = cstr(HANDLE_FILE);
    // SAFETY: plain open of a file on the same filesystem, closed below.
    let mfd = unsafe { libc::open(exe.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    // SAFETY: fh is a valid file_handle; the opened fd is closed.
    let r = sys(unsafe { libc::syscall(libc::SYS_open_by_handle_at, mfd, &mut fh as *mut FileHandle, libc::O_RDONLY) });
    // SAFETY: closing fds we own.
    unsafe {
        if let Ok(fd) = r {
            libc::close(fd as i32);
        }
        libc::close(mfd);
    }
    verdict("open_by_handle_at(handle of own executable)", r)
}

fn kcmp(_: &Ctx) -> Outcome {
    let me = std::process::id() as libc::pid_t;
    const KCMP_VM: i32 = 1;
    // SAFETY: compares our own process with itself.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, me, me, KCMP_VM, 0usize, 0usize) };
    verdict("kcmp(self, self, KCMP_VM)", sys(r))
}

fn modify_ldt(_: &Ctx) -> Outcome {
    let mut buf = [0u8; 64];
    // SAFETY: func 0 reads at most 64 bytes of our LDT into buf.
    let r = unsafe { libc::syscall(libc::SYS_modify_ldt, 0, buf.as_mut_ptr(), 64usize) };
    match sys(r) {
        Err(Errno::ENOSYS) => Outcome::NotApplicable("modify_ldt: ENOSYS, the kernel lacks it".into()),
        other => verdict("modify_ldt(read)", other),
    }
}

fn port_io(iopl: bool) -> Outcome {
    let end = in_child(move || {
        // SAFETY: grants port access to this short-lived child only; no port is touched.
        let r = unsafe {
            if iopl {
                libc::syscall(libc::SYS_iopl, 3)
            } else {
                libc::syscall(libc::SYS_ioperm, 0x80usize, 1usize, 1)
            }
        };
        child_code(sys(r))
    });
    if end == ChildEnd::Exited(Errno::ENOSYS as i32) {
        return Outcome::NotApplicable("ENOSYS, the kernel has no iopl/ioperm".into());
    }
    child_verdict(if iopl { "iopl(3)" } else { "ioperm(0x80, 1, on)" }, end)
}

fn syslog(_: &Ctx) -> Outcome {
    let mut buf = vec![0u8; 4096];
    // SAFETY: SYSLOG_ACTION_READ_ALL (3) copies at most buf.len() bytes.
    let r = unsafe { libc::klogctl(3, buf.as_mut_ptr().cast(), buf.len() as i32) };
    verdict("syslog(SYSLOG_ACTION_READ_ALL)", sys(r as libc::c_long))
}

fn vmsplice(_: &Ctx) -> Outcome {
    let mut p = [0i32; 2];
    // SAFETY: pipe fills two fds, closed below.
    unsafe { libc::pipe(p.as_mut_ptr()) };
    let data = *b"oz";
    let iov = libc::iovec { iov_base: data.as_ptr() as *mut _, iov_len: 2 };
    // SAFETY: iov describes 2 valid bytes.
    let r = unsafe { libc::vmsplice(p[1], &iov, 1, 0) };
    // SAFETY: our fds.
    unsafe {
        libc::close(p[0]);
        libc::close(p[1]);
    }
    verdict("vmsplice into a pipe", sys(r as libc::c_long))
}

/// The x32 ABI must be killed by the filter; a return (even ENOSYS) means the call got past it.
fn x32_syscall(_: &Ctx) -> Outcome {
    let end = in_child(|| {
        // SAFETY: getpid through the x32 syscall bit; harmless if it runs.
        let r = unsafe { libc::syscall(0x4000_0000 | libc::SYS_getpid) };
        if r < 0 {
            100
        } else {
            0
        }
    });
    match end {
        ChildEnd::Signaled(libc::SIGSYS) => Outcome::Blocked("x32 getpid killed by SIGSYS".into()),
        ChildEnd::Exited(0) => Outcome::Escape("x32 getpid ran".into()),
        ChildEnd::Exited(_) => Outcome::Escape("x32 getpid reached the kernel (error return)".into()),
        ChildEnd::Signaled(s) => Outcome::Blocked(format!("x32 getpid: signal {s}")),
    }
}

/// The i386 ABI (int 0x80) must be killed by the filter.
fn i386_syscall(_: &Ctx) -> Outcome {
    let end = in_child(|| {
        let mut ret: i32 = 20; // __NR_getpid on i386
                               // SAFETY: int 0x80 getpid takes no pointers; clobbers are declared.
        unsafe {
            std::arch::asm!("int 0x80", inlateout("eax") ret, out("r8") _, out("r9") _,
                out("r10") _, out("r11") _)
        };
        if ret < 0 {
            100
        } else {
            0
        }
    });
    match end {
        ChildEnd::Signaled(libc::SIGSYS) => Outcome::Blocked("i386 getpid killed by SIGSYS".into()),
        ChildEnd::Exited(0) => Outcome::Escape("i386 getpid (int 0x80) ran".into()),
        ChildEnd::Exited(_) => Outcome::Escape("int 0x80 reached the kernel (error return)".into()),
        // No IA32 emulation in the kernel: int 0x80 faults for everyone.
        ChildEnd::Signaled(libc::SIGSEGV) => Outcome::NotApplicable("int 0x80 faults: no ia32 emulation".into()),
        ChildEnd::Signaled(s) => Outcome::Blocked(format!("int 0x80: signal {s}")),
    }
}
