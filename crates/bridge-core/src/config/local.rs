//! Local mode's configuration file (`pagure-ci-bridge serve --config FILE`): the caller
//! reads it, this parses and checks its text.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use super::source::{FileSource, Source};
use super::{AcceptConfig, ConfigError, ReportConfig, WorkConfig, schema};

/// Local mode (`pagure-ci-bridge serve --config FILE`).
#[derive(Debug, Clone)]
pub struct LocalConfig {
    pub listen: SocketAddr,
    pub queue_capacity: usize,
    /// JSON file with the same layout as the Secrets Manager secret (see `secrets`).
    pub secrets_file: PathBuf,
    pub accept: AcceptConfig,
    pub work: WorkConfig,
    pub report: ReportConfig,
}

impl LocalConfig {
    /// Checks a configuration file's text; relative paths in it are relative to
    /// `base_dir` (the file's folder). Unknown keys are errors.
    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let file = FileSource::parse(text, schema::ALL)?;
        Ok(LocalConfig {
            listen: file.get(&schema::LISTEN)?,
            queue_capacity: file.get(&schema::QUEUE_CAPACITY)?,
            secrets_file: base_dir.join(file.get(&schema::SECRETS_FILE)?),
            accept: super::accept(&file, base_dir)?,
            work: super::work(&file, base_dir)?,
            report: super::report(&file)?,
        })
    }
}
