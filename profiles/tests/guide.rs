//! The profile guide (`docs/profiles.md`) against the loader: every JSON example in it loads with
//! oz's own profile check (what `oz-setup profile check` runs) without an error or a warning,
//! its key reference lists exactly the keys the schema accepts, and the examples together use
//! every key of the profile model (serialized with serde, the names that cross to the agent).

use oz_profiles::load::{check_profile, profile_keys};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn guide_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/profiles.md")
}

fn guide() -> String {
    let path = guide_path();
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The ```json blocks of a markdown text, with the line each starts on.
fn json_blocks(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match (&mut current, line.trim_end()) {
            (None, "```json") => current = Some((i + 2, String::new())),
            (Some(_), "```") => out.extend(current.take()),
            (Some((_, body)), l) => {
                body.push_str(l);
                body.push('\n');
            }
            (None, _) => {}
        }
    }
    out
}

/// The key paths under `v` (`[]` for the items of a list), each object key included.
fn key_paths(prefix: &str, v: &serde_json::Value, out: &mut BTreeSet<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, child) in map {
                let path = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                out.insert(path.clone());
                key_paths(&path, child, out);
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                key_paths(&format!("{prefix}[]"), item, out);
            }
        }
        _ => {}
    }
}

/// The keys the guide's reference table lists: the first cell of each row, in backquotes.
fn reference_keys(text: &str) -> BTreeSet<String> {
    let section = text.split("\n## Every key\n").nth(1).expect("the guide has an \"Every key\" section");
    section
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split_once("` |").map(|(k, _)| k.to_string()))
        .collect()
}

#[test]
fn every_json_example_of_the_guide_loads_and_they_use_every_key_of_the_model() {
    let text = guide();
    let blocks = json_blocks(&text);
    assert!(blocks.len() >= 10, "the guide has {} JSON examples", blocks.len());
    let dir = tempfile::tempdir().unwrap();
    let mut used = BTreeSet::new();
    for (line, body) in &blocks {
        let file = dir.path().join(format!("example-{line}.json"));
        std::fs::write(&file, body).unwrap();
        let check = check_profile(&file).unwrap_or_else(|e| panic!("docs/profiles.md:{line}: {e}"));
        let report: Vec<String> = check.in_file_order().iter().map(|(_, d)| d.to_string()).collect();
        assert!(
            check.errors.is_empty() && check.warnings.is_empty(),
            "docs/profiles.md:{line}: the example does not load cleanly:\n{}\n{body}",
            report.join("\n")
        );
        let profile = check.profile.expect("no errors, so a profile");
        key_paths("", &serde_json::to_value(&profile).unwrap(), &mut used);
    }
    let schema: BTreeSet<String> = profile_keys().into_iter().collect();
    let model_only: Vec<_> = used.difference(&schema).collect();
    assert!(model_only.is_empty(), "keys of the profile model the schema does not accept: {model_only:?}");
    let unused: Vec<_> = schema.difference(&used).collect();
    assert!(unused.is_empty(), "keys no example of docs/profiles.md gives a value: {unused:?}");
}

#[test]
fn the_guide_lists_every_key_of_the_schema_and_no_other() {
    let listed = reference_keys(&guide());
    let schema: BTreeSet<String> = profile_keys().into_iter().collect();
    let missing: Vec<_> = schema.difference(&listed).collect();
    assert!(missing.is_empty(), "docs/profiles.md's \"Every key\" table lacks {missing:?}");
    let stale: Vec<_> = listed.difference(&schema).collect();
    assert!(stale.is_empty(), "docs/profiles.md lists keys the schema does not accept: {stale:?}");
}

#[test]
fn the_key_list_is_the_schema() {
    let keys = profile_keys();
    for key in ["name", "path", "whitelist[].no_follow", "xserver.backend", "xserver.env[].value", "limits.cpu_weight"]
    {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
    let unique: BTreeSet<_> = keys.iter().collect();
    assert_eq!(unique.len(), keys.len(), "a key is listed twice: {keys:?}");
}
