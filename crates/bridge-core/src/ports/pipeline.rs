//! Pipeline runs: starting one on a stored archive ([`PipelineStarter`]) and reading runs
//! back for the report stage and the sweep ([`PipelineLookup`]). CodePipeline in AWS
//! (`bridge-aws`), recorded runs in local mode (`bridge-local`), [`InMemoryPipelines`] for
//! tests.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;

use super::{ErrorCause, StoredArtifact};
use crate::retry::{Retry, Transience};

/// Why a run was not started, as the adapter classified it.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StartError {
    /// Throttling, limits, 5xx, network: try again.
    #[error("starting the pipeline failed, will retry: {0}")]
    Transient(#[source] ErrorCause),
    /// The pipeline does not exist or the request is invalid: retrying will not help.
    #[error("the pipeline cannot be started: {0}")]
    Terminal(#[source] ErrorCause),
}

impl StartError {
    /// A failure the adapter classified as `retry`.
    pub fn new(retry: Retry, cause: impl Into<ErrorCause>) -> Self {
        match retry {
            Retry::Transient => StartError::Transient(cause.into()),
            Retry::Terminal => StartError::Terminal(cause.into()),
        }
    }

    /// What the pipeline service said.
    pub fn cause(&self) -> &ErrorCause {
        match self {
            StartError::Transient(cause) | StartError::Terminal(cause) => cause,
        }
    }
}

impl Transience for StartError {
    fn retry(&self) -> Retry {
        match self {
            StartError::Transient(_) => Retry::Transient,
            StartError::Terminal(_) => Retry::Terminal,
        }
    }
}

/// Starts a pipeline run on a stored archive, with pipeline variables; returns the run's id.
pub trait PipelineStarter: Send + Sync {
    fn start(
        &self,
        pipeline: &str,
        artifact: &StoredArtifact,
        variables: &[(&'static str, String)],
    ) -> impl Future<Output = Result<String, StartError>> + Send;

    /// Where a person sees the run (the flag's link while the build is queued).
    fn execution_url(&self, pipeline: &str, execution_id: &str) -> String;
}

/// What the report stage needs to know of a pipeline execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionFacts {
    /// The execution's pipeline variables (the PAGURE_* values the bridge started it with).
    pub variables: BTreeMap<String, String>,
    /// A CodeBuild action of this execution ran (then CodeBuild's events report the build).
    pub build_ran: bool,
    /// Why the execution failed or stopped, as CodePipeline says.
    pub summary: Option<String>,
}

/// Why a lookup failed. The report stage and the sweep try again later either way.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LookupError {
    /// The pipeline service failed or could not be reached: its error is the source.
    #[error("pipeline lookup failed: {0}")]
    Failed(#[source] ErrorCause),
    /// What this lookup cannot answer at all.
    #[error("pipeline lookup failed: {0}")]
    Unsupported(&'static str),
}

impl Transience for LookupError {
    fn retry(&self) -> Retry {
        match self {
            LookupError::Failed(_) => Retry::Transient,
            LookupError::Unsupported(_) => Retry::Terminal,
        }
    }
}

/// Looks up pipeline executions, to correlate events with build requests.
pub trait PipelineLookup: Send + Sync {
    /// `None` when the execution does not exist.
    fn execution(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionFacts>, LookupError>> + Send;

    /// The execution whose CodeBuild action ran the build `<project>:<uuid>`.
    fn execution_of_build(
        &self,
        pipeline: &str,
        build_id: &str,
    ) -> impl Future<Output = Result<Option<String>, LookupError>> + Send;

    /// Where an execution is now (the sweep's question): its status, variables, and every
    /// attempt of its CodeBuild actions. `None` when CodePipeline does not know it.
    fn execution_state(
        &self,
        _pipeline: &str,
        _execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionState>, LookupError>> + Send {
        async { Err(LookupError::Unsupported("this lookup cannot tell an execution's state")) }
    }

    /// The builds `<project>:<uuid>` as CodeBuild has them now (BatchGetBuilds), as the
    /// state-change event for their current status would say; builds CodeBuild no longer
    /// knows are left out.
    fn builds(
        &self,
        _build_ids: &[String],
    ) -> impl Future<Output = Result<Vec<crate::report::CodeBuildChange>, LookupError>> + Send {
        async { Err(LookupError::Unsupported("this lookup cannot read builds")) }
    }

    /// Runs the failed actions of `stage` of the execution again (RetryStageExecution,
    /// `FAILED_ACTIONS`). `Ok(false)` when CodePipeline refuses (the stage is not retryable,
    /// a later execution failed there, the execution is gone).
    fn retry_failed_actions(
        &self,
        _pipeline: &str,
        _stage: &str,
        _execution_id: &str,
    ) -> impl Future<Output = Result<bool, LookupError>> + Send {
        async { Ok(false) }
    }
}

/// One lookup shared (the report stage and whoever sets what it answers, in tests).
impl<T: PipelineLookup> PipelineLookup for Arc<T> {
    fn execution(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionFacts>, LookupError>> + Send {
        (**self).execution(pipeline, execution_id)
    }

    fn execution_of_build(
        &self,
        pipeline: &str,
        build_id: &str,
    ) -> impl Future<Output = Result<Option<String>, LookupError>> + Send {
        (**self).execution_of_build(pipeline, build_id)
    }

    fn execution_state(
        &self,
        pipeline: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<Option<ExecutionState>, LookupError>> + Send {
        (**self).execution_state(pipeline, execution_id)
    }

    fn builds(
        &self,
        build_ids: &[String],
    ) -> impl Future<Output = Result<Vec<crate::report::CodeBuildChange>, LookupError>> + Send {
        (**self).builds(build_ids)
    }

    fn retry_failed_actions(
        &self,
        pipeline: &str,
        stage: &str,
        execution_id: &str,
    ) -> impl Future<Output = Result<bool, LookupError>> + Send {
        (**self).retry_failed_actions(pipeline, stage, execution_id)
    }
}

/// A pipeline execution as the sweep sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecutionState {
    /// CodePipeline's status: `InProgress`, `Stopping`, `Stopped`, `Succeeded`,
    /// `Superseded`, `Failed`, `Cancelled`.
    pub status: String,
    pub summary: Option<String>,
    pub variables: BTreeMap<String, String>,
    /// The region of the pipeline (for console links).
    pub region: String,
    /// Every attempt of the execution's CodeBuild actions, newest first.
    pub builds: Vec<BuildAction>,
}

/// One attempt of a CodeBuild action in a pipeline execution.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildAction {
    pub stage: String,
    pub action: String,
    /// `InProgress`, `Abandoned`, `Succeeded`, `Failed`.
    pub status: String,
    /// The build it started (`<project>:<uuid>`); `None` when CodeBuild refused to start one.
    pub build_id: Option<String>,
    /// What CodePipeline says of the attempt (error details, else the summary).
    pub message: Option<String>,
}

impl ExecutionState {
    /// Whether the execution has ended (CodePipeline will not change it any more).
    pub fn is_finished(&self) -> bool {
        matches!(self.status.as_str(), "Stopped" | "Succeeded" | "Superseded" | "Failed" | "Cancelled")
    }
}

/// Pipeline executions held in memory: the tests' and local tools' [`PipelineLookup`].
/// Executions, builds and refusals are set by the caller; retries are recorded.
#[derive(Debug, Default)]
pub struct InMemoryPipelines {
    /// `(pipeline, execution id)` → state.
    pub executions: std::sync::Mutex<BTreeMap<(String, String), ExecutionState>>,
    /// `<project>:<uuid>` → build.
    pub builds: std::sync::Mutex<BTreeMap<String, crate::report::CodeBuildChange>>,
    /// `(pipeline, stage, execution id)` of each retry asked for.
    pub retries: std::sync::Mutex<Vec<(String, String, String)>>,
    /// Whether retries are accepted.
    pub refuse_retries: std::sync::atomic::AtomicBool,
}

impl InMemoryPipelines {
    pub fn set_execution(&self, pipeline: &str, execution_id: &str, state: ExecutionState) {
        self.executions.lock().expect("executions").insert((pipeline.to_owned(), execution_id.to_owned()), state);
    }

    pub fn set_build(&self, build: crate::report::CodeBuildChange) {
        let id = build.short_build_id().to_owned();
        self.builds.lock().expect("builds").insert(id, build);
    }

    pub fn retries(&self) -> Vec<(String, String, String)> {
        self.retries.lock().expect("retries").clone()
    }
}

impl PipelineLookup for InMemoryPipelines {
    async fn execution(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionFacts>, LookupError> {
        Ok(self.execution_state(pipeline, execution_id).await?.map(|state| ExecutionFacts {
            build_ran: state.builds.iter().any(|b| b.build_id.is_some()),
            summary: state.summary,
            variables: state.variables,
        }))
    }

    async fn execution_of_build(&self, pipeline: &str, build_id: &str) -> Result<Option<String>, LookupError> {
        let executions = self.executions.lock().map_err(poisoned)?;
        Ok(executions
            .iter()
            .find(|((p, _), state)| {
                p == pipeline && state.builds.iter().any(|b| b.build_id.as_deref() == Some(build_id))
            })
            .map(|((_, id), _)| id.clone()))
    }

    async fn execution_state(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionState>, LookupError> {
        let executions = self.executions.lock().map_err(poisoned)?;
        Ok(executions.get(&(pipeline.to_owned(), execution_id.to_owned())).cloned())
    }

    async fn builds(&self, build_ids: &[String]) -> Result<Vec<crate::report::CodeBuildChange>, LookupError> {
        let builds = self.builds.lock().map_err(poisoned)?;
        Ok(build_ids.iter().filter_map(|id| builds.get(id).cloned()).collect())
    }

    async fn retry_failed_actions(&self, pipeline: &str, stage: &str, execution_id: &str) -> Result<bool, LookupError> {
        if self.refuse_retries.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(false);
        }
        self.retries.lock().map_err(poisoned)?.push((pipeline.to_owned(), stage.to_owned(), execution_id.to_owned()));
        Ok(true)
    }
}

/// A lock of [`InMemoryPipelines`] whose holder panicked (a failed test).
fn poisoned<T>(_: T) -> LookupError {
    LookupError::Failed("the in-memory pipelines' lock is poisoned".into())
}

#[cfg(test)]
mod tests;
