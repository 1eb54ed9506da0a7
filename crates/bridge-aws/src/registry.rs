//! The project registry as an S3 object: read by the three Lambdas behind core's TTL cache
//! ([`RegistrySource`]), and edited by `pagure-ci-bridge projects` with conditional writes
//! ([`RegistryStore`]: `If-Match` on the ETag read, `If-None-Match: *` for the first one).

use std::future::Future;
use std::pin::Pin;

use bridge_core::config::{AcceptConfig, RegistryLocation, RegistrySetup};
use bridge_core::registry::{RegistryError, RegistrySource, RegistryStore, StoredRegistry};

#[derive(Debug, Clone)]
pub struct S3Registry {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
}

impl S3Registry {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, key: impl Into<String>) -> Self {
        S3Registry { client, bucket: bucket.into(), key: key.into() }
    }

    /// An S3 call that failed: where, and the SDK's error as its text, with its whole chain
    /// of causes.
    fn unavailable(&self, error: impl std::error::Error) -> RegistryError {
        RegistryError::Unavailable(format!("{}: {}", RegistryStore::describe(self), crate::error_text(error)).into())
    }

    /// `config` with its projects read through its S3 registry, when it has one (the
    /// Lambdas' builders, called once in `main`).
    pub fn attached(config: &AcceptConfig, aws: &aws_config::SdkConfig) -> AcceptConfig {
        let mut config = config.clone();
        if let Some(RegistrySetup { location: RegistryLocation::S3 { bucket, key }, .. }) = &config.registry {
            let source = S3Registry::new(aws_sdk_s3::Client::new(aws), bucket, key);
            RegistrySetup::attach(&mut config, source);
        }
        config
    }
}

impl RegistryStore for S3Registry {
    async fn read(&self) -> Result<Option<StoredRegistry>, RegistryError> {
        match self.client.get_object().bucket(&self.bucket).key(&self.key).send().await {
            Ok(output) => {
                let version = output.e_tag().unwrap_or_default().to_owned();
                let bytes = output
                    .body
                    .collect()
                    .await
                    .map_err(|e| RegistryError::Unavailable(format!("{}: {e}", self.describe()).into()))?
                    .into_bytes();
                let text = String::from_utf8(bytes.to_vec()).map_err(|_| RegistryError::Invalid {
                    at: self.describe(),
                    message: "the document is not UTF-8".into(),
                })?;
                Ok(Some(StoredRegistry { text, version }))
            }
            // Only a real "no such key" is an empty registry. A denied read (403: a missing
            // grant, a wrong bucket policy) is an error, never taken for "no projects".
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => Ok(None),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    async fn write(&self, text: &str, expected: Option<&str>) -> Result<(), RegistryError> {
        let call = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&self.key)
            .body(text.as_bytes().to_vec().into())
            .content_type("application/json")
            .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::Aes256);
        let call = match expected {
            Some(etag) => call.if_match(etag),
            None => call.if_none_match("*"),
        };
        match call.send().await {
            Ok(_) => Ok(()),
            Err(e) if crate::s3::lost_condition(&e) => Err(RegistryError::Conflict(self.describe())),
            Err(e) => Err(self.unavailable(e)),
        }
    }

    fn describe(&self) -> String {
        format!("s3://{}/{}", self.bucket, self.key)
    }
}

impl RegistrySource for S3Registry {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Option<String>, RegistryError>> + Send + '_>> {
        Box::pin(async move { Ok(RegistryStore::read(self).await?.map(|stored| stored.text)) })
    }
}

/// One shard of the secrets document as the CLI read it: `text` is `None` while the secret
/// has no value or (after the first) does not exist; `version` is the version read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretShard {
    pub id: String,
    pub text: Option<String>,
    pub version: Option<String>,
}

/// Read and write of the secrets document, shard by shard, for `pagure-ci-bridge projects`
/// (the Lambdas only read it, through [`crate::SecretsManagerSource`]). Secrets Manager has no
/// conditional write: a shard is written only if its current version is still the one read,
/// which narrows two admins' race to the instant between that check and the write.
#[derive(Debug, Clone)]
pub struct SecretsManagerEditor {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
    shards: u32,
}

impl SecretsManagerEditor {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerEditor { client, secret_id: secret_id.into(), shards: 1 }
    }

    pub fn sharded(mut self, shards: u32) -> Self {
        self.shards = shards.max(1);
        self
    }

    pub fn secret_id(&self) -> &str {
        &self.secret_id
    }

    /// The first shard's JSON text; `None` while the secret has no value yet.
    pub async fn read(&self) -> Result<Option<String>, String> {
        Ok(self.read_one(&self.secret_id, false).await?.text)
    }

    /// Every shard, in order.
    pub async fn read_shards(&self) -> Result<Vec<SecretShard>, String> {
        let mut shards = Vec::with_capacity(self.shards as usize);
        for index in 0..self.shards {
            let id = bridge_core::ports::shard_secret_id(&self.secret_id, index);
            shards.push(self.read_one(&id, index > 0).await?);
        }
        Ok(shards)
    }

    /// `optional`: a shard after the first may not exist yet. Errors never quote the value.
    async fn read_one(&self, id: &str, optional: bool) -> Result<SecretShard, String> {
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(output) => Ok(SecretShard {
                id: id.to_owned(),
                text: output.secret_string().map(str::to_owned),
                version: output.version_id().map(str::to_owned),
            }),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => {
                // A secret created without a value answers "not found" for AWSCURRENT too.
                match self.client.describe_secret().secret_id(id).send().await {
                    Ok(_) => Ok(SecretShard { id: id.to_owned(), text: None, version: None }),
                    Err(e)
                        if optional && e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) =>
                    {
                        Ok(SecretShard { id: id.to_owned(), text: None, version: None })
                    }
                    Err(e) => Err(format!("secret `{id}`: {}", crate::error_text(e))),
                }
            }
            Err(e) => Err(format!("secret `{id}`: {}", crate::error_text(e))),
        }
    }

    /// Stores a new version of the first shard (Secrets Manager keeps the previous one as
    /// AWSPREVIOUS), unconditionally.
    pub async fn write(&self, text: &str) -> Result<(), String> {
        self.put(&self.secret_id, text).await
    }

    /// Stores `text` in the shard `read` came from, if it is still at the version read; a
    /// shard that did not exist is created.
    pub async fn write_shard(&self, read: &SecretShard, text: &str) -> Result<(), String> {
        let now = self.read_one(&read.id, true).await?;
        if now.version != read.version {
            return Err(format!(
                "secret `{}` changed while it was being edited (someone else's edit or a rotation): run the command again",
                read.id
            ));
        }
        let exists = self.client.describe_secret().secret_id(&read.id).send().await;
        match exists {
            Ok(_) => self.put(&read.id, text).await,
            Err(e) if e.as_service_error().is_some_and(|se| se.is_resource_not_found_exception()) => self
                .client
                .create_secret()
                .name(&read.id)
                .description("pagure-ci-bridge: a shard of the secrets document (made by `projects add`)")
                .secret_string(text)
                .send()
                .await
                .map(|_| ())
                .map_err(|e| format!("creating secret `{}`: {}", read.id, crate::error_text(e))),
            Err(e) => Err(format!("secret `{}`: {}", read.id, crate::error_text(e))),
        }
    }

    async fn put(&self, id: &str, text: &str) -> Result<(), String> {
        self.client
            .put_secret_value()
            .secret_id(id)
            .secret_string(text)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("secret `{id}`: {}", crate::error_text(e)))
    }
}
