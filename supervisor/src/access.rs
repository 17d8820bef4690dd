//! Access-control decisions, pure functions of the caller's uid (from SO_PEERCRED) and the
//! owner of what is asked for. Root sees all; everyone else sees their own sandboxes only.

use oz_wire::DaemonError;

pub const ROOT: u32 = 0;

/// May `caller` see (list, read logs of) a sandbox owned by `owner`?
pub fn can_see(caller: u32, owner: u32) -> bool {
    caller == ROOT || caller == owner
}

/// May `caller` act on (kill, shell into, mount into) a sandbox owned by `owner`?
pub fn check_owner(caller: u32, owner: u32, action: &str, id: u64) -> Result<(), DaemonError> {
    if can_see(caller, owner) {
        return Ok(());
    }
    Err(DaemonError::PermissionDenied {
        action: action.to_string(),
        detail: format!("sandbox {id} belongs to another user"),
    })
}

/// Programs never run as root in a sandbox (as the original).
pub fn check_launch(caller: u32) -> Result<(), DaemonError> {
    if caller == ROOT {
        return Err(DaemonError::PermissionDenied {
            action: "launch".into(),
            detail: "root may not launch sandboxed programs; launch as the desktop user".into(),
        });
    }
    Ok(())
}

/// The uid a shell runs as: the caller's; for root only when oz.conf allows root shells.
pub fn shell_uid(caller: u32, allow_root_shell: bool) -> Result<u32, DaemonError> {
    if caller == ROOT && !allow_root_shell {
        return Err(DaemonError::PermissionDenied {
            action: "shell".into(),
            detail: "root shells are disabled (oz.conf allow_root_shell)".into(),
        });
    }
    Ok(caller)
}

/// May `caller` read a log record? `owner` is the uid of the record's sandbox, None for
/// daemon-wide records (root only).
pub fn can_read_log(caller: u32, owner: Option<u32>) -> bool {
    caller == ROOT || owner == Some(caller)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn users_see_only_their_own_sandboxes_root_sees_all() {
        assert!(can_see(1000, 1000));
        assert!(!can_see(1001, 1000));
        assert!(can_see(ROOT, 1000));
    }

    #[test]
    fn acting_on_anothers_sandbox_is_denied_with_context() {
        assert!(check_owner(1000, 1000, "kill", 3).is_ok());
        assert!(check_owner(ROOT, 1000, "kill", 3).is_ok());
        let err = check_owner(1001, 1000, "kill", 3).unwrap_err();
        assert_eq!(err.to_string(), "permission denied: kill: sandbox 3 belongs to another user");
    }

    #[test]
    fn root_may_not_launch() {
        assert!(check_launch(1000).is_ok());
        assert!(matches!(check_launch(ROOT), Err(DaemonError::PermissionDenied { .. })));
    }

    #[test]
    fn root_shell_needs_the_config_switch() {
        assert_eq!(shell_uid(1000, false).unwrap(), 1000);
        assert!(shell_uid(ROOT, false).is_err());
        assert_eq!(shell_uid(ROOT, true).unwrap(), ROOT);
    }

    #[test]
    fn daemon_logs_are_root_only() {
        assert!(can_read_log(ROOT, None));
        assert!(!can_read_log(1000, None));
        assert!(can_read_log(1000, Some(1000)));
        assert!(!can_read_log(1000, Some(1001)));
        assert!(can_read_log(ROOT, Some(1001)));
    }
}
