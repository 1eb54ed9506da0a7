//! Configuration, parsed once at start into typed structs: a TOML file in local mode,
//! environment variables in Lambda. Every error names the key that is wrong.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;
use url::Url;

use crate::forge::RetryPolicy;
use crate::model::TriggerKind;
use crate::registry::{Deployment, Projects, Registry, RegistryDocument, RegistryError, RegistrySource, RuleSettings};
use crate::report::DEFAULT_FLAG_USERNAME;
use crate::validate::RepoPolicy;

/// Long enough to merge the same event arriving through two doors, a web-hook redelivered
/// and a burst of identical calls; short enough that pagure-ci's "rerun CI" (which cannot be
/// told from a first trigger) a minute later builds again.
pub const DEFAULT_DEDUPE_WINDOW_SECONDS: u64 = 60;

/// The phrase Pagure itself reacts to (`TRIGGER_CI` in Pagure's default configuration).
pub const DEFAULT_REBUILD_PHRASE: &str = "pretty please pagure-ci rebuild";
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration key `{key}`: {message}")]
    Invalid { key: String, message: String },
    #[error("configuration file {path}: {message}")]
    File { path: PathBuf, message: String },
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid { key: key.into(), message: message.into() }
}

/// One project as written in configuration (`[projects.<key>]`). The key is the Jenkins job
/// name Pagure is configured with, and the path segment of the JSON and web-hook triggers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectSettings {
    /// Pagure's `APP_URL`, e.g. `https://pagure.io/`. Web-hooks must come from it.
    pub pagure_url: String,
    /// Pagure's `GIT_URL_GIT`, e.g. `https://pagure.io`: the only place clones come from.
    pub git_url: String,
    /// The project's Pagure full name, `name` or `namespace/name`.
    pub project: String,
    /// The CodePipeline pipeline that builds it.
    pub pipeline: String,
    /// Doors a trigger for this project may come through. Default: all three.
    #[serde(default = "all_triggers")]
    pub triggers: Vec<TriggerKind>,
    /// Build pull requests from forks (`forks/<user>/…`). Default: true.
    #[serde(default = "default_true")]
    pub allow_forks: bool,
    /// Allow `git_url` to use a scheme other than `https` (`http`, `git`): test instances only.
    #[serde(default)]
    pub allow_insecure_git_url: bool,
    /// Path of the buildspec on the default branch (`buildspec.yaml` is tried after it).
    #[serde(default = "default_buildspec")]
    pub buildspec: String,
    /// The pipeline untrusted requests build in (pull requests whose author may not commit
    /// to the target branch, pushes to forks): one without the trusted build's secrets and
    /// powers. Without it, untrusted requests are not built.
    #[serde(default)]
    pub untrusted_pipeline: Option<String>,
    /// A PR comment equal to this (trimmed), by someone who may commit to the target branch,
    /// approves an untrusted pull request's current head for the trusted `pipeline` (as
    /// Prow's `/ok-to-test`). Off when absent.
    #[serde(default)]
    pub approval_phrase: Option<String>,
    /// The name of a token under `shared_pagure_api_tokens` in the secret, for flags when the
    /// project has no `pagure_api_token` of its own.
    #[serde(default)]
    pub shared_pagure_api_token: Option<String>,
}

pub(crate) fn default_buildspec() -> String {
    "buildspec.yml".into()
}

pub(crate) fn all_triggers() -> Vec<TriggerKind> {
    vec![TriggerKind::Jenkins, TriggerKind::Json, TriggerKind::Webhook]
}

fn default_true() -> bool {
    true
}

/// A project ready for use.
#[derive(Debug, Clone)]
pub struct ProjectConfig {
    pub key: String,
    /// `APP_URL`, always with a trailing slash (as Pagure sends it in `X-Pagure`).
    pub pagure_url: Url,
    pub repo: RepoPolicy,
    pub pipeline: String,
    pub triggers: Vec<TriggerKind>,
    /// Buildspec paths tried in order on the default branch.
    pub buildspec_paths: Vec<String>,
    /// See [`ProjectSettings::untrusted_pipeline`].
    pub untrusted_pipeline: Option<String>,
    /// See [`ProjectSettings::approval_phrase`]; trimmed, never empty.
    pub approval_phrase: Option<String>,
    /// See [`ProjectSettings::shared_pagure_api_token`].
    pub shared_pagure_api_token: Option<String>,
}

impl ProjectConfig {
    pub fn from_settings(key: &str, s: &ProjectSettings) -> Result<Self, ConfigError> {
        let at = |field: &str| format!("projects.{key}.{field}");
        if !is_project_key(key) {
            return Err(invalid(
                format!("projects.{key}"),
                "project keys are Jenkins job names: segments of [A-Za-z0-9._+-] separated by '/', at most 200 bytes",
            ));
        }
        let mut pagure_url = Url::parse(&s.pagure_url).map_err(|e| invalid(at("pagure_url"), e.to_string()))?;
        if !matches!(pagure_url.scheme(), "http" | "https") {
            return Err(invalid(at("pagure_url"), "must be an http or https URL"));
        }
        // Flags, PR reads and the CLI's checks send the API token there: never in clear text
        // over a network (loopback stays on the machine).
        let loopback = match pagure_url.host() {
            Some(url::Host::Domain(d)) => d == "localhost",
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        if pagure_url.scheme() != "https" && !loopback && !s.allow_insecure_git_url {
            return Err(invalid(
                at("pagure_url"),
                "must be https (http only on loopback, or with allow_insecure_git_url = true for test instances)",
            ));
        }
        if !pagure_url.path().ends_with('/') {
            let path = format!("{}/", pagure_url.path());
            pagure_url.set_path(&path);
        }
        let repo = RepoPolicy::new(&s.git_url, &s.project, s.allow_forks).map_err(|m| {
            let field = if m.starts_with("project") { "project" } else { "git_url" };
            invalid(at(field), m)
        })?;
        if repo.scheme() != "https" && !s.allow_insecure_git_url {
            return Err(invalid(
                at("git_url"),
                format!(
                    "scheme `{}` is only accepted with allow_insecure_git_url = true (test instances)",
                    repo.scheme()
                ),
            ));
        }
        if !matches!(repo.scheme(), "https" | "http" | "git") {
            return Err(invalid(at("git_url"), "scheme must be https, http or git"));
        }
        if !is_pipeline_name(&s.pipeline) {
            return Err(invalid(at("pipeline"), "a CodePipeline name: 1 to 100 of [A-Za-z0-9.@_-]"));
        }
        if let Some(untrusted) = &s.untrusted_pipeline {
            if !is_pipeline_name(untrusted) {
                return Err(invalid(at("untrusted_pipeline"), "a CodePipeline name: 1 to 100 of [A-Za-z0-9.@_-]"));
            }
            if *untrusted == s.pipeline {
                return Err(invalid(
                    at("untrusted_pipeline"),
                    "must differ from `pipeline`: untrusted code must not run with the trusted build's powers",
                ));
            }
        }
        let approval_phrase = match s.approval_phrase.as_deref().map(str::trim) {
            Some("") => {
                return Err(invalid(at("approval_phrase"), "must not be empty (leave it out to turn approvals off)"));
            }
            other => other.map(str::to_owned),
        };
        if s.triggers.is_empty() {
            return Err(invalid(at("triggers"), "enable at least one of jenkins, json, webhook"));
        }
        if !is_relative_path(&s.buildspec) {
            return Err(invalid(at("buildspec"), "a relative path inside the repository, such as ci/buildspec.yml"));
        }
        let mut buildspec_paths = vec![s.buildspec.clone()];
        if s.buildspec == "buildspec.yml" {
            buildspec_paths.push("buildspec.yaml".into());
        }
        Ok(ProjectConfig {
            key: key.to_owned(),
            pagure_url,
            repo,
            pipeline: s.pipeline.clone(),
            triggers: s.triggers.clone(),
            buildspec_paths,
            untrusted_pipeline: s.untrusted_pipeline.clone(),
            approval_phrase,
            shared_pagure_api_token: s.shared_pagure_api_token.clone(),
        })
    }

    pub fn accepts(&self, kind: TriggerKind) -> bool {
        self.triggers.contains(&kind)
    }

    /// The approval phrase must not also ask for a rebuild: one comment would mean both.
    pub(crate) fn check_phrases(&self, rebuild_phrases: &[String]) -> Result<(), ConfigError> {
        match &self.approval_phrase {
            Some(phrase) if rebuild_phrases.contains(phrase) => Err(invalid(
                format!("projects.{}.approval_phrase", self.key),
                format!(
                    "`{phrase}` is also a rebuild phrase (accept.rebuild_phrases, PCB_REBUILD_PHRASES): choose another"
                ),
            )),
            _ => Ok(()),
        }
    }
}

/// A CodePipeline pipeline name: 1 to 100 of `[A-Za-z0-9.@_-]`.
fn is_pipeline_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'))
}

/// The buildspec path CodeBuild reads when the deployment does not say otherwise.
pub const DEFAULT_CODEBUILD_BUILDSPEC: &str = "buildspec.yml";

/// A path inside a repository, checked by the rules the archive applies to every tree path
/// ([`crate::gitpath::check_path`], at most [`crate::archive::MAX_PATH_BYTES`]): a setting the
/// archive would refuse fails here, at start, not on every build.
fn is_relative_path(path: &str) -> bool {
    path.len() <= crate::archive::MAX_PATH_BYTES && crate::gitpath::check_path(path, false).is_ok()
}

/// Jenkins job names the bridge routes: `a`, `a/b` (folders), of `[A-Za-z0-9._+-]` (`+`
/// because Pagure names may have it, e.g. `rpms/libsigc++20`).
pub fn is_project_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 200
        && key.split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+'))
        })
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct AcceptSettings {
    max_body_bytes: Option<usize>,
    #[serde(default)]
    source_cidrs: Vec<String>,
    rebuild_phrases: Option<Vec<String>>,
}

fn parse_cidrs(key: &str, items: &[String]) -> Result<Vec<IpNet>, ConfigError> {
    items
        .iter()
        .map(|item| {
            let item = item.trim();
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| invalid(key, format!("`{item}` is not an IP network such as 192.0.2.0/24")))
        })
        .collect()
}

fn build_projects(raw: &BTreeMap<String, ProjectSettings>) -> Result<BTreeMap<String, ProjectConfig>, ConfigError> {
    raw.iter().map(|(key, settings)| Ok((key.clone(), ProjectConfig::from_settings(key, settings)?))).collect()
}

fn build_accept(
    settings: AcceptSettings,
    projects: BTreeMap<String, ProjectConfig>,
    registry: Option<(RegistryLocation, Duration, Deployment)>,
    prefix: &str,
    deployment_key: impl Fn(&str) -> String,
) -> Result<AcceptConfig, ConfigError> {
    let max_body_bytes = settings.max_body_bytes.unwrap_or(DEFAULT_MAX_BODY_BYTES);
    if !(1024..=6 * 1024 * 1024).contains(&max_body_bytes) {
        return Err(invalid(
            format!("{prefix}max_body_bytes"),
            "must be between 1024 and 6291456 (Lambda's payload limit)",
        ));
    }
    let rebuild_phrases = settings
        .rebuild_phrases
        .unwrap_or_else(|| vec![DEFAULT_REBUILD_PHRASE.to_owned()])
        .into_iter()
        .map(|p| p.trim().to_owned())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>();
    for project in projects.values() {
        project.check_phrases(&rebuild_phrases)?;
    }
    let registry = registry.map(|(location, ttl, deployment)| RegistrySetup {
        location,
        ttl,
        deployment: Deployment { rebuild_phrases: rebuild_phrases.clone(), ..deployment },
        inline: projects.clone(),
    });
    if let Some(setup) = &registry {
        setup.check().map_err(|(field, message)| invalid(deployment_key(&field), message))?;
    } else if projects.is_empty() {
        return Err(invalid("projects", "configure at least one project, or a project registry"));
    }
    let fixed = Registry::compile(&projects, None, &Deployment::default()).map_err(|e| match e {
        RegistryError::Invalid { at, message } => invalid(at, message),
        other => invalid("projects", other.to_string()),
    })?;
    Ok(AcceptConfig {
        max_body_bytes,
        source_cidrs: parse_cidrs(&format!("{prefix}source_cidrs"), &settings.source_cidrs)?,
        rebuild_phrases,
        projects: Projects::fixed(fixed),
        registry,
    })
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReportSettings {
    flag_username: Option<String>,
    pagure_attempts: Option<u32>,
    pagure_timeout_seconds: Option<u64>,
    sweep_after_seconds: Option<u64>,
}

impl ReportSettings {
    fn build(self, prefix: &str) -> Result<ReportConfig, ConfigError> {
        let flag_username = self.flag_username.unwrap_or_else(|| DEFAULT_FLAG_USERNAME.to_owned()).trim().to_owned();
        if flag_username.is_empty() {
            return Err(invalid(format!("{prefix}flag_username"), "must not be empty"));
        }
        let defaults = RetryPolicy::default();
        let attempts = self.pagure_attempts.unwrap_or(defaults.attempts);
        if !(1..=10).contains(&attempts) {
            return Err(invalid(format!("{prefix}pagure_attempts"), "must be between 1 and 10"));
        }
        let timeout = self.pagure_timeout_seconds.map_or(defaults.timeout, Duration::from_secs);
        if timeout.is_zero() {
            return Err(invalid(format!("{prefix}pagure_timeout_seconds"), "must be at least 1"));
        }
        let sweep_after =
            Duration::from_secs(self.sweep_after_seconds.unwrap_or(crate::sweep::DEFAULT_SWEEP_AFTER_SECONDS));
        if sweep_after < Duration::from_secs(60) {
            return Err(invalid(format!("{prefix}sweep_after_seconds"), "must be at least 60"));
        }
        Ok(ReportConfig { flag_username, retry: RetryPolicy { attempts, timeout, ..defaults }, sweep_after })
    }
}

impl Default for ReportConfig {
    fn default() -> Self {
        ReportConfig {
            flag_username: DEFAULT_FLAG_USERNAME.to_owned(),
            retry: RetryPolicy::default(),
            sweep_after: Duration::from_secs(crate::sweep::DEFAULT_SWEEP_AFTER_SECONDS),
        }
    }
}

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
    /// Local mode: store archives in this S3 bucket instead of `artifacts_dir`.
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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WorkSettingsFile {
    artifacts_dir: Option<PathBuf>,
    max_attempts: Option<u32>,
    retry_delay_ms: Option<u64>,
    retry_max_ms: Option<u64>,
    fetch_timeout_seconds: Option<u64>,
    max_fetch_bytes: Option<u64>,
    max_archive_bytes: Option<u64>,
    max_archive_entries: Option<u64>,
    dedupe_window_seconds: Option<u64>,
    compression_level: Option<u8>,
    codebuild_buildspec: Option<String>,
    s3_bucket: Option<String>,
    s3_endpoint: Option<String>,
}

impl WorkSettingsFile {
    fn build(self, base_dir: &Path) -> Result<WorkConfig, ConfigError> {
        let max_attempts = self.max_attempts.unwrap_or(5);
        if max_attempts == 0 {
            return Err(invalid("work.max_attempts", "must be at least 1"));
        }
        let compression_level = self.compression_level.unwrap_or(crate::archive::DEFAULT_COMPRESSION_LEVEL);
        if !(1..=9).contains(&compression_level) {
            return Err(invalid("work.compression_level", "must be 1 (fastest) to 9 (smallest)"));
        }
        let (retry_delay_ms, retry_max_ms) =
            (self.retry_delay_ms.unwrap_or(1000), self.retry_max_ms.unwrap_or(DEFAULT_RETRY_MAX_SECONDS * 1000));
        if retry_max_ms < retry_delay_ms {
            return Err(invalid("work.retry_max_ms", "must be at least the first wait (retry_delay_ms)"));
        }
        let codebuild_buildspec = self.codebuild_buildspec.unwrap_or_else(|| DEFAULT_CODEBUILD_BUILDSPEC.to_owned());
        if !is_relative_path(&codebuild_buildspec) {
            return Err(invalid(
                "work.codebuild_buildspec",
                "the relative path CodeBuild reads in the archive, such as buildspec.yml or ci/buildspec.yml",
            ));
        }
        Ok(WorkConfig {
            artifacts_dir: base_dir.join(self.artifacts_dir.unwrap_or_else(|| PathBuf::from("artifacts"))),
            max_attempts,
            retry_delay: Duration::from_millis(retry_delay_ms),
            retry_max: Duration::from_millis(retry_max_ms),
            fetch_timeout: Duration::from_secs(self.fetch_timeout_seconds.unwrap_or(300)),
            max_fetch_bytes: self.max_fetch_bytes.unwrap_or(2 << 30),
            max_archive_bytes: self.max_archive_bytes.unwrap_or(4 << 30),
            max_archive_entries: self.max_archive_entries.unwrap_or(200_000),
            dedupe_window: Duration::from_secs(self.dedupe_window_seconds.unwrap_or(DEFAULT_DEDUPE_WINDOW_SECONDS)),
            compression_level,
            codebuild_buildspec,
            s3_bucket: self.s3_bucket.filter(|b| !b.is_empty()),
            s3_endpoint: self.s3_endpoint.filter(|e| !e.is_empty()),
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LocalFile {
    #[serde(default)]
    server: ServerSettings,
    #[serde(default)]
    accept: AcceptSettings,
    secrets: SecretsSettings,
    #[serde(default)]
    work: WorkSettingsFile,
    #[serde(default)]
    report: ReportSettings,
    #[serde(default)]
    projects: BTreeMap<String, ProjectSettings>,
    registry: Option<RegistryFileSettings>,
}

/// `[registry]`: the project registry file, and what the deployment gives every rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFileSettings {
    file: PathBuf,
    ttl_seconds: Option<u64>,
    pagure_url: Option<String>,
    git_url: Option<String>,
    pipeline: Option<String>,
    untrusted_pipeline: Option<String>,
    pipeline_prefix: Option<String>,
}

impl RegistryFileSettings {
    fn build(self, base_dir: &Path) -> (RegistryLocation, Duration, Deployment) {
        let deployment = Deployment {
            pagure_url: self.pagure_url,
            git_url: self.git_url,
            pipeline: self.pipeline,
            untrusted_pipeline: self.untrusted_pipeline,
            pipeline_prefix: self.pipeline_prefix,
            rebuild_phrases: Vec::new(),
        };
        // Local edits should show quickly; the file is cheap to read.
        let ttl = Duration::from_secs(self.ttl_seconds.unwrap_or(2));
        (RegistryLocation::File(base_dir.join(self.file)), ttl, deployment)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerSettings {
    #[serde(default = "default_listen")]
    listen: String,
    #[serde(default = "default_queue_capacity")]
    queue_capacity: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings { listen: default_listen(), queue_capacity: default_queue_capacity() }
    }
}

fn default_listen() -> String {
    "127.0.0.1:8080".into()
}

fn default_queue_capacity() -> usize {
    10_000
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretsSettings {
    file: PathBuf,
}

impl LocalConfig {
    /// Reads and checks a configuration file; relative paths in it are relative to the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::File { path: path.to_owned(), message: e.to_string() })?;
        let base = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, base).map_err(|e| match e {
            ConfigError::File { message, .. } => ConfigError::File { path: path.to_owned(), message },
            other => other,
        })
    }

    pub fn parse(text: &str, base_dir: &Path) -> Result<Self, ConfigError> {
        let file: LocalFile =
            toml::from_str(text).map_err(|e| ConfigError::File { path: PathBuf::new(), message: e.to_string() })?;
        let listen = file.server.listen.parse().map_err(|_| {
            invalid("server.listen", format!("`{}` is not an address such as 127.0.0.1:8080", file.server.listen))
        })?;
        if file.server.queue_capacity == 0 {
            return Err(invalid("server.queue_capacity", "must be at least 1"));
        }
        let projects = build_projects(&file.projects)?;
        Ok(LocalConfig {
            listen,
            queue_capacity: file.server.queue_capacity,
            secrets_file: base_dir.join(&file.secrets.file),
            accept: build_accept(
                file.accept,
                projects,
                file.registry.map(|r| r.build(base_dir)),
                "accept.",
                |field| format!("registry.{field}"),
            )?,
            work: file.work.build(base_dir)?,
            report: file.report.build("report.")?,
        })
    }
}

/// The accept Lambda, from its environment.
#[derive(Debug, Clone)]
pub struct AcceptLambdaConfig {
    pub queue_url: String,
    pub secret_id: String,
    pub secrets_ttl: Duration,
    /// How many secrets hold the secrets document (`PCB_SECRET_SHARDS`): see
    /// [`crate::ports::shard_secret_id`].
    pub secret_shards: u32,
    pub accept: AcceptConfig,
}

/// Environment variables the accept Lambda reads.
pub mod env {
    pub const QUEUE_URL: &str = "PCB_QUEUE_URL";
    pub const SECRET_ID: &str = "PCB_SECRET_ID";
    pub const SECRETS_TTL_SECONDS: &str = "PCB_SECRETS_TTL_SECONDS";
    /// How many secrets hold the secrets document (one holds at most 64 KiB).
    pub const SECRET_SHARDS: &str = "PCB_SECRET_SHARDS";
    /// TOML: one table per project, as under `[projects]` in the local file (small setups;
    /// the registry is how a deployment grows).
    pub const PROJECTS: &str = "PCB_PROJECTS";
    /// The project registry: an S3 object, read again after the TTL.
    pub const REGISTRY_BUCKET: &str = "PCB_REGISTRY_BUCKET";
    pub const REGISTRY_KEY: &str = "PCB_REGISTRY_KEY";
    pub const REGISTRY_TTL_SECONDS: &str = "PCB_REGISTRY_TTL_SECONDS";
    /// What the deployment gives every registry rule: its forge, its shared pipelines, and
    /// the prefix every pipeline a rule names must have.
    pub const PAGURE_URL: &str = "PCB_PAGURE_URL";
    pub const GIT_URL: &str = "PCB_GIT_URL";
    pub const PIPELINE: &str = "PCB_PIPELINE";
    pub const UNTRUSTED_PIPELINE: &str = "PCB_UNTRUSTED_PIPELINE";
    pub const PIPELINE_PREFIX: &str = "PCB_PIPELINE_PREFIX";
    pub const MAX_BODY_BYTES: &str = "PCB_MAX_BODY_BYTES";
    /// Comma-separated networks.
    pub const SOURCE_CIDRS: &str = "PCB_SOURCE_CIDRS";
    /// Newline-separated phrases.
    pub const REBUILD_PHRASES: &str = "PCB_REBUILD_PHRASES";
    /// The work Lambda's: the archive bucket, key prefix, KMS key, source action name,
    /// the queue's maxReceiveCount, fetch and archive limits.
    pub const BUCKET: &str = "PCB_BUCKET";
    pub const KEY_PREFIX: &str = "PCB_KEY_PREFIX";
    pub const KMS_KEY_ID: &str = "PCB_KMS_KEY_ID";
    pub const SOURCE_ACTION: &str = "PCB_SOURCE_ACTION";
    pub const MAX_RECEIVE_COUNT: &str = "PCB_MAX_RECEIVE_COUNT";
    pub const FETCH_TIMEOUT_SECONDS: &str = "PCB_FETCH_TIMEOUT_SECONDS";
    pub const MAX_FETCH_BYTES: &str = "PCB_MAX_FETCH_BYTES";
    pub const MAX_ARCHIVE_BYTES: &str = "PCB_MAX_ARCHIVE_BYTES";
    pub const MAX_ARCHIVE_ENTRIES: &str = "PCB_MAX_ARCHIVE_ENTRIES";
    pub const DEDUPE_WINDOW_SECONDS: &str = "PCB_DEDUPE_WINDOW_SECONDS";
    /// The work Lambda's retry schedule: the first wait, doubling up to the longest.
    pub const RETRY_FIRST_SECONDS: &str = "PCB_RETRY_FIRST_SECONDS";
    pub const RETRY_MAX_SECONDS: &str = "PCB_RETRY_MAX_SECONDS";
    pub const COMPRESSION_LEVEL: &str = "PCB_COMPRESSION_LEVEL";
    /// The path CodeBuild reads the buildspec from (the templates' `BuildSpecPath`).
    pub const CODEBUILD_BUILDSPEC: &str = "PCB_CODEBUILD_BUILDSPEC";
    /// The work and report Lambdas': how flags are posted.
    pub const FLAG_USERNAME: &str = "PCB_FLAG_USERNAME";
    pub const PAGURE_ATTEMPTS: &str = "PCB_PAGURE_ATTEMPTS";
    pub const PAGURE_TIMEOUT_SECONDS: &str = "PCB_PAGURE_TIMEOUT_SECONDS";
    /// The report Lambda's sweep (see `crate::sweep`).
    pub const SWEEP_AFTER_SECONDS: &str = "PCB_SWEEP_AFTER_SECONDS";
}

/// Reads typed values from the environment; every error names the variable.
struct Env<F>(F);

impl<F: Fn(&str) -> Option<String>> Env<F> {
    fn optional(&self, key: &str) -> Option<String> {
        (self.0)(key).filter(|v| !v.trim().is_empty())
    }

    fn required(&self, key: &str) -> Result<String, ConfigError> {
        self.optional(key).ok_or_else(|| invalid(key, "is required and not set"))
    }

    fn number<N: std::str::FromStr>(&self, key: &str) -> Result<Option<N>, ConfigError>
    where
        N::Err: std::fmt::Display,
    {
        self.optional(key)
            .map(|v| v.trim().parse::<N>().map_err(|e| invalid(key, format!("`{v}` is not a whole number: {e}"))))
            .transpose()
    }

    /// The registry's place and the deployment's values, when `PCB_REGISTRY_BUCKET` is set.
    fn registry(&self) -> Result<Option<(RegistryLocation, Duration, Deployment)>, ConfigError> {
        let Some(bucket) = self.optional(env::REGISTRY_BUCKET) else { return Ok(None) };
        let key = self.optional(env::REGISTRY_KEY).unwrap_or_else(|| "registry.json".into());
        let ttl =
            self.number(env::REGISTRY_TTL_SECONDS)?.map_or(crate::registry::DEFAULT_REGISTRY_TTL, Duration::from_secs);
        let deployment = Deployment {
            pagure_url: self.optional(env::PAGURE_URL),
            git_url: self.optional(env::GIT_URL),
            pipeline: self.optional(env::PIPELINE),
            untrusted_pipeline: self.optional(env::UNTRUSTED_PIPELINE),
            pipeline_prefix: self.optional(env::PIPELINE_PREFIX),
            rebuild_phrases: Vec::new(),
        };
        Ok(Some((RegistryLocation::S3 { bucket, key }, ttl, deployment)))
    }

    /// `PCB_PROJECTS`, the registry, and the accept settings every Lambda shares.
    fn accept(&self) -> Result<AcceptConfig, ConfigError> {
        let registry = self.registry()?;
        let inline = match (self.optional(env::PROJECTS), &registry) {
            (Some(text), _) => text,
            (None, Some(_)) => String::new(),
            (None, None) => {
                return Err(invalid(env::PROJECTS, format!("is required when {} is not set", env::REGISTRY_BUCKET)));
            }
        };
        let raw: BTreeMap<String, ProjectSettings> =
            toml::from_str(&inline).map_err(|e| invalid(env::PROJECTS, e.to_string()))?;
        let projects = build_projects(&raw).map_err(|e| match e {
            ConfigError::Invalid { key, message } => invalid(format!("{} ({key})", env::PROJECTS), message),
            other => other,
        })?;
        let settings = AcceptSettings {
            max_body_bytes: self.number(env::MAX_BODY_BYTES)?,
            source_cidrs: self
                .optional(env::SOURCE_CIDRS)
                .map(|v| v.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect())
                .unwrap_or_default(),
            rebuild_phrases: self.optional(env::REBUILD_PHRASES).map(|v| v.lines().map(String::from).collect()),
        };
        let deployment_key = |field: &str| match field {
            "pagure_url" => env::PAGURE_URL.to_owned(),
            "git_url" => env::GIT_URL.to_owned(),
            "untrusted_pipeline" => env::UNTRUSTED_PIPELINE.to_owned(),
            "pipeline" => env::PIPELINE.to_owned(),
            other => format!("{} ({other})", env::REGISTRY_BUCKET),
        };
        build_accept(settings, projects, registry, "", deployment_key).map_err(|e| match e {
            ConfigError::Invalid { key, message } if key.starts_with("projects.") => {
                invalid(format!("{} ({key})", env::PROJECTS), message)
            }
            ConfigError::Invalid { key, message } if key.starts_with("PCB_") => invalid(key, message),
            ConfigError::Invalid { key, message } => invalid(format!("PCB_{}", key.to_ascii_uppercase()), message),
            other => other,
        })
    }

    fn report(&self) -> Result<ReportConfig, ConfigError> {
        let settings = ReportSettings {
            flag_username: self.optional(env::FLAG_USERNAME),
            pagure_attempts: self.number(env::PAGURE_ATTEMPTS)?,
            pagure_timeout_seconds: self.number(env::PAGURE_TIMEOUT_SECONDS)?,
            sweep_after_seconds: self.number(env::SWEEP_AFTER_SECONDS)?,
        };
        settings.build("").map_err(|e| match e {
            ConfigError::Invalid { key, message } => invalid(format!("PCB_{}", key.to_ascii_uppercase()), message),
            other => other,
        })
    }

    /// Seconds an SQS visibility timeout can be: 0 to 43,200 (12 hours).
    fn visibility_seconds(&self, key: &str, default: u64) -> Result<u64, ConfigError> {
        let seconds = self.number::<u64>(key)?.unwrap_or(default);
        if seconds > 43_200 {
            return Err(invalid(key, "must be at most 43200 (12 hours, SQS's longest visibility timeout)"));
        }
        Ok(seconds)
    }

    /// `PCB_SECRET_SHARDS`, 1 to 200. Shards are named after the base secret, so with more
    /// than one `PCB_SECRET_ID` must be the secret's name, not its ARN.
    fn secret_shards(&self) -> Result<u32, ConfigError> {
        let shards = self.number(env::SECRET_SHARDS)?.unwrap_or(1);
        if !(1..=200).contains(&shards) {
            return Err(invalid(env::SECRET_SHARDS, "must be 1 to 200"));
        }
        if shards > 1 && self.optional(env::SECRET_ID).is_some_and(|id| id.starts_with("arn:")) {
            return Err(invalid(
                env::SECRET_ID,
                "must be the secret's name, not its ARN, when PCB_SECRET_SHARDS is above 1 (shards are named `<name>-shard-<i>`)",
            ));
        }
        Ok(shards)
    }

    fn secrets_ttl(&self) -> Result<Duration, ConfigError> {
        Ok(Duration::from_secs(self.number(env::SECRETS_TTL_SECONDS)?.unwrap_or(300)))
    }
}

impl AcceptLambdaConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(get: F) -> Result<Self, ConfigError> {
        let env = Env(get);
        let accept = env.accept()?;
        Ok(AcceptLambdaConfig {
            queue_url: env.required(env::QUEUE_URL)?,
            secret_id: env.required(env::SECRET_ID)?,
            secrets_ttl: env.secrets_ttl()?,
            secret_shards: env.secret_shards()?,
            accept,
        })
    }
}

/// What `pagure-ci-bridge projects` needs of a deployment: the same variables as the
/// Lambdas (the stack prints them), with the registry required.
#[derive(Debug, Clone)]
pub struct AdminConfig {
    pub secret_id: String,
    pub secret_shards: u32,
    pub report: ReportConfig,
    pub accept: AcceptConfig,
}

impl AdminConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(get: F) -> Result<Self, ConfigError> {
        let env = Env(get);
        // The same deployment values as the Lambdas: a rule the CLI accepts must be one they
        // accept too, or the whole registry would be refused where it matters.
        // The stack's CliEnvironment output sets every one of them.
        for key in [
            env::REGISTRY_BUCKET,
            env::PAGURE_URL,
            env::GIT_URL,
            env::PIPELINE,
            env::UNTRUSTED_PIPELINE,
            env::PIPELINE_PREFIX,
            env::SECRET_SHARDS,
        ] {
            env.required(key)?;
        }
        Ok(AdminConfig {
            secret_id: env.required(env::SECRET_ID)?,
            secret_shards: env.secret_shards()?,
            report: env.report()?,
            accept: env.accept()?,
        })
    }
}

/// The work Lambda, from its environment.
#[derive(Debug, Clone)]
pub struct WorkLambdaConfig {
    pub secret_id: String,
    pub secrets_ttl: Duration,
    /// How many secrets hold the secrets document (`PCB_SECRET_SHARDS`): see
    /// [`crate::ports::shard_secret_id`].
    pub secret_shards: u32,
    pub bucket: String,
    pub key_prefix: String,
    /// SSE-KMS key for archives; SSE-S3 when unset.
    pub kms_key_id: Option<String>,
    /// Name of the pipelines' S3 source action.
    pub source_action: String,
    /// The queue's `maxReceiveCount`: the delivery that reaches it is the last.
    pub max_receive_count: u32,
    /// The queue the work Lambda consumes (`PCB_QUEUE_URL`), for `ChangeMessageVisibility`:
    /// without it a failed request waits out the queue's visibility timeout.
    pub queue_url: Option<String>,
    pub work: WorkConfig,
    pub report: ReportConfig,
    pub accept: AcceptConfig,
}

impl WorkLambdaConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(get: F) -> Result<Self, ConfigError> {
        let env = Env(get);
        let work = WorkSettingsFile {
            artifacts_dir: None,
            max_attempts: env.number(env::MAX_RECEIVE_COUNT)?,
            retry_delay_ms: Some(env.visibility_seconds(env::RETRY_FIRST_SECONDS, DEFAULT_RETRY_FIRST_SECONDS)? * 1000),
            retry_max_ms: Some(env.visibility_seconds(env::RETRY_MAX_SECONDS, DEFAULT_RETRY_MAX_SECONDS)? * 1000),
            fetch_timeout_seconds: env.number(env::FETCH_TIMEOUT_SECONDS)?,
            max_fetch_bytes: env.number(env::MAX_FETCH_BYTES)?,
            max_archive_bytes: env.number(env::MAX_ARCHIVE_BYTES)?,
            max_archive_entries: env.number(env::MAX_ARCHIVE_ENTRIES)?,
            dedupe_window_seconds: env.number(env::DEDUPE_WINDOW_SECONDS)?,
            compression_level: env.number(env::COMPRESSION_LEVEL)?,
            codebuild_buildspec: env.optional(env::CODEBUILD_BUILDSPEC),
            s3_bucket: None,
            s3_endpoint: None,
        }
        .build(Path::new("/tmp"))
        .map_err(|e| match e {
            ConfigError::Invalid { key, message } if key == "work.compression_level" => {
                invalid(env::COMPRESSION_LEVEL, message)
            }
            ConfigError::Invalid { key, message } if key == "work.codebuild_buildspec" => {
                invalid(env::CODEBUILD_BUILDSPEC, message)
            }
            ConfigError::Invalid { key, .. } if key == "work.retry_max_ms" => {
                invalid(env::RETRY_MAX_SECONDS, format!("must be at least {}", env::RETRY_FIRST_SECONDS))
            }
            ConfigError::Invalid { message, .. } => invalid(env::MAX_RECEIVE_COUNT, message),
            other => other,
        })?;
        Ok(WorkLambdaConfig {
            secret_id: env.required(env::SECRET_ID)?,
            secrets_ttl: env.secrets_ttl()?,
            secret_shards: env.secret_shards()?,
            bucket: env.required(env::BUCKET)?,
            key_prefix: env.optional(env::KEY_PREFIX).unwrap_or_else(|| "sources".into()),
            kms_key_id: env.optional(env::KMS_KEY_ID),
            source_action: env.optional(env::SOURCE_ACTION).unwrap_or_else(|| "Source".into()),
            max_receive_count: work.max_attempts,
            queue_url: env.optional(env::QUEUE_URL),
            work,
            report: env.report()?,
            accept: env.accept()?,
        })
    }
}

/// The report Lambda, from its environment: the projects (`PCB_PROJECTS`, as for the other
/// two), the secret holding the Pagure tokens, and how flags are posted.
#[derive(Debug, Clone)]
pub struct ReportLambdaConfig {
    pub secret_id: String,
    pub secrets_ttl: Duration,
    /// How many secrets hold the secrets document (`PCB_SECRET_SHARDS`): see
    /// [`crate::ports::shard_secret_id`].
    pub secret_shards: u32,
    pub report: ReportConfig,
    pub accept: AcceptConfig,
    /// The work stage's bucket (`PCB_BUCKET`), key prefix (`PCB_KEY_PREFIX`) and SSE-KMS key
    /// (`PCB_KMS_KEY_ID`): where the `.started` markers are, and where `.settled` ones go.
    /// Without a bucket, final flags are not recorded and the schedule event does nothing.
    pub bucket: Option<String>,
    pub key_prefix: String,
    pub kms_key_id: Option<String>,
}

impl ReportLambdaConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(get: F) -> Result<Self, ConfigError> {
        let env = Env(get);
        Ok(ReportLambdaConfig {
            secret_id: env.required(env::SECRET_ID)?,
            secrets_ttl: env.secrets_ttl()?,
            secret_shards: env.secret_shards()?,
            report: env.report()?,
            accept: env.accept()?,
            bucket: env.optional(env::BUCKET),
            key_prefix: env.optional(env::KEY_PREFIX).unwrap_or_else(|| "sources".into()),
            kms_key_id: env.optional(env::KMS_KEY_ID),
        })
    }
}

#[cfg(test)]
mod tests;
