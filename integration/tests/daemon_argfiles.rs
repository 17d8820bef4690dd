//! Documents opened in a sandboxed program (allow_files), through the real daemon as a real
//! user, as a double-click in a file manager does (`oz run PROFILE -- FILE`): a file in the
//! user's home is read by the program (and is not visible without allow_files); a file outside
//! the home and /media/<user> is refused with a message naming it, both for a new sandbox and
//! for a program started in a running one.

mod common_daemon;

use common_daemon::{profile, user_a, wait_until, Daemon};
use oz_integration::env::unique;
use serde_json::json;
use std::time::Duration;

const OUTSIDE: &str = "/etc/hostname";

fn refused_message() -> String {
    let a = user_a();
    format!(
        "{OUTSIDE}: not allowed: only files below {} or /media/{} can be opened in a sandbox",
        a.home.display(),
        a.name
    )
}

#[test]
fn a_document_in_the_home_is_read_and_one_outside_is_refused() {
    let d = Daemon::start(&[
        profile("ozt-doc", "/bin/cat", json!({"allow_files": true, "multi": true})),
        profile("ozt-nofiles", "/bin/cat", json!({"multi": true})),
    ]);
    let a = user_a();
    let doc = a.home.join(format!("{}.txt", unique("doc")));
    a.sh(&format!("echo ozt-document-text > {}", doc.display())).unwrap();
    let path = doc.to_str().unwrap();
    let read = d.oz(&a, &["run", "ozt-doc", "--", path]);
    let without = d.oz(&a, &["run", "ozt-nofiles", "--", path]);
    let _ = std::fs::remove_file(&doc);
    read.assert_ok("oz run ozt-doc FILE", &d);
    assert_eq!(read.stdout, "ozt-document-text\n", "{read:?}");
    // Control: without allow_files the same document is not in the sandbox.
    assert!(!without.status.success() && without.stderr.contains("No such file"), "{without:?}");

    assert!(std::path::Path::new(OUTSIDE).is_file(), "{OUTSIDE} missing on this host");
    let out = d.oz(&a, &["launch", "ozt-doc", "--", OUTSIDE]);
    out.assert_failed("oz launch with a file outside the home");
    assert!(out.stderr.contains(&refused_message()), "{:?}", out.stderr);
    // The same refusal for a relative path that leads there.
    let rel = format!("../../..{OUTSIDE}");
    let out = d.oz(&a, &["launch", "ozt-doc", "--", &rel]);
    out.assert_failed("oz launch with a relative path out of the home");
    assert!(out.stderr.contains("not allowed: only files below"), "{:?}", out.stderr);
    let gone = wait_until(Duration::from_secs(5), || d.sandboxes().is_empty());
    assert!(gone, "a refused launch left a sandbox: {:?}", d.sandboxes());
    d.finish();
}

#[test]
fn a_program_started_in_a_running_sandbox_is_refused_a_file_outside_the_home() {
    let d = Daemon::start(&[profile("ozt-docsh", "/bin/sh", json!({"allow_files": true}))]);
    let a = user_a();
    let id = d.launch(&a, "ozt-docsh", &["-c", "sleep 600"]);
    let out = d.oz(&a, &["launch", "ozt-docsh", "--", "-c", "cat \"$0\"", OUTSIDE]);
    out.assert_failed("a second launch (into the running sandbox) with a file outside the home");
    assert!(out.stderr.contains(&refused_message()), "{:?}", out.stderr);
    assert_eq!(d.sandboxes().len(), 1, "the running sandbox is left as it was");
    assert!(d.sandbox(id).is_some());
    d.finish();
}
