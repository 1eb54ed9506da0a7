//! One project as configured (`[projects.<key>]` in the file, a table of `PCB_PROJECTS`, a
//! registry rule) and its checks. A check names the field that is wrong; the caller names
//! the place the way its source spells it.

use std::collections::BTreeMap;

use serde::Deserialize;
use url::Url;

use super::ConfigError;
use super::source::{Problem, Value};
use crate::model::TriggerKind;
use crate::validate::RepoPolicy;

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

/// What is wrong with a project: the field (`None`: its key), and why.
#[derive(Debug)]
pub(crate) struct FieldError {
    pub field: Option<&'static str>,
    pub message: String,
}

impl FieldError {
    /// The place inside the projects table: `<key>` or `<key>.<field>`.
    pub(crate) fn at(&self, key: &str) -> String {
        match self.field {
            Some(field) => format!("{key}.{field}"),
            None => key.to_owned(),
        }
    }
}

fn wrong(field: &'static str, message: impl Into<String>) -> FieldError {
    FieldError { field: Some(field), message: message.into() }
}

const PIPELINE_NAME: &str = "a CodePipeline name: 1 to 100 of [A-Za-z0-9.@_-]";

impl ProjectConfig {
    /// Checks a project as the local file spells it: errors name `projects.<key>.<field>`.
    pub fn from_settings(key: &str, s: &ProjectSettings) -> Result<Self, ConfigError> {
        Self::check(key, s)
            .map_err(|e| ConfigError::Invalid { key: format!("projects.{}", e.at(key)), message: e.message })
    }

    /// Checks a project; the error names the field.
    pub(crate) fn check(key: &str, s: &ProjectSettings) -> Result<Self, FieldError> {
        if !is_project_key(key) {
            return Err(FieldError {
                field: None,
                message: "project keys are Jenkins job names: segments of [A-Za-z0-9._+-] separated by '/', at most 200 bytes".into(),
            });
        }
        let mut pagure_url = Url::parse(&s.pagure_url).map_err(|e| wrong("pagure_url", e.to_string()))?;
        if !matches!(pagure_url.scheme(), "http" | "https") {
            return Err(wrong("pagure_url", "must be an http or https URL"));
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
            return Err(wrong(
                "pagure_url",
                "must be https (http only on loopback, or with allow_insecure_git_url = true for test instances)",
            ));
        }
        if !pagure_url.path().ends_with('/') {
            let path = format!("{}/", pagure_url.path());
            pagure_url.set_path(&path);
        }
        let repo = RepoPolicy::new(&s.git_url, &s.project, s.allow_forks).map_err(|m| {
            let field = if m.starts_with("project") { "project" } else { "git_url" };
            wrong(field, m)
        })?;
        if repo.scheme() != "https" && !s.allow_insecure_git_url {
            return Err(wrong(
                "git_url",
                format!(
                    "scheme `{}` is only accepted with allow_insecure_git_url = true (test instances)",
                    repo.scheme()
                ),
            ));
        }
        if !matches!(repo.scheme(), "https" | "http" | "git") {
            return Err(wrong("git_url", "scheme must be https, http or git"));
        }
        if !is_pipeline_name(&s.pipeline) {
            return Err(wrong("pipeline", PIPELINE_NAME));
        }
        if let Some(untrusted) = &s.untrusted_pipeline {
            if !is_pipeline_name(untrusted) {
                return Err(wrong("untrusted_pipeline", PIPELINE_NAME));
            }
            if *untrusted == s.pipeline {
                return Err(wrong(
                    "untrusted_pipeline",
                    "must differ from `pipeline`: untrusted code must not run with the trusted build's powers",
                ));
            }
        }
        let approval_phrase = match s.approval_phrase.as_deref().map(str::trim) {
            Some("") => return Err(wrong("approval_phrase", "must not be empty (leave it out to turn approvals off)")),
            other => other.map(str::to_owned),
        };
        if s.triggers.is_empty() {
            return Err(wrong("triggers", "enable at least one of jenkins, json, webhook"));
        }
        if !is_relative_path(&s.buildspec) {
            return Err(wrong("buildspec", "a relative path inside the repository, such as ci/buildspec.yml"));
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

    /// The approval phrase must not also ask for a rebuild: one comment would mean both;
    /// `phrases_key` names the rebuild phrases' setting.
    pub(crate) fn phrase_clash(&self, rebuild_phrases: &[String], phrases_key: &str) -> Result<(), FieldError> {
        match &self.approval_phrase {
            Some(phrase) if rebuild_phrases.contains(phrase) => Err(wrong(
                "approval_phrase",
                format!("`{phrase}` is also a rebuild phrase ({phrases_key}): choose another"),
            )),
            _ => Ok(()),
        }
    }
}

/// The inline projects (`[projects]`, `PCB_PROJECTS`), each checked; problems are placed at
/// `<key>` or `<key>.<field>` inside the table.
impl Value for BTreeMap<String, ProjectConfig> {
    fn from_toml(value: &toml::Value) -> Result<Self, Problem> {
        let table = value.as_table().ok_or("must be a table with one table per project")?;
        let mut projects = BTreeMap::new();
        for (key, value) in table {
            let settings: ProjectSettings = value
                .clone()
                .try_into()
                .map_err(|e: toml::de::Error| Problem::at(key.clone(), e.message().trim().to_owned()))?;
            let project = ProjectConfig::check(key, &settings).map_err(|e| Problem::at(e.at(key), e.message))?;
            projects.insert(key.clone(), project);
        }
        Ok(projects)
    }

    /// TOML text: one table per project, as under `[projects]` in the file.
    fn from_text(text: &str) -> Result<Self, Problem> {
        let table: toml::Table = toml::from_str(text).map_err(|e| Problem::from(e.to_string().trim().to_owned()))?;
        Self::from_toml(&toml::Value::Table(table))
    }
}

/// Untrusted code must never run in a pipeline another inline project trusts: the first
/// project (in key order) whose untrusted pipeline is one, and the message.
pub(crate) fn untrusted_is_trusted(projects: &BTreeMap<String, ProjectConfig>) -> Option<(String, String)> {
    projects.values().find_map(|p| {
        let untrusted = p.untrusted_pipeline.as_ref()?;
        projects.values().any(|q| q.pipeline == *untrusted).then(|| {
            (
                format!("{}.untrusted_pipeline", p.key),
                format!("`{untrusted}` is a trusted pipeline (another project's): untrusted code must never run there"),
            )
        })
    })
}

/// A CodePipeline pipeline name: 1 to 100 of `[A-Za-z0-9.@_-]`.
fn is_pipeline_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 100
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '@' | '-' | '_'))
}

/// A path inside a repository, checked by the rules the archive applies to every tree path
/// ([`crate::gitpath::check_path`], at most [`crate::archive::MAX_PATH_BYTES`]): a setting the
/// archive would refuse fails here, at start, not on every build.
pub(crate) fn is_relative_path(path: &str) -> bool {
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
