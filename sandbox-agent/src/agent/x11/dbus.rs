//! `enable_notifications`: a private D-Bus session bus in the sandbox. The init starts
//! `dbus-daemon` as the user (a helper of the sandbox, the default seccomp blacklist) with a
//! configuration oz writes: one listening socket in the sandbox's own `/tmp` (never on the host,
//! never abstract), EXTERNAL authentication, no service activation. The program and the Xpra
//! server get its address; the server owns `org.freedesktop.Notifications` on it and forwards
//! each notification to the host-side client, which shows it on the user's session bus. Nothing
//! of the user's session bus is reachable from inside.

/// The bus socket inside the sandbox (its /tmp is a private tmpfs).
pub const SOCKET: &str = "/tmp/.oz-session-bus";
/// The in-sandbox executable.
pub const DBUS_DAEMON: &str = "/usr/bin/dbus-daemon";
/// The configuration's name in the per-sandbox directory.
pub const CONF: &str = "session-bus.conf";

/// The bus's address, for `DBUS_SESSION_BUS_ADDRESS`.
pub fn address() -> String {
    format!("unix:path={SOCKET}")
}

/// The whole configuration of the bus: no `<include>` of the system's session.conf, no service
/// directories (nothing is activated), no system-wide policy.
pub fn conf_text() -> String {
    format!(
        "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\"\n \
         \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
         <!-- written by oz: the sandbox's private session bus -->\n\
         <busconfig>\n  <type>session</type>\n  <listen>unix:path={SOCKET}</listen>\n  <auth>EXTERNAL</auth>\n  \
         <policy context=\"default\">\n    <allow send_destination=\"*\" eavesdrop=\"true\"/>\n    \
         <allow eavesdrop=\"true\"/>\n    <allow own=\"*\"/>\n  </policy>\n</busconfig>\n"
    )
}

/// The daemon's argv inside the sandbox (`dir` is the per-sandbox directory there); it prints
/// its address on stdout once it accepts connections.
pub fn argv(dir: &str) -> Vec<String> {
    vec![
        DBUS_DAEMON.to_string(),
        "--nofork".into(),
        "--nopidfile".into(),
        "--nosyslog".into(),
        format!("--config-file={dir}/{CONF}"),
        "--print-address=1".into(),
    ]
}

/// The line the daemon prints once ready.
pub const READY: &str = "unix:path=";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bus_listens_in_the_sandbox_only_and_activates_nothing() {
        let conf = conf_text();
        assert!(conf.contains(&format!("<listen>unix:path={SOCKET}</listen>")), "{conf}");
        assert_eq!(conf.matches("<listen>").count(), 1, "{conf}");
        for absent in ["abstract", "tcp:", "servicedir", "<include", "/run/user"] {
            assert!(!conf.contains(absent), "{absent} in\n{conf}");
        }
        assert!(SOCKET.starts_with("/tmp/"));
        let argv = argv("/run/oz-x11");
        assert!(argv.contains(&"--config-file=/run/oz-x11/session-bus.conf".to_string()), "{argv:?}");
        assert!(argv.contains(&"--nofork".to_string()));
        assert_eq!(address(), format!("unix:path={SOCKET}"));
    }
}
