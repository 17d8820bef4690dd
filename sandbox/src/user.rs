//! The sandbox user, resolved by the agent itself from the system databases (never from the
//! caller's word).

use std::path::PathBuf;

/// The user a sandbox runs as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserInfo {
    pub uid: u32,
    /// Primary gid.
    pub gid: u32,
    pub name: String,
    pub home: PathBuf,
    pub shell: PathBuf,
    /// Every group the user really belongs to (primary and supplementary), as (name, gid).
    pub memberships: Vec<(String, u32)>,
}

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("uid {0}: no such user")]
    NoSuchUser(u32),
    #[error("uid {uid}: looking up user: {source}")]
    Lookup { uid: u32, source: nix::Error },
    #[error("user {user}: looking up groups: {source}")]
    Groups { uid: u32, user: String, source: nix::Error },
}

impl UserError {
    /// The uid the error is about.
    pub fn uid(&self) -> u32 {
        match self {
            UserError::NoSuchUser(uid) | UserError::Lookup { uid, .. } | UserError::Groups { uid, .. } => *uid,
        }
    }

    /// The errno of the failed lookup, if one failed.
    pub fn errno(&self) -> Option<i32> {
        match self {
            UserError::NoSuchUser(_) => None,
            UserError::Lookup { source, .. } | UserError::Groups { source, .. } => Some(*source as i32),
        }
    }
}

impl UserInfo {
    /// Resolve `uid` from the passwd and group databases.
    pub fn resolve(uid: u32) -> Result<UserInfo, UserError> {
        use nix::unistd::{getgrouplist, Group, Uid, User};
        let user = User::from_uid(Uid::from_raw(uid))
            .map_err(|source| UserError::Lookup { uid, source })?
            .ok_or(UserError::NoSuchUser(uid))?;
        let cname = std::ffi::CString::new(user.name.clone()).map_err(|_| UserError::NoSuchUser(uid))?;
        let gids = getgrouplist(&cname, user.gid).map_err(|source| UserError::Groups {
            uid,
            user: user.name.clone(),
            source,
        })?;
        let mut memberships = Vec::new();
        for gid in gids {
            let name = Group::from_gid(gid).ok().flatten().map(|g| g.name).unwrap_or_else(|| gid.as_raw().to_string());
            memberships.push((name, gid.as_raw()));
        }
        Ok(UserInfo { uid, gid: user.gid.as_raw(), name: user.name, home: user.dir, shell: user.shell, memberships })
    }

    /// Supplementary groups for the sandbox: (oz.conf default_groups + profile allowed_groups)
    /// intersected with the user's real memberships; the primary gid is not included.
    pub fn sandbox_groups(&self, default_groups: &[String], allowed_groups: &[String]) -> Vec<u32> {
        let mut out: Vec<u32> = self
            .memberships
            .iter()
            .filter(|(name, gid)| {
                *gid != self.gid
                    && (default_groups.iter().any(|g| g == name) || allowed_groups.iter().any(|g| g == name))
            })
            .map(|(_, gid)| *gid)
            .collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sandbox_groups_intersects_with_memberships() {
        let u = UserInfo {
            uid: 1000,
            gid: 1000,
            name: "u".into(),
            home: "/home/u".into(),
            shell: "/bin/sh".into(),
            memberships: vec![("u".into(), 1000), ("audio".into(), 29), ("disk".into(), 6), ("debian-tor".into(), 120)],
        };
        let g = u.sandbox_groups(&["audio".into(), "video".into()], &["debian-tor".into()]);
        assert_eq!(g, vec![29, 120]);
        assert!(u.sandbox_groups(&[], &[]).is_empty());
    }

    #[test]
    fn resolves_root() {
        let r = UserInfo::resolve(0).unwrap();
        assert_eq!(r.name, "root");
        assert_eq!(r.gid, 0);
    }
}
