//! The pure(-ish) planning pass: everything `build` will do, decided in the agent before clone.
//! It may stat and open host paths (with the user's credentials for user paths); it never mounts
//! or writes.

use super::vars::Vars;
use super::{blacklist, etc, whitelist, RootfsError};
use crate::user::UserInfo;
use oz_profiles::profile::AudioMode;
use oz_wire::spec::LaunchSpec;
use std::path::{Path, PathBuf};

/// Host directories shared read-only (or recreated as symlinks) in every sandbox. The system's
/// font cache (`fc-cache` of the fonts in /usr, which the sandbox sees anyway) spares every
/// fontconfig program a rescan of all fonts into the sandbox's fresh home at each start (a few
/// hundred milliseconds before its first window).
pub const SYSTEM_DIRS: &[&str] =
    &["/usr", "/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32", "/var/cache/fontconfig"];

/// Everything `build` needs; built by [`plan`].
#[derive(Debug, Clone)]
pub struct RootfsPlan {
    /// Profile name: hostname and `/run/oz-sandbox` content.
    pub name: String,
    pub user: UserInfo,
    /// Where the staging tmpfs is mounted (in the sandbox's mount namespace only).
    pub staging: PathBuf,
    /// `/usr`, `/bin`, ... then the etc_includes, in order.
    pub system: Vec<SystemEntry>,
    /// Whitelist binds (profile items, extras, shared folders, argument files), parents first.
    pub binds: Vec<BindItem>,
    /// Symlinks to create inside (whitelist `symlink` keys, shared folders).
    pub links: Vec<LinkItem>,
    /// Sandbox paths to hide, resolved inside the new root at build time.
    pub blacklist: Vec<PathBuf>,
    pub dev: DevMode,
    /// Mount /proc and /sys (false with `nosysproc`).
    pub sysproc: bool,
    pub etc: EtcFiles,
    /// Things skipped or adjusted during planning, for the log.
    pub warnings: Vec<String>,
}

/// A host path shared with the sandbox at the same place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SystemEntry {
    pub path: PathBuf,
    pub kind: SystemKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemKind {
    /// Read-only, nosuid, nodev recursive bind.
    Bind,
    /// The host path is a symlink: recreated with this text (Debian's `/bin -> usr/bin`).
    Symlink(PathBuf),
}

/// Where a whitelist source lives, which decides how it is opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// Below a tree the user controls (home, `/run/user/<uid>`): opened beneath `root`, never
    /// leaving it, with the user's credentials.
    User { root: PathBuf, rel: PathBuf },
    /// Elsewhere: resolved from `/` with the user's credentials.
    Host(PathBuf),
}

impl Source {
    pub fn path(&self) -> PathBuf {
        match self {
            Source::User { root, rel } => root.join(rel),
            Source::Host(p) => p.clone(),
        }
    }
}

/// One whitelist bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindItem {
    pub source: Source,
    /// Path inside the sandbox.
    pub target: PathBuf,
    pub read_only: bool,
    /// Create the source directory (as the user) when missing; only for user sources.
    pub can_create: bool,
    pub ignore: bool,
    pub force: bool,
    pub no_follow: bool,
    pub allow_suid: bool,
}

impl BindItem {
    /// MOUNT_ATTR_* flags of the bind: always nodev; nosuid unless allow_suid; read-only or
    /// noexec (allow_suid implies read-only).
    pub fn attrs(&self) -> u64 {
        use super::bind::{ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY};
        let mut a = ATTR_NODEV;
        if !self.allow_suid {
            a |= ATTR_NOSUID;
        }
        if self.read_only || self.allow_suid {
            a |= ATTR_RDONLY;
        } else {
            a |= ATTR_NOEXEC;
        }
        a
    }
}

/// A symlink created inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinkItem {
    pub link: PathBuf,
    pub target: PathBuf,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DevMode {
    /// A tmpfs with null, zero, full, random, urandom, tty, a new devpts and shm.
    Minimal,
    /// The host's devtmpfs (oz.conf `use_full_dev`), plus a new devpts and shm.
    Full,
}

/// Generated files in `/etc`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcFiles {
    pub hostname: String,
    pub hosts: String,
    pub machine_id: String,
    pub resolv_conf: ResolvConf,
}

/// What the sandbox's `/etc/resolv.conf` is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvConf {
    /// None (no network to resolve on).
    Absent,
    /// The host's, bound read-only (host networking).
    Host,
    /// This text (bridge networking: the sandbox's own forwarder).
    Text(String),
}

/// Plan the root filesystem of `spec` for `user`, with `extra_files` (argument files, absolute
/// host paths) bound read-write at the same place.
pub fn plan(spec: &LaunchSpec, user: &UserInfo, extra_files: &[PathBuf]) -> Result<RootfsPlan, RootfsError> {
    let (mut plan, blacklist) = plan_deferred(spec, user, extra_files)?;
    let (list, warnings) = blacklist.plan();
    plan.blacklist = list;
    plan.warnings.extend(warnings);
    Ok(plan)
}

/// As [`plan`], with the blacklist left empty and returned to be planned later (see
/// [`super::build_with`]).
pub fn plan_deferred(
    spec: &LaunchSpec,
    user: &UserInfo,
    extra_files: &[PathBuf],
) -> Result<(RootfsPlan, BlacklistPlanner), RootfsError> {
    let profile = &spec.profile;
    let staging = &spec.config.sandbox_path;
    if !staging.is_absolute()
        || normalize(staging) == Path::new("/")
        || staging.components().any(|c| c == std::path::Component::ParentDir)
    {
        return Err(RootfsError::Invalid {
            item: format!("sandbox_path {}", staging.display()),
            reason: "must be absolute, without '..', and not /".into(),
        });
    }
    let vars = Vars::new(user, &profile.name)?;
    let mut warnings = Vec::new();
    let etc = etc::plan_files(profile)?;
    let system = plan_system(&spec.config.etc_includes, &mut warnings);
    let mut wl = whitelist::Planner::new(user, &vars);
    if profile.xserver.audio_mode == AudioMode::Pulseaudio {
        wl.add_all(&pulseaudio_items())?;
    }
    wl.add_shared_folders(&profile.name, &profile.shared_folders)?;
    wl.add_all(&profile.whitelist)?;
    for f in extra_files {
        wl.add_argument_file(f)?;
    }
    let (binds, links, wl_warnings) = wl.finish();
    warnings.extend(wl_warnings);
    let later = BlacklistPlanner { vars, items: profile.blacklist.clone(), nodefaults: profile.nodefaults };
    let plan = RootfsPlan {
        name: profile.name.clone(),
        user: user.clone(),
        staging: spec.config.sandbox_path.clone(),
        system,
        binds,
        links,
        dev: if spec.config.use_full_dev { DevMode::Full } else { DevMode::Minimal },
        sysproc: !profile.nosysproc,
        etc,
        warnings,
        blacklist: Vec::new(),
    };
    Ok((plan, later))
}

/// The blacklist's expansion (listing search directories for `${PATH}` globs: the costly part of
/// planning), split off [`plan_deferred`] so the agent can run it while the init builds the rest.
pub struct BlacklistPlanner {
    vars: Vars,
    items: Vec<oz_profiles::profile::BlacklistItem>,
    nodefaults: bool,
}

impl BlacklistPlanner {
    /// The sandbox paths to hide, and warnings for entries that could not be expanded.
    pub fn plan(&self) -> (Vec<PathBuf>, Vec<String>) {
        let mut warnings = Vec::new();
        let list = blacklist::plan(&self.vars, &self.items, self.nodefaults, &mut warnings);
        (list, warnings)
    }
}

/// The extra whitelist for `audio_mode: pulseaudio`: the PulseAudio socket, cookie and shared
/// memory segments, the same items the original Oz added.
fn pulseaudio_items() -> Vec<oz_profiles::profile::WhitelistItem> {
    use oz_profiles::profile::WhitelistItem;
    vec![
        WhitelistItem { path: "/run/user/${UID}/pulse/native".into(), ignore: true, ..Default::default() },
        WhitelistItem {
            path: "${HOME}/.config/pulse/cookie".into(),
            read_only: true,
            ignore: true,
            ..Default::default()
        },
        WhitelistItem { path: "/dev/shm/pulse-shm-*".into(), ignore: true, ..Default::default() },
    ]
}

/// System directories and etc_includes: bind what exists, recreate symlinks, skip the missing
/// quietly, and leave out includes that collide with generated /etc files.
fn plan_system(etc_includes: &[PathBuf], warnings: &mut Vec<String>) -> Vec<SystemEntry> {
    let mut out: Vec<SystemEntry> = SYSTEM_DIRS.iter().filter_map(|p| system_entry(Path::new(p))).collect();
    for inc in etc_includes {
        let path = normalize(inc);
        if !path.starts_with("/etc/") {
            warnings.push(format!("etc_includes {}: not below /etc, skipped", inc.display()));
            continue;
        }
        if etc::GENERATED.iter().any(|g| path == Path::new("/etc").join(g)) {
            warnings.push(format!("etc_includes {}: generated by oz, skipped", inc.display()));
            continue;
        }
        if out.iter().any(|e| e.path == path) {
            continue;
        }
        out.extend(system_entry(&path));
    }
    out
}

fn system_entry(path: &Path) -> Option<SystemEntry> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    let kind = if meta.file_type().is_symlink() {
        SystemKind::Symlink(std::fs::read_link(path).ok()?)
    } else {
        SystemKind::Bind
    };
    Some(SystemEntry { path: path.to_path_buf(), kind })
}

/// Drop `.` components and trailing slashes (`/etc/fonts/` -> `/etc/fonts`).
pub fn normalize(p: &Path) -> PathBuf {
    p.components().filter(|c| !matches!(c, std::path::Component::CurDir)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_dirs_follow_the_host_layout() {
        let mut w = Vec::new();
        let s = plan_system(&[], &mut w);
        let usr = s.iter().find(|e| e.path == Path::new("/usr")).unwrap();
        assert_eq!(usr.kind, SystemKind::Bind);
        // Debian 12 (this machine): /bin is a symlink to usr/bin.
        let bin = s.iter().find(|e| e.path == Path::new("/bin")).unwrap();
        assert_eq!(bin.kind, SystemKind::Symlink("usr/bin".into()));
        assert!(s.iter().all(|e| e.path != Path::new("/libx32") || Path::new("/libx32").exists()));
        let fonts = Path::new("/var/cache/fontconfig");
        assert_eq!(s.iter().any(|e| e.path == fonts && e.kind == SystemKind::Bind), fonts.is_dir());
    }

    #[test]
    fn etc_includes_skip_missing_generated_and_outside() {
        let mut w = Vec::new();
        let inc: Vec<PathBuf> = ["/etc/passwd", "/etc/fonts/", "/etc/does-not-exist", "/etc/hosts", "/var/lib/x"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let s = plan_system(&inc, &mut w);
        assert!(s.iter().any(|e| e.path == Path::new("/etc/passwd") && e.kind == SystemKind::Bind));
        assert!(!s.iter().any(|e| e.path == Path::new("/etc/does-not-exist")));
        assert!(!s.iter().any(|e| e.path == Path::new("/etc/hosts")));
        assert!(!s.iter().any(|e| e.path.starts_with("/var/lib")));
        assert_eq!(w.len(), 2, "{w:?}");
        if Path::new("/etc/fonts").exists() {
            assert!(s.iter().any(|e| e.path == Path::new("/etc/fonts")));
        }
    }

    #[test]
    fn bind_attrs_per_flag_combination() {
        use crate::rootfs::bind::{ATTR_NODEV, ATTR_NOEXEC, ATTR_NOSUID, ATTR_RDONLY};
        let base = BindItem {
            source: Source::Host("/x".into()),
            target: "/x".into(),
            read_only: false,
            can_create: false,
            ignore: false,
            force: false,
            no_follow: false,
            allow_suid: false,
        };
        assert_eq!(base.attrs(), ATTR_NODEV | ATTR_NOSUID | ATTR_NOEXEC);
        let ro = BindItem { read_only: true, ..base.clone() };
        assert_eq!(ro.attrs(), ATTR_NODEV | ATTR_NOSUID | ATTR_RDONLY);
        let suid = BindItem { allow_suid: true, ..base.clone() };
        assert_eq!(suid.attrs(), ATTR_NODEV | ATTR_RDONLY);
    }
}
