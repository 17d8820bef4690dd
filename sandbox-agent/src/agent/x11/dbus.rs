//! The sandbox's private D-Bus session bus (every `xpra` sandbox). The init starts
//! `dbus-daemon` as the user (a helper of the sandbox, the default seccomp blacklist) with a
//! configuration oz writes: one listening socket in the sandbox's own `/tmp` (never on the host,
//! never abstract), EXTERNAL authentication, no service directories. The program and the Xpra
//! server get its address; nothing of the user's session bus is reachable from inside.
//!
//! Nothing is activated on it: a GTK program's calls to the desktop portal
//! (`org.freedesktop.portal.Desktop`), the accessibility bus (`org.a11y.Bus`) or its own
//! services (`org.gnome.evince.Daemon`) are answered at once with `ServiceUnknown`, where a bus
//! with the system's service directories would start the portals inside the sandbox, which
//! cannot place the program and leave it waiting. With `enable_notifications` the server owns
//! `org.freedesktop.Notifications` on it and forwards each notification to the host-side
//! client, which shows it on the user's session bus.

use oz_profiles::profile::EnvVar;

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

/// The program's bus variables, added to the profile's `environment`: the private bus's
/// address, and `NO_AT_BRIDGE=1` (GTK does not look for an accessibility bus there is none of)
/// unless the profile sets it.
pub fn give_program(environment: &mut Vec<EnvVar>) {
    environment.push(EnvVar { name: "DBUS_SESSION_BUS_ADDRESS".into(), value: Some(address()) });
    if !environment.iter().any(|e| e.name == "NO_AT_BRIDGE") {
        environment.push(EnvVar { name: "NO_AT_BRIDGE".into(), value: Some("1".into()) });
    }
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

    #[test]
    fn the_program_gets_the_private_bus_and_keeps_its_own_accessibility_choice() {
        let caller_bus = EnvVar { name: "DBUS_SESSION_BUS_ADDRESS".into(), value: None };
        let mut env = vec![caller_bus];
        give_program(&mut env);
        let last = |env: &[EnvVar], name: &str| env.iter().rev().find(|e| e.name == name).and_then(|e| e.value.clone());
        assert_eq!(last(&env, "DBUS_SESSION_BUS_ADDRESS"), Some(address()), "the later entry wins");
        assert_eq!(last(&env, "NO_AT_BRIDGE").as_deref(), Some("1"));
        let mut env = vec![EnvVar { name: "NO_AT_BRIDGE".into(), value: Some("0".into()) }];
        give_program(&mut env);
        assert_eq!(last(&env, "NO_AT_BRIDGE").as_deref(), Some("0"), "{env:?}");
    }
}
