//! The sweep: CodeBuild and CodePipeline events are best effort (EventBridge may drop one,
//! the report function may fail past its retries), so a scheduled run finds build requests
//! whose flag may still say `pending` and settles them from what CodePipeline and CodeBuild
//! say now.
//!
//! - *Which requests.* The work stage writes `<prefix>/<project>/<request-id>.started`
//!   (holding the execution id) when it starts a pipeline. The report stage writes
//!   `<prefix>/<project>/<request-id>.settled` whenever it posts a final flag, from an event
//!   or from the sweep ([`SettlementMarkers`]). A `.started` marker without a `.settled`
//!   one, older than `after` (`PCB_SWEEP_AFTER_SECONDS`, `[report] sweep_after_seconds`) and
//!   younger than `horizon` (7 days), is looked at; a settled request is never reposted.
//! - *Bounded work.* One listing page at a time (the two markers of a request are neighbours
//!   in key order, so one pass of the listing finds both), at most `max_checks` requests
//!   looked up per run, and a stop `margin` before the function's deadline. A run that stops
//!   early leaves a cursor (`<prefix>/.sweep/cursor`: the last key it finished) and the next
//!   run goes on from there; a run that reaches the end starts the next pass from the top.
//! - *What is posted.* An execution still running is left alone (its flag stays pending).
//!   A finished execution gets the flag its events would have given: the build's, from
//!   BatchGetBuilds (same comment, same console link, same uid), or the pipeline's when no
//!   build ran. An execution CodePipeline no longer knows gets `error` with the reason,
//!   placed from the archive's metadata.
//! - *CodeBuild at its concurrency limit.* A CodeBuild action that failed because StartBuild
//!   answered `AccountLimitExceededException` did not run the build at all: that is the
//!   account being busy, not the change failing, so it is neither `failure` nor (at first)
//!   `error`. The flag stays `pending` and says so, and the sweep retries the stage's failed
//!   actions (RetryStageExecution, same execution, same archive, same flag) up to
//!   `capacity_retries` times; when CodePipeline refuses the retry or the retries are used
//!   up, the flag becomes `error` with an explicit "ask for a rebuild" hint.

use std::collections::BTreeSet;
use std::future::Future;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::forge::{FlagStatus, FlagUpdate, Forge, ForgeError};
use crate::ports::{ArtifactStore, BuildAction, ExecutionFacts, ExecutionState, PipelineLookup};
use crate::report::{Correlated, FlagState, PipelineChange, ReportService, pipeline_console_url, subject_of};

/// Default of `PCB_SWEEP_AFTER_SECONDS` / `[report] sweep_after_seconds`.
pub const DEFAULT_SWEEP_AFTER_SECONDS: u64 = 3600;
/// Requests started longer ago than this are no longer looked at.
pub const DEFAULT_HORIZON: Duration = Duration::from_secs(7 * 24 * 3600);
/// Stage retries after CodeBuild's concurrency refusal before the flag becomes `error`.
pub const DEFAULT_CAPACITY_RETRIES: usize = 3;
/// What CodeBuild answers StartBuild when the account runs (and queues) all it may.
pub const CAPACITY_ERROR: &str = "AccountLimitExceededException";

/// How the sweep runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepSettings {
    /// The work stage's key prefix (`PCB_KEY_PREFIX`, `sources`).
    pub key_prefix: String,
    /// A request is looked at once its `.started` marker is this old.
    pub after: Duration,
    /// … and until it is this old.
    pub horizon: Duration,
    /// Keys per listing call (S3 answers at most 1,000).
    pub page_size: usize,
    /// Requests looked up per run.
    pub max_checks: usize,
    /// See [`DEFAULT_CAPACITY_RETRIES`].
    pub capacity_retries: usize,
    /// The run stops this long before its deadline.
    pub margin: Duration,
}

impl SweepSettings {
    pub fn new(key_prefix: impl Into<String>, after: Duration) -> Self {
        SweepSettings {
            key_prefix: key_prefix.into(),
            after,
            horizon: DEFAULT_HORIZON,
            page_size: 1000,
            max_checks: 500,
            capacity_retries: DEFAULT_CAPACITY_RETRIES,
            margin: Duration::from_secs(10),
        }
    }
}

/// `<prefix>/<project>/<request-id>.<suffix>`, the work stage's layout.
pub fn request_key(prefix: &str, project_key: &str, request_id: &str, suffix: &str) -> String {
    format!("{prefix}/{project_key}/{request_id}.{suffix}")
}

/// Where the sweep's cursor lives: `.sweep` is never a Pagure project name.
pub fn cursor_key(prefix: &str) -> String {
    format!("{prefix}/.sweep/cursor")
}

/// `(project key, request id)` of a `.started` marker's key.
fn parse_started(prefix: &str, key: &str) -> Option<(String, String)> {
    let rest = key.strip_prefix(prefix)?.strip_prefix('/')?.strip_suffix(".started")?;
    let (project, request) = rest.rsplit_once('/')?;
    (!project.is_empty() && !request.is_empty() && !project.starts_with(".sweep"))
        .then(|| (project.to_owned(), request.to_owned()))
}

/// What the ledger keeps of a final flag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settlement<'a> {
    /// The flag status posted, or `unflaggable` when none could be.
    pub status: &'a str,
    pub uid: &'a str,
    /// `event` or `sweep`.
    pub by: &'a str,
    pub detail: &'a str,
}

/// Where the report stage records the requests whose final flag it has posted.
pub trait Settlements: Send + Sync {
    fn is_settled(&self, project_key: &str, request_id: &str) -> impl Future<Output = bool> + Send;
    /// Records a settlement. A failure is logged, never returned: the flag is posted, and the
    /// worst a lost record costs is the sweep posting the same final flag again.
    fn settle(
        &self,
        project_key: &str,
        request_id: &str,
        settlement: &Settlement<'_>,
    ) -> impl Future<Output = ()> + Send;
}

/// No ledger: local mode's event endpoint and tests that do not sweep.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoSettlements;

impl Settlements for NoSettlements {
    async fn is_settled(&self, _project_key: &str, _request_id: &str) -> bool {
        false
    }

    async fn settle(&self, _project_key: &str, _request_id: &str, _settlement: &Settlement<'_>) {}
}

/// A ledger that may be absent (the report Lambda without `PCB_BUCKET`).
impl<T: Settlements> Settlements for Option<T> {
    async fn is_settled(&self, project_key: &str, request_id: &str) -> bool {
        match self {
            Some(ledger) => ledger.is_settled(project_key, request_id).await,
            None => false,
        }
    }

    async fn settle(&self, project_key: &str, request_id: &str, settlement: &Settlement<'_>) {
        if let Some(ledger) = self {
            ledger.settle(project_key, request_id, settlement).await;
        }
    }
}

/// The ledger as `.settled` markers beside the work stage's `.started` ones.
#[derive(Debug, Clone)]
pub struct SettlementMarkers<St> {
    store: St,
    prefix: String,
}

impl<St: ArtifactStore> SettlementMarkers<St> {
    pub fn new(store: St, key_prefix: impl Into<String>) -> Self {
        SettlementMarkers { store, prefix: key_prefix.into() }
    }
}

impl<St: ArtifactStore> Settlements for SettlementMarkers<St> {
    async fn is_settled(&self, project_key: &str, request_id: &str) -> bool {
        match self.store.marker(&request_key(&self.prefix, project_key, request_id, "settled")).await {
            Ok(found) => found.is_some(),
            Err(e) => {
                tracing::warn!(project = %project_key, request_id, error = %e, "settlement unknown: treated as not settled");
                false
            }
        }
    }

    async fn settle(&self, project_key: &str, request_id: &str, settlement: &Settlement<'_>) {
        let record = serde_json::json!({
            "status": settlement.status,
            "uid": settlement.uid,
            "by": settlement.by,
            "detail": settlement.detail,
            "at": OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
        });
        let key = request_key(&self.prefix, project_key, request_id, "settled");
        if let Err(e) = self.store.put_marker(&key, &record.to_string()).await {
            tracing::warn!(%key, error = %e, "settlement not recorded");
        }
    }
}

/// What the sweep did with one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The execution is still running: the flag stays pending.
    Running,
    /// A final flag was posted and recorded.
    Posted(FlagUpdate),
    /// CodeBuild refused to start the build for capacity; the stage was retried and the
    /// pending flag says so.
    Retried { attempt: usize, update: FlagUpdate },
    /// No flag can be placed (nothing left says where); recorded so it is not tried again.
    Unflaggable(String),
    /// Already settled (by an event since the listing).
    AlreadySettled,
    /// Nothing decided this time (a lookup failed, the project is not configured): the next
    /// run tries again.
    Skipped(String),
}

/// What one sweep run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct SweepReport {
    /// Keys listed.
    pub listed: usize,
    /// `.started` markers found due (old enough, within the horizon, not settled).
    pub due: usize,
    pub running: usize,
    pub posted: usize,
    pub retried: usize,
    pub unflaggable: usize,
    pub skipped: usize,
    /// The listing reached its end (the next run starts from the top).
    pub complete: bool,
    /// Why the run stopped before the end, if it did.
    pub stopped: Option<String>,
}

/// A sweep over one store: the Lambda's schedule event, `pagure-ci-bridge sweep`.
#[derive(Debug, Clone)]
pub struct Sweeper<St> {
    pub store: St,
    pub settings: SweepSettings,
}

impl<St: ArtifactStore> Sweeper<St> {
    pub fn new(store: St, settings: SweepSettings) -> Self {
        Sweeper { store, settings }
    }

    /// One run, from the cursor, until the listing ends, `max_checks` requests were looked
    /// up, or `deadline - margin`. Errors only when the store cannot be listed at all.
    pub async fn run<R: Forge, L: PipelineLookup, M: Settlements>(
        &self,
        service: &ReportService<R, L, M>,
        now: OffsetDateTime,
        deadline: Instant,
    ) -> Result<SweepReport, ForgeError> {
        let settings = &self.settings;
        let prefix = settings.key_prefix.trim_end_matches('/');
        let cursor = cursor_key(prefix);
        // The store's error is kept as the source, with its own classification.
        let mut start_after =
            self.store.marker(&cursor).await.map_err(ForgeError::from_source)?.filter(|c| !c.trim().is_empty());
        let mut report = SweepReport::default();
        let mut settled: BTreeSet<String> = BTreeSet::new();
        let mut checks = 0;
        let listing_prefix = format!("{prefix}/");
        let stop = |why: &str, report: &mut SweepReport| report.stopped = Some(why.to_owned());
        'pages: loop {
            if Instant::now() + settings.margin >= deadline {
                stop("the function's deadline is near", &mut report);
                break;
            }
            let page = match self.store.list(&listing_prefix, start_after.as_deref(), settings.page_size.max(1)).await {
                Ok(page) => page,
                Err(e) if report.listed == 0 => return Err(ForgeError::from_source(e)),
                Err(e) => {
                    stop(&format!("listing failed: {e}"), &mut report);
                    break;
                }
            };
            report.listed += page.objects.len();
            for object in &page.objects {
                if let Some(base) = object.key.strip_suffix(".settled") {
                    settled.insert(base.to_owned());
                }
                let due = object.key.strip_suffix(".started").is_some_and(|base| !settled.contains(base)) && {
                    let age = now - object.last_modified;
                    age >= settings.after && age <= settings.horizon
                };
                let parsed = if due { parse_started(prefix, &object.key) } else { None };
                if let Some((project_key, request_id)) = parsed {
                    if checks >= settings.max_checks {
                        stop("the run's share of lookups is used up", &mut report);
                        break 'pages;
                    }
                    if Instant::now() + settings.margin >= deadline {
                        stop("the function's deadline is near", &mut report);
                        break 'pages;
                    }
                    checks += 1;
                    report.due += 1;
                    let execution_id = self.store.marker(&object.key).await.ok().flatten().map(|s| s.trim().to_owned());
                    let decision = match execution_id.filter(|id| !id.is_empty()) {
                        Some(execution_id) => self.decide(service, &project_key, &request_id, &execution_id).await,
                        None => Decision::Skipped("the marker could not be read".into()),
                    };
                    tracing::info!(project = %project_key, %request_id, decision = ?decision, "swept");
                    match decision {
                        Decision::Running => report.running += 1,
                        Decision::Posted(_) => report.posted += 1,
                        Decision::Retried { .. } => report.retried += 1,
                        Decision::Unflaggable(_) => report.unflaggable += 1,
                        Decision::AlreadySettled => {}
                        Decision::Skipped(_) => report.skipped += 1,
                    }
                }
                start_after = Some(object.key.clone());
            }
            // Only the neighbour of the next `.started` key can matter.
            if let Some(last) = settled.last().cloned() {
                settled.retain(|k| *k == last);
            }
            if !page.truncated {
                report.complete = true;
                start_after = None;
                break;
            }
        }
        let next = start_after.unwrap_or_default();
        if let Err(e) = self.store.put_marker(&cursor, &next).await {
            tracing::warn!(error = %e, "sweep cursor not saved: the next run starts from the top");
        }
        tracing::info!(report = ?report, "sweep run done");
        Ok(report)
    }

    /// Settles one request whose pending flag is old: see the module's documentation.
    pub async fn decide<R: Forge, L: PipelineLookup, M: Settlements>(
        &self,
        service: &ReportService<R, L, M>,
        project_key: &str,
        request_id: &str,
        execution_id: &str,
    ) -> Decision {
        let project = match service.config.projects.get(project_key).await {
            Ok(Some(project)) => project,
            Ok(None) => return Decision::Skipped(format!("project `{project_key}` is not configured")),
            Err(e) => return Decision::Skipped(e.to_string()),
        };
        let mut pipelines = vec![project.pipeline.as_str()];
        pipelines.extend(project.untrusted_pipeline.as_deref());
        let mut found = None;
        for pipeline in &pipelines {
            match service.lookup.execution_state(pipeline, execution_id).await {
                Ok(Some(state)) => {
                    found = Some((*pipeline, state));
                    break;
                }
                Ok(None) => {}
                Err(e) => return Decision::Skipped(e.to_string()),
            }
        }
        let Some((pipeline, state)) = found else {
            return self.unknown_execution(service, project_key, request_id, execution_id, &pipelines).await;
        };
        if !state.is_finished() {
            return Decision::Running;
        }
        let (correlation, reference) = match service.correlate(&state.variables, Some(pipeline), execution_id).await {
            Ok(Correlated::Subject(c, p)) => (c, p),
            Ok(Correlated::Ignored(why)) => return self.unflaggable(service, project_key, request_id, &why).await,
            Err(e) => return self.unflaggable(service, project_key, request_id, &e.message).await,
        };
        let subject = subject_of(&correlation, &reference);
        let region = state.region.clone();
        if let Some((action, refusals)) = capacity_refusal(&state) {
            let url = pipeline_console_url(&region, pipeline, execution_id);
            if refusals <= self.settings.capacity_retries {
                match service.lookup.retry_failed_actions(pipeline, &action.stage, execution_id).await {
                    Ok(true) => {
                        let attempt = refusals + 1;
                        let comment = format!(
                            "CodeBuild is at the account's concurrent build limit ({CAPACITY_ERROR}): build retried, attempt {attempt} of {}",
                            self.settings.capacity_retries + 1
                        );
                        let update = subject.update(FlagStatus::Pending, &comment, url, None);
                        if service.ledger.is_settled(project_key, request_id).await {
                            return Decision::AlreadySettled;
                        }
                        return match service.sink.report(&update).await {
                            Ok(()) => Decision::Retried { attempt, update },
                            // The retry is under way: its events or the next run flag it.
                            Err(e) => Decision::Skipped(format!("stage retried, pending flag not posted: {e}")),
                        };
                    }
                    Ok(false) => {}
                    Err(e) => return Decision::Skipped(e.to_string()),
                }
            }
            let comment = format!(
                "CodeBuild refused to start the build {refusals} time(s): the account's concurrent build limit was reached ({CAPACITY_ERROR}). Nothing in the change failed: ask for a rebuild."
            );
            let update = subject.update(FlagStatus::Error, &comment, url, None);
            return self.post_final(service, project_key, request_id, update).await;
        }
        let latest = latest_attempts(&state.builds);
        let build_ids: Vec<String> = latest.iter().filter_map(|a| a.build_id.clone()).collect();
        let update = if build_ids.is_empty() {
            let change = PipelineChange {
                region: region.clone(),
                pipeline: pipeline.to_owned(),
                execution_id: execution_id.to_owned(),
                state: event_state(&state.status).to_owned(),
            };
            let facts = ExecutionFacts {
                variables: state.variables.clone(),
                build_ran: false,
                summary: state.summary.clone().or_else(|| latest.iter().find_map(|a| a.message.clone())),
            };
            let Some((status, comment, percent)) = change.flag_state(&facts) else {
                return Decision::Running;
            };
            subject.update(status, &comment, pipeline_console_url(&region, pipeline, execution_id), percent)
        } else {
            let builds = match service.lookup.builds(&build_ids).await {
                Ok(builds) => builds,
                Err(e) => return Decision::Skipped(e.to_string()),
            };
            let mut outcomes: Vec<(FlagState, String)> = Vec::new();
            for action in latest.iter().filter(|a| a.build_id.is_some()) {
                let id = action.build_id.as_deref().unwrap_or_default();
                match builds.iter().find(|b| b.short_build_id() == id) {
                    Some(build) => match build.flag_state() {
                        Some((FlagStatus::Pending, ..)) => return Decision::Running,
                        Some(state) => outcomes.push((state, build.console_url())),
                        None => return Decision::Running,
                    },
                    // CodeBuild forgot it (builds are kept a year): what CodePipeline says.
                    None => {
                        outcomes.push((action_state(action), pipeline_console_url(&region, pipeline, execution_id)))
                    }
                }
            }
            let Some(((status, comment, percent), url)) = outcomes.into_iter().max_by_key(|((s, ..), _)| severity(*s))
            else {
                return Decision::Running;
            };
            subject.update(status, &comment, url, percent)
        };
        self.post_final(service, project_key, request_id, update).await
    }

    async fn unknown_execution<R: Forge, L: PipelineLookup, M: Settlements>(
        &self,
        service: &ReportService<R, L, M>,
        project_key: &str,
        request_id: &str,
        execution_id: &str,
        pipelines: &[&str],
    ) -> Decision {
        let prefix = self.settings.key_prefix.trim_end_matches('/');
        let archive = request_key(prefix, project_key, request_id, "zip");
        let metadata = match self.store.archive_metadata(&archive).await {
            Ok(Some(entries)) => entries,
            Ok(None) => {
                let why = format!("execution {execution_id} is unknown and the archive {archive} is gone");
                return self.unflaggable(service, project_key, request_id, &why).await;
            }
            Err(e) => return Decision::Skipped(e.to_string()),
        };
        let variables = metadata
            .into_iter()
            .filter_map(|(name, value)| {
                let variable = match name.as_str() {
                    "pagure-request-id" => "PAGURE_REQUEST_ID",
                    "pagure-project" => "PAGURE_PROJECT",
                    "pagure-repo" => "PAGURE_REPO",
                    "pagure-cause" => "PAGURE_CAUSE",
                    "pagure-commit" => "PAGURE_COMMIT",
                    _ => return None,
                };
                Some((variable.to_owned(), value))
            })
            .collect();
        let (correlation, reference) =
            match service.correlate(&variables, pipelines.first().copied(), execution_id).await {
                Ok(Correlated::Subject(c, p)) => (c, p),
                Ok(Correlated::Ignored(why)) => return self.unflaggable(service, project_key, request_id, &why).await,
                Err(e) => return self.unflaggable(service, project_key, request_id, &e.message).await,
            };
        let subject = subject_of(&correlation, &reference);
        let comment = format!(
            "CodePipeline no longer knows execution {execution_id} (pipeline {}): the result of this build is unknown. Ask for a rebuild to run it again.",
            pipelines.join(" or ")
        );
        let link = match service.config.projects.get(project_key).await {
            Ok(Some(project)) => subject.pagure_page(&project.pagure_url),
            _ => correlation.repo.clone(),
        };
        let update = subject.update(FlagStatus::Error, &comment, link, None);
        self.post_final(service, project_key, request_id, update).await
    }

    async fn post_final<R: Forge, L: PipelineLookup, M: Settlements>(
        &self,
        service: &ReportService<R, L, M>,
        project_key: &str,
        request_id: &str,
        update: FlagUpdate,
    ) -> Decision {
        // An event may have settled it since the listing.
        if service.ledger.is_settled(project_key, request_id).await {
            return Decision::AlreadySettled;
        }
        if let Err(e) = service.sink.report(&update).await {
            return Decision::Skipped(format!("flag not posted: {e}"));
        }
        let settlement =
            Settlement { status: update.status.as_str(), uid: &update.uid, by: "sweep", detail: &update.comment };
        service.ledger.settle(project_key, request_id, &settlement).await;
        Decision::Posted(update)
    }

    async fn unflaggable<R: Forge, L: PipelineLookup, M: Settlements>(
        &self,
        service: &ReportService<R, L, M>,
        project_key: &str,
        request_id: &str,
        why: &str,
    ) -> Decision {
        tracing::warn!(project = %project_key, request_id, reason = why, "no flag can be placed for this request");
        let settlement = Settlement { status: "unflaggable", uid: "", by: "sweep", detail: why };
        service.ledger.settle(project_key, request_id, &settlement).await;
        Decision::Unflaggable(why.to_owned())
    }
}

/// The newest attempt of each CodeBuild action (`builds` is newest first).
fn latest_attempts(builds: &[BuildAction]) -> Vec<&BuildAction> {
    let mut seen = BTreeSet::new();
    builds.iter().filter(|a| seen.insert((a.stage.as_str(), a.action.as_str()))).collect()
}

/// The newest attempt of an action that failed because CodeBuild refused to start a build
/// for capacity, and how many of that action's attempts were refused so.
pub fn capacity_refusal(state: &ExecutionState) -> Option<(&BuildAction, usize)> {
    if state.status != "Failed" {
        return None;
    }
    let refused = |a: &BuildAction| {
        a.status == "Failed" && a.build_id.is_none() && a.message.as_deref().is_some_and(|m| m.contains(CAPACITY_ERROR))
    };
    let action = latest_attempts(&state.builds).into_iter().find(|a| refused(a))?;
    let count =
        state.builds.iter().filter(|a| a.stage == action.stage && a.action == action.action && refused(a)).count();
    Some((action, count))
}

/// The event state of a CodePipeline execution status.
fn event_state(status: &str) -> &str {
    match status {
        "Succeeded" => "SUCCEEDED",
        "Failed" => "FAILED",
        "Stopped" => "STOPPED",
        "Superseded" => "SUPERSEDED",
        "Cancelled" => "CANCELED",
        other => other,
    }
}

/// A build CodeBuild no longer has, from its action's outcome.
fn action_state(action: &BuildAction) -> FlagState {
    let why = action.message.as_deref().map(|m| format!(": {m}")).unwrap_or_default();
    match action.status.as_str() {
        "Succeeded" => (FlagStatus::Success, "Build succeeded".into(), Some(100)),
        "Abandoned" => (FlagStatus::Canceled, format!("Build abandoned{why}"), None),
        _ => (FlagStatus::Failure, format!("Build failed{why}"), Some(0)),
    }
}

/// Which build's flag wins when several builds ran: the worst.
fn severity(status: FlagStatus) -> u8 {
    match status {
        FlagStatus::Error => 4,
        FlagStatus::Failure => 3,
        FlagStatus::Canceled => 2,
        FlagStatus::Pending => 1,
        FlagStatus::Success => 0,
    }
}

#[cfg(test)]
mod tests;
