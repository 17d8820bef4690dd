//! The system's font cache in a sandbox: a fontconfig program reads the host's
//! /var/cache/fontconfig (read-only) instead of rescanning every font into the sandbox's fresh
//! home at each start.

use oz_integration::env::TestEnv;
use oz_integration::workspace::strict_profile;
use serde_json::json;
use std::path::Path;

/// `fc-match` inside writes no cache of its own (the system's was found valid), and the
/// system's cache cannot be written.
#[test]
fn fontconfig_programs_use_the_system_font_cache() {
    let fc = Path::new("/usr/bin/fc-match");
    assert!(fc.exists(), "font_cache tests cannot run: no {} (fontconfig)", fc.display());
    let system = Path::new("/var/cache/fontconfig");
    let caches = std::fs::read_dir(system).map(|r| r.count()).unwrap_or(0);
    assert!(caches > 0, "font_cache tests cannot run: {} is empty (run fc-cache)", system.display());
    let mut env = TestEnv::new(json!({}));
    let p = env.profile("ozfont", strict_profile("/bin/sh", json!([]), json!([])));
    let script = "fc-match sans >/dev/null; echo fc=$?; \
                  echo own=$(ls -A \"$HOME/.cache/fontconfig\" 2>/dev/null | grep -c cache-); \
                  echo system=$(ls /var/cache/fontconfig | grep -c cache-); \
                  touch /var/cache/fontconfig/ozt 2>/dev/null && echo WROTE || echo DENIED";
    let out = env.sh(&p, script);
    assert_eq!(out.status, 0, "{}", out.all());
    assert!(out.stdout.contains("fc=0"), "fc-match failed: {}", out.all());
    assert!(out.stdout.contains("own=0"), "fontconfig rebuilt its cache in the sandbox's home: {}", out.all());
    assert!(!out.stdout.contains("system=0"), "no system font cache inside: {}", out.all());
    assert!(out.stdout.contains("DENIED"), "the system font cache is writable inside: {}", out.all());
    env.check_leftovers();
}
