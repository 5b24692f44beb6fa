//! Reads upstream-format `config.ini` files: `[section]` headers, `key = value` lines,
//! `#`/`;` comments. Typed accessors know the defaults; unknown keys are reported so the
//! operator sees them, bad values are refused with a message naming section and key.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;
use std::sync::Mutex;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// A parsed config file. Sections are kept sorted by name, as upstream does.
#[derive(Debug, Default)]
pub struct Config {
    sections: BTreeMap<String, BTreeMap<String, String>>,
    used: Mutex<BTreeSet<(String, String)>>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Config::parse(&text)
    }

    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let mut sections: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        let mut current: Option<String> = None;
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| ConfigError(format!("line {}: bad section header", i + 1)))?;
                let name = name.trim().to_string();
                sections.entry(name.clone()).or_default();
                current = Some(name);
                continue;
            }
            let (k, v) = line
                .split_once('=')
                .ok_or_else(|| ConfigError(format!("line {}: expected key = value", i + 1)))?;
            let section = current
                .as_ref()
                .ok_or_else(|| ConfigError(format!("line {}: key outside a section", i + 1)))?;
            // Strip a trailing comment introduced by " #".
            let v = match v.find(" #") {
                Some(p) => &v[..p],
                None => v,
            };
            sections
                .entry(section.clone())
                .or_default()
                .insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(Config {
            sections,
            used: Mutex::new(BTreeSet::new()),
        })
    }

    /// Replaces a value (used by command-line overrides and tests).
    pub fn set(&mut self, section: &str, key: &str, value: &str) {
        self.sections
            .entry(section.to_string())
            .or_default()
            .insert(key.to_string(), value.to_string());
    }

    fn mark(&self, section: &str, key: &str) {
        if let Ok(mut u) = self.used.lock() {
            u.insert((section.to_string(), key.to_string()));
        }
    }

    pub fn get(&self, section: &str, key: &str) -> Option<&str> {
        self.mark(section, key);
        self.sections
            .get(section)
            .and_then(|s| s.get(key))
            .map(|s| s.as_str())
    }

    pub fn string(&self, section: &str, key: &str, default: &str) -> String {
        self.get(section, key).unwrap_or(default).to_string()
    }

    fn parsed<T: std::str::FromStr>(
        &self,
        section: &str,
        key: &str,
        default: T,
    ) -> Result<T, ConfigError> {
        match self.get(section, key) {
            None | Some("") => Ok(default),
            Some(v) => v.parse::<T>().map_err(|_| {
                ConfigError(format!("[{section}] {key} = {v:?} is not a valid value"))
            }),
        }
    }

    pub fn i64(&self, section: &str, key: &str, default: i64) -> Result<i64, ConfigError> {
        self.parsed(section, key, default)
    }

    pub fn u64(&self, section: &str, key: &str, default: u64) -> Result<u64, ConfigError> {
        self.parsed(section, key, default)
    }

    pub fn bool(&self, section: &str, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(section, key) {
            None | Some("") => Ok(default),
            Some("true") | Some("1") => Ok(true),
            Some("false") | Some("0") => Ok(false),
            Some(v) => Err(ConfigError(format!(
                "[{section}] {key} = {v:?} is not true/false"
            ))),
        }
    }

    /// The key/value pairs of a section, sorted by key (empty when it is absent).
    pub fn section_pairs(&self, section: &str) -> Vec<(String, String)> {
        self.sections
            .get(section)
            .map(|s| {
                s.iter()
                    .map(|(k, v)| {
                        self.mark(section, k);
                        (k.clone(), v.clone())
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Names of every section, sorted.
    pub fn sections(&self) -> impl Iterator<Item = &str> {
        self.sections.keys().map(|s| s.as_str())
    }

    /// Keys present in the file that no code has read, for a warning at start-up.
    pub fn unused_keys(&self, known_sections: &[&str]) -> Vec<String> {
        let used = match self.used.lock() {
            Ok(u) => u.clone(),
            Err(_) => return Vec::new(),
        };
        let mut out = Vec::new();
        for (s, kv) in &self.sections {
            if !known_sections
                .iter()
                .any(|k| s == k || s.starts_with(&format!("{k}.")))
            {
                continue;
            }
            for k in kv.keys() {
                if !used.contains(&(s.clone(), k.clone())) {
                    out.push(format!("[{s}] {k}"));
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_upstream_style() {
        let c = Config::parse(
            "; comment\n[apps.meta]\nports = 34601\n\n[meta_server]\n server_list = a:1,b:2 \n# x\n\
             [meta_server.apps.temp]\napp_name = temp\npartition_count = 8 # eight\n",
        )
        .unwrap();
        assert_eq!(c.i64("apps.meta", "ports", 0).unwrap(), 34601);
        assert_eq!(c.string("meta_server", "server_list", ""), "a:1,b:2");
        assert_eq!(
            c.i64("meta_server.apps.temp", "partition_count", 1)
                .unwrap(),
            8
        );
        assert_eq!(c.i64("meta_server", "missing", 7).unwrap(), 7);
        assert!(c.sections().any(|s| s == "meta_server.apps.temp"));
        assert_eq!(
            c.unused_keys(&["meta_server"]),
            vec!["[meta_server.apps.temp] app_name".to_string()]
        );
    }

    #[test]
    fn refuses_bad_values() {
        let c = Config::parse("[replication]\nfd_lease_seconds = soon\nflag = maybe\n").unwrap();
        let e = c.i64("replication", "fd_lease_seconds", 20).unwrap_err();
        assert!(e.0.contains("fd_lease_seconds"));
        assert!(c.bool("replication", "flag", false).is_err());
        assert!(Config::parse("key = 1\n").is_err());
        assert!(Config::parse("[open\n").is_err());
    }
}
