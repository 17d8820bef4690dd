//! Typed decoding of a positioned JSON tree, shared by the profile and oz.conf loaders.
//!
//! The decoder never stops at the first problem: every wrong value is recorded as an error
//! diagnostic (file:line:col, key path) and decoding carries on with the default, so one run
//! reports everything. Keys match case-insensitively (as Go's encoding/json did); keys starting
//! with `_` are the corpus' way of commenting a key out and are ignored quietly; any other unknown
//! key is a warning with a "did you mean" suggestion when one is close.

use super::Diagnostic;
use crate::json::{Node, Pos, Value};
use std::collections::HashMap;
use std::path::Path;

/// Collects diagnostics and key positions while decoding one file.
pub(crate) struct Decoder<'f> {
    pub file: &'f Path,
    pub errors: Vec<Diagnostic>,
    pub warnings: Vec<Diagnostic>,
    /// Key path -> position of its value, for positioning later (validation) findings.
    pub positions: HashMap<String, Pos>,
    /// List key path -> JSON index of each decoded item (items can be skipped).
    pub index_map: HashMap<String, Vec<usize>>,
}

/// The known members of one JSON object, after case folding.
pub(crate) struct Fields<'n> {
    pub path: String,
    pub pos: Pos,
    map: HashMap<&'static str, &'n Node>,
}

impl<'n> Fields<'n> {
    /// The member's value; JSON null counts as absent (Go left the field at its default).
    pub fn get(&self, key: &str) -> Option<&'n Node> {
        self.map.get(key).copied().filter(|n| n.value != Value::Null)
    }

    pub fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }
}

/// `a.b` or `b` when the parent path is empty.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Translate a key path over decoded lists (`whitelist[3]`) into the JSON key path, where
/// skipped items still count (`whitelist[4]`).
pub(crate) fn json_key_path(index_map: &HashMap<String, Vec<usize>>, key_path: &str) -> String {
    let mut out = String::new();
    let mut rest = key_path;
    while let Some(open) = rest.find('[') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find(']').map(|c| open + c) else {
            break;
        };
        let idx = &rest[open + 1..close];
        let mapped = idx.parse::<usize>().ok().and_then(|i| index_map.get(&out).and_then(|m| m.get(i)));
        match mapped {
            Some(j) => out.push_str(&format!("[{j}]")),
            None => out.push_str(&rest[open..=close]),
        }
        rest = &rest[close + 1..];
    }
    out.push_str(rest);
    out
}

/// Paths must be absolute; these variable prefixes expand to absolute paths.
pub(crate) fn is_absolute_spec(s: &str) -> bool {
    s.starts_with('/') || s.starts_with("${HOME}") || s.starts_with("${PATH}/") || s.starts_with("${XDG_")
}

impl<'f> Decoder<'f> {
    pub fn new(file: &'f Path) -> Self {
        Decoder { file, errors: Vec::new(), warnings: Vec::new(), positions: HashMap::new(), index_map: HashMap::new() }
    }

    fn diag(&self, pos: Pos, key_path: &str, message: String) -> Diagnostic {
        Diagnostic {
            file: self.file.to_path_buf(),
            line: pos.line,
            col: pos.col,
            key_path: key_path.to_string(),
            message,
        }
    }

    pub fn error(&mut self, pos: Pos, key_path: &str, message: impl Into<String>) {
        let d = self.diag(pos, key_path, message.into());
        self.errors.push(d);
    }

    pub fn warn(&mut self, pos: Pos, key_path: &str, message: impl Into<String>) {
        let d = self.diag(pos, key_path, message.into());
        self.warnings.push(d);
    }

    fn type_error(&mut self, node: &Node, path: &str, expected: &str) {
        let msg = format!("expected {expected}, found {}", node.value.type_name());
        self.error(node.pos, path, msg);
    }

    /// Match an object's members against `known`. `hints` maps a lowercase wrong key to the key
    /// path to suggest. Returns None (after an error) when `node` is not an object.
    pub fn fields<'n>(
        &mut self,
        node: &'n Node,
        path: &str,
        known: &[&'static str],
        hints: &[(&str, &str)],
    ) -> Option<Fields<'n>> {
        let Value::Object(members) = &node.value else {
            self.type_error(node, path, "an object");
            return None;
        };
        let mut map: HashMap<&'static str, &'n Node> = HashMap::new();
        let mut spelled: HashMap<&'static str, (&str, u32)> = HashMap::new();
        for m in members {
            let lower = m.key.to_ascii_lowercase();
            let key_path = join(path, &m.key);
            if let Some(&canon) = known.iter().find(|k| **k == lower) {
                if let Some((first, line)) = spelled.get(canon) {
                    if *first != m.key {
                        let msg = format!("duplicate key (also \"{first}\" at line {line}), the last one wins");
                        self.warn(m.key_pos, &key_path, msg);
                    }
                }
                spelled.insert(canon, (&m.key, m.key_pos.line));
                map.insert(canon, &m.value);
                self.positions.insert(join(path, canon), m.value.pos);
            } else if !m.key.starts_with('_') {
                let msg = match suggest(&lower, path, known, hints) {
                    Some(s) => format!("unknown key (ignored), did you mean {s}"),
                    None => "unknown key (ignored)".to_string(),
                };
                self.warn(m.key_pos, &key_path, msg);
            }
        }
        Some(Fields { path: path.to_string(), pos: node.pos, map })
    }

    /// An error for a missing required key, at the object's position.
    pub fn missing(&mut self, f: &Fields, key: &str) {
        let pos = f.pos;
        self.error(pos, &f.key_path(key), "missing required key");
    }

    pub fn bool(&mut self, f: &Fields, key: &str) -> Option<bool> {
        let node = f.get(key)?;
        match node.value {
            Value::Bool(b) => Some(b),
            _ => {
                self.type_error(node, &f.key_path(key), "a boolean");
                None
            }
        }
    }

    pub fn string_node(&mut self, node: &Node, path: &str) -> Option<String> {
        match &node.value {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.type_error(node, path, "a string");
                None
            }
        }
    }

    pub fn string(&mut self, f: &Fields, key: &str) -> Option<String> {
        let node = f.get(key)?;
        self.string_node(node, &f.key_path(key))
    }

    /// A string that must be an absolute path (or start with an absolute variable).
    pub fn abs_path_node(&mut self, node: &Node, path: &str) -> Option<String> {
        let s = self.string_node(node, path)?;
        if !s.is_empty() && !is_absolute_spec(&s) {
            let msg = format!("path \"{s}\" must be absolute (or start with ${{HOME}}, ${{PATH}}/ or ${{XDG_...}})");
            self.error(node.pos, path, msg);
            return None;
        }
        Some(s)
    }

    pub fn abs_path(&mut self, f: &Fields, key: &str) -> Option<String> {
        let node = f.get(key)?;
        self.abs_path_node(node, &f.key_path(key))
    }

    /// The items of an array with their key paths (`key[i]`).
    pub fn array<'n>(&mut self, f: &Fields<'n>, key: &str) -> Vec<(String, &'n Node)> {
        let Some(node) = f.get(key) else {
            return Vec::new();
        };
        let path = f.key_path(key);
        let Value::Array(items) = &node.value else {
            self.type_error(node, &path, "an array");
            return Vec::new();
        };
        items.iter().enumerate().map(|(i, n)| (format!("{path}[{i}]"), n)).collect()
    }

    pub fn strings(&mut self, f: &Fields, key: &str) -> Option<Vec<String>> {
        f.get(key)?;
        let items = self.array(f, key);
        Some(items.iter().filter_map(|(p, n)| self.string_node(n, p)).collect())
    }

    pub fn abs_paths(&mut self, f: &Fields, key: &str) -> Option<Vec<String>> {
        f.get(key)?;
        let items = self.array(f, key);
        Some(items.iter().filter_map(|(p, n)| self.abs_path_node(n, p)).collect())
    }

    /// A non-negative integer no larger than `max`.
    pub fn uint(&mut self, f: &Fields, key: &str, max: u64) -> Option<u64> {
        let node = f.get(key)?;
        let path = f.key_path(key);
        let Value::Number(text) = &node.value else {
            self.type_error(node, &path, "a number");
            return None;
        };
        match text.parse::<u64>() {
            Ok(v) if v <= max => Some(v),
            _ => {
                let msg = format!("expected an integer from 0 to {max}, found {text}");
                self.error(node.pos, &path, msg);
                None
            }
        }
    }

    /// One of a fixed set of strings; the error lists the allowed values.
    pub fn choice<T: Copy>(&mut self, f: &Fields, key: &str, allowed: &[(&str, T)]) -> Option<T> {
        let node = f.get(key)?;
        let path = f.key_path(key);
        let s = self.string_node(node, &path)?;
        if let Some((_, v)) = allowed.iter().find(|(name, _)| *name == s) {
            return Some(*v);
        }
        let names: Vec<&str> = allowed.iter().map(|(n, _)| *n).collect();
        let msg = format!("invalid value \"{s}\", expected one of: {}", names.join(", "));
        self.error(node.pos, &path, msg);
        None
    }
}

/// A suggestion for an unknown key: an explicit hint, else the closest known key.
fn suggest(lower: &str, path: &str, known: &[&str], hints: &[(&str, &str)]) -> Option<String> {
    if let Some((_, s)) = hints.iter().find(|(wrong, _)| *wrong == lower) {
        return Some(s.to_string());
    }
    let limit = if lower.len() <= 4 { 1 } else { 2 };
    known
        .iter()
        .map(|k| (edit_distance(lower, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| join(path, k))
}

/// Levenshtein distance over bytes.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::parse;

    #[test]
    fn key_paths_map_back_to_json_indexes() {
        let mut m = HashMap::new();
        m.insert("whitelist".to_string(), vec![0, 2]);
        m.insert("a[1].b".to_string(), vec![5]);
        assert_eq!(json_key_path(&m, "whitelist[1].path"), "whitelist[2].path");
        assert_eq!(json_key_path(&m, "a[1].b[0].c"), "a[1].b[5].c");
        assert_eq!(json_key_path(&m, "other[3]"), "other[3]");
        assert_eq!(json_key_path(&m, "plain"), "plain");
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(edit_distance("enfroce", "enforce"), 2);
        assert_eq!(edit_distance("same", "same"), 0);
    }

    #[test]
    fn fields_fold_case_skip_underscore_and_suggest() {
        let doc = parse(b"{\"Enforce\": true, \"_path\": 1, \"enfroce\": 2, \"zzz\": 3}").unwrap();
        let file = Path::new("t.json");
        let mut d = Decoder::new(file);
        let f = d.fields(&doc.root, "seccomp", &["enforce", "mode"], &[]).unwrap();
        assert_eq!(d.bool(&f, "enforce"), Some(true));
        assert_eq!(d.warnings.len(), 2);
        assert!(d.warnings[0].message.contains("did you mean seccomp.enforce"));
        assert_eq!(d.warnings[0].key_path, "seccomp.enfroce");
        assert_eq!(d.warnings[1].message, "unknown key (ignored)");
        assert!(d.errors.is_empty());
    }

    #[test]
    fn case_variants_of_one_key_warn() {
        let doc = parse(b"{\"mode\": \"a\",\n\"MODE\": \"b\"}").unwrap();
        let mut d = Decoder::new(Path::new("t.json"));
        let f = d.fields(&doc.root, "", &["mode"], &[]).unwrap();
        assert_eq!(d.string(&f, "mode").as_deref(), Some("b"));
        assert!(d.warnings[0].message.contains("duplicate key"));
    }

    #[test]
    fn typed_getters_report_errors() {
        let doc = parse(b"{\"a\": \"x\", \"n\": 70000, \"m\": \"bad\", \"p\": \"rel/x\"}").unwrap();
        let mut d = Decoder::new(Path::new("t.json"));
        let f = d.fields(&doc.root, "", &["a", "n", "m", "p"], &[]).unwrap();
        assert_eq!(d.bool(&f, "a"), None);
        assert_eq!(d.uint(&f, "n", 65535), None);
        assert_eq!(d.choice(&f, "m", &[("yes", 1), ("no", 2)]), None);
        assert_eq!(d.abs_path(&f, "p"), None);
        let msgs: Vec<String> = d.errors.iter().map(|e| e.message.clone()).collect();
        assert_eq!(msgs[0], "expected a boolean, found a string");
        assert_eq!(msgs[1], "expected an integer from 0 to 65535, found 70000");
        assert_eq!(msgs[2], "invalid value \"bad\", expected one of: yes, no");
        assert!(msgs[3].contains("must be absolute"));
    }
}
