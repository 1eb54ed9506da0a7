//! The project registry: which projects a deployment builds and how, as routing rules that
//! the three stages read at run time (an S3 object in AWS, a file in local mode), so that a
//! project is onboarded without touching the infrastructure.
//!
//! The document is JSON, machine-edited by `pagure-ci-bridge projects` and read at every cold
//! start:
//!
//! ```json
//! {"version": 1,
//!  "defaults": {"approval_phrase": "/ok-to-test"},
//!  "rules": [{"match": "rpms/*"},
//!            {"match": "pagure", "untrusted_pipeline": "pcb-untrusted"}]}
//! ```
//!
//! A rule's `match` is a project key (the Jenkins job name Pagure calls, and the last part of
//! `/trigger/<key>` and `/webhook/<key>`) or a pattern where `*` stands for any run of
//! characters inside one `/`-separated segment. Exact rules win; patterns are tried in
//! document order. The key of a project matched by a pattern is its Pagure full name. A
//! field missing from a rule comes from `defaults`, then from the deployment (the stack's
//! forge and shared pipelines), then from the built-in defaults.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ProjectConfig, ProjectSettings, is_project_key};
use crate::model::TriggerKind;

/// The only document version this bridge reads.
pub const REGISTRY_VERSION: u32 = 1;

/// The longest a registry read may take before the last good copy is used instead.
pub const REGISTRY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// How long the stages keep a registry before reading it again.
pub const DEFAULT_REGISTRY_TTL: Duration = Duration::from_secs(60);

/// One rule as written, and the `defaults` every rule starts from (where `match` and
/// `project` are refused). Every field but `match` is optional.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSettings {
    #[serde(rename = "match", default, skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    /// Exact rules only: the project's Pagure full name when it differs from the key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pagure_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub git_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub untrusted_pipeline: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub buildspec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Vec<TriggerKind>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_forks: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_insecure_git_url: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_phrase: Option<String>,
    /// The name of a token under `shared_pagure_api_tokens` in the secret, used by the
    /// rule's projects that have no `pagure_api_token` of their own (one bot account for many
    /// projects: Pagure accepts a token without a project).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_pagure_api_token: Option<String>,
}

impl RuleSettings {
    /// `self`'s fields, each falling back to `base`'s.
    fn over(&self, base: &RuleSettings) -> RuleSettings {
        fn pick<T: Clone>(a: &Option<T>, b: &Option<T>) -> Option<T> {
            a.clone().or_else(|| b.clone())
        }
        RuleSettings {
            matches: self.matches.clone(),
            project: self.project.clone(),
            pagure_url: pick(&self.pagure_url, &base.pagure_url),
            git_url: pick(&self.git_url, &base.git_url),
            pipeline: pick(&self.pipeline, &base.pipeline),
            untrusted_pipeline: pick(&self.untrusted_pipeline, &base.untrusted_pipeline),
            buildspec: pick(&self.buildspec, &base.buildspec),
            triggers: pick(&self.triggers, &base.triggers),
            allow_forks: pick(&self.allow_forks, &base.allow_forks),
            allow_insecure_git_url: pick(&self.allow_insecure_git_url, &base.allow_insecure_git_url),
            approval_phrase: pick(&self.approval_phrase, &base.approval_phrase),
            shared_pagure_api_token: pick(&self.shared_pagure_api_token, &base.shared_pagure_api_token),
        }
    }
}

/// The registry document as stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryDocument {
    pub version: u32,
    #[serde(default)]
    pub defaults: RuleSettings,
    #[serde(default)]
    pub rules: Vec<RuleSettings>,
}

impl Default for RegistryDocument {
    fn default() -> Self {
        RegistryDocument { version: REGISTRY_VERSION, defaults: RuleSettings::default(), rules: Vec::new() }
    }
}

impl RegistryDocument {
    pub fn parse(text: &str) -> Result<Self, RegistryError> {
        let document: RegistryDocument = crate::json::from_str(text).map_err(|e| RegistryError::Invalid {
            at: format!("line {} column {}", e.line(), e.column()),
            message: e.to_string(),
        })?;
        if document.version != REGISTRY_VERSION {
            return Err(RegistryError::Invalid {
                at: "version".into(),
                message: format!(
                    "version {} is not known to this bridge (it reads {REGISTRY_VERSION})",
                    document.version
                ),
            });
        }
        Ok(document)
    }

    /// Pretty JSON, one rule per few lines, so that stored versions diff well.
    pub fn to_json(&self) -> String {
        let mut text = serde_json::to_string_pretty(self).expect("a registry document always serialises");
        text.push('\n');
        text
    }

    /// The rule whose `match` is exactly `key`.
    pub fn rule_mut(&mut self, key: &str) -> Option<&mut RuleSettings> {
        self.rules.iter_mut().find(|r| r.matches.as_deref() == Some(key))
    }
}

/// What the deployment supplies to every rule: the forge it serves and the pipelines its
/// stack made (`PCB_PAGURE_URL`, `PCB_GIT_URL`, `PCB_PIPELINE`, `PCB_UNTRUSTED_PIPELINE`,
/// `PCB_PIPELINE_PREFIX`; `[registry]` in local mode).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Deployment {
    pub pagure_url: Option<String>,
    pub git_url: Option<String>,
    pub pipeline: Option<String>,
    pub untrusted_pipeline: Option<String>,
    /// Every pipeline a rule names must start with this: the stack's event rules and IAM
    /// grants match its pipelines by this prefix, so a pipeline outside it would build but
    /// never report.
    pub pipeline_prefix: Option<String>,
    /// The accept stage's rebuild phrases: an approval phrase must differ from all of them.
    pub rebuild_phrases: Vec<String>,
}

impl Deployment {
    fn as_rule(&self) -> RuleSettings {
        RuleSettings {
            pagure_url: self.pagure_url.clone(),
            git_url: self.git_url.clone(),
            pipeline: self.pipeline.clone(),
            untrusted_pipeline: self.untrusted_pipeline.clone(),
            ..RuleSettings::default()
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum RegistryError {
    /// The document (or one rule of it) is wrong; `at` says where.
    #[error("the project registry is invalid at {at}: {message}")]
    Invalid { at: String, message: String },
    #[error("the project registry could not be read: {0}")]
    Unavailable(String),
    /// A conditional write lost: someone changed the document since it was read.
    #[error("the project registry changed while it was being edited ({0}): run the command again")]
    Conflict(String),
}

/// A `match` value: segments, each a literal or a glob with `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Pattern {
    segments: Vec<String>,
}

impl Pattern {
    fn parse(text: &str) -> Result<Self, String> {
        let segments: Vec<String> = text.split('/').map(str::to_owned).collect();
        let valid = !text.is_empty()
            && text.len() <= 200
            && segments.iter().all(|s| {
                !s.is_empty()
                    && s != "."
                    && s != ".."
                    && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '+' | '*'))
            });
        if !valid {
            return Err(
                "a project key or pattern: segments of [A-Za-z0-9._+-] and `*`, separated by '/', at most 200 bytes"
                    .into(),
            );
        }
        Ok(Pattern { segments })
    }

    fn is_exact(&self) -> bool {
        !self.segments.iter().any(|s| s.contains('*'))
    }

    /// The first segment when it has no `*`: patterns are indexed by it.
    fn literal_head(&self) -> Option<&str> {
        self.segments.first().map(String::as_str).filter(|s| !s.contains('*'))
    }

    fn matches(&self, key_segments: &[&str]) -> bool {
        self.segments.len() == key_segments.len()
            && self.segments.iter().zip(key_segments).all(|(p, k)| glob(p.as_bytes(), k.as_bytes()))
    }

    /// A key the pattern matches, to check a pattern rule's settings when it is loaded.
    /// Every `*` becomes `x`, never nothing: `*-devel` as `-devel` would not be a Pagure
    /// name (one starts with a letter, a digit or `_`), and a valid rule would be refused.
    fn example(&self) -> String {
        self.segments.iter().map(|s| s.replace('*', "x")).collect::<Vec<_>>().join("/")
    }
}

/// `*` matches any run of bytes (inside one segment: keys are split on `/` first). Linear
/// in practice: the last `*` is the only backtracking point.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// A pattern rule, merged with the defaults and checked once.
#[derive(Debug, Clone)]
struct PatternRule {
    index: usize,
    pattern: Pattern,
    settings: ProjectSettings,
}

/// The pipelines of an entry, for the checks across rules.
struct ProjectSettingsView<'a> {
    pipeline: &'a str,
    untrusted_pipeline: Option<&'a str>,
}

impl<'a> ProjectSettingsView<'a> {
    fn of_project(p: &'a ProjectConfig) -> Self {
        ProjectSettingsView { pipeline: &p.pipeline, untrusted_pipeline: p.untrusted_pipeline.as_deref() }
    }

    fn of_settings(s: &'a ProjectSettings) -> Self {
        ProjectSettingsView { pipeline: &s.pipeline, untrusted_pipeline: s.untrusted_pipeline.as_deref() }
    }
}

/// Where an entry is, for errors: `rules[3]`, or `projects.<key>` for an inline one.
fn place(source: &RuleSource, key: &str) -> String {
    match source {
        RuleSource::Inline => format!("projects.{key}"),
        RuleSource::Rule { index, .. } => format!("rules[{index}]"),
    }
}

/// Which rule a project comes from, for `projects check` and logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// A `[projects.<key>]` table of the local file or of `PCB_PROJECTS`.
    Inline,
    /// `rules[index]` of the registry document, with its `match`.
    Rule { index: usize, matches: String },
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleSource::Inline => f.write_str("inline configuration"),
            RuleSource::Rule { index, matches } => write!(f, "registry rule {index} (`{matches}`)"),
        }
    }
}

/// A registry ready for lookups: inline projects and exact rules by key, pattern rules
/// indexed by their first segment.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    exact: HashMap<String, (Arc<ProjectConfig>, RuleSource)>,
    patterns: Vec<PatternRule>,
    /// Pattern positions by literal first segment, and those starting with a glob.
    by_head: HashMap<String, Vec<usize>>,
    glob_head: Vec<usize>,
    /// Exact keys by Pagure full name (the report stage knows a build by its project's name).
    by_fullname: HashMap<String, Vec<String>>,
}

impl Registry {
    /// Inline projects (checked already) and the document's rules, checked here: one wrong
    /// rule refuses the whole document, so that a half-applied registry never routes builds.
    pub fn compile(
        inline: &BTreeMap<String, ProjectConfig>,
        document: Option<&RegistryDocument>,
        deployment: &Deployment,
    ) -> Result<Self, RegistryError> {
        let mut registry = Registry::default();
        for (key, project) in inline {
            registry.insert_exact(key, Arc::new(project.clone()), RuleSource::Inline);
        }
        let Some(document) = document else {
            registry.check_across(deployment)?;
            return Ok(registry);
        };
        let at = |index: Option<usize>, field: &str| match index {
            Some(i) => format!("rules[{i}].{field}"),
            None => format!("defaults.{field}"),
        };
        if document.defaults.matches.is_some() || document.defaults.project.is_some() {
            let field = if document.defaults.matches.is_some() { "match" } else { "project" };
            return Err(RegistryError::Invalid { at: at(None, field), message: "only a rule may set this".into() });
        }
        let base = document.defaults.over(&deployment.as_rule());
        for (index, rule) in document.rules.iter().enumerate() {
            let Some(matches) = rule.matches.as_deref() else {
                return Err(RegistryError::Invalid { at: at(Some(index), "match"), message: "is required".into() });
            };
            let pattern = Pattern::parse(matches)
                .map_err(|message| RegistryError::Invalid { at: at(Some(index), "match"), message })?;
            let merged = rule.over(&base);
            let source = RuleSource::Rule { index, matches: matches.to_owned() };
            if pattern.is_exact() {
                if registry.exact.contains_key(matches) {
                    let message = format!("`{matches}` is already configured (inline or by an earlier rule)");
                    return Err(RegistryError::Invalid { at: at(Some(index), "match"), message });
                }
                let project = check_rule(index, matches, &merged, deployment)?;
                registry.insert_exact(matches, Arc::new(project), source);
            } else {
                if rule.project.is_some() {
                    let message = "a pattern rule's projects are named by their key: leave `project` out".into();
                    return Err(RegistryError::Invalid { at: at(Some(index), "project"), message });
                }
                let settings = to_project_settings(index, &merged)?;
                check_rule(index, &pattern.example(), &merged, deployment)?;
                let position = registry.patterns.len();
                match pattern.literal_head() {
                    Some(head) => registry.by_head.entry(head.to_owned()).or_default().push(position),
                    None => registry.glob_head.push(position),
                }
                registry.patterns.push(PatternRule { index, pattern, settings });
            }
        }
        registry.check_across(deployment)?;
        Ok(registry)
    }

    /// What no single rule can see:
    /// - an untrusted pipeline must never be a trusted one, the deployment's or any rule's
    ///   (untrusted code would run with that pipeline's role and secrets);
    /// - two projects with one Pagure name must not share a pipeline: the report stage knows
    ///   a build by its project's name and its pipeline, and could not tell them apart;
    /// - an exact rule naming a project that a pattern also routes by its own name is the
    ///   same ambiguity.
    fn check_across(&self, deployment: &Deployment) -> Result<(), RegistryError> {
        let mut entries: Vec<(String, ProjectSettingsView)> = self
            .exact
            .iter()
            .map(|(key, (project, source))| (place(source, key), ProjectSettingsView::of_project(project)))
            .chain(
                self.patterns
                    .iter()
                    .map(|rule| (format!("rules[{}]", rule.index), ProjectSettingsView::of_settings(&rule.settings))),
            )
            .collect();
        // The first offender in a stable order, whatever the hash maps' order.
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let trusted: std::collections::HashSet<&str> =
            deployment.pipeline.iter().map(String::as_str).chain(entries.iter().map(|(_, v)| v.pipeline)).collect();
        for (at, view) in &entries {
            if let Some(untrusted) = view.untrusted_pipeline.filter(|u| trusted.contains(u)) {
                return Err(RegistryError::Invalid {
                    at: format!("{at}.untrusted_pipeline"),
                    message: format!(
                        "`{untrusted}` is a trusted pipeline (the deployment's or another rule's): untrusted code must never run there"
                    ),
                });
            }
        }
        for (fullname, keys) in &self.by_fullname {
            let projects: Vec<(&Arc<ProjectConfig>, &RuleSource)> =
                keys.iter().filter_map(|k| self.exact.get(k)).map(|(p, source)| (p, source)).collect();
            for (i, (a, a_source)) in projects.iter().enumerate() {
                for (b, b_source) in &projects[i + 1..] {
                    // Inline projects are the operator's own explicit list (a job reachable
                    // under two names is allowed there); the registry, edited by a command
                    // for a whole forge, is held to the rule.
                    if **a_source == RuleSource::Inline && **b_source == RuleSource::Inline {
                        continue;
                    }
                    let pipelines = |p: &ProjectConfig| [Some(p.pipeline.clone()), p.untrusted_pipeline.clone()];
                    if pipelines(a).iter().flatten().any(|x| pipelines(b).iter().flatten().any(|y| x == y)) {
                        return Err(RegistryError::Invalid {
                            at: format!("`{}` and `{}`", a.key, b.key),
                            message: format!(
                                "both build Pagure project `{fullname}` in one pipeline: its flags could not be told apart (give one its own pipeline, or keep one key)"
                            ),
                        });
                    }
                }
            }
            if !self.exact.contains_key(fullname)
                && let Some((_, RuleSource::Rule { index, matches })) = self.lookup(fullname)
            {
                return Err(RegistryError::Invalid {
                    at: format!("`{}`", keys.join("`, `")),
                    message: format!(
                        "names Pagure project `{fullname}`, which registry rule {index} (`{matches}`) also routes as a key of its own: use the key `{fullname}` instead"
                    ),
                });
            }
        }
        Ok(())
    }

    fn insert_exact(&mut self, key: &str, project: Arc<ProjectConfig>, source: RuleSource) {
        self.by_fullname.entry(project.repo.fullname()).or_default().push(key.to_owned());
        self.exact.insert(key.to_owned(), (project, source));
    }

    /// The project a key names, and the rule it comes from.
    pub fn lookup(&self, key: &str) -> Option<(Arc<ProjectConfig>, RuleSource)> {
        if !is_project_key(key) {
            return None;
        }
        if let Some((project, source)) = self.exact.get(key) {
            return Some((project.clone(), source.clone()));
        }
        let segments: Vec<&str> = key.split('/').collect();
        let heads = self.by_head.get(segments[0]).map(Vec::as_slice).unwrap_or_default();
        // Both lists are in document order: the first match of their merge wins.
        let (mut a, mut b) = (heads.iter().peekable(), self.glob_head.iter().peekable());
        loop {
            let next = match (a.peek(), b.peek()) {
                (Some(&&x), Some(&&y)) if x < y => a.next(),
                (Some(_), Some(_)) => b.next(),
                (Some(_), None) => a.next(),
                (None, Some(_)) => b.next(),
                (None, None) => return None,
            };
            let rule = &self.patterns[*next.expect("peeked")];
            if rule.pattern.matches(&segments) {
                let settings = ProjectSettings { project: key.to_owned(), ..rule.settings.clone() };
                // The pattern's settings were checked when loaded; a key that is not a Pagure
                // full name (e.g. `a.git`) fails here and is simply not a project.
                let project = ProjectConfig::from_settings(key, &settings).ok()?;
                let source = RuleSource::Rule { index: rule.index, matches: rule.pattern.segments.join("/") };
                return Some((Arc::new(project), source));
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<Arc<ProjectConfig>> {
        self.lookup(key).map(|(project, _)| project)
    }

    /// The projects named `fullname`: exact entries with that project, else the pattern
    /// project whose key is the name.
    pub fn by_fullname(&self, fullname: &str) -> Vec<Arc<ProjectConfig>> {
        match self.by_fullname.get(fullname) {
            Some(keys) => keys.iter().filter_map(|k| self.exact.get(k)).map(|(p, _)| p.clone()).collect(),
            None => self.get(fullname).into_iter().collect(),
        }
    }

    /// Inline projects and exact rules, by key (for listings).
    pub fn exact_keys(&self) -> impl Iterator<Item = &str> {
        self.exact.keys().map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.exact.len() + self.patterns.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn to_project_settings(index: usize, merged: &RuleSettings) -> Result<ProjectSettings, RegistryError> {
    let missing = |field: &str, source: &str| RegistryError::Invalid {
        at: format!("rules[{index}].{field}"),
        message: format!("is not set here, in `defaults`, or by the deployment ({source})"),
    };
    Ok(ProjectSettings {
        pagure_url: merged.pagure_url.clone().ok_or_else(|| missing("pagure_url", "PCB_PAGURE_URL"))?,
        git_url: merged.git_url.clone().ok_or_else(|| missing("git_url", "PCB_GIT_URL"))?,
        project: String::new(),
        pipeline: merged.pipeline.clone().ok_or_else(|| missing("pipeline", "PCB_PIPELINE"))?,
        triggers: merged.triggers.clone().unwrap_or_else(crate::config::all_triggers),
        allow_forks: merged.allow_forks.unwrap_or(true),
        allow_insecure_git_url: merged.allow_insecure_git_url.unwrap_or(false),
        buildspec: merged.buildspec.clone().unwrap_or_else(crate::config::default_buildspec),
        untrusted_pipeline: merged.untrusted_pipeline.clone(),
        approval_phrase: merged.approval_phrase.clone(),
        shared_pagure_api_token: merged.shared_pagure_api_token.clone(),
    })
}

/// Checks one rule as the project `key` it would give, with the configuration's own rules
/// (errors re-keyed to the rule), and the deployment's pipeline prefix.
fn check_rule(
    index: usize,
    key: &str,
    merged: &RuleSettings,
    deployment: &Deployment,
) -> Result<ProjectConfig, RegistryError> {
    let mut settings = to_project_settings(index, merged)?;
    settings.project = merged.project.clone().unwrap_or_else(|| key.to_owned());
    let project = ProjectConfig::from_settings(key, &settings)
        .and_then(|p| p.check_phrases(&deployment.rebuild_phrases).map(|()| p))
        .map_err(|e| match e {
            ConfigError::Invalid { key: field, message } => RegistryError::Invalid {
                at: format!("rules[{index}].{}", field.rsplit('.').next().unwrap_or(&field)),
                message,
            },
            other => RegistryError::Invalid { at: format!("rules[{index}]"), message: other.to_string() },
        })?;
    // A shared token is the bot's for the deployment's forge: it never goes to another host.
    if let (Some(name), Some(forge)) = (&project.shared_pagure_api_token, &deployment.pagure_url)
        && url::Url::parse(forge).ok().map(|u| u.origin()) != Some(project.pagure_url.origin())
    {
        return Err(RegistryError::Invalid {
            at: format!("rules[{index}].shared_pagure_api_token"),
            message: format!(
                "the shared token `{name}` is for {forge} (PCB_PAGURE_URL); this rule's Pagure is {}: give it a token of its own",
                project.pagure_url
            ),
        });
    }
    if let Some(prefix) = &deployment.pipeline_prefix {
        for (field, name) in
            [("pipeline", Some(&project.pipeline)), ("untrusted_pipeline", project.untrusted_pipeline.as_ref())]
        {
            if let Some(name) = name.filter(|n| !n.starts_with(prefix.as_str())) {
                return Err(RegistryError::Invalid {
                    at: format!("rules[{index}].{field}"),
                    message: format!(
                        "`{name}` does not start with `{prefix}` (PCB_PIPELINE_PREFIX): the stack's event rules and IAM only cover its own pipelines, so its builds would never report"
                    ),
                });
            }
        }
    }
    Ok(project)
}

/// Where the registry document is read from: an S3 object in AWS, a file in local mode.
/// `None` means there is no document yet (an empty registry), not an error.
pub trait RegistrySource: Send + Sync + fmt::Debug {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Option<String>, RegistryError>> + Send + '_>>;
}

/// A stored document and the version it was read at, for a conditional write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRegistry {
    pub text: String,
    pub version: String,
}

/// Read and conditional write of the registry document (`pagure-ci-bridge projects`).
pub trait RegistryStore: Send + Sync {
    fn read(&self) -> impl Future<Output = Result<Option<StoredRegistry>, RegistryError>> + Send;
    /// Stores `text` if the document is still at `expected` (`None`: still absent); a lost
    /// race is [`RegistryError::Conflict`], so two admins' edits never overwrite each other.
    fn write(&self, text: &str, expected: Option<&str>) -> impl Future<Output = Result<(), RegistryError>> + Send;
    /// Where it is, for messages (`s3://bucket/key`, a path).
    fn describe(&self) -> String;
}

/// The projects a stage routes: fixed at start (inline configuration only) or read from a
/// [`RegistrySource`] and kept for a TTL, as the secret is.
#[derive(Clone)]
pub struct Projects {
    inner: Arc<ProjectsInner>,
}

enum ProjectsInner {
    Fixed(Arc<Registry>),
    Loaded(Box<Loaded>),
}

struct Loaded {
    source: Box<dyn RegistrySource>,
    ttl: Duration,
    inline: BTreeMap<String, ProjectConfig>,
    deployment: Deployment,
    state: tokio::sync::Mutex<Option<(Instant, Arc<Registry>)>>,
}

impl fmt::Debug for Projects {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &*self.inner {
            ProjectsInner::Fixed(r) => write!(f, "Projects::Fixed({} rules)", r.len()),
            ProjectsInner::Loaded(l) => write!(f, "Projects::Loaded({:?}, ttl {:?})", l.source, l.ttl),
        }
    }
}

impl Projects {
    pub fn fixed(registry: Registry) -> Self {
        Projects { inner: Arc::new(ProjectsInner::Fixed(Arc::new(registry))) }
    }

    /// Inline projects plus the document `source` holds, read again after `ttl`.
    pub fn loaded(
        source: impl RegistrySource + 'static,
        ttl: Duration,
        inline: BTreeMap<String, ProjectConfig>,
        deployment: Deployment,
    ) -> Self {
        let loaded = Loaded { source: Box::new(source), ttl, inline, deployment, state: tokio::sync::Mutex::new(None) };
        Projects { inner: Arc::new(ProjectsInner::Loaded(Box::new(loaded))) }
    }

    /// The registry as it is now. A read that fails after a good one keeps the good one for
    /// another TTL (logged): a broken edit or an S3 hiccup must not stop builds.
    pub async fn snapshot(&self) -> Result<Arc<Registry>, RegistryError> {
        let loaded = match &*self.inner {
            ProjectsInner::Fixed(registry) => return Ok(registry.clone()),
            ProjectsInner::Loaded(loaded) => loaded,
        };
        // Held across the read: one refresh at a time, the others wait for its result.
        let mut state = loaded.state.lock().await;
        if let Some((read_at, registry)) = state.as_ref()
            && read_at.elapsed() < loaded.ttl
        {
            return Ok(registry.clone());
        }
        let fresh = async {
            // Requests wait on this read: bounded, so a hung read costs a refresh, not them all.
            let text = tokio::time::timeout(REGISTRY_READ_TIMEOUT, loaded.source.fetch())
                .await
                .map_err(|_| RegistryError::Unavailable(format!("no answer within {REGISTRY_READ_TIMEOUT:?}")))??;
            let document = text.as_deref().map(RegistryDocument::parse).transpose()?;
            Registry::compile(&loaded.inline, document.as_ref(), &loaded.deployment)
        }
        .await;
        match (fresh, state.as_mut()) {
            (Ok(registry), _) => {
                let registry = Arc::new(registry);
                *state = Some((Instant::now(), registry.clone()));
                Ok(registry)
            }
            (Err(error), Some((read_at, registry))) => {
                tracing::error!(%error, "project registry not refreshed: the last good one stays in use");
                *read_at = Instant::now();
                Ok(registry.clone())
            }
            (Err(error), None) => Err(error),
        }
    }

    /// An inline project (`[projects.<key>]`, `PCB_PROJECTS`), without reading the registry.
    pub fn inline(&self, key: &str) -> Option<&ProjectConfig> {
        match &*self.inner {
            ProjectsInner::Fixed(registry) => registry.exact.get(key).map(|(p, _)| &**p),
            ProjectsInner::Loaded(loaded) => loaded.inline.get(key),
        }
    }

    /// The inline projects' keys.
    pub fn inline_keys(&self) -> Vec<&str> {
        match &*self.inner {
            ProjectsInner::Fixed(registry) => registry.exact_keys().collect(),
            ProjectsInner::Loaded(loaded) => loaded.inline.keys().map(String::as_str).collect(),
        }
    }

    /// The project `key` names, `None` when no rule matches.
    pub async fn get(&self, key: &str) -> Result<Option<Arc<ProjectConfig>>, RegistryError> {
        Ok(self.snapshot().await?.get(key))
    }
}

/// `projects["key"]`: an inline project; panics when there is none (tests, fixed setups).
impl std::ops::Index<&str> for Projects {
    type Output = ProjectConfig;

    fn index(&self, key: &str) -> &ProjectConfig {
        self.inline(key).unwrap_or_else(|| panic!("no inline project `{key}`"))
    }
}

impl std::ops::Index<&String> for Projects {
    type Output = ProjectConfig;

    fn index(&self, key: &String) -> &ProjectConfig {
        &self[key.as_str()]
    }
}

#[cfg(test)]
mod tests;
