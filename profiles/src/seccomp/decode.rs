//! Rendering a call's arguments for people: socket families and types, ioctl request names,
//! fcntl and prctl options, mmap/mprotect protections and flags, open flags, clone flags. Also
//! which argument of a call is worth constraining in a policy ([`constrained_arg`]) and which
//! one is a path ([`path_arg`]).

use super::consts;

/// The argument a whitelist line constrains for `syscall`, as training records it: the socket
/// family, the ioctl request, the fcntl command, the prctl option.
pub fn constrained_arg(syscall: &str) -> Option<u8> {
    match syscall {
        "socket" | "socketpair" | "prctl" => Some(0),
        "ioctl" | "fcntl" => Some(1),
        _ => None,
    }
}

/// The argument of `syscall` that points at a path name.
pub fn path_arg(syscall: &str) -> Option<u8> {
    match syscall {
        "open" | "creat" | "stat" | "lstat" | "access" | "execve" | "mkdir" | "unlink" | "rmdir" | "readlink"
        | "chdir" | "truncate" | "statfs" | "chmod" | "chown" | "lchown" | "uselib" | "acct" | "swapon" | "swapoff" => {
            Some(0)
        }
        "openat" | "openat2" | "newfstatat" | "faccessat" | "faccessat2" | "execveat" | "mkdirat" | "unlinkat"
        | "readlinkat" | "statx" | "fchmodat" | "fchownat" | "mknodat" | "name_to_handle_at" => Some(1),
        _ => None,
    }
}

/// The open flags argument of an open-like call.
fn open_flags_arg(syscall: &str) -> Option<usize> {
    match syscall {
        "open" => Some(1),
        "openat" => Some(2),
        _ => None,
    }
}

/// The name of `value` among the constants starting with one of `prefixes` (first spelling).
pub fn name_of(prefixes: &[&str], value: u64) -> Option<&'static str> {
    consts::all().find(|(n, v)| *v == value && prefixes.iter().any(|p| n.starts_with(p))).map(|(n, _)| n)
}

/// `value` as `NAME` when a constant of `prefixes` has it, else hex.
pub fn symbol(prefixes: &[&str], value: u64) -> String {
    name_of(prefixes, value).map(str::to_string).unwrap_or_else(|| format!("{value:#x}"))
}

/// A bit set as `A|B|0x40` from the constants starting with `prefix` (`0` when empty).
pub fn flags(prefix: &str, value: u64, skip: &[&str]) -> String {
    let mut left = value;
    let mut parts = Vec::new();
    for (name, bits) in consts::all() {
        if bits != 0 && name.starts_with(prefix) && !skip.contains(&name) && left & bits == bits {
            parts.push(name.to_string());
            left &= !bits;
        }
    }
    if left != 0 || parts.is_empty() {
        parts.push(format!("{left:#x}"));
    }
    parts.join("|")
}

/// A policy expression spelling the constrained value (`AF_UNIX`, `TCGETS`, or hex).
pub fn value_expr(syscall: &str, value: u64) -> String {
    let prefixes: &[&str] = match syscall {
        "socket" | "socketpair" => &["AF_"],
        "ioctl" => &["TC", "TIOC", "FIO"],
        "fcntl" => &["F_"],
        "prctl" => &["PR_"],
        _ => &[],
    };
    match name_of(prefixes, value) {
        Some(n) => n.to_string(),
        None if value < 4096 => value.to_string(),
        None => format!("{value:#x}"),
    }
}

fn socket_type(value: u64) -> String {
    let base = symbol(
        &["SOCK_STREAM", "SOCK_DGRAM", "SOCK_RAW", "SOCK_RDM", "SOCK_SEQ", "SOCK_DCCP", "SOCK_PACKET"],
        value & 0xf,
    );
    let extra = value & !0xf;
    if extra == 0 {
        base
    } else {
        format!("{base}|{}", flags("SOCK_", extra, &[]))
    }
}

fn open_flags(value: u64) -> String {
    let mode = match value & 3 {
        0 => "O_RDONLY",
        1 => "O_WRONLY",
        _ => "O_RDWR",
    };
    let rest = value & !3;
    if rest == 0 {
        return mode.to_string();
    }
    let skip = ["O_ACCMODE", "O_NDELAY", "O_RSYNC", "O_DSYNC", "O_LARGEFILE"];
    format!("{mode}|{}", flags("O_", rest, &skip))
}

/// The arguments of `syscall` rendered for a person, e.g. `family=AF_NETLINK type=SOCK_RAW`.
/// Arguments without a decoder are shown in hex (the first three).
pub fn describe(syscall: &str, args: &[u64; 6]) -> String {
    let parts: Vec<String> = match syscall {
        "socket" | "socketpair" => vec![
            format!("family={}", symbol(&["AF_"], args[0])),
            format!("type={}", socket_type(args[1])),
            format!("protocol={}", args[2]),
        ],
        "ioctl" => {
            vec![format!("fd={}", args[0] as i32), format!("request={}", symbol(&["TC", "TIOC", "FIO"], args[1]))]
        }
        "fcntl" => vec![format!("fd={}", args[0] as i32), format!("cmd={}", symbol(&["F_"], args[1]))],
        "prctl" => vec![format!("option={}", symbol(&["PR_"], args[0])), format!("arg2={:#x}", args[1])],
        "mmap" => vec![
            format!("len={:#x}", args[1]),
            format!("prot={}", flags("PROT_", args[2], &[])),
            format!("flags={}", flags("MAP_", args[3], &["MAP_ANON"])),
        ],
        "mprotect" | "pkey_mprotect" => {
            vec![format!("len={:#x}", args[1]), format!("prot={}", flags("PROT_", args[2], &[]))]
        }
        "clone" => vec![format!("flags={}", flags("CLONE_", args[0], &[]))],
        "unshare" => vec![format!("flags={}", flags("CLONE_", args[0], &[]))],
        _ => match open_flags_arg(syscall) {
            Some(i) => vec![format!("flags={}", open_flags(args[i]))],
            None => args.iter().take(3).enumerate().map(|(i, a)| format!("arg{i}={a:#x}")).collect(),
        },
    };
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_ioctls_and_options_get_their_names() {
        let s = describe("socket", &[16, 3 | libc::SOCK_CLOEXEC as u64, 0, 0, 0, 0]);
        assert_eq!(s, "family=AF_NETLINK type=SOCK_RAW|SOCK_CLOEXEC protocol=0");
        assert_eq!(describe("ioctl", &[1, 0x5401, 0, 0, 0, 0]), "fd=1 request=TCGETS");
        assert_eq!(describe("fcntl", &[3, 1030, 0, 0, 0, 0]), "fd=3 cmd=F_DUPFD_CLOEXEC");
        assert_eq!(describe("prctl", &[15, 0, 0, 0, 0, 0]), "option=PR_SET_NAME arg2=0x0");
        assert_eq!(describe("mprotect", &[0, 4096, 5, 0, 0, 0]), "len=0x1000 prot=PROT_READ|PROT_EXEC");
        let o = (libc::O_WRONLY | libc::O_CREAT | libc::O_CLOEXEC) as u64;
        assert_eq!(describe("openat", &[0, 0, o, 0, 0, 0]), "flags=O_WRONLY|O_CREAT|O_CLOEXEC");
        assert_eq!(describe("sysinfo", &[1, 2, 3, 0, 0, 0]), "arg0=0x1 arg1=0x2 arg2=0x3");
    }

    #[test]
    fn policy_values_use_names_the_parser_knows() {
        assert_eq!(value_expr("socket", 2), "AF_INET");
        assert_eq!(value_expr("ioctl", 0x5413), "TIOCGWINSZ");
        assert_eq!(value_expr("prctl", 38), "PR_SET_NO_NEW_PRIVS");
        assert_eq!(value_expr("ioctl", 0xdead_beef), "0xdeadbeef");
        for (sys, v) in [("socket", 2u64), ("ioctl", 0x5413), ("fcntl", 1030), ("prctl", 38)] {
            assert_eq!(consts::constant(&value_expr(sys, v)), Some(v));
        }
        assert_eq!(constrained_arg("ioctl"), Some(1));
        assert_eq!(path_arg("openat"), Some(1));
    }
}
