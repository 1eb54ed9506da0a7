//! One report invocation: an EventBridge event in, a JSON answer out (what was posted, or
//! why nothing was). The report Lambda and local mode's `/report` endpoint both answer
//! through [`handle_with_sweep`].

use tracing::field::Empty;

use crate::forge::Forge;
use crate::metrics::{self, Metric};
use crate::ports::{ArtifactStore, PipelineLookup};
use crate::sweep::{Settlements, Sweeper};

use super::events::{EventError, is_schedule, parse_event};
use super::{ReportOutcome, ReportService};

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("{0}")]
    Report(#[from] crate::forge::ForgeError),
}

/// Handles one event: the JSON answer says what was posted or why nothing was. A schedule
/// event is answered `ignored` here (no sweep): see [`handle_with_sweep`].
pub async fn handle<R: Forge, L: PipelineLookup, M: Settlements>(
    service: &ReportService<R, L, M>,
    event: serde_json::Value,
) -> Result<serde_json::Value, HandleError> {
    if is_schedule(&event) {
        return Ok(no_sweep(&event));
    }
    handle_state_change(service, event).await
}

fn no_sweep(event: &serde_json::Value) -> serde_json::Value {
    let id = event.get("id").and_then(|v| v.as_str()).unwrap_or_default();
    tracing::info!(event_id = %id, "schedule event, but no sweep is configured here (PCB_BUCKET)");
    serde_json::json!({"outcome": "ignored", "reason": "no sweep is configured (PCB_BUCKET is not set)"})
}

/// Handles one event; a schedule event runs `sweeper` until `deadline` (less its margin).
pub async fn handle_with_sweep<R: Forge, L: PipelineLookup, M: Settlements, St: ArtifactStore>(
    service: &ReportService<R, L, M>,
    sweeper: Option<&Sweeper<St>>,
    event: serde_json::Value,
    deadline: std::time::Instant,
) -> Result<serde_json::Value, HandleError> {
    let id = event.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    if is_schedule(&event) {
        let Some(sweeper) = sweeper else { return Ok(no_sweep(&event)) };
        let now = time::OffsetDateTime::now_utc();
        return match sweeper.run(service, now, deadline).await {
            Ok(report) => Ok(serde_json::json!({"outcome": "swept", "sweep": report})),
            Err(e) => {
                tracing::error!(event_id = %id, error = %e, "sweep failed");
                Err(e.into())
            }
        };
    }
    handle_state_change(service, event).await
}

async fn handle_state_change<R: Forge, L: PipelineLookup, M: Settlements>(
    service: &ReportService<R, L, M>,
    event: serde_json::Value,
) -> Result<serde_json::Value, HandleError> {
    let id = event.get("id").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
    let event = parse_event(event).inspect_err(|_| {
        metrics::count(Metric::Failures, &[(metrics::CLASS, crate::retry::Retry::Terminal.as_str())]);
    })?;
    let Some(event) = event else {
        tracing::info!(event_id = %id, "not a build state change: ignored");
        return Ok(serde_json::json!({"outcome": "ignored", "reason": "not a build state change"}));
    };
    // One span per event; the request's fields are recorded once the event is correlated
    // with its build request (`ReportService::correlate`). At ERROR level, so that it is
    // enabled at any log level.
    let span = tracing::error_span!("report", event_id = %id, request_id = Empty, project = Empty, cause = Empty);
    tracing::Instrument::instrument(answer(service, &event), span).await
}

async fn answer<R: Forge, L: PipelineLookup, M: Settlements>(
    service: &ReportService<R, L, M>,
    event: &super::BuildEvent,
) -> Result<serde_json::Value, HandleError> {
    match service.handle(event).await {
        Ok(ReportOutcome::Posted(update)) => Ok(serde_json::json!({
            "outcome": "posted",
            "status": update.status.as_str(),
            "target": update.target.to_string(),
            "uid": update.uid,
        })),
        Ok(ReportOutcome::Ignored(reason)) => {
            tracing::info!(%reason, "event ignored");
            Ok(serde_json::json!({"outcome": "ignored", "reason": reason}))
        }
        Err(e) => {
            metrics::count(Metric::Failures, &[(metrics::CLASS, e.retry.as_str())]);
            tracing::error!(error = %e, retry = e.retry.as_str(), "flag not posted");
            Err(e.into())
        }
    }
}
