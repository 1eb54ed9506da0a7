//! Build state changes (CodeBuild, CodePipeline) and the flag state each one means.

use std::collections::BTreeMap;

use crate::forge::FlagStatus;
use crate::ports::ExecutionFacts;

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
