//! AWS adapters of bridge-core's ports: [`SqsQueue`] for `Queue`, [`SecretsManagerSource`]
//! (wrapped in core's `CachedSecrets`) for `Secrets`, [`S3Store`] for `ArtifactStore`,
//! [`CodePipelineStarter`] for `PipelineStarter`, [`CodePipelineLookup`] for `PipelineLookup`. Clients are built once by the caller and
//! passed in.

mod registry;
pub use registry::{S3Registry, SecretShard, SecretsManagerEditor};

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use bridge_core::model::BuildRequest;
use bridge_core::ports::{
    ArtifactMetadata, ArtifactStore, BuildAction, CachedSecrets, ExecutionFacts, ExecutionState, ListedObject, Listing,
    LookupError, PipelineLookup, PipelineStarter, Queue, QueueError, SecretSource, SecretsError, StartError,
    StoreError, StoredArtifact, StoredMarker,
};
use bridge_core::report::pipeline_console_url;

/// An SDK error with its whole chain of causes (every SDK crate re-exports the same
/// `DisplayErrorContext`).
fn error_text(error: impl std::error::Error) -> String {
    DisplayErrorContext(error).to_string()
}

/// Message attributes set on every build request message.
pub mod attributes {
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    pub const PROJECT: &str = "project";
    pub const TRIGGER: &str = "trigger";
}

/// Sends build requests to an SQS queue: the JSON request as body, the idempotency key,
/// project and trigger kind as string attributes. On a FIFO queue (URL ending in `.fifo`)
/// messages are grouped per project and deduplicated by request id, so an SDK retry of the
/// same send is not delivered twice while two pushes in a row both are.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        let fifo = queue_url.ends_with(".fifo");
        SqsQueue { client, queue_url, fifo }
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        // `data_type` is set just above, the only field `build` checks.
        .expect("data_type is set")
}

impl Queue for SqsQueue {
    async fn enqueue(&self, request: &BuildRequest) -> Result<(), QueueError> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(request.to_json())
            .message_attributes(attributes::IDEMPOTENCY_KEY, string_attribute(&request.idempotency_key))
            .message_attributes(attributes::PROJECT, string_attribute(&request.project.key))
            .message_attributes(attributes::TRIGGER, string_attribute(request.trigger.as_str()));
        if self.fifo {
            send = send.message_group_id(&request.project.key).message_deduplication_id(&request.request_id);
        }
        send.send().await.map(|_| ()).map_err(|e| QueueError::Unavailable(error_text(e)))
    }
}

impl SqsQueue {
    /// Makes a received message visible again `delay` from now (`ChangeMessageVisibility`;
    /// SQS takes up to 12 hours): how the work Lambda spaces its retries instead of waiting
    /// out the queue's visibility timeout.
    pub async fn change_visibility(&self, receipt_handle: &str, delay: std::time::Duration) -> Result<(), String> {
        let seconds = i32::try_from(delay.as_secs().min(MAX_VISIBILITY_SECONDS)).unwrap_or(i32::MAX);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(error_text)
    }
}

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY_SECONDS: u64 = 43_200;

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
            Err(e) => Err(SecretsError::Unavailable(format!("secret `{id}`: {}", error_text(e)))),
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
            let (index, shard) = read.map_err(|e| SecretsError::Unavailable(e.to_string()))?;
            shards.push((index, shard?));
        }
        // Merged in shard order whatever order the reads ended in.
        shards.sort_by_key(|(index, _)| *index);
        let shards: Vec<_> = shards.into_iter().map(|(_, shard)| shard).collect();
        bridge_core::ports::merge_secret_shards(&shards)
    }
}

/// Server-side encryption of stored archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (AES-256, keys managed by S3).
    S3Managed,
    /// SSE-KMS with this key id or ARN.
    Kms(String),
}

/// Stores archives in S3: streamed from the file (never held in memory), as one PUT up to
/// `multipart_threshold` bytes and as a multipart upload above it, encrypted, with the
/// request's metadata and CodePipeline's `codepipeline-artifact-revision-summary`.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    encryption: Encryption,
    multipart_threshold: u64,
    part_size: u64,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, encryption: Encryption) -> Self {
        S3Store { client, bucket: bucket.into(), encryption, multipart_threshold: 64 << 20, part_size: 16 << 20 }
    }

    /// Sets the multipart threshold and part size (S3's minimum part size is 5 MiB).
    pub fn with_multipart(mut self, threshold: u64, part_size: u64) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(5 << 20);
        self
    }

    fn sse(&self) -> (aws_sdk_s3::types::ServerSideEncryption, Option<String>) {
        use aws_sdk_s3::types::ServerSideEncryption;
        match &self.encryption {
            Encryption::S3Managed => (ServerSideEncryption::Aes256, None),
            Encryption::Kms(key) => (ServerSideEncryption::AwsKms, Some(key.clone())),
        }
    }

    async fn multipart(
        &self,
        key: &str,
        path: &std::path::Path,
        len: u64,
        metadata: &std::collections::HashMap<String, String>,
    ) -> Result<Option<String>, String> {
        use aws_sdk_s3::primitives::ByteStream;
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let (sse, kms) = self.sse();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/zip")
            .set_metadata(Some(metadata.clone()))
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .send()
            .await
            .map_err(error_text)?;
        let upload_id = created.upload_id().ok_or("S3 returned no upload id")?.to_owned();
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0;
            let mut number = 1;
            while offset < len {
                let length = self.part_size.min(len - offset);
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(aws_sdk_s3::primitives::Length::Exact(length))
                    .build()
                    .await
                    .map_err(|e| e.to_string())?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(error_text)?;
                parts.push(
                    CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(str::to_owned)).build(),
                );
                offset += length;
                number += 1;
            }
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(error_text)?;
            Ok(done.version_id().map(str::to_owned))
        }
        .await;
        if result.is_err() {
            // Parts of an abandoned upload cost storage until aborted.
            let _ =
                self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload_id).send().await;
        }
        result
    }
}

/// S3 user metadata travels in HTTP headers: printable ASCII only. Anything else is
/// percent-encoded (a branch name may hold any UTF-8), and so is `%` itself, so that the
/// value can be read back exactly (`a%41` and `aA` stay two different branches).
pub fn header_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if (c.is_ascii_graphic() && c != '%') || c == ' ' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

/// The metadata key CodePipeline shows as the revision summary.
pub const REVISION_SUMMARY_KEY: &str = "codepipeline-artifact-revision-summary";

impl ArtifactStore for S3Store {
    async fn put_archive(
        &self,
        key: &str,
        path: &std::path::Path,
        metadata: &ArtifactMetadata,
    ) -> Result<StoredArtifact, StoreError> {
        let len = std::fs::metadata(path).map_err(|e| StoreError(e.to_string()))?.len();
        let mut map: std::collections::HashMap<String, String> =
            metadata.entries.iter().map(|(k, v)| (k.to_ascii_lowercase(), header_safe(v))).collect();
        map.insert(REVISION_SUMMARY_KEY.into(), header_safe(&metadata.revision_summary));
        let version_id = if len > self.multipart_threshold {
            self.multipart(key, path, len, &map).await.map_err(StoreError)?
        } else {
            let (sse, kms) = self.sse();
            let body =
                aws_sdk_s3::primitives::ByteStream::from_path(path).await.map_err(|e| StoreError(e.to_string()))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(body)
                .content_type("application/zip")
                .set_metadata(Some(map))
                .server_side_encryption(sse)
                .set_ssekms_key_id(kms)
                .send()
                .await
                .map_err(|e| StoreError(error_text(e)))?
                .version_id()
                .map(str::to_owned)
        };
        Ok(StoredArtifact { key: key.to_owned(), version_id })
    }

    async fn put_marker(&self, key: &str, content: &str) -> Result<(), StoreError> {
        self.put_small(key, content).send().await.map(|_| ()).map_err(|e| StoreError(error_text(e)))
    }

    async fn marker(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.read_marker(key).await?.map(|m| m.content))
    }

    async fn create_marker(&self, key: &str, content: &str) -> Result<Option<StoredMarker>, StoreError> {
        let sent = self.put_small(key, content).if_none_match("*").send().await;
        match sent {
            Ok(_) => Ok(None),
            Err(e) if lost_condition(&e) => self
                .read_marker(key)
                .await?
                .map(Some)
                // Lost to a write that is not visible yet: the message is tried again.
                .ok_or_else(|| StoreError(format!("`{key}` was being created by another request"))),
            Err(e) => Err(StoreError(error_text(e))),
        }
    }

    async fn replace_marker(&self, key: &str, content: &str, seen: &StoredMarker) -> Result<bool, StoreError> {
        let sent = self.put_small(key, content).if_match(&seen.version).send().await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) if lost_condition(&e) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(StoreError(error_text(e))),
        }
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, max: usize) -> Result<Listing, StoreError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .max_keys(max.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(|e| StoreError(error_text(e)))?;
        let objects = output
            .contents()
            .iter()
            .filter_map(|object| {
                let modified = object.last_modified()?;
                let last_modified = time::OffsetDateTime::from_unix_timestamp_nanos(modified.as_nanos()).ok()?;
                Some(ListedObject { key: object.key()?.to_owned(), last_modified })
            })
            .collect();
        Ok(Listing { objects, truncated: output.is_truncated().unwrap_or(false) })
    }

    async fn archive_metadata(&self, key: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => Ok(Some(
                output.metadata().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default(),
            )),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) => Err(StoreError(error_text(e))),
        }
    }
}

impl S3Store {
    /// A PUT of a small marker object, encrypted as the archives are.
    fn put_small(
        &self,
        key: &str,
        content: &str,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        let (sse, kms) = self.sse();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(content.as_bytes().to_vec().into())
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms)
    }

    async fn read_marker(&self, key: &str) -> Result<Option<StoredMarker>, StoreError> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => {
                let version = output.e_tag().unwrap_or_default().to_owned();
                let bytes = output.body.collect().await.map_err(|e| StoreError(e.to_string()))?.into_bytes();
                Ok(Some(StoredMarker { content: String::from_utf8_lossy(&bytes).into_owned(), version }))
            }
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => Ok(None),
            Err(e) => Err(StoreError(error_text(e))),
        }
    }
}

/// A conditional write that lost: 412 Precondition Failed, or 409 ConditionalRequestConflict
/// (S3's answer while a concurrent conditional write to the key is in flight).
fn lost_condition<E>(error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> bool {
    error.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 409 | 412))
}

/// Starts CodePipeline V2 runs on exactly one archive: a source revision override
/// (`S3_OBJECT_KEY`) for the pipeline's S3 source action, pipeline variables for the
/// trigger's values, and a client request token derived from the key so that a retried
/// call cannot start a second run.
#[derive(Debug, Clone)]
pub struct CodePipelineStarter {
    client: aws_sdk_codepipeline::Client,
    source_action: String,
}

impl CodePipelineStarter {
    pub fn new(client: aws_sdk_codepipeline::Client, source_action: impl Into<String>) -> Self {
        CodePipelineStarter { client, source_action: source_action.into() }
    }
}

fn client_region(client: &aws_sdk_codepipeline::Client) -> String {
    client.config().region().map(|r| r.to_string()).unwrap_or_else(|| "us-east-1".into())
}

/// `[a-zA-Z0-9-]{1,128}`, unique per archive key (which holds the request id).
pub fn request_token(key: &str) -> String {
    let token: String = key.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
    // All ASCII, so byte offsets are character offsets. The end holds the request id.
    token[token.len().saturating_sub(128)..].to_owned()
}

impl PipelineStarter for CodePipelineStarter {
    async fn start(
        &self,
        pipeline: &str,
        artifact: &StoredArtifact,
        variables: &[(&'static str, String)],
    ) -> Result<String, StartError> {
        use aws_sdk_codepipeline::types::{PipelineVariable, SourceRevisionOverride, SourceRevisionType};
        let revision = SourceRevisionOverride::builder()
            .action_name(&self.source_action)
            .revision_type(SourceRevisionType::S3ObjectKey)
            .revision_value(&artifact.key)
            .build()
            .map_err(|e| StartError::Terminal(e.to_string()))?;
        let mut call = self
            .client
            .start_pipeline_execution()
            .name(pipeline)
            .source_revisions(revision)
            .client_request_token(request_token(&artifact.key));
        for (name, value) in variables {
            let variable = PipelineVariable::builder()
                .name(*name)
                .value(value)
                .build()
                .map_err(|e| StartError::Terminal(e.to_string()))?;
            call = call.variables(variable);
        }
        match call.send().await {
            Ok(output) => Ok(output.pipeline_execution_id().unwrap_or_default().to_owned()),
            Err(e) => {
                use aws_sdk_codepipeline::error::ProvideErrorMetadata;
                let terminal = e.as_service_error().is_some_and(|se| {
                    let code = if se.is_pipeline_not_found_exception() {
                        Some("PipelineNotFoundException")
                    } else if se.is_validation_exception() {
                        Some("ValidationException")
                    } else {
                        se.code()
                    };
                    // The display holds the message of modeled and unmodeled errors alike.
                    start_error_is_terminal(code, Some(&se.to_string()))
                });
                let message = error_text(e);
                Err(if terminal { StartError::Terminal(message) } else { StartError::Transient(message) })
            }
        }
    }

    fn execution_url(&self, pipeline: &str, execution_id: &str) -> String {
        pipeline_console_url(&client_region(&self.client), pipeline, execution_id)
    }
}

/// Whether an error `StartPipelineExecution` answered means the pipeline cannot be started
/// by trying again: only a missing pipeline or a request CodePipeline refuses as invalid.
/// Limits are never terminal, whatever their code or wording: CodePipeline's
/// `ConcurrentPipelineExecutionsLimitExceededException` and `LimitExceededException`,
/// throttling, and CodeBuild's `AccountLimitExceededException` (a new account's concurrent
/// build quota) pass when running builds end, so they are tried again, never flagged `error`.
/// Anything else (conflicts, server errors, unknown codes) is transient too.
pub fn start_error_is_terminal(code: Option<&str>, message: Option<&str>) -> bool {
    // Phrases with a space: a pipeline name in the message (no spaces) never matches one.
    let text = message.unwrap_or_default().to_ascii_lowercase();
    let limit = [
        "limit exceeded",
        "exceeded the limit",
        "exceeds the limit",
        "reached the limit",
        "rate exceeded",
        "too many requests",
        "was throttled",
        "quota exceeded",
    ]
    .iter()
    .any(|phrase| text.contains(phrase));
    !limit && matches!(code, Some("PipelineNotFoundException" | "ValidationException"))
}

/// `PipelineLookup` on CodePipeline: `GetPipelineExecution` for an execution's variables and
/// status summary, `ListActionExecutions` for its CodeBuild actions, `RetryStageExecution`
/// for the sweep's retries; and, with a CodeBuild client, `BatchGetBuilds` for builds.
#[derive(Debug, Clone)]
pub struct CodePipelineLookup {
    client: aws_sdk_codepipeline::Client,
    codebuild: Option<aws_sdk_codebuild::Client>,
}

impl CodePipelineLookup {
    pub fn new(client: aws_sdk_codepipeline::Client) -> Self {
        CodePipelineLookup { client, codebuild: None }
    }

    /// Reads builds with this client (the sweep needs it).
    pub fn with_codebuild(mut self, client: aws_sdk_codebuild::Client) -> Self {
        self.codebuild = Some(client);
        self
    }

    fn actions(
        &self,
        pipeline: &str,
        execution_id: Option<&str>,
    ) -> aws_sdk_codepipeline::operation::list_action_executions::builders::ListActionExecutionsFluentBuilder {
        use aws_sdk_codepipeline::types::ActionExecutionFilter;
        let mut call = self.client.list_action_executions().pipeline_name(pipeline).max_results(100);
        if let Some(id) = execution_id {
            call = call.filter(ActionExecutionFilter::builder().pipeline_execution_id(id).build());
        }
        call
    }
}

fn is_codebuild(action: &aws_sdk_codepipeline::types::ActionExecutionDetail) -> bool {
    action.input().and_then(|i| i.action_type_id()).is_some_and(|t| t.provider() == "CodeBuild")
}

/// The build a CodeBuild action started; `None` when CodeBuild refused to start one (then
/// no build event will ever come for it).
fn started_build(action: &aws_sdk_codepipeline::types::ActionExecutionDetail) -> Option<&str> {
    action
        .output()
        .and_then(|o| o.execution_result())
        .and_then(|r| r.external_execution_id())
        .filter(|id| !id.is_empty())
}

/// An action attempt as the sweep reads it.
fn build_action(action: &aws_sdk_codepipeline::types::ActionExecutionDetail) -> BuildAction {
    let result = action.output().and_then(|o| o.execution_result());
    let message = result
        .and_then(|r| r.error_details())
        .and_then(|d| match (d.code(), d.message()) {
            (Some(code), Some(message)) => Some(format!("{code}: {message}")),
            (code, message) => message.or(code).map(str::to_owned),
        })
        .or_else(|| result.and_then(|r| r.external_execution_summary()).map(str::to_owned));
    BuildAction {
        stage: action.stage_name().unwrap_or_default().to_owned(),
        action: action.action_name().unwrap_or_default().to_owned(),
        status: action.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        build_id: started_build(action).map(str::to_owned),
        message,
    }
}

/// A build as its "Build State Change" event would describe it.
fn build_change(build: &aws_sdk_codebuild::types::Build) -> bridge_core::report::CodeBuildChange {
    let arn = build.arn().or(build.id()).unwrap_or_default().to_owned();
    // arn:aws:codebuild:<region>:<account>:build/<project>:<uuid>
    let part = |n: usize| arn.split(':').nth(n).unwrap_or_default().to_owned();
    let phases = build
        .phases()
        .iter()
        .map(|p| bridge_core::report::PhaseOutcome {
            phase: p.phase_type().map(|t| t.as_str().to_owned()).unwrap_or_default(),
            status: p.phase_status().map(|s| s.as_str().to_owned()),
            context: p
                .contexts()
                .iter()
                .filter_map(|c| match (c.status_code(), c.message()) {
                    (Some(code), Some(message)) if !message.is_empty() => Some(format!("{code}: {message}")),
                    (code, message) => code.or(message).map(str::to_owned),
                })
                .collect(),
        })
        .collect();
    let variables = build
        .environment()
        .map(|e| e.environment_variables())
        .unwrap_or_default()
        .iter()
        .filter(|v| v.r#type().is_none_or(|t| t.as_str() == "PLAINTEXT"))
        .map(|v| (v.name().to_owned(), v.value().to_owned()))
        .collect();
    bridge_core::report::CodeBuildChange {
        region: part(3),
        account: part(4),
        project_name: build.project_name().unwrap_or_default().to_owned(),
        build_id: arn,
        build_number: build.build_number().and_then(|n| u64::try_from(n).ok()),
        status: build.build_status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
        phases,
        initiator: build.initiator().map(str::to_owned),
        variables,
    }
}

impl CodePipelineLookup {
    /// `GetPipelineExecution`; `None` when CodePipeline knows neither the pipeline nor the
    /// execution (both lookups treat that as "not ours / gone", not as a failure).
    async fn get_execution(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> Result<Option<aws_sdk_codepipeline::types::PipelineExecution>, LookupError> {
        match self
            .client
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await
        {
            Ok(output) => Ok(output.pipeline_execution),
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    se.is_pipeline_execution_not_found_exception() || se.is_pipeline_not_found_exception()
                }) =>
            {
                Ok(None)
            }
            Err(e) => Err(LookupError(error_text(e))),
        }
    }
}

impl PipelineLookup for CodePipelineLookup {
    async fn execution(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionFacts>, LookupError> {
        let Some(execution) = self.get_execution(pipeline, execution_id).await? else { return Ok(None) };
        let variables = execution
            .variables()
            .iter()
            .filter_map(|v| Some((v.name()?.to_owned(), v.resolved_value()?.to_owned())))
            .collect();
        let actions =
            self.actions(pipeline, Some(execution_id)).send().await.map_err(|e| LookupError(error_text(e)))?;
        // A CodeBuild action whose StartBuild was refused (no build id) ran nothing: no build
        // event will report it.
        let build_ran =
            actions.action_execution_details().iter().any(|a| is_codebuild(a) && started_build(a).is_some());
        Ok(Some(ExecutionFacts { variables, build_ran, summary: execution.status_summary().map(str::to_owned) }))
    }

    async fn execution_of_build(&self, pipeline: &str, build_id: &str) -> Result<Option<String>, LookupError> {
        // The build is recent (its event is being handled): the latest 100 action executions
        // hold it.
        let actions = self.actions(pipeline, None).send().await.map_err(|e| LookupError(error_text(e)))?;
        Ok(actions
            .action_execution_details()
            .iter()
            .filter(|a| is_codebuild(a))
            .find(|a| {
                a.output().and_then(|o| o.execution_result()).and_then(|r| r.external_execution_id()) == Some(build_id)
            })
            .and_then(|a| a.pipeline_execution_id().map(str::to_owned)))
    }

    async fn execution_state(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionState>, LookupError> {
        let Some(execution) = self.get_execution(pipeline, execution_id).await? else { return Ok(None) };
        let actions =
            self.actions(pipeline, Some(execution_id)).send().await.map_err(|e| LookupError(error_text(e)))?;
        // Newest first, whatever order the page came in.
        let mut details: Vec<_> = actions.action_execution_details().iter().filter(|a| is_codebuild(a)).collect();
        details.sort_by_key(|a| std::cmp::Reverse(a.last_update_time().or(a.start_time()).map(|t| t.as_nanos())));
        Ok(Some(ExecutionState {
            status: execution.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            summary: execution.status_summary().map(str::to_owned),
            variables: execution
                .variables()
                .iter()
                .filter_map(|v| Some((v.name()?.to_owned(), v.resolved_value()?.to_owned())))
                .collect(),
            region: client_region(&self.client),
            builds: details.into_iter().map(build_action).collect(),
        }))
    }

    async fn builds(&self, build_ids: &[String]) -> Result<Vec<bridge_core::report::CodeBuildChange>, LookupError> {
        let Some(codebuild) = &self.codebuild else {
            return Err(LookupError("no CodeBuild client to read builds with".into()));
        };
        let mut found = Vec::new();
        // BatchGetBuilds takes at most 100 ids.
        for chunk in build_ids.chunks(100) {
            let output = codebuild
                .batch_get_builds()
                .set_ids(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| LookupError(error_text(e)))?;
            found.extend(output.builds().iter().map(build_change));
        }
        Ok(found)
    }

    async fn retry_failed_actions(&self, pipeline: &str, stage: &str, execution_id: &str) -> Result<bool, LookupError> {
        use aws_sdk_codepipeline::types::StageRetryMode;
        let sent = self
            .client
            .retry_stage_execution()
            .pipeline_name(pipeline)
            .stage_name(stage)
            .pipeline_execution_id(execution_id)
            .retry_mode(StageRetryMode::FailedActions)
            .send()
            .await;
        match sent {
            Ok(_) => Ok(true),
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    se.is_stage_not_retryable_exception()
                        || se.is_not_latest_pipeline_execution_exception()
                        || se.is_pipeline_not_found_exception()
                        || se.is_stage_not_found_exception()
                        || se.is_validation_exception()
                }) =>
            {
                tracing::warn!(pipeline, stage, execution_id, error = %error_text(e), "stage retry refused");
                Ok(false)
            }
            Err(e) => Err(LookupError(error_text(e))),
        }
    }
}

#[cfg(test)]
mod tests;
