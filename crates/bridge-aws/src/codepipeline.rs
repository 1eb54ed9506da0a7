//! CodePipeline and CodeBuild: starting runs (`PipelineStarter`) and reading them back
//! (`PipelineLookup`) for the report stage and the sweep.

use crate::error_text;
use bridge_core::ports::{
    BuildAction, ErrorCause, ExecutionFacts, ExecutionState, LookupError, PipelineLookup, PipelineStarter, StartError,
    StoredArtifact,
};
use bridge_core::report::pipeline_console_url;
use bridge_core::retry::Retry;

/// A CodePipeline or CodeBuild call that failed: the SDK's error as its text, with its whole
/// chain of causes.
fn lookup_failed(error: impl std::error::Error) -> LookupError {
    LookupError::Failed(error_text(error).into())
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
            .map_err(|e| StartError::Terminal(ErrorCause::new(e)))?;
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
                .map_err(|e| StartError::Terminal(ErrorCause::new(e)))?;
            call = call.variables(variable);
        }
        match call.send().await {
            Ok(output) => Ok(output.pipeline_execution_id().unwrap_or_default().to_owned()),
            Err(e) => {
                use aws_sdk_codepipeline::error::ProvideErrorMetadata;
                let retry = e.as_service_error().map_or(Retry::Transient, |se| {
                    let code = if se.is_pipeline_not_found_exception() {
                        Some("PipelineNotFoundException")
                    } else if se.is_validation_exception() {
                        Some("ValidationException")
                    } else {
                        se.code()
                    };
                    // The display holds the message of modeled and unmodeled errors alike.
                    start_error_retry(code, Some(&se.to_string()))
                });
                Err(StartError::new(retry, error_text(e)))
            }
        }
    }

    fn execution_url(&self, pipeline: &str, execution_id: &str) -> String {
        pipeline_console_url(&client_region(&self.client), pipeline, execution_id)
    }
}

/// Whether trying again may start the pipeline, after `StartPipelineExecution` answered an
/// error with `code` and `message`. Terminal only for a missing pipeline or a request
/// CodePipeline refuses as invalid. Limits are never terminal, whatever their code or
/// wording: CodePipeline's `ConcurrentPipelineExecutionsLimitExceededException` and
/// `LimitExceededException`, throttling, and CodeBuild's `AccountLimitExceededException` (a
/// new account's concurrent build quota) pass when running builds end, so they are tried
/// again, never flagged `error`. Anything else (conflicts, server errors, unknown codes) is
/// transient too.
pub fn start_error_retry(code: Option<&str>, message: Option<&str>) -> Retry {
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
    if !limit && matches!(code, Some("PipelineNotFoundException" | "ValidationException")) {
        Retry::Terminal
    } else {
        Retry::Transient
    }
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
pub(crate) fn started_build(action: &aws_sdk_codepipeline::types::ActionExecutionDetail) -> Option<&str> {
    action
        .output()
        .and_then(|o| o.execution_result())
        .and_then(|r| r.external_execution_id())
        .filter(|id| !id.is_empty())
}

/// An action attempt as the sweep reads it.
pub(crate) fn build_action(action: &aws_sdk_codepipeline::types::ActionExecutionDetail) -> BuildAction {
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
pub(crate) fn build_change(build: &aws_sdk_codebuild::types::Build) -> bridge_core::report::CodeBuildChange {
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
            Err(e) => Err(lookup_failed(e)),
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
        let actions = self.actions(pipeline, Some(execution_id)).send().await.map_err(lookup_failed)?;
        // A CodeBuild action whose StartBuild was refused (no build id) ran nothing: no build
        // event will report it.
        let build_ran =
            actions.action_execution_details().iter().any(|a| is_codebuild(a) && started_build(a).is_some());
        Ok(Some(ExecutionFacts { variables, build_ran, summary: execution.status_summary().map(str::to_owned) }))
    }

    async fn execution_of_build(&self, pipeline: &str, build_id: &str) -> Result<Option<String>, LookupError> {
        // The build is recent (its event is being handled): the latest 100 action executions
        // hold it.
        let actions = self.actions(pipeline, None).send().await.map_err(lookup_failed)?;
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
        let actions = self.actions(pipeline, Some(execution_id)).send().await.map_err(lookup_failed)?;
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
            return Err(LookupError::Unsupported("no CodeBuild client to read builds with"));
        };
        let mut found = Vec::new();
        // BatchGetBuilds takes at most 100 ids.
        for chunk in build_ids.chunks(100) {
            let output =
                codebuild.batch_get_builds().set_ids(Some(chunk.to_vec())).send().await.map_err(lookup_failed)?;
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
            Err(e) => Err(lookup_failed(e)),
        }
    }
}
