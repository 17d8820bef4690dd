//! Generated `/etc` files: hostname, hosts, machine-id, fstab (the files the original Oz wrote
//! into every sandbox).

use super::plan::{EtcFiles, ResolvConf};
use super::RootfsError;
use oz_profiles::profile::NetType;
use oz_profiles::Profile;

/// Files in /etc that oz writes itself; etc_includes of the same name are left out.
pub const GENERATED: &[&str] = &["hostname", "hosts", "machine-id", "fstab", "resolv.conf", "mtab"];

pub fn plan_files(profile: &Profile) -> Result<EtcFiles, RootfsError> {
    Ok(EtcFiles {
        hostname: format!("{}\n", profile.name),
        hosts: hosts(&profile.name, profile.networking.hosts.as_deref()),
        machine_id: machine_id()?,
        resolv_conf: match profile.networking.net_type {
            NetType::Host => ResolvConf::Host,
            // The agent replaces it with the host's search list (it knows the host's file).
            NetType::Bridge => ResolvConf::Text("nameserver 127.0.0.1\n".into()),
            NetType::None | NetType::Empty => ResolvConf::Absent,
        },
    })
}

/// `/etc/hosts`: loopback, the sandbox's own name, the IPv6 lines, then the profile's text.
pub fn hosts(name: &str, extra: Option<&str>) -> String {
    let mut s = format!(
        "127.0.0.1\tlocalhost\n127.0.1.1\t{name} {name}.local\n::1\tlocalhost ip6-localhost ip6-loopback\n\
         fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n"
    );
    if let Some(extra) = extra.filter(|e| !e.trim().is_empty()) {
        s.push_str(extra);
        if !extra.ends_with('\n') {
            s.push('\n');
        }
    }
    s
}

/// A fresh random machine id (32 lowercase hex digits and a newline), so sandboxes cannot be
/// correlated with the host or with each other.
pub fn machine_id() -> Result<String, RootfsError> {
    let mut bytes = [0u8; 16];
    let mut filled = 0;
    while filled < bytes.len() {
        // SAFETY: getrandom writes at most len bytes into our live buffer.
        let n = unsafe { libc::getrandom(bytes[filled..].as_mut_ptr().cast(), bytes.len() - filled, 0) };
        if n < 0 {
            let errno = nix::errno::Errno::last();
            if errno == nix::errno::Errno::EINTR {
                continue;
            }
            return Err(RootfsError::Sys { what: "getrandom", errno });
        }
        filled += n as usize;
    }
    let mut s: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    s.push('\n');
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_has_name_and_profile_text() {
        let h = hosts("evince", Some("10.0.0.1 printer"));
        assert!(h.starts_with("127.0.0.1\tlocalhost\n127.0.1.1\tevince evince.local\n"));
        assert!(h.contains("::1\tlocalhost"));
        assert!(h.ends_with("10.0.0.1 printer\n"));
        assert!(!hosts("x", Some("  ")).contains("  "));
    }

    #[test]
    fn machine_ids_are_random_hex() {
        let a = machine_id().unwrap();
        let b = machine_id().unwrap();
        assert_eq!(a.len(), 33);
        assert!(a.trim_end().chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_ne!(a, b);
    }
}
