//! A profile's OpenVPN configuration, made safe to run as root for a sandbox: comments dropped;
//! directives that run programs, change users or directories, daemonize, log elsewhere, open a
//! management port or load plugins stripped (as the original did); file arguments relative to
//! oz.conf `openvpn_conf_dir`; `auth-user-pass` pointed at the profile's `authfile`; then
//! `client` and `auth-nocache` appended. The `remote` endpoints are returned so that the
//! sandbox's traffic on the bridge can be limited to them (the kill switch).

use std::path::Path;

/// Directives that are never passed through.
const STRIPPED: &[&str] = &[
    "up",
    "down",
    "down-pre",
    "up-restart",
    "route-up",
    "route-pre-down",
    "ipchange",
    "client-connect",
    "client-disconnect",
    "learn-address",
    "auth-user-pass-verify",
    "tls-verify",
    "script-security",
    "plugin",
    "management",
    "management-client",
    "management-query-passwords",
    "management-hold",
    "management-signal",
    "management-forget-disconnect",
    "management-external-key",
    "management-external-cert",
    "user",
    "group",
    "chroot",
    "cd",
    "setenv",
    "setenv-safe",
    "daemon",
    "inetd",
    "log",
    "log-append",
    "syslog",
    "status",
    "writepid",
    "ifconfig",
    "ifconfig-noexec",
    "route-noexec",
    "mode",
    "client",
    "server",
    "tls-server",
    "config",
    "iproute",
    "askpass",
    "auth-user-pass",
    "dev-node",
    "tmp-dir",
];

/// Directives whose first argument is a file (relative to the conf dir).
const FILE_ARGS: &[&str] = &[
    "ca",
    "cert",
    "key",
    "tls-auth",
    "tls-crypt",
    "tls-crypt-v2",
    "crl-verify",
    "dh",
    "pkcs12",
    "secret",
    "extra-certs",
];

/// A `remote` of the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub host: String,
    pub port: u16,
    /// "udp" or "tcp".
    pub proto: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sanitized {
    pub text: String,
    pub remotes: Vec<Remote>,
    /// The directives that were dropped (for the log).
    pub stripped: Vec<String>,
}

fn proto_of(p: &str) -> Option<&'static str> {
    match p {
        "udp" | "udp4" | "udp6" => Some("udp"),
        "tcp" | "tcp4" | "tcp6" | "tcp-client" | "tcp4-client" | "tcp6-client" => Some("tcp"),
        _ => None,
    }
}

/// Sanitize `text` (read from a file under `conf_dir`).
pub fn sanitize(text: &str, conf_dir: &Path, auth_file: Option<&Path>) -> Result<Sanitized, String> {
    let mut out = String::new();
    let (mut stripped, mut remotes) = (Vec::new(), Vec::new());
    let (mut default_port, mut default_proto) = (1194u16, "udp");
    let mut inline: Option<String> = None;
    for (n, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if let Some(tag) = &inline {
            out.push_str(raw);
            out.push('\n');
            if line == format!("</{tag}>") {
                inline = None;
            }
            continue;
        }
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(tag) = line.strip_prefix('<').and_then(|l| l.strip_suffix('>')) {
            if STRIPPED.contains(&tag) {
                return Err(format!("line {}: inline <{tag}> is not allowed", n + 1));
            }
            inline = Some(tag.to_string());
            out.push_str(line);
            out.push('\n');
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let name = words[0].trim_start_matches("--").to_ascii_lowercase();
        if STRIPPED.contains(&name.as_str()) || name.starts_with("management") {
            stripped.push(name);
            continue;
        }
        match name.as_str() {
            "dev" if !words.get(1).is_some_and(|d| d.starts_with("tun")) => {
                return Err(format!("line {}: only tun devices are supported", n + 1));
            }
            "port" | "rport" => {
                default_port = words.get(1).and_then(|p| p.parse().ok()).ok_or(format!("line {}: bad port", n + 1))?
            }
            "proto" => {
                default_proto =
                    words.get(1).and_then(|p| proto_of(p)).ok_or(format!("line {}: unsupported proto", n + 1))?
            }
            "remote" => {
                let host = words.get(1).ok_or(format!("line {}: remote without host", n + 1))?;
                let port = words.get(2).map(|p| p.parse::<u16>().map_err(|_| format!("line {}: bad port", n + 1)));
                let proto = words.get(3).map(|p| proto_of(p).ok_or(format!("line {}: unsupported proto", n + 1)));
                remotes.push((host.to_string(), port.transpose()?, proto.transpose()?));
            }
            _ => {}
        }
        if FILE_ARGS.contains(&name.as_str()) && words.len() >= 2 && words[1] != "[inline]" {
            let file = conf_dir.join(words[1]);
            let rest = words[2..].join(" ");
            out.push_str(&format!("{name} {} {rest}\n", file.display()).replace(" \n", "\n"));
            continue;
        }
        out.push_str(line);
        out.push('\n');
    }
    if inline.is_some() {
        return Err("an inline block is not closed".into());
    }
    if remotes.is_empty() {
        return Err("no remote".into());
    }
    out.push_str("client\nauth-nocache\n");
    if let Some(auth) = auth_file {
        out.push_str(&format!("auth-user-pass {}\n", auth.display()));
    }
    let remotes = remotes
        .into_iter()
        .map(|(host, port, proto)| Remote {
            host,
            port: port.unwrap_or(default_port),
            proto: proto.unwrap_or(default_proto).to_string(),
        })
        .collect();
    Ok(Sanitized { text: out, remotes, stripped })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dangerous_directives_are_stripped_and_files_anchored() {
        let conf = "# comment\nclient\ndev tun\nproto udp\nremote vpn.example 1195\nremote 10.1.1.1 443 tcp\n\
                    up /etc/evil.sh\n--down /x\nscript-security 2\nplugin /lib/x.so\nmanagement 0.0.0.0 7505\n\
                    user nobody\ncd /tmp\nca keys/ca.crt\nauth-user-pass creds\n<key>\nup not-a-directive\n</key>\n\
                    redirect-gateway def1\n";
        let s = sanitize(conf, Path::new("/var/lib/oz/openvpn"), Some(Path::new("/var/lib/oz/openvpn/auth"))).unwrap();
        for bad in ["up /etc", "--down", "script-security", "plugin", "management", "user nobody", "cd /tmp"] {
            assert!(!s.text.contains(bad), "{bad} survived:\n{}", s.text);
        }
        assert!(s.text.contains("ca /var/lib/oz/openvpn/keys/ca.crt\n"));
        assert!(s.text.contains("<key>\nup not-a-directive\n</key>\n"), "inline blocks are kept verbatim");
        assert!(s.text.ends_with("client\nauth-nocache\nauth-user-pass /var/lib/oz/openvpn/auth\n"));
        assert_eq!(s.text.matches("client\n").count(), 1);
        assert_eq!(
            s.remotes,
            vec![
                Remote { host: "vpn.example".into(), port: 1195, proto: "udp".into() },
                Remote { host: "10.1.1.1".into(), port: 443, proto: "tcp".into() },
            ]
        );
        assert!(s.stripped.contains(&"up".to_string()) && s.stripped.contains(&"auth-user-pass".to_string()));
    }

    #[test]
    fn bad_configs_are_errors() {
        let d = Path::new("/c");
        assert!(sanitize("dev tap\nremote h\n", d, None).unwrap_err().contains("tun"));
        assert!(sanitize("dev tun\n", d, None).unwrap_err().contains("no remote"));
        assert!(sanitize("remote h\n<ca>\nx\n", d, None).unwrap_err().contains("not closed"));
        assert!(sanitize("remote h 99999\n", d, None).unwrap_err().contains("bad port"));
        assert_eq!(sanitize("port 1300\nproto tcp-client\nremote h\n", d, None).unwrap().remotes[0].port, 1300);
    }
}
