//! The original Oz profile corpus must keep loading, and every profile must round-trip.

use oz_profiles::load::{load_profile, parse_profile, to_json};
use std::path::{Path, PathBuf};

/// `shared/compat/oz-profiles` beside the repository (CI keeps a copy of shared/ there).
fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/compat/oz-profiles")
}

fn corpus_files() -> Vec<PathBuf> {
    let dir = corpus_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read corpus {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn all_22_profiles_load_without_errors() {
    let files = corpus_files();
    assert_eq!(files.len(), 22, "corpus should hold 22 profiles");
    let failures: Vec<String> = files.iter().filter_map(|f| load_profile(f).err().map(|e| e.to_string())).collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_profile_round_trips() {
    for file in corpus_files() {
        let loaded = load_profile(&file).unwrap().value;
        let json = to_json(&loaded);
        let back = parse_profile(json.as_bytes(), &file)
            .unwrap_or_else(|e| panic!("{}: reload failed: {e}\n{json}", file.display()))
            .value;
        assert_eq!(back, loaded, "{}", file.display());
    }
}

#[test]
fn corpus_facts_survive_loading() {
    let load = |n: &str| load_profile(&corpus_dir().join(n)).unwrap();
    let chrome = load("google-chrome.json").value;
    assert_eq!(chrome.name, "google-chrome-stable");
    assert_eq!(chrome.networking.bridge.as_deref(), Some("clear"));
    let chromium = load("chromium.json");
    assert!(chromium.warnings.iter().any(|w| w.message.contains("did you mean xserver.enable_notifications")));
    let firefox = load("firefox.json");
    assert_eq!(firefox.value.whitelist.len(), 4, "the _path item is skipped");
    let tor = load("torbrowser-launcher.json").value;
    assert_eq!(tor.auto_shutdown, oz_profiles::profile::AutoShutdown::No);
    assert_eq!(tor.watchdog, ["start-tor-browser", "firefox"]);
    assert_eq!(tor.networking.sockets.len(), 2);
    let libre = load("libreoffice.json").value;
    assert_eq!(libre.paths.len(), 13);
}
