//! The report stage: an event in, at most one flag posted.

use std::collections::BTreeMap;

use super::*;
use crate::config::AcceptConfig;
use crate::forge::{FlagStatus, FlagUpdate, Forge, ForgeError};
use crate::model::ProjectRef;
use crate::ports::PipelineLookup;
use crate::sweep::{CAPACITY_ERROR, NoSettlements, Settlement, Settlements};

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
        crate::metrics::count(crate::metrics::Metric::FlagsPosted, &[]);
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
            Ok((_, project)) => {
                // The request's fields, on the event's span (`invoke`'s `report` span).
                let span = tracing::Span::current();
                span.record("request_id", correlation.request_id.as_str());
                span.record("project", project.key.as_str());
                span.record("cause", correlation.cause.as_trigger_value().as_str());
                Ok(Correlated::Subject(correlation, project))
            }
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

/// A failed look-up, kept as the source and classified as the look-up error says.
fn lookup_failed(e: crate::ports::LookupError) -> ForgeError {
    ForgeError::from_source(e)
}
