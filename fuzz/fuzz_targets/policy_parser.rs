#![no_main]
//! The seccomp policy parser never panics or hangs; what it accepts compiles or fails cleanly.

use libfuzzer_sys::fuzz_target;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(policy) = oz_profiles::seccomp::parse_policy(text, Path::new("/fuzz/policy.seccomp")) {
        let _ = oz_sandbox::seccomp::compile(&policy, oz_profiles::profile::SeccompMode::Whitelist, true);
    }
});
