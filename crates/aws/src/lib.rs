//! AWS adapters of bridge-core's ports: [`SqsQueue`] for `Queue`, [`SecretsManagerSource`]
//! (wrapped in core's `CachedSecrets`) for `Secrets`, [`S3Store`] for `ArtifactStore`,
//! [`CodePipelineStarter`] for `PipelineStarter`, [`CodePipelineLookup`] for `PipelineLookup`. Clients are built once by the caller and
//! passed in.

use aws_sdk_s3::error::DisplayErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use bridge_core::model::BuildRequest;
use bridge_core::ports::{
    ArtifactMetadata, ArtifactStore, CachedSecrets, ExecutionFacts, LookupError, PipelineLookup, PipelineStarter,
    Queue, QueueError, SecretSource, SecretsError, StartError, StoreError, StoredArtifact, StoredMarker,
};
use bridge_core::report::pipeline_console_url;

/// The Lambdas' logs: JSON lines (CloudWatch adds the time), level from `RUST_LOG`
/// (default `info`).
pub fn init_lambda_tracing() {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(false)
        .without_time()
        .init();
}

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

/// Reads the secrets document (JSON) from one Secrets Manager secret.
#[derive(Debug, Clone)]
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource { client, secret_id: secret_id.into() }
    }

    /// The secret as every Lambda reads it: behind core's TTL cache.
    pub fn cached(
        aws: &aws_config::SdkConfig,
        secret_id: impl Into<String>,
        ttl: std::time::Duration,
    ) -> CachedSecrets<Self> {
        CachedSecrets::new(Self::new(aws_sdk_secretsmanager::Client::new(aws), secret_id), ttl)
    }
}

impl SecretSource for SecretsManagerSource {
    async fn fetch(&self) -> Result<String, SecretsError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretsError::Unavailable(error_text(e)))?;
        output
            .secret_string()
            .map(str::to_owned)
            .ok_or_else(|| SecretsError::Malformed(format!("secret `{}` holds no string value", self.secret_id)))
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
/// percent-encoded (a branch name may hold any UTF-8).
pub fn header_safe(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii_graphic() || c == ' ' {
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
                let terminal = e
                    .as_service_error()
                    .is_some_and(|se| se.is_pipeline_not_found_exception() || se.is_validation_exception());
                let message = error_text(e);
                Err(if terminal { StartError::Terminal(message) } else { StartError::Transient(message) })
            }
        }
    }

    fn execution_url(&self, pipeline: &str, execution_id: &str) -> String {
        pipeline_console_url(&client_region(&self.client), pipeline, execution_id)
    }
}

/// `PipelineLookup` on CodePipeline: `GetPipelineExecution` for an execution's variables and
/// status summary, `ListActionExecutions` for its CodeBuild actions.
#[derive(Debug, Clone)]
pub struct CodePipelineLookup {
    client: aws_sdk_codepipeline::Client,
}

impl CodePipelineLookup {
    pub fn new(client: aws_sdk_codepipeline::Client) -> Self {
        CodePipelineLookup { client }
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

impl PipelineLookup for CodePipelineLookup {
    async fn execution(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionFacts>, LookupError> {
        let output = match self
            .client
            .get_pipeline_execution()
            .pipeline_name(pipeline)
            .pipeline_execution_id(execution_id)
            .send()
            .await
        {
            Ok(output) => output,
            Err(e)
                if e.as_service_error().is_some_and(|se| {
                    se.is_pipeline_execution_not_found_exception() || se.is_pipeline_not_found_exception()
                }) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(LookupError(error_text(e))),
        };
        let Some(execution) = output.pipeline_execution() else { return Ok(None) };
        let variables = execution
            .variables()
            .iter()
            .filter_map(|v| Some((v.name()?.to_owned(), v.resolved_value()?.to_owned())))
            .collect();
        let actions =
            self.actions(pipeline, Some(execution_id)).send().await.map_err(|e| LookupError(error_text(e)))?;
        let build_ran = actions.action_execution_details().iter().any(is_codebuild);
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
}

#[cfg(test)]
mod tests {
    use aws_sdk_codepipeline::Client;
    use aws_sdk_codepipeline::operation::start_pipeline_execution::{
        StartPipelineExecutionError, StartPipelineExecutionOutput,
    };
    use aws_sdk_codepipeline::types::SourceRevisionType;
    use aws_sdk_codepipeline::types::error::PipelineNotFoundException;
    use aws_smithy_mocks::{RuleMode, mock, mock_client};

    use super::*;

    fn artifact() -> StoredArtifact {
        StoredArtifact {
            key: "sources/demo/0123456789abcdef0123456789abcdef.zip".into(),
            version_id: Some("v1".into()),
        }
    }

    #[tokio::test]
    async fn start_names_exactly_the_archive_and_passes_variables() {
        let rule = mock!(Client::start_pipeline_execution)
            .match_requests(|r| {
                let revision = &r.source_revisions()[0];
                r.name() == Some("demo-ci")
                    && revision.action_name() == "Source"
                    && *revision.revision_type() == SourceRevisionType::S3ObjectKey
                    && revision.revision_value() == "sources/demo/0123456789abcdef0123456789abcdef.zip"
                    && r.variables()
                        .iter()
                        .map(|v| (v.name(), v.value()))
                        .eq([("PAGURE_CAUSE", "2"), ("PAGURE_PR_ID", "2")])
                    && r.client_request_token() == Some("sources-demo-0123456789abcdef0123456789abcdef-zip")
            })
            .then_output(|| StartPipelineExecutionOutput::builder().pipeline_execution_id("exec-1").build());
        let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, &[&rule]);
        let starter = CodePipelineStarter::new(client, "Source");
        let id =
            starter.start("demo-ci", &artifact(), &[("PAGURE_CAUSE", "2".into()), ("PAGURE_PR_ID", "2".into())]).await;
        assert_eq!(id.expect("started"), "exec-1");
        assert_eq!(rule.num_calls(), 1);
    }

    #[tokio::test]
    async fn missing_pipelines_are_terminal() {
        let rule = mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::PipelineNotFoundException(
                PipelineNotFoundException::builder().message("nope").build(),
            )
        });
        let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, &[&rule]);
        let result = CodePipelineStarter::new(client, "Source").start("gone", &artifact(), &[]).await;
        assert!(matches!(result, Err(StartError::Terminal(_))), "{result:?}");
    }

    fn codebuild_action(execution: &str, build: &str) -> aws_sdk_codepipeline::types::ActionExecutionDetail {
        use aws_sdk_codepipeline::types::{
            ActionCategory, ActionExecutionDetail, ActionExecutionInput, ActionExecutionOutput, ActionExecutionResult,
            ActionOwner, ActionTypeId,
        };
        let type_id = ActionTypeId::builder()
            .category(ActionCategory::Build)
            .owner(ActionOwner::Aws)
            .provider("CodeBuild")
            .version("1")
            .build()
            .expect("type id");
        ActionExecutionDetail::builder()
            .pipeline_execution_id(execution)
            .action_name("Build")
            .input(ActionExecutionInput::builder().action_type_id(type_id).build())
            .output(
                ActionExecutionOutput::builder()
                    .execution_result(ActionExecutionResult::builder().external_execution_id(build).build())
                    .build(),
            )
            .build()
    }

    #[tokio::test]
    async fn lookups_read_variables_and_whether_codebuild_ran() {
        use aws_sdk_codepipeline::operation::get_pipeline_execution::{
            GetPipelineExecutionError, GetPipelineExecutionOutput,
        };
        use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
        use aws_sdk_codepipeline::types::error::PipelineExecutionNotFoundException;
        use aws_sdk_codepipeline::types::{PipelineExecution, ResolvedPipelineVariable};
        let get = mock!(Client::get_pipeline_execution)
            .match_requests(|r| r.pipeline_name() == Some("demo-ci") && r.pipeline_execution_id() == Some("e1"))
            .then_output(|| {
                GetPipelineExecutionOutput::builder()
                    .pipeline_execution(
                        PipelineExecution::builder()
                            .pipeline_execution_id("e1")
                            .status_summary("Source: denied")
                            .variables(
                                ResolvedPipelineVariable::builder()
                                    .name("PAGURE_REQUEST_ID")
                                    .resolved_value("r1")
                                    .build(),
                            )
                            .build(),
                    )
                    .build()
            });
        let actions = mock!(Client::list_action_executions)
            .match_requests(|r| r.filter().and_then(|f| f.pipeline_execution_id()) == Some("e1"))
            .then_output(|| {
                ListActionExecutionsOutput::builder().action_execution_details(codebuild_action("e1", "p:1")).build()
            });
        let missing = mock!(Client::get_pipeline_execution).then_error(|| {
            GetPipelineExecutionError::PipelineExecutionNotFoundException(
                PipelineExecutionNotFoundException::builder().message("no").build(),
            )
        });
        let recent = mock!(Client::list_action_executions).match_requests(|r| r.filter().is_none()).then_output(|| {
            ListActionExecutionsOutput::builder()
                .action_execution_details(codebuild_action("e0", "p:0"))
                .action_execution_details(codebuild_action("e2", "p:2"))
                .build()
        });
        let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, &[&get, &actions, &missing, &recent]);
        let lookup = CodePipelineLookup::new(client);
        let facts = lookup.execution("demo-ci", "e1").await.expect("lookup").expect("found");
        assert_eq!(facts.variables.get("PAGURE_REQUEST_ID").map(String::as_str), Some("r1"));
        assert!(facts.build_ran);
        assert_eq!(facts.summary.as_deref(), Some("Source: denied"));
        assert_eq!(lookup.execution("demo-ci", "gone").await.expect("lookup"), None);
        assert_eq!(lookup.execution_of_build("demo-ci", "p:2").await.expect("lookup").as_deref(), Some("e2"));
    }

    #[test]
    fn tokens_and_headers() {
        assert_eq!(request_token(&"a/".repeat(100)).len(), 128);
        assert_eq!(header_safe("PR #2 fix → main"), "PR #2 fix %E2%86%92 main");
        assert_eq!(header_safe("tab\there"), "tab%09here");
    }
}
