//! The registry document as written: its rules and their `defaults` (every field optional,
//! each falling back to the one below it), parsed from and stored as JSON; and what the
//! deployment supplies under every rule (its forge and its stack's pipelines).

use serde::{Deserialize, Serialize};

use super::{REGISTRY_VERSION, RegistryError};
use crate::model::TriggerKind;

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
    pub(super) fn over(&self, base: &RuleSettings) -> RuleSettings {
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
    pub(super) fn as_rule(&self) -> RuleSettings {
        RuleSettings {
            pagure_url: self.pagure_url.clone(),
            git_url: self.git_url.clone(),
            pipeline: self.pipeline.clone(),
            untrusted_pipeline: self.untrusted_pipeline.clone(),
            ..RuleSettings::default()
        }
    }

    /// A complete deployment (Fedora's forge, the stack's two pipelines under `pcb-`), for
    /// the unit tests and the registry benchmark: one definition, not a copy in each.
    #[doc(hidden)]
    pub fn example() -> Self {
        Deployment {
            pagure_url: Some("https://src.fedoraproject.org/".into()),
            git_url: Some("https://src.fedoraproject.org".into()),
            pipeline: Some("pcb-trusted".into()),
            untrusted_pipeline: Some("pcb-untrusted".into()),
            pipeline_prefix: Some("pcb-".into()),
            rebuild_phrases: vec!["pretty please pagure-ci rebuild".into()],
        }
    }
}
