//! A per-test workspace: a temp directory with an oz.conf, a profile directory, and the state,
//! sandbox and log directories the config points at.

use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub struct Workspace {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub profile_dir: PathBuf,
    pub state_dir: PathBuf,
    pub sandbox_path: PathBuf,
    pub log_dir: PathBuf,
}

impl Workspace {
    /// A workspace whose oz.conf is the defaults plus the directories above plus `extra` keys.
    pub fn new(extra: Value) -> Result<Workspace> {
        let dir = tempfile::Builder::new().prefix("oz-it-").tempdir().context("create workspace")?;
        // Traversable by everyone, so files placed here can be bound for (and read by) the user.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
        let p = dir.path();
        let ws = Workspace {
            config: p.join("oz.conf"),
            profile_dir: p.join("profiles"),
            state_dir: p.join("state"),
            sandbox_path: p.join("sandbox"),
            log_dir: p.join("log"),
            dir,
        };
        for d in [&ws.profile_dir, &ws.state_dir, &ws.sandbox_path, &ws.log_dir] {
            std::fs::create_dir(d).with_context(|| format!("create {}", d.display()))?;
        }
        ws.write_config(extra)?;
        Ok(ws)
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// (Re)writes oz.conf: the workspace directories plus `extra` keys.
    pub fn write_config(&self, extra: Value) -> Result<()> {
        let mut conf = json!({
            "profile_dir": self.profile_dir,
            "sandbox_path": self.sandbox_path,
            "state_dir": self.state_dir,
            "log_dir": self.log_dir,
            "socket_path": self.state_dir.join("control.sock"),
        });
        if let (Some(c), Value::Object(e)) = (conf.as_object_mut(), extra) {
            c.extend(e);
        }
        write_json(&self.config, &conf)
    }

    /// Writes `profile` (its `name` key is set to `name`) as `<profile_dir>/<name>.json`.
    pub fn write_profile(&self, name: &str, mut profile: Value) -> Result<PathBuf> {
        profile["name"] = json!(name);
        let path = self.profile_dir.join(format!("{name}.json"));
        write_json(&path, &profile)?;
        Ok(path)
    }

    /// Directories that must be empty after every sandbox has ended.
    pub fn must_be_empty(&self) -> Vec<PathBuf> {
        vec![self.state_dir.clone(), self.sandbox_path.clone()]
    }
}

fn write_json(path: &Path, v: &Value) -> Result<()> {
    let text = serde_json::to_string_pretty(v)?;
    std::fs::write(path, text).with_context(|| format!("write {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o644))?;
    Ok(())
}

/// A strict profile: empty network, default seccomp blacklist, the given whitelist and
/// blacklist, Landlock on.
pub fn strict_profile(program: &str, whitelist: Value, blacklist: Value) -> Value {
    json!({
        "path": program,
        "networking": {"type": "empty"},
        "seccomp": {"mode": "blacklist", "enforce": true},
        "whitelist": whitelist,
        "blacklist": blacklist,
        "landlock": true,
    })
}
