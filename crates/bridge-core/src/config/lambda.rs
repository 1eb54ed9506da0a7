//! The Lambdas' configuration, and the CLI's against a deployment: from the environment.

use std::path::Path;
use std::time::Duration;

use super::source::{EnvSource, Source};
use super::{AcceptConfig, ConfigError, ReportConfig, WorkConfig, schema};

/// The work Lambda's archives would go here; it keeps none locally.
const LAMBDA_BASE_DIR: &str = "/tmp";

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

/// The secret's name, how long a read is kept, and how many shards hold it.
fn secret<F: Fn(&str) -> Option<String>>(env: &EnvSource<F>) -> Result<(String, Duration, u32), ConfigError> {
    let secret_id = env.get(&schema::SECRET_ID)?;
    let shards = env.get(&schema::SECRET_SHARDS)?;
    // Shards are named after the base secret, so with more than one the secret's id must be
    // its name, not its ARN.
    if shards > 1 && secret_id.starts_with("arn:") {
        return Err(env.invalid(
            schema::SECRET_ID.key,
            format!(
                "must be the secret's name, not its ARN, when {} is above 1 (shards are named `<name>-shard-<i>`)",
                env.spell(schema::SECRET_SHARDS.key)
            ),
        ));
    }
    Ok((secret_id, env.get(&schema::SECRETS_TTL)?, shards))
}

fn accept<F: Fn(&str) -> Option<String>>(env: &EnvSource<F>) -> Result<AcceptConfig, ConfigError> {
    super::accept(env, Path::new(LAMBDA_BASE_DIR))
}

impl AcceptLambdaConfig {
    pub fn from_env<F: Fn(&str) -> Option<String>>(get: F) -> Result<Self, ConfigError> {
        let env = EnvSource(get);
        let accept = accept(&env)?;
        let queue_url = env.get(&schema::QUEUE_URL)?;
        let (secret_id, secrets_ttl, secret_shards) = secret(&env)?;
        Ok(AcceptLambdaConfig { queue_url, secret_id, secrets_ttl, secret_shards, accept })
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
        let env = EnvSource(get);
        // The same deployment values as the Lambdas: a rule the CLI accepts must be one they
        // accept too, or the whole registry would be refused where it matters.
        // The stack's CliEnvironment output sets every one of them.
        for key in [
            schema::REGISTRY_BUCKET.key,
            schema::PAGURE_URL.key,
            schema::GIT_URL.key,
            schema::PIPELINE.key,
            schema::UNTRUSTED_PIPELINE.key,
            schema::PIPELINE_PREFIX.key,
            schema::SECRET_SHARDS.key,
        ] {
            if !env.is_set(key) {
                return Err(env.invalid(key, "is required and not set"));
            }
        }
        let (secret_id, _, secret_shards) = secret(&env)?;
        Ok(AdminConfig { secret_id, secret_shards, report: super::report(&env)?, accept: accept(&env)? })
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
        let env = EnvSource(get);
        let work = super::work(&env, Path::new(LAMBDA_BASE_DIR))?;
        let (secret_id, secrets_ttl, secret_shards) = secret(&env)?;
        Ok(WorkLambdaConfig {
            secret_id,
            secrets_ttl,
            secret_shards,
            bucket: env.get(&schema::BUCKET)?,
            key_prefix: env.get(&schema::KEY_PREFIX)?,
            kms_key_id: env.value(&schema::KMS_KEY_ID)?,
            source_action: env.get(&schema::SOURCE_ACTION)?,
            max_receive_count: work.max_attempts,
            queue_url: env.value(&schema::QUEUE_URL)?,
            work,
            report: super::report(&env)?,
            accept: accept(&env)?,
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
        let env = EnvSource(get);
        let (secret_id, secrets_ttl, secret_shards) = secret(&env)?;
        Ok(ReportLambdaConfig {
            secret_id,
            secrets_ttl,
            secret_shards,
            report: super::report(&env)?,
            accept: accept(&env)?,
            bucket: env.value(&schema::BUCKET)?,
            key_prefix: env.get(&schema::KEY_PREFIX)?,
            kms_key_id: env.value(&schema::KMS_KEY_ID)?,
        })
    }
}
