//! `pagure-ci-bridge projects add|list|check|remove`: onboarding without an infrastructure
//! change. The commands edit the project registry and the secrets document of a deployment
//! (S3 and Secrets Manager, found through the same `PCB_*` variables as the Lambdas) or of
//! local mode (the files its configuration names).
//!
//! Tokens are read from files or standard input, never from the command line (which `ps`
//! shows), and never printed.

use std::io::Read as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, anyhow, bail};
use bridge_core::auth::Secret;
use bridge_core::config::{RegistryLocation, RegistrySetup};
use bridge_core::forge::RetryPolicy;
use bridge_core::model::TriggerKind;

mod backend;
mod commands;

pub use backend::*;

/// A deployment or local mode, ready for the commands.
#[derive(Debug)]
pub struct Projects {
    pub backend: Backend,
    /// Inline projects, the deployment's defaults, the rebuild phrases.
    pub setup: RegistrySetup,
    /// How Pagure is called (retries, time limit).
    pub retry: RetryPolicy,
    /// Where Pagure reaches the bridge, for the settings to paste.
    pub bridge_url: Option<String>,
}

/// A token given to `add`: read from a file or `-` (standard input).
fn read_token(path: &Path, what: &str) -> anyhow::Result<Secret> {
    let mut text = String::new();
    if path == Path::new("-") {
        std::io::stdin().read_to_string(&mut text).with_context(|| format!("{what} from standard input"))?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("{what} from {}", path.display()))?;
    }
    let token = text.trim();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!("{what}: expected one token (no spaces), got {} characters", text.len());
    }
    Ok(Secret::new(token.to_owned()))
}

/// What `add` sets on the rule; `None` keeps the current value.
#[derive(Debug, Default, Clone)]
pub struct AddOptions {
    pub project: Option<String>,
    pub pipeline: Option<String>,
    pub untrusted_pipeline: Option<String>,
    pub buildspec: Option<String>,
    pub triggers: Option<Vec<TriggerKind>>,
    pub allow_forks: Option<bool>,
    pub approval_phrase: Option<String>,
    pub pagure_url: Option<String>,
    pub git_url: Option<String>,
    /// Name of a shared API token the rule uses (stored under it if a token is given too).
    pub shared_token_name: Option<String>,
    pub trigger_token_file: Option<PathBuf>,
    pub hook_token_file: Option<PathBuf>,
    pub pagure_api_token_file: Option<PathBuf>,
    /// Do not call Pagure (offline, or a Pagure the machine cannot reach).
    pub skip_pagure: bool,
}

impl AddOptions {
    /// Whether the options change a rule (tokens alone do not).
    fn sets_rule_fields(&self) -> bool {
        self.project.is_some()
            || self.pipeline.is_some()
            || self.untrusted_pipeline.is_some()
            || self.buildspec.is_some()
            || self.triggers.is_some()
            || self.allow_forks.is_some()
            || self.approval_phrase.is_some()
            || self.pagure_url.is_some()
            || self.git_url.is_some()
            || self.shared_token_name.is_some()
    }
}

fn say(line: impl AsRef<str>) {
    eprintln!("{}", line.as_ref());
}

/// Local mode's projects, from its configuration file.
pub fn local(config_path: &Path) -> anyhow::Result<Projects> {
    let config = crate::load_config(config_path)?;
    let setup = config.accept.registry.clone().ok_or_else(|| {
        anyhow!(
            "{} has no [registry] table: add one (file = \"registry.json\") to manage projects with this command",
            config_path.display()
        )
    })?;
    let RegistryLocation::File(path) = &setup.location else { bail!("local mode's registry is a file") };
    let backend = Backend::Local { registry: FileRegistry::new(path), secrets: config.secrets_file.clone() };
    Ok(Projects { backend, bridge_url: Some(format!("http://{}", config.listen)), retry: config.report.retry, setup })
}

/// A deployment's projects, from the `PCB_*` variables its stack prints (and the default
/// AWS credentials chain).
pub async fn deployed(get: impl Fn(&str) -> Option<String>, bridge_url: Option<String>) -> anyhow::Result<Projects> {
    let config = bridge_core::config::AdminConfig::from_env(&get)?;
    let setup = config.accept.registry.clone().expect("AdminConfig requires a registry");
    let RegistryLocation::S3 { bucket, key } = &setup.location else { bail!("a deployment's registry is in S3") };
    let aws = aws_config::load_from_env().await;
    let backend = Backend::Aws {
        registry: bridge_aws::S3Registry::new(aws_sdk_s3::Client::new(&aws), bucket, key),
        secrets: bridge_aws::SecretsManagerEditor::new(aws_sdk_secretsmanager::Client::new(&aws), config.secret_id)
            .sharded(config.secret_shards),
    };
    Ok(Projects { backend, setup, retry: config.report.retry, bridge_url })
}

#[cfg(test)]
mod tests;
