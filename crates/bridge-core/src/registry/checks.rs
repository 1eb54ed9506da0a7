//! The checks a rule must pass: alone, as the project it would give (the configuration's own
//! rules, errors re-keyed to the rule, a shared token only for the deployment's forge,
//! pipelines inside the stack's prefix); and across rules, what no single rule can see.

use std::sync::Arc;

use super::{Deployment, Registry, RegistryError, RuleSettings, RuleSource};
use crate::config::{ProjectConfig, ProjectSettings};

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

impl Registry {
    /// What no single rule can see:
    /// - an untrusted pipeline must never be a trusted one, the deployment's or any rule's
    ///   (untrusted code would run with that pipeline's role and secrets);
    /// - two projects with one Pagure name must not share a pipeline: the report stage knows
    ///   a build by its project's name and its pipeline, and could not tell them apart;
    /// - an exact rule naming a project that a pattern also routes by its own name is the
    ///   same ambiguity.
    pub(super) fn check_across(&self, deployment: &Deployment) -> Result<(), RegistryError> {
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
}

/// A rule's merged settings as a project's (the key's name left empty), each required field
/// that nothing sets named in the error.
pub(super) fn to_project_settings(index: usize, merged: &RuleSettings) -> Result<ProjectSettings, RegistryError> {
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
pub(super) fn check_rule(
    index: usize,
    key: &str,
    merged: &RuleSettings,
    deployment: &Deployment,
) -> Result<ProjectConfig, RegistryError> {
    let mut settings = to_project_settings(index, merged)?;
    settings.project = merged.project.clone().unwrap_or_else(|| key.to_owned());
    let project = ProjectConfig::check(key, &settings)
        .and_then(|p| {
            p.phrase_clash(&deployment.rebuild_phrases, "accept.rebuild_phrases, PCB_REBUILD_PHRASES").map(|()| p)
        })
        .map_err(|e| RegistryError::Invalid {
            at: e.field.map_or_else(|| format!("rules[{index}]"), |field| format!("rules[{index}].{field}")),
            message: e.message,
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
