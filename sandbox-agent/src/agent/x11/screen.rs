//! The size of the user's desktop, for the in-sandbox Xvfb of the `xpra` backend. Xpra resizes
//! its virtual screen to the client's desktop when the client attaches, and a size the Xvfb does
//! not have yet costs a fixed half second of waiting; an Xvfb started at the desktop's size
//! needs no resize. The size is read by `xwininfo -root` run as a host-side helper of the user
//! (never by the agent itself connecting to the user's X server).

use super::hostproc::{self, HostCommand};
use oz_sandbox::user::UserInfo;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// How long the query may take before the default size is used.
const LIMIT: Duration = Duration::from_secs(2);
/// The screen when the desktop's size is unknown.
pub const DEFAULT: (u32, u32) = (1920, 1080);
/// Sizes outside this range are not believed.
const MAX_SIDE: u32 = 16384;

/// The desktop size from `xwininfo -root` output (`Width: 1280`, `Height: 1024`).
pub fn parse_size(text: &str) -> Option<(u32, u32)> {
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.trim().strip_prefix(key)?.trim().parse::<u32>().ok())
            .filter(|v| (1..=MAX_SIDE).contains(v))
    };
    Some((value("Width:")?, value("Height:")?))
}

/// The size of `display` as `user` sees it, or [`DEFAULT`].
pub fn desktop_size(user: &UserInfo, display: &str, xauthority: Option<&str>, etc_prefix: &Path) -> (u32, u32) {
    query(user, display, xauthority, etc_prefix).unwrap_or(DEFAULT)
}

fn query(user: &UserInfo, display: &str, xauthority: Option<&str>, etc_prefix: &Path) -> Option<(u32, u32)> {
    let exe = hostproc::find_program("xwininfo")?;
    let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).ok()?;
    let cmd = HostCommand {
        exe,
        args: vec!["-root".into()],
        env: hostproc::base_env(user, display, xauthority),
        output: Some(w),
        fd3: None,
    };
    let mut child = hostproc::spawn(user, cmd, hostproc::default_filter(etc_prefix)).ok()?;
    let until = Instant::now() + LIMIT;
    let status = loop {
        if let Some(s) = hostproc::try_reap(&mut child) {
            break Some(s);
        }
        if Instant::now() >= until {
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    if status.is_none() {
        hostproc::stop(&mut child, Duration::from_millis(100));
        return None;
    }
    // The helper has exited: its output is complete (at most a pipe's worth is read).
    let mut text = String::new();
    std::fs::File::from(r).take(64 * 1024).read_to_string(&mut text).ok()?;
    parse_size(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_is_read_from_xwininfo_output() {
        let out = "\nxwininfo: Window id: 0x3a5 (the root window) (has no name)\n\n  Absolute upper-left X:  0\n  \
                   Width: 1280\n  Height: 1024\n  Depth: 24\n";
        assert_eq!(parse_size(out), Some((1280, 1024)));
        assert_eq!(parse_size("Width: 1280\n"), None);
        assert_eq!(parse_size("Width: 0\nHeight: 10\n"), None);
        assert_eq!(parse_size("Width: 99999\nHeight: 10\n"), None);
        assert_eq!(parse_size("xwininfo: error: unable to open display\n"), None);
    }
}
