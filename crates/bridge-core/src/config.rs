//! Configuration, parsed once at start into typed structs: a TOML file in local mode,
//! environment variables in Lambda. One schema (`schema.rs`: every setting's key in each
//! source, type, default and rule), two sources (`source.rs`); every error names the key
//! the way its source spells it (`work.compression_level`, `PCB_COMPRESSION_LEVEL`).
//! No IO: the caller reads the file.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;

use crate::forge::RetryPolicy;
use crate::registry::{Deployment, Projects, Registry, RegistryDocument, RegistryError, RegistrySource, RuleSettings};

mod lambda;
mod local;
mod project;
mod schema;
mod source;

pub use lambda::{AcceptLambdaConfig, AdminConfig, ReportLambdaConfig, WorkLambdaConfig};
pub use local::LocalConfig;
pub use project::{ProjectConfig, ProjectSettings, is_project_key};
pub(crate) use project::{all_triggers, default_buildspec};
pub use schema::env;

use source::{Source, Wait};

/// Long enough to merge the same event arriving through two doors, a web-hook redelivered
/// and a burst of identical calls; short enough that pagure-ci's "rerun CI" (which cannot be
/// told from a first trigger) a minute later builds again.
pub const DEFAULT_DEDUPE_WINDOW_SECONDS: u64 = 60;

/// The phrase Pagure itself reacts to (`TRIGGER_CI` in Pagure's default configuration).
pub const DEFAULT_REBUILD_PHRASE: &str = "pretty please pagure-ci rebuild";
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

/// The buildspec path CodeBuild reads when the deployment does not say otherwise.
pub const DEFAULT_CODEBUILD_BUILDSPEC: &str = "buildspec.yml";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// `key` as its source spells it: `projects.a.git_url`, `PCB_QUEUE_URL`.
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
    /// The file is not TOML.
    #[error("configuration is not valid TOML: {0}")]
    Syntax(#[from] toml::de::Error),
}

/// What the trigger handler needs, in Lambda and in local mode alike.
#[derive(Debug, Clone)]
pub struct AcceptConfig {
    pub max_body_bytes: usize,
    /// Empty: every source address may call. Otherwise only these networks.
    pub source_cidrs: Vec<IpNet>,
    /// A `pull-request.comment.added` web-hook whose comment is one of these (trimmed) asks
    /// for a rebuild.
    pub rebuild_phrases: Vec<String>,
    /// The projects routed: the inline ones until [`AcceptConfig::registry`] is attached.
    pub projects: Projects,
    /// Where the project registry is, when there is one; the binary that owns the IO
    /// (S3 in Lambda, a file locally) attaches it with [`RegistrySetup::attach`].
    pub registry: Option<RegistrySetup>,
}

/// Where the registry document is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryLocation {
    /// Local mode: `[registry] file`, relative to the configuration file.
    File(PathBuf),
    /// AWS: `PCB_REGISTRY_BUCKET` / `PCB_REGISTRY_KEY`.
    S3 { bucket: String, key: String },
}

/// The registry a stage reads: its place, how long a read is kept, what the deployment
/// supplies to every rule, and the inline projects that come before the document's rules.
#[derive(Debug, Clone)]
pub struct RegistrySetup {
    pub location: RegistryLocation,
    pub ttl: Duration,
    pub deployment: Deployment,
    pub inline: BTreeMap<String, ProjectConfig>,
}

impl RegistrySetup {
    /// Routes `config`'s projects through the registry `source` reads.
    pub fn attach(config: &mut AcceptConfig, source: impl RegistrySource + 'static) {
        if let Some(setup) = &config.registry {
            config.projects = Projects::loaded(source, setup.ttl, setup.inline.clone(), setup.deployment.clone());
        }
    }

    /// Checks the deployment's own values once, at start (each may be left to the rules):
    /// a rule that only says `match` gets exactly them, so they must pass a rule's checks.
    /// Returns the field that is wrong and why.
    fn check(&self) -> Result<(), (String, String)> {
        let d = &self.deployment;
        let placeholder = |value: &Option<String>, default: &str| Some(value.clone().unwrap_or_else(|| default.into()));
        let prefix = d.pipeline_prefix.clone().unwrap_or_default();
        let probe = RuleSettings {
            matches: Some("*".into()),
            pagure_url: placeholder(&d.pagure_url, "https://pagure.invalid/"),
            git_url: placeholder(&d.git_url, "https://pagure.invalid"),
            pipeline: placeholder(&d.pipeline, &format!("{prefix}probe")),
            ..RuleSettings::default()
        };
        let document = RegistryDocument { rules: vec![probe], ..RegistryDocument::default() };
        match Registry::compile(&BTreeMap::new(), Some(&document), d) {
            Ok(_) => Ok(()),
            Err(RegistryError::Invalid { at, message }) => {
                Err((at.trim_start_matches("rules[0].").to_owned(), message))
            }
            Err(other) => Err((String::new(), other.to_string())),
        }
    }
}

impl AcceptConfig {
    pub fn source_allowed(&self, ip: Option<IpAddr>) -> bool {
        if self.source_cidrs.is_empty() {
            return true;
        }
        ip.is_some_and(|ip| self.source_cidrs.iter().any(|net| net.contains(&ip)))
    }
}

/// How build states are posted on Pagure (`[report]` locally, `PCB_FLAG_USERNAME`,
/// `PCB_PAGURE_ATTEMPTS`, `PCB_PAGURE_TIMEOUT_SECONDS` in Lambda).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReportConfig {
    /// The flag's name on Pagure.
    pub flag_username: String,
    pub retry: RetryPolicy,
    /// The sweep settles flags still pending this long after their pipeline started
    /// (`sweep_after_seconds`, `PCB_SWEEP_AFTER_SECONDS`; see [`crate::sweep`]).
    pub sweep_after: Duration,
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            flag_username: crate::forge::DEFAULT_FLAG_USERNAME.to_owned(),
            retry: RetryPolicy::default(),
            sweep_after: Duration::from_secs(crate::sweep::DEFAULT_SWEEP_AFTER_SECONDS),
        }
    }
}

/// The work stage's limits (`[work]` locally).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkConfig {
    /// Local mode stores archives here (relative to the configuration file).
    pub artifacts_dir: PathBuf,
    /// Deliveries of one request before it is given up (the DLQ's `maxReceiveCount` in AWS).
    pub max_attempts: u32,
    /// First wait between attempts; doubles each time, up to `retry_max` (see
    /// [`WorkConfig::retry_schedule`]).
    pub retry_delay: Duration,
    /// Longest wait between attempts.
    pub retry_max: Duration,
    pub fetch_timeout: Duration,
    pub max_fetch_bytes: u64,
    pub max_archive_bytes: u64,
    pub max_archive_entries: u64,
    /// Requests for the same build (same event, same commit) that arrive within this time
    /// of the first start one build; zero turns the merging off. Rebuild requests are never
    /// merged.
    pub dedupe_window: Duration,
    /// Deflate level of the source archive, 1 (fastest) to 9 (smallest).
    pub compression_level: u8,
    /// The path in the archive that the deployment's CodeBuild projects read as their
    /// buildspec (the templates' `BuildSpecPath`). The injected buildspec is written at exactly
    /// this path, whatever the default branch's file is called, so that no file of the tree
    /// being built can take its place.
    pub codebuild_buildspec: String,
    /// The S3 bucket archives go to (`work.s3_bucket`, `PCB_BUCKET`): local mode stores them
    /// there instead of `artifacts_dir` when it is set.
    pub s3_bucket: Option<String>,
    /// Local mode: the S3 endpoint (an emulator such as moto); default from the AWS
    /// environment (`AWS_ENDPOINT_URL`, region, credentials).
    pub s3_endpoint: Option<String>,
}

impl WorkConfig {
    /// When failed attempts are tried again: the same rule locally and in Lambda.
    pub fn retry_schedule(&self) -> RetrySchedule {
        RetrySchedule { first: self.retry_delay, max: self.retry_max }
    }
}

/// Lambda's first wait before a failed request is tried again (`PCB_RETRY_FIRST_SECONDS`).
pub const DEFAULT_RETRY_FIRST_SECONDS: u64 = 30;
/// The longest wait between attempts (`PCB_RETRY_MAX_SECONDS`, local `retry_max_ms`).
pub const DEFAULT_RETRY_MAX_SECONDS: u64 = 900;

/// The wait before attempt `n + 1` after attempt `n` failed for a transient reason:
/// `first`, doubling with each attempt, never above `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    pub first: Duration,
    pub max: Duration,
}

impl RetrySchedule {
    /// The wait after failed attempt `attempt` (1 for the first; SQS's
    /// `ApproximateReceiveCount`).
    pub fn delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        self.first.saturating_mul(1u32 << doublings).min(self.max)
    }

    /// The waits between `attempts` attempts, added up.
    pub fn total(&self, attempts: u32) -> Duration {
        (1..attempts).map(|attempt| self.delay(attempt)).sum()
    }
}

/// The accept settings, the inline projects and the registry, from either source.
fn accept(src: &impl Source, base_dir: &Path) -> Result<AcceptConfig, ConfigError> {
    let max_body_bytes = src.get(&schema::MAX_BODY_BYTES)?;
    let source_cidrs = src.get(&schema::SOURCE_CIDRS)?;
    let rebuild_phrases: Vec<String> =
        src.get(&schema::REBUILD_PHRASES)?.iter().map(|p| p.trim().to_owned()).filter(|p| !p.is_empty()).collect();
    let registry = registry(src, base_dir)?;
    let projects = src.value(&schema::PROJECTS)?.unwrap_or_default();
    let in_projects =
        |at: &str, message: String| ConfigError::Invalid { key: src.spell_inside(schema::PROJECTS.key, at), message };
    let phrases_key = src.spell(schema::REBUILD_PHRASES.key);
    for project in projects.values() {
        project
            .phrase_clash(&rebuild_phrases, &phrases_key)
            .map_err(|e| in_projects(&e.at(&project.key), e.message))?;
    }
    if let Some((at, message)) = project::untrusted_is_trusted(&projects) {
        return Err(in_projects(&at, message));
    }
    let registry = registry.map(|(location, ttl, deployment)| RegistrySetup {
        location,
        ttl,
        deployment: Deployment { rebuild_phrases: rebuild_phrases.clone(), ..deployment },
        inline: projects.clone(),
    });
    if let Some(setup) = &registry {
        setup.check().map_err(|(field, message)| {
            let key = match field.as_str() {
                "pagure_url" => schema::PAGURE_URL.key,
                "git_url" => schema::GIT_URL.key,
                "untrusted_pipeline" => schema::UNTRUSTED_PIPELINE.key,
                "pipeline" if setup.deployment.pipeline.is_some() => schema::PIPELINE.key,
                // The probe's pipeline is the prefix's own.
                "pipeline" => schema::PIPELINE_PREFIX.key,
                _ => schema::REGISTRY_LOCATION,
            };
            src.invalid(key, message)
        })?;
    } else if projects.is_empty() {
        return Err(src.invalid(
            schema::PROJECTS.key,
            format!("configure at least one project, or a project registry ({})", src.spell(schema::REGISTRY_LOCATION)),
        ));
    }
    // Every inline project was checked above, alone and against the others.
    let fixed = Registry::compile(&projects, None, &Deployment::default())
        .map_err(|e| src.invalid(schema::PROJECTS.key, e.to_string()))?;
    Ok(AcceptConfig { max_body_bytes, source_cidrs, rebuild_phrases, projects: Projects::fixed(fixed), registry })
}

/// The registry's place and the deployment's values, when there is a registry.
fn registry(
    src: &impl Source,
    base_dir: &Path,
) -> Result<Option<(RegistryLocation, Duration, Deployment)>, ConfigError> {
    let location = if let Some(file) = src.value(&schema::REGISTRY_FILE)? {
        RegistryLocation::File(base_dir.join(file))
    } else if let Some(bucket) = src.value(&schema::REGISTRY_BUCKET)? {
        RegistryLocation::S3 { bucket, key: src.get(&schema::REGISTRY_KEY)? }
    } else if src.is_set(schema::REGISTRY_TABLE) {
        return Err(src.invalid(schema::REGISTRY_FILE.key, "is required in [registry]"));
    } else {
        return Ok(None);
    };
    let deployment = Deployment {
        pagure_url: src.value(&schema::PAGURE_URL)?,
        git_url: src.value(&schema::GIT_URL)?,
        pipeline: src.value(&schema::PIPELINE)?,
        untrusted_pipeline: src.value(&schema::UNTRUSTED_PIPELINE)?,
        pipeline_prefix: src.value(&schema::PIPELINE_PREFIX)?,
        rebuild_phrases: Vec::new(),
    };
    Ok(Some((location, src.get(&schema::REGISTRY_TTL)?, deployment)))
}

/// The work stage's limits; `artifacts_dir` is relative to `base_dir`.
fn work(src: &impl Source, base_dir: &Path) -> Result<WorkConfig, ConfigError> {
    let Wait(retry_delay) = src.get(&schema::RETRY_FIRST)?;
    let Wait(retry_max) = src.get(&schema::RETRY_MAX)?;
    if retry_max < retry_delay {
        let first = src.spell(schema::RETRY_FIRST.key);
        return Err(src.invalid(schema::RETRY_MAX.key, format!("must be at least the first wait ({first})")));
    }
    Ok(WorkConfig {
        artifacts_dir: base_dir.join(src.get(&schema::ARTIFACTS_DIR)?),
        max_attempts: src.get(&schema::MAX_ATTEMPTS)?,
        retry_delay,
        retry_max,
        fetch_timeout: src.get(&schema::FETCH_TIMEOUT)?,
        max_fetch_bytes: src.get(&schema::MAX_FETCH_BYTES)?,
        max_archive_bytes: src.get(&schema::MAX_ARCHIVE_BYTES)?,
        max_archive_entries: src.get(&schema::MAX_ARCHIVE_ENTRIES)?,
        dedupe_window: src.get(&schema::DEDUPE_WINDOW)?,
        compression_level: src.get(&schema::COMPRESSION_LEVEL)?,
        codebuild_buildspec: src.get(&schema::CODEBUILD_BUILDSPEC)?,
        s3_bucket: src.value(&schema::BUCKET)?.filter(|b| !b.is_empty()),
        s3_endpoint: src.value(&schema::S3_ENDPOINT)?.filter(|e| !e.is_empty()),
    })
}

/// How flags are posted.
fn report(src: &impl Source) -> Result<ReportConfig, ConfigError> {
    Ok(ReportConfig {
        flag_username: src.get(&schema::FLAG_USERNAME)?.trim().to_owned(),
        retry: RetryPolicy {
            attempts: src.get(&schema::PAGURE_ATTEMPTS)?,
            timeout: src.get(&schema::PAGURE_TIMEOUT)?,
            ..RetryPolicy::default()
        },
        sweep_after: src.get(&schema::SWEEP_AFTER)?,
    })
}

#[cfg(test)]
mod tests;
