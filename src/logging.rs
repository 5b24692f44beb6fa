//! Logging through the `flexi_logger` crate, set up as upstream's simple logger: servers write
//! `<log_dir>/<role>_<yyyyMMdd_hhmmss_SSS>.log` files (`[core] log_dir`, else
//! `<[core] data_dir>/log`), each up to `[tools.simple_logger] max_log_file_bytes`, keeping
//! `max_number_of_log_files_on_disk` of them, with the symlink `<role>.log` naming the current
//! one; lines at `stderr_start_level` and above are copied to stderr. The level is
//! `[core] logging_start_level` (`PEGASUS_LOG`, e.g. `debug`, overrides it). Tools and tests
//! log to stderr only. Lines read `<L><local time> (<thread>) <target>: <message>`.

use std::sync::{Mutex, OnceLock};

use flexi_logger::{
    Cleanup, Criterion, DeferredNow, Duplicate, FileSpec, LogSpecification, Logger, LoggerHandle,
    Naming, WriteMode,
};
use log::{Level, LevelFilter, Record};

use crate::config::Config;

static HANDLE: OnceLock<Mutex<LoggerHandle>> = OnceLock::new();
static CONFIGURED: OnceLock<LevelFilter> = OnceLock::new();

fn line(w: &mut dyn std::io::Write, now: &mut DeferredNow, r: &Record) -> std::io::Result<()> {
    let l = match r.level() {
        Level::Error => 'E',
        Level::Warn => 'W',
        Level::Info => 'I',
        Level::Debug => 'D',
        Level::Trace => 'T',
    };
    write!(
        w,
        "{l}{} ({}) {}: {}",
        now.format("%Y-%m-%d %H:%M:%S%.3f"),
        std::thread::current().name().unwrap_or("-"),
        r.target(),
        r.args()
    )
}

/// Unix seconds as local `YYYY-MM-DD hh:mm:ss` (upstream's time format in replies).
pub fn local_time_str(secs: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(secs, 0)
        .single()
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

/// An upstream level name (`LOG_LEVEL_INFO`) or a short one (`info`) as a filter.
pub fn parse_level(s: &str) -> Option<LevelFilter> {
    let s = s.trim();
    let s = s.strip_prefix("LOG_LEVEL_").unwrap_or(s);
    Some(match s.to_ascii_lowercase().as_str() {
        "debug" => LevelFilter::Debug,
        "info" => LevelFilter::Info,
        "warning" | "warn" => LevelFilter::Warn,
        "error" | "fatal" => LevelFilter::Error,
        "trace" => LevelFilter::Trace,
        _ => return None,
    })
}

fn env_level() -> Option<LevelFilter> {
    std::env::var("PEGASUS_LOG")
        .ok()
        .and_then(|v| parse_level(&v))
}

/// The level the process started with (what `reset-log-start-level` with no argument
/// restores).
pub fn configured_level() -> LevelFilter {
    CONFIGURED
        .get()
        .copied()
        .or_else(env_level)
        .unwrap_or(LevelFilter::Info)
}

fn spec(level: LevelFilter) -> LogSpecification {
    LogSpecification::builder().default(level).build()
}

/// Changes the level at run time.
pub fn set_level(level: LevelFilter) {
    if let Some(h) = HANDLE.get() {
        if let Ok(h) = h.lock() {
            h.set_new_spec(spec(level));
        }
    }
    log::set_max_level(level);
}

/// Flushes buffered lines to the files.
pub fn flush() {
    if let Some(h) = HANDLE.get() {
        if let Ok(h) = h.lock() {
            h.flush();
        }
    }
}

fn keep(handle: LoggerHandle) {
    let _ = HANDLE.set(Mutex::new(handle));
}

/// Logs to stderr (tools, tests, and servers until their configuration is read).
pub fn init() {
    let level = configured_level();
    if let Ok(h) = Logger::with(spec(level))
        .format(line)
        .log_to_stderr()
        .start()
    {
        keep(h);
    }
}

/// Starts a server's file logging from its configuration; on failure logs stay on stderr.
pub fn start_server(cfg: &Config, role: &str) -> Result<std::path::PathBuf, String> {
    let level = env_level()
        .or_else(|| parse_level(&cfg.string("core", "logging_start_level", "LOG_LEVEL_INFO")))
        .unwrap_or(LevelFilter::Info);
    let _ = CONFIGURED.set(level);
    let data_dir = cfg.string("core", "data_dir", "./data");
    let dir = match cfg.string("core", "log_dir", "") {
        d if d.is_empty() => std::path::Path::new(&data_dir).join("log"),
        d => std::path::PathBuf::from(d),
    };
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Absolute, so the symlink names its file wherever it is read from.
    let dir = std::fs::canonicalize(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let section = "tools.simple_logger";
    let max_bytes = cfg
        .u64(section, "max_log_file_bytes", 64 << 20)
        .map_err(|e| e.to_string())?
        .max(1);
    let keep_files = cfg
        .u64(section, "max_number_of_log_files_on_disk", 20)
        .map_err(|e| e.to_string())?
        .max(1) as usize;
    let to_stderr =
        match parse_level(&cfg.string(section, "stderr_start_level", "LOG_LEVEL_WARNING")) {
            Some(LevelFilter::Error) => Duplicate::Error,
            Some(LevelFilter::Info) => Duplicate::Info,
            Some(LevelFilter::Debug) | Some(LevelFilter::Trace) => Duplicate::All,
            _ => Duplicate::Warn,
        };
    let handle = Logger::with(spec(level))
        .format(line)
        .log_to_file(
            FileSpec::default()
                .directory(&dir)
                .basename(role)
                .suffix("log")
                .suppress_timestamp(),
        )
        .rotate(
            Criterion::Size(max_bytes),
            Naming::TimestampsCustomFormat {
                current_infix: None,
                format: "%Y%m%d_%H%M%S_%3f",
            },
            Cleanup::KeepLogFiles(keep_files),
        )
        .create_symlink(dir.join(format!("{role}.log")))
        .append()
        .duplicate_to_stderr(to_stderr)
        .write_mode(WriteMode::Direct)
        .start()
        .map_err(|e| e.to_string())?;
    keep(handle);
    log::set_max_level(level);
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_have_upstreams_shape() {
        let t = local_time_str(1_451_606_400);
        assert_eq!(t.len(), 19);
        assert!(
            t.starts_with("2016-01-01") || t.starts_with("2015-12-31"),
            "{t}"
        );
    }

    #[test]
    fn levels_parse_in_both_spellings() {
        assert_eq!(parse_level("LOG_LEVEL_WARNING"), Some(LevelFilter::Warn));
        assert_eq!(parse_level("debug"), Some(LevelFilter::Debug));
        assert_eq!(parse_level("LOG_LEVEL_FATAL"), Some(LevelFilter::Error));
        assert_eq!(parse_level("loud"), None);
    }
}
