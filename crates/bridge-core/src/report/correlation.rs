//! How an event finds its build request again: the `PAGURE_*` variables the work stage
//! set, checked against the registry and the pipeline that ran.

use std::collections::BTreeMap;

use crate::config::ProjectConfig;
use crate::model::{Cause, ProjectRef};

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
