//! oz-daemon's command line. Self-contained (clap and slog only): the packaging tool includes
//! this file to generate the man page and completions.

use clap::Parser;
use std::path::PathBuf;

/// The oz sandbox daemon (runs in the foreground, as root).
#[derive(Parser, Debug)]
#[command(name = "oz-daemon", version)]
pub struct Args {
    /// oz.conf to use (default: $OZ_CONFIG, else /etc/oz/oz.conf).
    #[arg(long, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log to stderr as JSON lines instead of terminal text.
    #[arg(long)]
    pub log_json: bool,
    /// Lowest level logged (stderr, files, `oz logs`): critical, error, warning, info, debug, trace.
    #[arg(long, value_name = "LEVEL", default_value = "info", value_parser = parse_level)]
    pub log_level: slog::Level,
}

fn parse_level(s: &str) -> Result<slog::Level, String> {
    s.parse().map_err(|_| format!("unknown log level {s:?}"))
}
