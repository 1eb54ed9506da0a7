//! Build states as Pagure flags: which flag a build request has, what each CodeBuild or
//! CodePipeline state change says on it, and how an event finds its build request again.
//!
//! One flag per build request: its `uid` comes from the request id, so every state of the
//! build (queued, running, finished) updates the same flag. A PR build flags the commit
//! that was built, on the target project's commit endpoint (a PR flag would land on
//! whatever head the PR has when the call is made, `CONTRACT.md` (a)).

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};
use url::Url;

use crate::config::{AcceptConfig, ProjectConfig};
use crate::forge::{Flag, FlagOn, FlagStatus, FlagTarget, FlagUpdate, Forge, ForgeError, MAX_COMMENT_CHARS};
use crate::model::{BuildRequest, Cause, ProjectRef};
use crate::ports::{ExecutionFacts, PipelineLookup};
pub mod events;
pub mod invoke;

use crate::sweep::{CAPACITY_ERROR, NoSettlements, Settlement, Settlements};

/// Default flag name on Pagure.
pub const DEFAULT_FLAG_USERNAME: &str = "AWS CodeBuild";

/// What is being built, as far as flags are concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FlagSubject<'a> {
    pub project: &'a ProjectRef,
    pub cause: &'a Cause,
    /// The commit built, once known (a PR's head is only known after the fetch).
    pub commit: Option<&'a str>,
    pub request_id: &'a str,
}

impl<'a> From<&'a BuildRequest> for FlagSubject<'a> {
    fn from(request: &'a BuildRequest) -> Self {
        let commit = match &request.cause {
            Cause::Commit { sha } => Some(sha.as_str()),
            Cause::PullRequest { .. } => None,
        };
        FlagSubject { project: &request.project, cause: &request.cause, commit, request_id: &request.request_id }
    }
}

impl FlagSubject<'_> {
    pub fn with_commit<'b>(&self, commit: &'b str) -> FlagSubject<'b>
    where
        Self: 'b,
    {
        FlagSubject { commit: Some(commit), ..self.clone() }
    }

    /// A push is flagged on the repository pushed to (a fork, when a fork's own CI plugin
    /// calls the bridge); a PR on its target, on the built commit when it is known and on
    /// the PR (its current head) before that.
    pub fn target(&self) -> FlagTarget {
        let project = self.project;
        let fork_user = match self.cause {
            Cause::Commit { .. } => project.fork_user.as_deref(),
            Cause::PullRequest { .. } => None,
        };
        let project_path = FlagTarget::project_path(project.namespace.as_deref(), &project.name, fork_user);
        let on = match (self.commit, self.cause) {
            (Some(sha), _) => FlagOn::Commit(sha.to_owned()),
            (None, Cause::Commit { sha }) => FlagOn::Commit(sha.clone()),
            (None, Cause::PullRequest { id }) => FlagOn::PullRequest(*id),
        };
        FlagTarget { project_path, on }
    }

    pub fn update(&self, status: FlagStatus, comment: &str, url: String, percent: Option<u8>) -> FlagUpdate {
        FlagUpdate {
            project_key: self.project.key.clone(),
            target: self.target(),
            uid: flag_uid(self.request_id),
            status,
            comment: short_comment(comment),
            url,
            percent,
        }
    }

    /// The Pagure page of what is built: where an `error` flag links when no build ran.
    pub fn pagure_page(&self, pagure_url: &Url) -> String {
        let target = self.target();
        let path = match &target.on {
            FlagOn::Commit(sha) => format!("{}/c/{sha}", target.project_path),
            FlagOn::PullRequest(id) => format!("{}/pull-request/{id}", target.project_path),
        };
        pagure_url.join(&path).map(String::from).unwrap_or_else(|_| pagure_url.to_string())
    }
}

/// The flag uid of a build request: its id when that fits Pagure's 32 characters (request
/// ids are UUID v4 in simple form: unique across projects and forks), else a digest of it.
pub fn flag_uid(request_id: &str) -> String {
    if (1..=32).contains(&request_id.len()) && request_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        request_id.to_owned()
    } else {
        hex::encode(Sha256::digest(request_id.as_bytes()))[..32].to_owned()
    }
}

fn short_comment(comment: &str) -> String {
    let comment = comment.trim();
    match comment.char_indices().nth(MAX_COMMENT_CHARS - 1) {
        Some((at, _)) => format!("{}…", &comment[..at]),
        None => comment.to_owned(),
    }
}

/// A CodeBuild "Build State Change" event, reduced to what a flag needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CodeBuildChange {
    pub region: String,
    pub account: String,
    pub project_name: String,
    /// The build's ARN (`arn:aws:codebuild:<region>:<account>:build/<project>:<uuid>`) or
    /// its id (`<project>:<uuid>`).
    pub build_id: String,
    pub build_number: Option<u64>,
    /// `IN_PROGRESS`, `SUCCEEDED`, `FAILED`, `STOPPED` (and, seen in phases, `TIMED_OUT`,
    /// `FAULT`, `CLIENT_ERROR`).
    pub status: String,
    pub phases: Vec<PhaseOutcome>,
    /// `codepipeline/<pipeline>` when CodePipeline started the build.
    pub initiator: Option<String>,
    pub variables: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PhaseOutcome {
    pub phase: String,
    pub status: Option<String>,
    pub context: Vec<String>,
}

/// A CodePipeline "Pipeline Execution State Change" event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PipelineChange {
    pub region: String,
    pub pipeline: String,
    pub execution_id: String,
    /// `STARTED`, `SUCCEEDED`, `FAILED`, `STOPPING`, `STOPPED`, `SUPERSEDED`, `CANCELED`, `RESUMED`.
    pub state: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BuildEvent {
    CodeBuild(CodeBuildChange),
    Pipeline(PipelineChange),
}

/// What a state change says on the flag: status, comment, percent.
pub type FlagState = (FlagStatus, String, Option<u8>);

impl CodeBuildChange {
    fn label(&self) -> String {
        match self.build_number {
            Some(n) => format!("Build #{n}"),
            None => "Build".to_owned(),
        }
    }

    /// The first phase that did not succeed.
    fn failed_phase(&self) -> Option<&PhaseOutcome> {
        self.phases.iter().find(|p| p.status.as_deref().is_some_and(|s| s != "SUCCEEDED"))
    }

    /// The flag for this change; `None` for states that do not change it.
    pub fn flag_state(&self) -> Option<FlagState> {
        let label = self.label();
        let failed = self.failed_phase();
        let phase_note = |p: &PhaseOutcome| {
            let context: Vec<&str> = p.context.iter().map(|c| c.trim()).filter(|c| !c.is_empty()).collect();
            if context.is_empty() { String::new() } else { format!(": {}", context.join("; ")) }
        };
        Some(match self.status.as_str() {
            "IN_PROGRESS" => (FlagStatus::Pending, format!("{label} running"), None),
            "SUCCEEDED" => (FlagStatus::Success, format!("{label} succeeded"), Some(100)),
            "STOPPED" => (FlagStatus::Canceled, format!("{label} stopped"), None),
            "TIMED_OUT" => (FlagStatus::Error, format!("{label} timed out"), None),
            "FAULT" => (FlagStatus::Error, format!("{label} failed: CodeBuild fault"), None),
            "FAILED" => match failed {
                Some(p) if p.status.as_deref() == Some("TIMED_OUT") => {
                    (FlagStatus::Error, format!("{label} timed out in phase {}", p.phase), None)
                }
                Some(p) if p.status.as_deref() == Some("FAULT") => (
                    FlagStatus::Error,
                    format!("{label} failed: CodeBuild fault in phase {}{}", p.phase, phase_note(p)),
                    None,
                ),
                // Before the buildspec runs: the build could not start (source download,
                // provisioning, a bad buildspec), not the project's code failing.
                Some(p)
                    if matches!(p.phase.as_str(), "SUBMITTED" | "QUEUED" | "PROVISIONING" | "DOWNLOAD_SOURCE")
                        || p.status.as_deref() == Some("CLIENT_ERROR") =>
                {
                    (
                        FlagStatus::Error,
                        format!(
                            "{label} could not run: phase {} {}{}",
                            p.phase,
                            p.status.as_deref().unwrap_or("FAILED"),
                            phase_note(p)
                        ),
                        None,
                    )
                }
                Some(p) => {
                    (FlagStatus::Failure, format!("{label} failed in phase {}{}", p.phase, phase_note(p)), Some(0))
                }
                None => (FlagStatus::Failure, format!("{label} failed"), Some(0)),
            },
            _ => return None,
        })
    }

    /// The pipeline that started the build, from `codepipeline/<name>`.
    pub fn pipeline(&self) -> Option<&str> {
        self.initiator.as_deref().and_then(|i| i.strip_prefix("codepipeline/"))
    }

    /// `<project>:<uuid>`, whether `build_id` is an ARN or already the id.
    pub fn short_build_id(&self) -> &str {
        self.build_id.rsplit_once(":build/").map_or(self.build_id.as_str(), |(_, id)| id)
    }

    /// The build's page in the CodeBuild console.
    pub fn console_url(&self) -> String {
        let id = self.short_build_id();
        let account = if self.account.is_empty() {
            // arn:aws:codebuild:<region>:<account>:build/…
            self.build_id.split(':').nth(4).unwrap_or_default()
        } else {
            &self.account
        };
        codebuild_console_url(&self.region, account, &self.project_name, id)
    }
}

/// `https://<region>.console.aws.amazon.com/codesuite/codebuild/<account>/projects/<project>/build/<project>%3A<uuid>/?region=<region>`.
pub fn codebuild_console_url(region: &str, account: &str, project: &str, build_id: &str) -> String {
    let build = build_id.replace(':', "%3A");
    format!(
        "https://{region}.console.aws.amazon.com/codesuite/codebuild/{account}/projects/{project}/build/{build}/?region={region}"
    )
}

/// `https://<region>.console.aws.amazon.com/codesuite/codepipeline/pipelines/<pipeline>/executions/<id>`.
pub fn pipeline_console_url(region: &str, pipeline: &str, execution_id: &str) -> String {
    format!(
        "https://{region}.console.aws.amazon.com/codesuite/codepipeline/pipelines/{pipeline}/executions/{execution_id}"
    )
}

impl PipelineChange {
    /// The flag for a pipeline execution that ended without its CodeBuild action running
    /// (when a build ran, CodeBuild's own events own the flag).
    pub fn flag_state(&self, facts: &ExecutionFacts) -> Option<FlagState> {
        if facts.build_ran {
            return None;
        }
        let pipeline = &self.pipeline;
        let why = facts.summary.as_deref().map(|s| format!(": {s}")).unwrap_or_default();
        Some(match self.state.as_str() {
            "SUCCEEDED" => (FlagStatus::Success, format!("Pipeline {pipeline} succeeded"), Some(100)),
            "FAILED" => (FlagStatus::Error, format!("Pipeline {pipeline} failed before CodeBuild ran{why}"), None),
            "STOPPED" => {
                (FlagStatus::Canceled, format!("Pipeline {pipeline} execution stopped before CodeBuild ran{why}"), None)
            }
            "SUPERSEDED" => {
                (FlagStatus::Canceled, format!("Pipeline {pipeline} execution superseded by a newer one"), None)
            }
            "CANCELED" => (FlagStatus::Canceled, format!("Pipeline {pipeline} execution canceled{why}"), None),
            _ => return None,
        })
    }
}

/// The build request an event belongs to, from the PAGURE_* values the build carries (the
/// CodeBuild action's environment variables, fed from the pipeline variables).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Correlation {
    pub request_id: String,
    /// `PAGURE_PROJECT`: the target's full name.
    pub project: String,
    pub repo: String,
    pub cause: Cause,
    pub commit: Option<String>,
}

impl Correlation {
    /// `None` when the values are not the bridge's (no `PAGURE_REQUEST_ID`, or a pipeline run
    /// started by hand, which carries the declared defaults).
    pub fn from_variables(variables: &BTreeMap<String, String>) -> Option<Result<Self, String>> {
        let get = |name: &str| variables.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
        let request_id = get("PAGURE_REQUEST_ID").filter(|id| *id != crate::buildspec::MANUAL_RUN)?.to_owned();
        let need = |name: &str| get(name).map(str::to_owned).ok_or_else(|| format!("{name} is missing"));
        Some((|| {
            // A PR number or a full commit id, as pagure-ci sends it: no PAGURE_PR_ID needed
            // (the pipeline does not carry it).
            let cause =
                crate::validate::parse_cause(&need("PAGURE_CAUSE")?).map_err(|e| format!("PAGURE_CAUSE: {e}"))?;
            Ok(Correlation {
                request_id,
                project: need("PAGURE_PROJECT")?,
                repo: need("PAGURE_REPO")?,
                cause,
                commit: get("PAGURE_COMMIT").map(str::to_owned),
            })
        })())
    }

    /// The configured project this build belongs to (by full name, and by pipeline when
    /// several projects share a name), and the repository checked against its allow-list.
    pub fn resolve(
        &self,
        registry: &crate::registry::Registry,
        pipeline: Option<&str>,
    ) -> Result<(std::sync::Arc<ProjectConfig>, ProjectRef), String> {
        let named = registry.by_fullname(&self.project);
        // Only a project this pipeline builds: an event from a pipeline the project does not use
        // (another stack's, or one a rule no longer names) never posts with its token. Builds
        // of the untrusted pipeline report exactly as the trusted ones.
        let candidates: Vec<std::sync::Arc<ProjectConfig>> = match pipeline {
            Some(pipeline) => named
                .into_iter()
                .filter(|p| p.pipeline == pipeline || p.untrusted_pipeline.as_deref() == Some(pipeline))
                .collect(),
            None => named,
        };
        let [project] = candidates.as_slice() else {
            return Err(match (candidates.len(), pipeline) {
                (0, Some(pipeline)) => {
                    format!("no configured project named `{}` builds in pipeline `{pipeline}`", self.project)
                }
                (0, None) => format!("no configured project is named `{}`", self.project),
                (n, _) => format!("{n} configured projects are named `{}`", self.project),
            });
        };
        let (_, reference) =
            project.repo.check(&project.key, &self.repo).map_err(|e| format!("PAGURE_REPO refused: {e}"))?;
        Ok((project.clone(), reference))
    }
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReportOutcome {
    Posted(FlagUpdate),
    Ignored(String),
}

/// The report stage: turns state-change events into flag updates. With a ledger
/// ([`ReportService::with_settlements`]) it records every final flag it posts, so that the
/// sweep ([`crate::sweep`]) never reposts one.
#[derive(Debug)]
pub struct ReportService<R, L, M = NoSettlements> {
    pub(crate) config: AcceptConfig,
    pub(crate) sink: R,
    pub(crate) lookup: L,
    pub(crate) ledger: M,
}

impl<R, L> ReportService<R, L, NoSettlements> {
    pub fn new(config: AcceptConfig, sink: R, lookup: L) -> Self {
        ReportService { config, sink, lookup, ledger: NoSettlements }
    }
}

impl<R, L, M> ReportService<R, L, M> {
    /// Records final flags in `ledger` (the `.settled` markers of [`crate::sweep`]).
    pub fn with_settlements<N: Settlements>(self, ledger: N) -> ReportService<R, L, N> {
        ReportService { config: self.config, sink: self.sink, lookup: self.lookup, ledger }
    }
}

impl<R: Forge, L: PipelineLookup, M: Settlements> ReportService<R, L, M> {
    /// Posts `update` and, when it is final, records the request as settled.
    async fn post(&self, update: &FlagUpdate, project_key: &str, request_id: &str) -> Result<(), ForgeError> {
        self.sink.report(update).await?;
        if update.status.is_final() {
            let settlement =
                Settlement { status: update.status.as_str(), uid: &update.uid, by: "event", detail: &update.comment };
            self.ledger.settle(project_key, request_id, &settlement).await;
        }
        Ok(())
    }

    /// Posts the flag an event calls for. `Err` means "try again" when it is transient.
    pub async fn handle(&self, event: &BuildEvent) -> Result<ReportOutcome, ForgeError> {
        match event {
            BuildEvent::CodeBuild(change) => self.codebuild(change).await,
            BuildEvent::Pipeline(change) => self.pipeline(change).await,
        }
    }

    async fn codebuild(&self, change: &CodeBuildChange) -> Result<ReportOutcome, ForgeError> {
        let Some((status, comment, percent)) = change.flag_state() else {
            return Ok(ReportOutcome::Ignored(format!("build status `{}` does not change the flag", change.status)));
        };
        // The bridge only starts builds through its pipelines: a build started any other way
        // (by hand, with PAGURE_* overrides) never posts with a project's token.
        let Some(pipeline) = change.pipeline() else {
            return Ok(ReportOutcome::Ignored(format!(
                "{}: not started by a pipeline (initiator {:?})",
                change.short_build_id(),
                change.initiator.as_deref().unwrap_or("")
            )));
        };
        let variables = match Correlation::from_variables(&change.variables) {
            Some(_) => change.variables.clone(),
            // Not in the build's variables (a CodeBuild action without them): ask the
            // pipeline which execution ran this build, and read that execution's variables.
            None => {
                let found =
                    self.lookup.execution_of_build(pipeline, change.short_build_id()).await.map_err(lookup_failed)?;
                let facts = match found {
                    Some(execution_id) => {
                        self.lookup.execution(pipeline, &execution_id).await.map_err(lookup_failed)?
                    }
                    None => None,
                };
                facts.map(|f| f.variables).unwrap_or_default()
            }
        };
        let (update, request_id) = match self.correlate(&variables, Some(pipeline), change.short_build_id()).await? {
            Correlated::Subject(c, project) => {
                let subject = subject_of(&c, &project);
                (subject.update(status, &comment, change.console_url(), percent), c.request_id.clone())
            }
            Correlated::Ignored(why) => return Ok(ReportOutcome::Ignored(why)),
        };
        if update.status == FlagStatus::Pending
            && (self.ledger.is_settled(&update.project_key, &request_id).await
                || self.sink.already_final(&update).await)
        {
            return Ok(ReportOutcome::Ignored("a late IN_PROGRESS event: the flag already shows the result".into()));
        }
        self.post(&update, &update.project_key, &request_id).await?;
        Ok(ReportOutcome::Posted(update))
    }

    async fn pipeline(&self, change: &PipelineChange) -> Result<ReportOutcome, ForgeError> {
        if !matches!(change.state.as_str(), "SUCCEEDED" | "FAILED" | "STOPPED" | "SUPERSEDED" | "CANCELED") {
            return Ok(ReportOutcome::Ignored(format!("pipeline state `{}` does not change the flag", change.state)));
        }
        let Some(facts) = self.lookup.execution(&change.pipeline, &change.execution_id).await.map_err(lookup_failed)?
        else {
            return Ok(ReportOutcome::Ignored(format!(
                "execution {} of pipeline {} is unknown",
                change.execution_id, change.pipeline
            )));
        };
        let capacity = match change.state.as_str() {
            "FAILED" => self.capacity_refused(change).await,
            _ => false,
        };
        let state = if capacity {
            // CodeBuild refused to start the build (the account's concurrency): not the
            // change failing. The flag stays pending; the sweep retries the stage.
            Some((
                FlagStatus::Pending,
                format!(
                    "Waiting for CodeBuild capacity: the account's concurrent build limit was reached ({CAPACITY_ERROR}); the build will be retried"
                ),
                None,
            ))
        } else {
            change.flag_state(&facts)
        };
        let Some((status, comment, percent)) = state else {
            return Ok(ReportOutcome::Ignored("CodeBuild ran: its own events report the build".into()));
        };
        match self.correlate(&facts.variables, Some(&change.pipeline), &change.execution_id).await? {
            Correlated::Subject(c, project) => {
                let url = pipeline_console_url(&change.region, &change.pipeline, &change.execution_id);
                let update = subject_of(&c, &project).update(status, &comment, url, percent);
                self.post(&update, &project.key, &c.request_id).await?;
                Ok(ReportOutcome::Posted(update))
            }
            Correlated::Ignored(why) => Ok(ReportOutcome::Ignored(why)),
        }
    }

    /// Whether the execution failed only because CodeBuild refused to start its build for
    /// capacity. A lookup that cannot tell answers no (the event is handled as before).
    async fn capacity_refused(&self, change: &PipelineChange) -> bool {
        match self.lookup.execution_state(&change.pipeline, &change.execution_id).await {
            Ok(Some(state)) => crate::sweep::capacity_refusal(&state).is_some(),
            Ok(None) => false,
            Err(e) => {
                tracing::debug!(error = %e, "execution state unknown");
                false
            }
        }
    }

    pub(crate) async fn correlate(
        &self,
        variables: &BTreeMap<String, String>,
        pipeline: Option<&str>,
        what: &str,
    ) -> Result<Correlated, ForgeError> {
        let correlation = match Correlation::from_variables(variables) {
            None => {
                return Ok(Correlated::Ignored(format!("{what} was not started by the bridge (no PAGURE_REQUEST_ID)")));
            }
            // Ours, but unusable: retrying cannot fix it, and a flag cannot be placed.
            Some(Err(why)) => return Err(ForgeError::terminal(format!("{what}: {why}"))),
            Some(Ok(c)) => c,
        };
        let registry = self.config.projects.snapshot().await.map_err(|e| ForgeError::transient(e.to_string()))?;
        match correlation.resolve(&registry, pipeline) {
            Ok((_, project)) => Ok(Correlated::Subject(correlation, project)),
            Err(why) => Ok(Correlated::Ignored(format!("{what}: {why}"))),
        }
    }
}

pub(crate) enum Correlated {
    Subject(Correlation, ProjectRef),
    Ignored(String),
}

pub(crate) fn subject_of<'a>(c: &'a Correlation, project: &'a ProjectRef) -> FlagSubject<'a> {
    FlagSubject { project, cause: &c.cause, commit: c.commit.as_deref(), request_id: &c.request_id }
}

fn lookup_failed(e: crate::ports::LookupError) -> ForgeError {
    ForgeError::transient(e.to_string())
}

/// A flag reported from inside a build (`pagure-ci-bridge report`, for users without the
/// report Lambda): the PAGURE_* variables the bridge injected, and CodeBuild's own
/// `CODEBUILD_BUILD_ARN`, `CODEBUILD_BUILD_NUMBER` and `CODEBUILD_BUILD_SUCCEEDING`.
/// `status` `None` means "from `CODEBUILD_BUILD_SUCCEEDING`". The uid is the bridge's, so
/// the flag it posted when the build was queued is the one updated.
pub fn flag_from_build_env(
    env: &BTreeMap<String, String>,
    status: Option<FlagStatus>,
    comment: Option<&str>,
    url: Option<&str>,
    username: &str,
) -> Result<(FlagTarget, Flag), String> {
    let correlation = Correlation::from_variables(env)
        .ok_or("PAGURE_REQUEST_ID is not set: this build was not started by pagure-ci-bridge")??;
    let get = |name: &str| env.get(name).map(|v| v.trim()).filter(|v| !v.is_empty());
    let label = match get("CODEBUILD_BUILD_NUMBER") {
        Some(n) => format!("Build #{n}"),
        None => "Build".to_owned(),
    };
    let status = match status {
        Some(status) => status,
        None => match get("CODEBUILD_BUILD_SUCCEEDING") {
            Some("1") => FlagStatus::Success,
            Some("0") => FlagStatus::Failure,
            other => return Err(format!("CODEBUILD_BUILD_SUCCEEDING is {other:?}, not 0 or 1: give --status")),
        },
    };
    let (default_comment, percent) = match status {
        FlagStatus::Pending => (format!("{label} running"), None),
        FlagStatus::Success => (format!("{label} succeeded"), Some(100)),
        FlagStatus::Failure => (format!("{label} failed"), Some(0)),
        FlagStatus::Error => (format!("{label} could not run"), None),
        FlagStatus::Canceled => (format!("{label} stopped"), None),
    };
    let url = match (url, get("CODEBUILD_BUILD_ARN")) {
        (Some(url), _) => url.to_owned(),
        // arn:aws:codebuild:<region>:<account>:build/<project>:<uuid>
        (None, Some(arn)) => {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let build = arn.rsplit_once(":build/").map(|(_, id)| id).unwrap_or_default();
            let project = build.split(':').next().unwrap_or_default();
            match parts.as_slice() {
                [_, _, _, region, account, _] if !build.is_empty() => {
                    codebuild_console_url(region, account, project, build)
                }
                _ => return Err(format!("CODEBUILD_BUILD_ARN `{arn}` is not a build ARN")),
            }
        }
        (None, None) => return Err("no --url and no CODEBUILD_BUILD_ARN to link the flag to".into()),
    };
    // The repository was checked by the bridge; here only its fork part matters.
    let fork_user = correlation
        .repo
        .strip_suffix(&format!("/{}.git", correlation.project))
        .and_then(|head| head.rsplit_once("/forks/"))
        .map(|(_, user)| user.to_owned())
        .filter(|user| !user.contains('/'));
    let (namespace, name) = match correlation.project.rsplit_once('/') {
        Some((ns, name)) => (Some(ns.to_owned()), name.to_owned()),
        None => (None, correlation.project.clone()),
    };
    let project = ProjectRef { key: String::new(), namespace, name, fork_user };
    let subject = subject_of(&correlation, &project);
    let update = subject.update(status, comment.unwrap_or(&default_comment), url, percent);
    let flag = Flag {
        username: username.to_owned(),
        comment: update.comment,
        url: update.url,
        status: update.status,
        percent: update.percent,
        uid: update.uid,
    };
    flag.check().map_err(|e| e.to_string())?;
    Ok((update.target, flag))
}

#[cfg(test)]
mod tests;
