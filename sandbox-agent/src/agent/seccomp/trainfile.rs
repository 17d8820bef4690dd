//! Writing a training run's whitelist to the profile's `train_output` (a host path), merged
//! with what the file already holds, with the user's credentials: the agent runs
//! `oz-agent train-merge PATH` as the user (uid, primary gid, no supplementary groups) with the
//! run's record as JSON on stdin. Root never opens anything in the user's tree.

use oz_profiles::seccomp::parser::read_policy;
use oz_profiles::seccomp::train::Training;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How long the writer may take before it is killed.
const WRITER_DEADLINE: Duration = Duration::from_secs(10);
/// Largest training record read on stdin.
const MAX_RECORD: u64 = 16 << 20;

/// Runs the writer as `uid`/`gid` and waits for it (at most [`WRITER_DEADLINE`]).
pub fn write_as_user(path: &Path, training: &Training, uid: u32, gid: u32) -> Result<(), String> {
    let record = serde_json::to_vec(training).map_err(|e| format!("encode training record: {e}"))?;
    let mut child = Command::new("/proc/self/exe")
        .arg0("oz-agent")
        .arg("train-merge")
        .arg(path)
        .env_clear()
        .current_dir("/")
        .uid(uid)
        .gid(gid)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start the training writer: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(&record);
    }
    let end = Instant::now() + WRITER_DEADLINE;
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = (&mut e).take(4096).read_to_string(&mut err);
                }
                return Err(format!("training writer {status}: {}", err.trim()));
            }
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("training writer: no answer in {}s", WRITER_DEADLINE.as_secs()));
            }
        }
    }
}

/// `oz-agent train-merge PATH`, as the user: merge the record on stdin into PATH (created when
/// missing; a file that does not parse is left alone and named in the error), written through a
/// temporary file in the same directory and renamed over it.
pub fn merge_main(path: &Path) -> Result<(), String> {
    use std::io::Read;
    let mut input = Vec::new();
    std::io::stdin().take(MAX_RECORD).read_to_end(&mut input).map_err(|e| format!("read stdin: {e}"))?;
    let run: Training = serde_json::from_slice(&input).map_err(|e| format!("training record: {e}"))?;
    let mut merged = match std::fs::symlink_metadata(path) {
        Ok(m) if !m.is_file() => return Err(format!("{}: not a regular file", path.display())),
        Ok(_) => {
            let text = read_policy(path).map_err(|e| e.to_string())?;
            Training::from_policy(&text, path).map_err(|e| e.to_string())?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Training::default(),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    merged.merge(&run);
    let name = path.file_name().ok_or_else(|| format!("{}: no file name", path.display()))?;
    let tmp = path.with_file_name(format!(".{}.oz-{}", name.to_string_lossy(), std::process::id()));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&tmp)
        .map_err(|e| format!("{}: {e}", tmp.display()))?;
    let written = f.write_all(merged.to_policy().as_bytes()).and_then(|_| f.sync_all());
    if let Err(e) = written.and_then(|_| std::fs::rename(&tmp, path)) {
        let _ = std::fs::remove_file(&tmp);
        return Err(format!("{}: {e}", path.display()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_main_logic_refuses_a_broken_file() {
        // The stdin part is exercised end to end; here the parse of an existing file.
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t.seccomp");
        std::fs::write(&p, "read: 1\nnot a rule\n").unwrap();
        let text = read_policy(&p).unwrap();
        let e = Training::from_policy(&text, &p).unwrap_err();
        assert!(e.to_string().starts_with(&format!("{}:2:", p.display())), "{e}");
    }
}
