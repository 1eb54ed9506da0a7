//! The report Lambda: EventBridge delivers "CodeBuild Build State Change" and "CodePipeline
//! Pipeline Execution State Change" events; each becomes a flag update on Pagure through
//! bridge-core's report stage.
//!
//! An EventBridge *schedule* event (`"source": "aws.events"`, `"detail-type": "Scheduled
//! Event"`) runs the sweep instead ([`bridge_core::sweep`]): flags still pending
//! `PCB_SWEEP_AFTER_SECONDS` after their pipeline started are settled from CodePipeline and
//! CodeBuild, within the invocation's deadline.
//!
//! An event whose flag cannot be posted fails the invocation, so Lambda's asynchronous
//! retries try again and its dead-letter queue keeps what never succeeds (a 401 too: fix
//! the token, then redrive). Events the bridge did not cause are answered `ignored`.

use std::collections::BTreeMap;

use aws_lambda_events::event::codebuild::CodeBuildEvent;
use aws_lambda_events::event::codepipeline_cloudwatch::CodePipelineCloudWatchEvent;
use bridge_core::forge::Forge;
use bridge_core::ports::{ArtifactStore, DirectoryStore, PipelineLookup};
use bridge_core::report::{BuildEvent, CodeBuildChange, PhaseOutcome, PipelineChange, ReportOutcome, ReportService};
use bridge_core::sweep::{Settlements, Sweeper};

pub const CODEBUILD_STATE_CHANGE: &str = "CodeBuild Build State Change";
pub const PIPELINE_STATE_CHANGE: &str = "CodePipeline Pipeline Execution State Change";
/// An EventBridge schedule's event: `source` `aws.events`, this `detail-type`.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// Whether `event` is an EventBridge schedule's (the sweep's trigger), not a state change.
pub fn is_schedule(event: &serde_json::Value) -> bool {
    event.get("source").and_then(|s| s.as_str()) == Some("aws.events")
        && event.get("detail-type").and_then(|t| t.as_str()) == Some(SCHEDULED_EVENT)
}

/// The invocation's deadline (the Lambda context's, milliseconds since the epoch) as an
/// instant of this process's clock.
pub fn deadline_from_epoch_ms(deadline_ms: u64) -> std::time::Instant {
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default();
    std::time::Instant::now() + std::time::Duration::from_millis(deadline_ms.saturating_sub(now_ms))
}

/// The report stage as deployed.
#[cfg(feature = "lambda")]
pub type LambdaReportService = ReportService<
    bridge_pagure::PagureForge<std::sync::Arc<bridge_core::ports::CachedSecrets<bridge_aws::SecretsManagerSource>>>,
    bridge_aws::CodePipelineLookup,
    Option<bridge_core::sweep::SettlementMarkers<bridge_aws::S3Store>>,
>;

/// The report Lambda: the report stage, and the sweep when the function knows the work
/// stage's bucket (`PCB_BUCKET`).
#[cfg(feature = "lambda")]
#[derive(Debug)]
pub struct LambdaReport {
    pub service: LambdaReportService,
    pub sweeper: Option<Sweeper<bridge_aws::S3Store>>,
}

#[cfg(feature = "lambda")]
impl LambdaReport {
    /// One invocation: a CodeBuild or CodePipeline event, or the sweep's schedule.
    pub async fn handle(
        &self,
        event: lambda_runtime::LambdaEvent<serde_json::Value>,
    ) -> Result<serde_json::Value, lambda_runtime::Error> {
        let deadline = deadline_from_epoch_ms(event.context.deadline);
        Ok(handle_with_sweep(&self.service, self.sweeper.as_ref(), event.payload, deadline).await?)
    }
}

/// Builds the service once, in `main`.
#[cfg(feature = "lambda")]
pub fn build_service(
    config: &bridge_core::config::ReportLambdaConfig,
    aws: &aws_config::SdkConfig,
) -> anyhow::Result<LambdaReport> {
    let secrets = std::sync::Arc::new(bridge_aws::SecretsManagerSource::cached(
        aws,
        &config.secret_id,
        config.secret_shards,
        config.secrets_ttl,
    ));
    let accept = bridge_aws::S3Registry::attached(&config.accept, aws);
    let flags = bridge_pagure::PagureForge::from_config(&config.report, accept.projects.clone(), secrets)?;
    let lookup = bridge_aws::CodePipelineLookup::new(aws_sdk_codepipeline::Client::new(aws))
        .with_codebuild(aws_sdk_codebuild::Client::new(aws));
    let store = config.bucket.as_ref().map(|bucket| {
        let encryption =
            config.kms_key_id.clone().map_or(bridge_aws::Encryption::S3Managed, bridge_aws::Encryption::Kms);
        bridge_aws::S3Store::new(aws_sdk_s3::Client::new(aws), bucket, encryption)
    });
    if store.is_none() {
        tracing::warn!("PCB_BUCKET is not set: final flags are not recorded and schedule events do nothing");
    }
    let ledger = store.clone().map(|store| bridge_core::sweep::SettlementMarkers::new(store, &config.key_prefix));
    let settings = bridge_core::sweep::SweepSettings::new(&config.key_prefix, config.report.sweep_after);
    Ok(LambdaReport {
        service: ReportService::new(accept, flags, lookup).with_settlements(ledger),
        sweeper: store.map(|store| Sweeper::new(store, settings)),
    })
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a {0} event: {1}")]
    Malformed(&'static str, String),
}

/// Reads an EventBridge event; `None` for a kind the bridge does not report. An event is a
/// JSON object, and so is every struct in it: anything else is refused, not ignored.
pub fn parse_event(event: serde_json::Value) -> Result<Option<BuildEvent>, EventError> {
    if !event.is_object() {
        return Err(EventError::Malformed("EventBridge", "an event is a JSON object".into()));
    }
    match event.get("detail-type").and_then(|t| t.as_str()) {
        Some(CODEBUILD_STATE_CHANGE) => {
            let event: CodeBuildEvent = bridge_core::json::from_value(event)
                .map_err(|e| EventError::Malformed(CODEBUILD_STATE_CHANGE, e.to_string()))?;
            Ok(Some(BuildEvent::CodeBuild(codebuild_change(event))))
        }
        Some(PIPELINE_STATE_CHANGE) => {
            let mut event = event;
            // The pipeline version is typed as an integer, but AWS's own samples write `1.0`.
            if let Some(version) = event.pointer_mut("/detail/version")
                && let Some(float) = version.as_f64().filter(|_| !version.is_i64())
            {
                *version = serde_json::json!(float as i64);
            }
            let event: CodePipelineCloudWatchEvent = bridge_core::json::from_value(event)
                .map_err(|e| EventError::Malformed(PIPELINE_STATE_CHANGE, e.to_string()))?;
            Ok(Some(BuildEvent::Pipeline(pipeline_change(event))))
        }
        _ => Ok(None),
    }
}

fn codebuild_change(event: CodeBuildEvent) -> CodeBuildChange {
    let detail = event.detail;
    let info = detail.additional_information;
    let variables: BTreeMap<String, String> = info
        .environment
        .environment_variables
        .into_iter()
        // Only plain values: PARAMETER_STORE / SECRETS_MANAGER entries hold references.
        .filter(|v| v.type_.as_deref().is_none_or(|t| t == "PLAINTEXT"))
        .filter_map(|v| Some((v.name?, v.value?)))
        .collect();
    let phases = info
        .phases
        .into_iter()
        .map(|p| PhaseOutcome {
            phase: p.phase_type,
            status: p.phase_status,
            context: p
                .phase_context
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.as_str().map_or_else(|| c.to_string(), str::to_owned))
                .collect(),
        })
        .collect();
    let build_id = detail.build_id.unwrap_or_default();
    CodeBuildChange {
        region: event.region.unwrap_or_default(),
        account: event.account_id.unwrap_or_default(),
        project_name: detail.project_name.unwrap_or_default(),
        build_id,
        build_number: info.build_number.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64),
        status: detail.build_status.unwrap_or_default(),
        phases,
        initiator: info.initiator,
        variables,
    }
}

fn pipeline_change(event: CodePipelineCloudWatchEvent) -> PipelineChange {
    let detail = event.detail;
    PipelineChange {
        region: detail.region.or(event.region).unwrap_or_default(),
        pipeline: detail.pipeline.unwrap_or_default(),
        execution_id: detail.execution_id.unwrap_or_default(),
        state: detail.state,
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error(transparent)]
    Event(#[from] EventError),
    #[error("{0}")]
    Report(#[from] bridge_core::forge::ForgeError),
}

/// Handles one event: the JSON answer says what was posted or why nothing was. A schedule
/// event is answered `ignored` here (no sweep): see [`handle_with_sweep`].
pub async fn handle<R: Forge, L: PipelineLookup, M: Settlements>(
    service: &ReportService<R, L, M>,
    event: serde_json::Value,
) -> Result<serde_json::Value, HandleError> {
    handle_with_sweep(service, None::<&Sweeper<DirectoryStore>>, event, std::time::Instant::now()).await
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
        let Some(sweeper) = sweeper else {
            tracing::info!(event_id = %id, "schedule event, but no sweep is configured here (PCB_BUCKET)");
            return Ok(
                serde_json::json!({"outcome": "ignored", "reason": "no sweep is configured (PCB_BUCKET is not set)"}),
            );
        };
        let now = time::OffsetDateTime::now_utc();
        return match sweeper.run(service, now, deadline).await {
            Ok(report) => Ok(serde_json::json!({"outcome": "swept", "sweep": report})),
            Err(e) => {
                tracing::error!(event_id = %id, error = %e, "sweep failed");
                Err(e.into())
            }
        };
    }
    let Some(event) = parse_event(event)? else {
        tracing::info!(event_id = %id, "not a build state change: ignored");
        return Ok(serde_json::json!({"outcome": "ignored", "reason": "not a build state change"}));
    };
    match service.handle(&event).await {
        Ok(ReportOutcome::Posted(update)) => Ok(serde_json::json!({
            "outcome": "posted",
            "status": update.status.as_str(),
            "target": update.target.to_string(),
            "uid": update.uid,
        })),
        Ok(ReportOutcome::Ignored(reason)) => {
            tracing::info!(event_id = %id, %reason, "event ignored");
            Ok(serde_json::json!({"outcome": "ignored", "reason": reason}))
        }
        Err(e) => {
            tracing::error!(event_id = %id, error = %e, retry = e.retry.as_str(), "flag not posted");
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codebuild_event() -> serde_json::Value {
        let path =
            concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures/events/codebuild-build-state-change.json");
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
    }

    #[test]
    fn the_fixture_is_read() {
        assert!(matches!(parse_event(codebuild_event()), Ok(Some(BuildEvent::CodeBuild(_)))));
    }

    /// serde reads a struct from an array too; an event (or any struct in it) spelled as an
    /// array is refused with the reason.
    #[test]
    fn arrays_where_objects_belong_are_refused() {
        let error = parse_event(serde_json::json!([CODEBUILD_STATE_CHANGE])).expect_err("top level");
        assert!(error.to_string().contains("JSON object"), "{error}");
        let mut event = codebuild_event();
        let detail = event["detail"].as_object().expect("detail").clone();
        event["detail"] = serde_json::Value::Array(detail.into_iter().map(|(_, v)| v).collect());
        let error = parse_event(event).expect_err("detail as an array");
        assert!(error.to_string().contains("invalid type: sequence"), "{error}");
    }
}
