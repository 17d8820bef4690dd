//! An Xauthority file holding one MIT-MAGIC-COOKIE-1 for any display (family "wild", empty
//! address and display number), so that only holders of the file may connect to a server
//! started with `-auth FILE`. Format: per entry, big-endian u16 family, then address, display
//! number, auth name and auth data, each as a big-endian u16 length and the bytes.

/// The protocol name of the cookie.
pub const MIT_MAGIC_COOKIE: &str = "MIT-MAGIC-COOKIE-1";
/// `FamilyWild`: the entry matches any address.
const FAMILY_WILD: u16 = 0xffff;

/// A fresh random 16-byte cookie.
pub fn new_cookie() -> std::io::Result<[u8; 16]> {
    let mut c = [0u8; 16];
    let mut filled = 0;
    while filled < c.len() {
        // SAFETY: getrandom writes at most the given length into the live buffer.
        let n = unsafe { libc::getrandom(c[filled..].as_mut_ptr().cast(), c.len() - filled, 0) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += n as usize;
    }
    Ok(c)
}

/// The Xauthority file's bytes for `cookie`.
pub fn file_bytes(cookie: &[u8]) -> Vec<u8> {
    let mut out = FAMILY_WILD.to_be_bytes().to_vec();
    for field in [&b""[..], &b""[..], MIT_MAGIC_COOKIE.as_bytes(), cookie] {
        out.extend_from_slice(&(field.len() as u16).to_be_bytes());
        out.extend_from_slice(field);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_wild_entry() {
        let b = file_bytes(&[7u8; 16]);
        assert_eq!(&b[..6], &[0xff, 0xff, 0, 0, 0, 0]);
        assert_eq!(&b[6..8], &[0, 18]);
        assert_eq!(&b[8..26], MIT_MAGIC_COOKIE.as_bytes());
        assert_eq!(&b[26..28], &[0, 16]);
        assert_eq!(&b[28..], &[7u8; 16]);
    }

    #[test]
    fn cookies_differ() {
        assert_ne!(new_cookie().unwrap(), new_cookie().unwrap());
    }
}
