//! Secrets Manager: the secrets document, read by core's `CachedSecrets`.

use crate::error_text;
use bridge_core::ports::{CachedSecrets, ErrorCause, SecretSource, SecretsError};

/// Reads the secrets document (JSON) from one Secrets Manager secret.
#[derive(Debug, Clone)]
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    /// Shards after the first are `<secret_id>-shard-<i>` (core's `shard_secret_id`).
    shards: u32,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource { client, secret_id: secret_id.into(), shards: 1 }
    }

    /// The document spread over `shards` secrets, read together and merged.
    pub fn sharded(mut self, shards: u32) -> Self {
        self.shards = shards.max(1);
        self
    }

    /// The secret as every Lambda reads it: behind core's TTL cache.
    pub fn cached(
        aws: &aws_config::SdkConfig,
        secret_id: impl Into<String>,
        shards: u32,
        ttl: std::time::Duration,
    ) -> CachedSecrets<Self> {
        CachedSecrets::new(Self::new(aws_sdk_secretsmanager::Client::new(aws), secret_id).sharded(shards), ttl)
    }

    /// One shard's text; `None` for a shard after the first that does not exist yet (the
    /// CLI creates shards when it needs them). The first must exist.
    async fn shard(
        client: aws_sdk_secretsmanager::Client,
        id: String,
        optional: bool,
    ) -> Result<(String, Option<String>), SecretsError> {
        match client.get_secret_value().secret_id(&id).send().await {
            Ok(output) => {
                let text = output
                    .secret_string()
                    .map(str::to_owned)
                    .ok_or_else(|| SecretsError::Malformed(format!("secret `{id}` holds no string value")))?;
                Ok((id, Some(text)))
            }
            Err(e) if optional && e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => {
                Ok((id, None))
            }
            Err(e) => Err(SecretsError::Unavailable(format!("secret `{id}`: {}", error_text(e)).into())),
        }
    }
}

impl SecretSource for SecretsManagerSource {
    async fn fetch(&self) -> Result<String, SecretsError> {
        if self.shards == 1 {
            let (_, text) = Self::shard(self.client.clone(), self.secret_id.clone(), false).await?;
            return Ok(text.unwrap_or_default());
        }
        // All shards at once: a cold start waits for the slowest read, not their sum.
        let mut reads = tokio::task::JoinSet::new();
        for index in 0..self.shards {
            let id = bridge_core::ports::shard_secret_id(&self.secret_id, index);
            let read = Self::shard(self.client.clone(), id, index > 0);
            reads.spawn(async move { (index, read.await) });
        }
        let mut shards = Vec::with_capacity(self.shards as usize);
        while let Some(read) = reads.join_next().await {
            let (index, shard) = read.map_err(|e| SecretsError::Unavailable(ErrorCause::new(e)))?;
            shards.push((index, shard?));
        }
        // Merged in shard order whatever order the reads ended in.
        shards.sort_by_key(|(index, _)| *index);
        let shards: Vec<_> = shards.into_iter().map(|(_, shard)| shard).collect();
        bridge_core::ports::merge_secret_shards(&shards)
    }
}
