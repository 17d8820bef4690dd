//! `oz profiles`, `oz list` and `oz logs`.

use crate::oz::conn::{unexpected, Conn};
use crate::oz::output;
use anyhow::{Context, Result};
use oz_wire::{ClientRequest, DaemonReply};
use std::io::Write;

pub fn profiles(json: bool) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let profiles = match conn.call(&ClientRequest::ListProfiles)? {
        DaemonReply::Profiles(p) => p,
        other => return Err(unexpected("Profiles", &other)),
    };
    let installed = |path: &str| output::program_installed(path, &output::is_executable);
    if json {
        print_json(&output::profiles_json(&profiles, &installed))?;
    } else {
        print(&output::profiles_table(&profiles, &installed))?;
    }
    Ok(0)
}

pub fn list(json: bool) -> Result<u8> {
    let mut conn = Conn::connect()?;
    let sandboxes = match conn.call(&ClientRequest::ListSandboxes)? {
        DaemonReply::Sandboxes(s) => s,
        other => return Err(unexpected("Sandboxes", &other)),
    };
    if json {
        print_json(&serde_json::Value::Array(sandboxes.iter().map(output::sandbox_json).collect()))?;
    } else {
        print(&output::sandboxes_table(&sandboxes))?;
    }
    Ok(0)
}

pub fn logs(follow: bool, sandbox: Option<u64>, count: Option<u32>, json: bool) -> Result<u8> {
    let mut conn = Conn::connect()?;
    conn.send(&ClientRequest::Logs { sandbox, follow, count }, &[])?;
    let mut out = std::io::stdout().lock();
    loop {
        match conn.recv()? {
            DaemonReply::LogLine(r) => {
                let line = if json { output::log_json(&r).to_string() } else { output::log_line(&r) };
                // A closed pipe (`oz logs -f | head`) ends the command quietly.
                if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                    return Ok(0);
                }
            }
            DaemonReply::LogEnd if !follow => return Ok(0),
            DaemonReply::LogEnd => {}
            other => return Err(unexpected("LogLine or LogEnd", &other)),
        }
    }
}

fn print(s: &str) -> Result<()> {
    std::io::stdout().lock().write_all(s.as_bytes()).context("write stdout")
}

fn print_json(v: &serde_json::Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).context("write stdout")?;
    writeln!(out).context("write stdout")
}
