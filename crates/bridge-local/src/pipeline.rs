//! Local mode's pipeline: runs recorded, not started.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use bridge_core::ports::{
    ExecutionFacts, ExecutionState, LookupError, PipelineLookup, PipelineStarter, StartError, StoredArtifact,
};
use bridge_core::report::CodeBuildChange;
use serde::{Deserialize, Serialize};

/// Local mode has no CodePipeline: "starting" records the run (its variables, for the
/// report stage's lookups) and logs what would start. Links point at the local server's
/// `/runs/<id>`. With [`LocalPipeline::kept_in`], each run is also written to a folder and
/// the runs found there are loaded at start, so that the flags' links outlive a restart.
#[derive(Debug, Clone)]
pub struct LocalPipeline {
    runs: Arc<Mutex<BTreeMap<String, LocalRun>>>,
    link_base: String,
    runs_dir: Option<Arc<PathBuf>>,
}

/// A recorded local run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalRun {
    pub pipeline: String,
    pub key: String,
    pub variables: BTreeMap<String, String>,
}

impl LocalPipeline {
    /// `link_base` is the local server's URL, e.g. `http://127.0.0.1:8080/`.
    pub fn new(link_base: impl Into<String>) -> Self {
        let mut link_base = link_base.into();
        if !link_base.ends_with('/') {
            link_base.push('/');
        }
        LocalPipeline { runs: Arc::default(), link_base, runs_dir: None }
    }

    /// Keeps runs in `dir` (one `<execution-id>.json` each; the folder is made at the first
    /// run) and loads the runs already there. A file that is not a run is skipped with a
    /// warning.
    pub fn kept_in(mut self, dir: &Path) -> std::io::Result<Self> {
        let mut loaded = BTreeMap::new();
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries.collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let path = entry?.path();
            let Some(id) = path.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_suffix(".json")) else {
                continue;
            };
            if !is_run_id(id) {
                continue;
            }
            match std::fs::read(&path).map_err(|e| e.to_string()).and_then(|bytes| {
                bridge_core::json::from_slice::<LocalRun>(&bytes)
                    .map_err(|e| format!("{:?} error at line {}", e.classify(), e.line()))
            }) {
                Ok(run) => {
                    loaded.insert(id.to_owned(), run);
                }
                Err(error) => tracing::warn!(path = %path.display(), %error, "not a local run; skipped"),
            }
        }
        tracing::debug!(dir = %dir.display(), runs = loaded.len(), "local runs loaded");
        self.runs = Arc::new(Mutex::new(loaded));
        self.runs_dir = Some(Arc::new(dir.to_owned()));
        Ok(self)
    }

    pub fn run(&self, execution_id: &str) -> Option<LocalRun> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).get(execution_id).cloned()
    }

    /// Every run started so far, by execution id.
    pub fn runs(&self) -> BTreeMap<String, LocalRun> {
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

impl PipelineStarter for LocalPipeline {
    async fn start(
        &self,
        pipeline: &str,
        artifact: &StoredArtifact,
        variables: &[(&'static str, String)],
    ) -> Result<String, StartError> {
        let id = format!("local-{}", uuid::Uuid::new_v4().simple());
        tracing::info!(pipeline, key = %artifact.key, execution_id = %id, variables = variables.len(), "pipeline run (local: not started)");
        let run = LocalRun {
            pipeline: pipeline.to_owned(),
            key: artifact.key.clone(),
            variables: variables.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect(),
        };
        if let Some(dir) = &self.runs_dir {
            // The run is recorded in memory either way: a file that cannot be written only
            // loses the run at the next restart, which does not justify starting it again.
            if let Err(error) = write_run(dir, &id, &run) {
                tracing::warn!(execution_id = %id, dir = %dir.display(), %error, "local run not kept on disk");
            }
        }
        self.runs.lock().unwrap_or_else(PoisonError::into_inner).insert(id.clone(), run);
        Ok(id)
    }

    fn execution_url(&self, _pipeline: &str, execution_id: &str) -> String {
        format!("{}runs/{execution_id}", self.link_base)
    }
}

/// The ids [`LocalPipeline`] gives: `local-` and hex digits.
fn is_run_id(id: &str) -> bool {
    id.strip_prefix("local-").is_some_and(|hex| !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// Writes a run to `<dir>/<id>.json` whole or not at all (a temporary file, then a rename).
fn write_run(dir: &Path, id: &str, run: &LocalRun) -> std::io::Result<()> {
    let text = serde_json::to_vec_pretty(run).map_err(std::io::Error::other)?;
    std::fs::create_dir_all(dir)?;
    let partial = dir.join(format!(".{id}.json.partial"));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, dir.join(format!("{id}.json")))
}

impl PipelineLookup for LocalPipeline {
    async fn execution(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionFacts>, LookupError> {
        Ok(self.run(execution_id).filter(|run| run.pipeline == pipeline).map(|run| ExecutionFacts {
            variables: run.variables,
            build_ran: false,
            summary: None,
        }))
    }

    async fn execution_of_build(&self, _pipeline: &str, _build_id: &str) -> Result<Option<String>, LookupError> {
        // Local runs have no CodeBuild builds.
        Ok(None)
    }

    async fn execution_state(&self, pipeline: &str, execution_id: &str) -> Result<Option<ExecutionState>, LookupError> {
        // A local run is only recorded: it never ends unless events are posted for it, so it
        // stays in progress (and its flag pending).
        Ok(self.run(execution_id).filter(|run| run.pipeline == pipeline).map(|run| ExecutionState {
            status: "InProgress".into(),
            summary: None,
            variables: run.variables,
            region: String::new(),
            builds: Vec::new(),
        }))
    }

    async fn builds(&self, _build_ids: &[String]) -> Result<Vec<CodeBuildChange>, LookupError> {
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs kept in a folder are there again for a new `LocalPipeline` (a restart).
    #[tokio::test]
    async fn local_runs_kept_in_a_folder_outlive_the_pipeline() {
        let dir = tempfile::tempdir().expect("dir");
        let dir = dir.path().join("runs");
        let first = LocalPipeline::new("http://127.0.0.1:1/").kept_in(&dir).expect("dir");
        let artifact = StoredArtifact { key: "sources/p/r.zip".into(), version_id: None };
        let id = first.start("p-ci", &artifact, &[("PAGURE_CAUSE", "1".into())]).await.expect("start");
        assert_eq!(first.execution_url("p-ci", &id), format!("http://127.0.0.1:1/runs/{id}"));
        std::fs::write(dir.join("local-0a.json"), "not json").expect("junk");
        std::fs::write(dir.join("notes.txt"), "x").expect("other file");
        let second = LocalPipeline::new("http://127.0.0.1:2").kept_in(&dir).expect("reload");
        assert_eq!(second.runs().len(), 1, "the malformed and foreign files are skipped");
        let run = second.run(&id).expect("the run is back");
        assert_eq!((run.pipeline.as_str(), run.key.as_str()), ("p-ci", "sources/p/r.zip"));
        assert_eq!(run.variables["PAGURE_CAUSE"], "1");
        assert!(second.execution("p-ci", &id).await.expect("lookup").is_some(), "report lookups find it too");
        let state = second.execution_state("p-ci", &id).await.expect("lookup").expect("known");
        assert_eq!(state.status, "InProgress");
        assert_eq!(second.execution_of_build("p-ci", "p:1").await.expect("lookup"), None);
        assert_eq!(second.execution_url("p-ci", &id), format!("http://127.0.0.1:2/runs/{id}"));
    }
}
