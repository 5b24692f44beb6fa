//! A minimal stderr logger: `<level> <local time> <target>: <message>` (times by `chrono`), level from
//! `PEGASUS_LOG` (error|warn|info|debug, default info).

use std::io::Write;

use log::{Level, LevelFilter, Log, Metadata, Record};

struct StderrLogger {
    level: LevelFilter,
}

fn timestamp() -> String {
    chrono::Local::now()
        .format("%Y-%m-%d %H:%M:%S%.3f")
        .to_string()
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

impl Log for StderrLogger {
    fn enabled(&self, m: &Metadata) -> bool {
        m.level() <= self.level
    }

    fn log(&self, r: &Record) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let l = match r.level() {
            Level::Error => 'E',
            Level::Warn => 'W',
            Level::Info => 'I',
            Level::Debug => 'D',
            Level::Trace => 'T',
        };
        let _ = writeln!(
            std::io::stderr(),
            "{l} {} {}: {}",
            timestamp(),
            r.target(),
            r.args()
        );
    }

    fn flush(&self) {}
}

/// The level `PEGASUS_LOG` asks for (info when unset).
pub fn configured_level() -> LevelFilter {
    match std::env::var("PEGASUS_LOG").as_deref() {
        Ok("error") => LevelFilter::Error,
        Ok("warn") => LevelFilter::Warn,
        Ok("debug") => LevelFilter::Debug,
        _ => LevelFilter::Info,
    }
}

pub fn init() {
    let level = configured_level();
    let _ = log::set_logger(Box::leak(Box::new(StderrLogger { level })));
    log::set_max_level(level);
}

#[cfg(test)]
mod tests {
    #[test]
    fn local_times_have_upstreams_shape() {
        let t = super::local_time_str(1_451_606_400);
        assert_eq!(t.len(), 19);
        assert!(
            t.starts_with("2016-01-01") || t.starts_with("2015-12-31"),
            "{t}"
        );
    }
}
