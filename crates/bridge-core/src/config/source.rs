//! Where settings come from. A [`Setting`] is declared once (see `schema.rs`): its key in
//! each source, its type, its default and its rule. A [`Source`] holds raw values (a TOML
//! document, or the environment's text) and reads any setting through the same parsing and
//! checks; errors name the key the way that source spells it (`work.compression_level`,
//! `PCB_COMPRESSION_LEVEL`).

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

use super::ConfigError;

/// A setting's key in each source; `None` where the source does not have the setting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Key {
    /// In the file: `table.name` (`[work] max_attempts` is `work.max_attempts`), or a
    /// top-level name (`projects`).
    pub file: Option<&'static str>,
    /// In the environment: `PCB_…`.
    pub env: Option<&'static str>,
}

impl Key {
    pub const fn both(file: &'static str, env: &'static str) -> Key {
        Key { file: Some(file), env: Some(env) }
    }

    pub const fn file(file: &'static str) -> Key {
        Key { file: Some(file), env: None }
    }

    pub const fn env(env: &'static str) -> Key {
        Key { file: None, env: Some(env) }
    }
}

/// Which kind of source: some defaults differ (local mode favours quick turns).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Origin {
    File,
    Env,
}

/// The value of a setting its source leaves unset.
#[derive(Debug)]
pub(crate) enum Fallback<T: 'static> {
    /// None: [`Source::get`] refuses the setting unset, [`Source::value`] gives `None`.
    Unset,
    To(fn() -> T),
    /// Local mode's default, and the Lambdas'.
    PerSource {
        file: fn() -> T,
        env: fn() -> T,
    },
}

/// One setting: its key in each source, type `T`, default, and the rule its value follows.
#[derive(Debug)]
pub(crate) struct Setting<T: 'static> {
    pub key: Key,
    pub fallback: Fallback<T>,
    /// Whether a value (from either source) is allowed; `rule` says why not.
    pub valid: fn(&T) -> bool,
    pub rule: &'static str,
}

fn anything<T>(_: &T) -> bool {
    true
}

impl<T> Setting<T> {
    pub const fn new(key: Key, fallback: Fallback<T>) -> Self {
        Setting { key, fallback, valid: anything::<T>, rule: "" }
    }

    pub const fn valid(self, valid: fn(&T) -> bool, rule: &'static str) -> Self {
        Setting { key: self.key, fallback: self.fallback, valid, rule }
    }
}

/// A value as a source holds it.
#[derive(Debug)]
pub(crate) enum Raw<'a> {
    Toml(&'a toml::Value),
    Text(String),
}

/// What is wrong with a value, and where inside it (a project in the projects table).
#[derive(Debug)]
pub(crate) struct Problem {
    pub at: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn at(at: String, message: String) -> Self {
        Problem { at: Some(at), message }
    }
}

impl From<String> for Problem {
    fn from(message: String) -> Self {
        Problem { at: None, message }
    }
}

impl From<&str> for Problem {
    fn from(message: &str) -> Self {
        Problem::from(message.to_owned())
    }
}

/// A type settings can have: read from a TOML value (the file) or from text (the
/// environment, never blank).
pub(crate) trait Value: Sized {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem>;
    fn from_text(text: &str) -> Result<Self, Problem>;
}

/// Raw values by key, in one source's spelling.
pub(crate) trait Source {
    fn origin(&self) -> Origin;

    /// The value at `key`, when this source has the key and it is set.
    fn raw(&self, key: Key) -> Option<Raw<'_>>;

    /// How this source spells `key` (the other source's spelling if it has none).
    fn spell(&self, key: Key) -> String {
        let (own, other) = match self.origin() {
            Origin::File => (key.file, key.env),
            Origin::Env => (key.env, key.file),
        };
        own.or(other).unwrap_or_default().to_owned()
    }

    /// How this source spells the place `at` inside `key`'s value: `projects.a.git_url`,
    /// `PCB_PROJECTS (a.git_url)`.
    fn spell_inside(&self, key: Key, at: &str) -> String {
        match self.origin() {
            Origin::File => format!("{}.{at}", self.spell(key)),
            Origin::Env => format!("{} ({at})", self.spell(key)),
        }
    }

    fn invalid(&self, key: Key, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid { key: self.spell(key), message: message.into() }
    }

    fn is_set(&self, key: Key) -> bool {
        self.raw(key).is_some()
    }

    /// The setting's value when this source sets it, parsed and checked.
    fn value<T: Value>(&self, setting: &Setting<T>) -> Result<Option<T>, ConfigError> {
        let Some(raw) = self.raw(setting.key) else { return Ok(None) };
        let parsed = match raw {
            Raw::Toml(value) => T::from_toml(value),
            Raw::Text(text) => T::from_text(&text),
        };
        let value = parsed.map_err(|p| ConfigError::Invalid {
            key: match p.at {
                Some(at) => self.spell_inside(setting.key, &at),
                None => self.spell(setting.key),
            },
            message: p.message,
        })?;
        if !(setting.valid)(&value) {
            return Err(self.invalid(setting.key, setting.rule));
        }
        Ok(Some(value))
    }

    /// The setting's value, or its default; unset without a default is an error.
    fn get<T: Value>(&self, setting: &Setting<T>) -> Result<T, ConfigError> {
        if let Some(value) = self.value(setting)? {
            return Ok(value);
        }
        match (&setting.fallback, self.origin()) {
            (Fallback::To(default), _)
            | (Fallback::PerSource { file: default, .. }, Origin::File)
            | (Fallback::PerSource { env: default, .. }, Origin::Env) => Ok(default()),
            (Fallback::Unset, _) => Err(self.invalid(setting.key, "is required and not set")),
        }
    }
}

/// Local mode's file: a TOML document, each key once in `[table] name`.
#[derive(Debug)]
pub(crate) struct FileSource {
    document: toml::Table,
}

impl FileSource {
    /// Parses `text`, refusing any key not in `known`.
    pub fn parse(text: &str, known: &[Key]) -> Result<Self, ConfigError> {
        let document: toml::Table = toml::from_str(text)?;
        let source = FileSource { document };
        let known: Vec<&str> = known.iter().filter_map(|k| k.file).collect();
        for (name, value) in &source.document {
            if known.contains(&name.as_str()) {
                continue;
            }
            let prefix = format!("{name}.");
            let names: Vec<&str> = known.iter().filter_map(|k| k.strip_prefix(&prefix)).collect();
            let unknown = |key: String, what: &str, names: &[&str]| ConfigError::Invalid {
                key,
                message: format!("is not a setting (the {what} are: {})", names.join(", ")),
            };
            if names.is_empty() {
                let tables: BTreeSet<&str> = known.iter().map(|k| k.split_once('.').map_or(*k, |(t, _)| t)).collect();
                return Err(unknown(name.clone(), "tables", &tables.into_iter().collect::<Vec<_>>()));
            }
            let Some(table) = value.as_table() else {
                return Err(ConfigError::Invalid { key: name.clone(), message: format!("must be a table, [{name}]") });
            };
            if let Some(key) = table.keys().find(|k| !names.contains(&k.as_str())) {
                return Err(unknown(format!("{name}.{key}"), &format!("[{name}] keys"), &names));
            }
        }
        Ok(source)
    }
}

impl Source for FileSource {
    fn origin(&self) -> Origin {
        Origin::File
    }

    fn raw(&self, key: Key) -> Option<Raw<'_>> {
        let path = key.file?;
        let value = match path.split_once('.') {
            Some((table, name)) => self.document.get(table)?.as_table()?.get(name)?,
            None => self.document.get(path)?,
        };
        Some(Raw::Toml(value))
    }
}

/// The environment: `get` looks a variable up. A blank value is unset (templates pass
/// empty parameters through).
pub(crate) struct EnvSource<F>(pub F);

impl<F: Fn(&str) -> Option<String>> Source for EnvSource<F> {
    fn origin(&self) -> Origin {
        Origin::Env
    }

    fn raw(&self, key: Key) -> Option<Raw<'_>> {
        (self.0)(key.env?).filter(|v| !v.trim().is_empty()).map(Raw::Text)
    }
}

// The types settings have.

macro_rules! whole_numbers {
    ($($t:ty),*) => {$(
        impl Value for $t {
            fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
                let n = value
                    .as_integer()
                    .ok_or_else(|| format!("must be a whole number, not a {}", value.type_str()))?;
                <$t>::try_from(n).map_err(|_| format!("{n} is not a whole number from 0 to {}", <$t>::MAX).into())
            }

            fn from_text(text: &str) -> Result<Self, Problem> {
                text.trim().parse::<$t>().map_err(|e| format!("`{text}` is not a whole number: {e}").into())
            }
        }
    )*};
}

whole_numbers!(u8, u32, u64, usize);

impl Value for String {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        value.as_str().map(str::to_owned).ok_or_else(|| format!("must be a string, not a {}", value.type_str()).into())
    }

    fn from_text(text: &str) -> Result<Self, Problem> {
        Ok(text.to_owned())
    }
}

impl Value for PathBuf {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        String::from_toml(value).map(PathBuf::from)
    }

    fn from_text(text: &str) -> Result<Self, Problem> {
        Ok(PathBuf::from(text))
    }
}

/// Whole seconds.
impl Value for Duration {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        u64::from_toml(value).map(Duration::from_secs)
    }

    fn from_text(text: &str) -> Result<Self, Problem> {
        u64::from_text(text).map(Duration::from_secs)
    }
}

/// A wait between attempts: milliseconds in the file (`retry_delay_ms`, local mode retries
/// quickly), whole seconds in the environment (`PCB_RETRY_FIRST_SECONDS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Wait(pub Duration);

impl Value for Wait {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        u64::from_toml(value).map(|ms| Wait(Duration::from_millis(ms)))
    }

    fn from_text(text: &str) -> Result<Self, Problem> {
        Duration::from_text(text).map(Wait)
    }
}

impl Value for SocketAddr {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        Self::from_text(&String::from_toml(value)?)
    }

    fn from_text(text: &str) -> Result<Self, Problem> {
        text.parse().map_err(|_| format!("`{text}` is not an address such as 127.0.0.1:8080").into())
    }
}

/// A list: an array of strings in the file, one item per line in the environment.
impl Value for Vec<String> {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        let items = value.as_array().ok_or_else(|| format!("must be an array, not a {}", value.type_str()))?;
        items.iter().map(String::from_toml).collect()
    }

    fn from_text(text: &str) -> Result<Self, Problem> {
        Ok(text.lines().map(str::to_owned).collect())
    }
}

/// Networks (`192.0.2.0/24`, or one address): an array in the file, comma-separated in the
/// environment.
impl Value for Vec<IpNet> {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        Vec::<String>::from_toml(value)?.iter().map(|item| network(item)).collect()
    }

    fn from_text(text: &str) -> Result<Self, Problem> {
        text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(network).collect()
    }
}

fn network(item: &str) -> Result<IpNet, Problem> {
    let item = item.trim();
    item.parse::<IpNet>()
        .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("`{item}` is not an IP network such as 192.0.2.0/24").into())
}
