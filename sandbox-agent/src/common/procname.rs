//! Process names that tell roles apart in `ps`: `oz-agent[7:evince]`, `oz-init[7]`.

/// The kernel keeps 15 bytes of a task name (TASK_COMM_LEN - 1).
const COMM_MAX: usize = 15;

pub fn agent_name(id: u64, profile: &str) -> String {
    format!("oz-agent[{id}:{profile}]")
}

pub fn init_name(id: u64) -> String {
    format!("oz-init[{id}]")
}

/// Truncate `name` to what the kernel keeps, on a character boundary, without NULs.
fn comm_bytes(name: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(COMM_MAX + 1);
    for c in name.chars().filter(|c| *c != '\0') {
        let mut b = [0u8; 4];
        let s = c.encode_utf8(&mut b);
        if out.len() + s.len() > COMM_MAX {
            break;
        }
        out.extend_from_slice(s.as_bytes());
    }
    out.push(0);
    out
}

/// Name the calling thread (and, for the main thread, the process) with PR_SET_NAME. Best
/// effort: a name is cosmetic, so failures are ignored.
pub fn set(name: &str) {
    let bytes = comm_bytes(name);
    // SAFETY: PR_SET_NAME reads a NUL-terminated string of at most 16 bytes; `bytes` is one
    // and lives across the call.
    unsafe {
        libc::prctl(libc::PR_SET_NAME, bytes.as_ptr() as libc::c_ulong, 0, 0, 0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_truncation() {
        assert_eq!(agent_name(7, "evince"), "oz-agent[7:evince]");
        assert_eq!(init_name(7), "oz-init[7]");
        assert_eq!(comm_bytes("oz-agent[7:evince]"), b"oz-agent[7:evin\0");
        assert_eq!(comm_bytes("oz-init[7]"), b"oz-init[7]\0");
        // multibyte characters are never split
        assert_eq!(comm_bytes("oz-agent[7:ééé]"), "oz-agent[7:éé\0".as_bytes());
    }
}
