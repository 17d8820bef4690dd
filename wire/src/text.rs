//! Making untrusted text (program output in log records) safe to show on a terminal or to
//! store as one line of a text file.

use std::borrow::Cow;
use std::fmt::Write as _;

/// `s` with terminal control characters escaped: ESC as `\e`, CR and LF as `\r` and `\n`
/// (so one record stays one line), other C0 controls and DEL as `\xNN`, C1 controls as
/// `\u{NN}`. Tabs and all printable text (backslashes included) are kept as they are.
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            c if !needs_escape(c) => out.push(c),
            '\x1b' => out.push_str("\\e"),
            '\r' => out.push_str("\\r"),
            '\n' => out.push_str("\\n"),
            c if (c as u32) < 0x80 => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    Cow::Owned(out)
}

fn needs_escape(c: char) -> bool {
    c != '\t' && c.is_control()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_escaped_text_is_kept() {
        assert!(matches!(escape_controls("plain\ttext \\ é"), Cow::Borrowed(_)));
        assert_eq!(escape_controls("\x1b[2J\x1b]0;title\x07"), "\\e[2J\\e]0;title\\x07");
        assert_eq!(escape_controls("a\rb\nc\x7f\u{9b}31m"), "a\\rb\\nc\\x7f\\u{9b}31m");
        assert_eq!(escape_controls("\0"), "\\x00");
    }
}
