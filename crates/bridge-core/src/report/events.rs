//! EventBridge's events, read into the report stage's [`BuildEvent`]: "CodeBuild Build State
//! Change" and "CodePipeline Pipeline Execution State Change" (`FACTS.md`), and the sweep's
//! schedule event.
//!
//! Only the fields a flag needs are read, each optional as AWS documents it; every struct is
//! read only from a JSON object ([`crate::json`]), so an event spelled as an array is refused
//! with the reason rather than read positionally. This lives here, not with the Lambda
//! runtime, so the fuzz targets read events exactly as the report function does.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{BuildEvent, CodeBuildChange, PhaseOutcome, PipelineChange};

pub const CODEBUILD_STATE_CHANGE: &str = "CodeBuild Build State Change";
pub const PIPELINE_STATE_CHANGE: &str = "CodePipeline Pipeline Execution State Change";
/// An EventBridge schedule's event: `source` `aws.events`, this `detail-type`.
pub const SCHEDULED_EVENT: &str = "Scheduled Event";

/// Whether `event` is an EventBridge schedule's (the sweep's trigger), not a state change.
pub fn is_schedule(event: &serde_json::Value) -> bool {
    event.get("source").and_then(|s| s.as_str()) == Some("aws.events")
        && event.get("detail-type").and_then(|t| t.as_str()) == Some(SCHEDULED_EVENT)
}

#[derive(Debug, thiserror::Error)]
pub enum EventError {
    #[error("not a {kind} event: {source}")]
    Malformed {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("not an EventBridge event: an event is a JSON object")]
    NotAnObject,
}

/// Reads an EventBridge event; `None` for a kind the bridge does not report.
pub fn parse_event(event: serde_json::Value) -> Result<Option<BuildEvent>, EventError> {
    if !event.is_object() {
        return Err(EventError::NotAnObject);
    }
    let kind = match event.get("detail-type").and_then(|t| t.as_str()) {
        Some(CODEBUILD_STATE_CHANGE) => CODEBUILD_STATE_CHANGE,
        Some(PIPELINE_STATE_CHANGE) => PIPELINE_STATE_CHANGE,
        _ => return Ok(None),
    };
    let malformed = |source| EventError::Malformed { kind, source };
    Ok(Some(if kind == CODEBUILD_STATE_CHANGE {
        BuildEvent::CodeBuild(crate::json::from_value::<CodeBuildEvent>(event).map_err(malformed)?.into())
    } else {
        BuildEvent::Pipeline(crate::json::from_value::<PipelineEvent>(event).map_err(malformed)?.into())
    }))
}

#[derive(Deserialize)]
struct CodeBuildEvent {
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    region: Option<String>,
    detail: CodeBuildDetail,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct CodeBuildDetail {
    #[serde(default)]
    build_status: Option<String>,
    #[serde(default)]
    project_name: Option<String>,
    #[serde(default)]
    build_id: Option<String>,
    additional_information: AdditionalInformation,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct AdditionalInformation {
    #[serde(default)]
    environment: Environment,
    /// A JSON number; AWS writes it as an integer, but a float must not be misread.
    #[serde(default)]
    build_number: Option<f64>,
    #[serde(default)]
    initiator: Option<String>,
    #[serde(default)]
    phases: Vec<Phase>,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Environment {
    #[serde(default)]
    environment_variables: Vec<Variable>,
}

#[derive(Deserialize)]
struct Variable {
    #[serde(default)]
    name: Option<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Phase {
    phase_type: String,
    #[serde(default)]
    phase_status: Option<String>,
    #[serde(default)]
    phase_context: Option<Vec<serde_json::Value>>,
}

impl From<CodeBuildEvent> for CodeBuildChange {
    fn from(event: CodeBuildEvent) -> Self {
        let detail = event.detail;
        let info = detail.additional_information;
        let variables: BTreeMap<String, String> = info
            .environment
            .environment_variables
            .into_iter()
            // Only plain values: PARAMETER_STORE / SECRETS_MANAGER entries hold references.
            .filter(|v| v.kind.as_deref().is_none_or(|t| t == "PLAINTEXT"))
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
        CodeBuildChange {
            region: event.region.unwrap_or_default(),
            account: event.account.unwrap_or_default(),
            project_name: detail.project_name.unwrap_or_default(),
            build_id: detail.build_id.unwrap_or_default(),
            build_number: info.build_number.filter(|n| n.is_finite() && *n >= 0.0).map(|n| n as u64),
            status: detail.build_status.unwrap_or_default(),
            phases,
            initiator: info.initiator,
            variables,
        }
    }
}

#[derive(Deserialize)]
struct PipelineEvent {
    #[serde(default)]
    region: Option<String>,
    detail: PipelineDetail,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct PipelineDetail {
    #[serde(default)]
    pipeline: Option<String>,
    #[serde(default)]
    execution_id: Option<String>,
    /// Required: a state change without its state is refused (and kept by the DLQ), not
    /// read as an empty state and dropped.
    state: String,
    #[serde(default)]
    region: Option<String>,
}

impl From<PipelineEvent> for PipelineChange {
    fn from(event: PipelineEvent) -> Self {
        let detail = event.detail;
        PipelineChange {
            region: detail.region.or(event.region).unwrap_or_default(),
            pipeline: detail.pipeline.unwrap_or_default(),
            execution_id: detail.execution_id.unwrap_or_default(),
            state: detail.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/events").join(name);
        serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
    }

    #[test]
    fn the_fixtures_are_read() {
        let Ok(Some(BuildEvent::CodeBuild(change))) = parse_event(fixture("codebuild-build-state-change.json")) else {
            panic!("codebuild fixture")
        };
        assert!(!change.build_id.is_empty() && !change.status.is_empty() && !change.variables.is_empty());
    }

    /// serde reads a struct from an array too; an event (or any struct in it) spelled as an
    /// array is refused with the reason.
    #[test]
    fn arrays_where_objects_belong_are_refused() {
        let error = parse_event(serde_json::json!([CODEBUILD_STATE_CHANGE])).expect_err("top level");
        assert!(error.to_string().contains("JSON object"), "{error}");
        let mut event = fixture("codebuild-build-state-change.json");
        let detail = event["detail"].as_object().expect("detail").clone();
        event["detail"] = serde_json::Value::Array(detail.into_iter().map(|(_, v)| v).collect());
        let error = parse_event(event).expect_err("detail as an array");
        assert!(error.to_string().contains("invalid type: sequence"), "{error}");
    }

    #[test]
    fn other_kinds_are_not_build_events() {
        let schedule = serde_json::json!({"source": "aws.events", "detail-type": SCHEDULED_EVENT, "detail": {}});
        assert!(is_schedule(&schedule));
        assert!(matches!(parse_event(schedule), Ok(None)));
        let pipeline = serde_json::json!({"detail-type": PIPELINE_STATE_CHANGE, "region": "eu-west-1",
            "detail": {"pipeline": "p", "execution-id": "e", "state": "STARTED", "version": 1.0}});
        let Ok(Some(BuildEvent::Pipeline(change))) = parse_event(pipeline) else { panic!("pipeline") };
        assert_eq!(
            (change.pipeline.as_str(), change.state.as_str(), change.region.as_str()),
            ("p", "STARTED", "eu-west-1")
        );
    }
}
