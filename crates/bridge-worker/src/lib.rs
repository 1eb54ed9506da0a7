//! The work stage, the same in Lambda and in local mode: for one build request, fetch the
//! tree, inject the trigger into the target's default-branch buildspec, zip, store the
//! archive with metadata, and start the project's pipeline on exactly that archive.
//!
//! Idempotent per request: a marker `<prefix>/<project>/<request-id>.started` is written
//! after the pipeline starts, and a redelivered request that finds it starts nothing.
//! Idempotent per build too: requests for the same event and commit within the dedupe
//! window start one pipeline ([`bridge_core::dedupe`]).
//! Failures are terminal (reported as an `error` flag, not retried) or transient (retried
//! by the queue; reported when the last attempt fails too).
//!
//! Trust: each request is classified before it builds ([`trust`]): trusted requests (pushes
//! to the project itself, pull requests from the project itself or their author's own fork
//! whose author may commit to the target branch, and approved heads) start the project's
//! `pipeline`; untrusted ones its `untrusted_pipeline`, or wait for a committer's approval comment, or are refused with the settings to change.
//!
//! Flags: `pending` "Queued for AWS CodePipeline" once the pipeline is started, linking to
//! the execution; `pending` with what is awaited for an untrusted pull request waiting for
//! an approval; `error` with the reason when the request cannot be built. This is the
//! first moment a flag can be right: before the fetch, a PR's head commit is unknown, and
//! the accept Lambda cannot call Pagure after answering (its sandbox is frozen).

use std::path::{Path, PathBuf};

use bridge_core::archive::{ArchiveError, ArchiveLimits, ArchiveOptions};
use bridge_core::buildspec::{PIPELINE_VARIABLES, inject, trigger_variables};
use bridge_core::config::{AcceptConfig, ProjectConfig};
use bridge_core::dedupe;
use bridge_core::forge::FlagStatus;
use bridge_core::forge::Forge;
use bridge_core::model::{BuildRequest, Cause, TrustClass};
use bridge_core::ports::{ArtifactMetadata, ArtifactStore, PipelineStarter, Secrets, StartError};
use bridge_core::report::FlagSubject;
use bridge_core::retry::Transience;
use bridge_git::{FetchSettings, Fetched, GitCredentials};

pub mod trust;
use trust::{Route, TrustFacts};

/// Limits and places for the work stage.
#[derive(Debug, Clone)]
pub struct WorkSettings {
    pub fetch: FetchSettings,
    pub archive: ArchiveLimits,
    /// Where fetched repositories and archives are made (`/tmp` in Lambda); each request gets its own
    /// folder, removed afterwards.
    pub scratch_dir: PathBuf,
    /// Object keys start with this (`sources`).
    pub key_prefix: String,
    /// See [`bridge_core::config::WorkConfig::dedupe_window`].
    pub dedupe_window: std::time::Duration,
    /// See [`bridge_core::config::WorkConfig::compression_level`].
    pub compression_level: u8,
    /// See [`bridge_core::config::WorkConfig::codebuild_buildspec`].
    pub codebuild_buildspec: String,
}

impl WorkSettings {
    /// The configured fetch and archive limits; everything else as [`Default`].
    pub fn with_limits(work: &bridge_core::config::WorkConfig) -> Self {
        WorkSettings {
            fetch: FetchSettings {
                deadline: work.fetch_timeout,
                max_bytes: work.max_fetch_bytes,
                ..FetchSettings::default()
            },
            archive: ArchiveLimits { max_entries: work.max_archive_entries, max_bytes: work.max_archive_bytes },
            dedupe_window: work.dedupe_window,
            compression_level: work.compression_level,
            codebuild_buildspec: work.codebuild_buildspec.clone(),
            ..WorkSettings::default()
        }
    }
}

impl Default for WorkSettings {
    fn default() -> Self {
        WorkSettings {
            fetch: FetchSettings::default(),
            archive: ArchiveLimits::default(),
            scratch_dir: std::env::temp_dir(),
            key_prefix: "sources".into(),
            dedupe_window: std::time::Duration::from_secs(bridge_core::config::DEFAULT_DEDUPE_WINDOW_SECONDS),
            compression_level: bridge_core::archive::DEFAULT_COMPRESSION_LEVEL,
            codebuild_buildspec: bridge_core::config::DEFAULT_CODEBUILD_BUILDSPEC.to_owned(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkOutcome {
    Started {
        key: String,
        commit: String,
        execution_id: String,
        /// The pipeline started: the project's `pipeline` or its `untrusted_pipeline`.
        pipeline: String,
        trust: TrustClass,
    },
    /// An untrusted pull request waiting for a committer's approval of its head `commit`;
    /// `comment` says what is awaited.
    Awaiting { commit: String, comment: String },
    /// A redelivery of a request whose pipeline already started.
    AlreadyStarted { execution_id: String },
    /// Another request for the same build (same event, same commit) came first, within the
    /// dedupe window, and its pipeline had not started when this one was accepted: that one
    /// builds, this one starts nothing. `started`: that pipeline has started since.
    Duplicate { of: String, started: bool },
    /// A pull request that Pagure says is no longer open.
    Ignored { reason: String },
}

/// What is known of a request while it is processed, for the flag and clean-up of a failure.
#[derive(Debug, Default)]
pub struct Progress {
    /// The resolved commit, once fetched.
    pub commit: Option<String>,
    /// The claim this request holds on its build (see [`bridge_core::dedupe`]).
    pub claim: Option<String>,
}

/// The comment of the flag posted when the pipeline has started.
pub const QUEUED_COMMENT: &str = "Queued for AWS CodePipeline";

/// Why work that ran out of time stopped (a transient failure: tried again).
pub const CUT_SHORT: &str = "cut short: the work function's time for this request ran out";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkError {
    #[error("{0}")]
    Terminal(String),
    #[error("{0}")]
    Transient(String),
}

/// What the consumer does with the message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    /// Delete it: the request has reached its final state.
    Done(Ending),
    /// Leave it for another attempt (and, after the last, the dead-letter queue).
    Retry(String),
}

/// The final state of a request that is done with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ending {
    /// Its pipeline was started (by this delivery or an earlier one).
    Started { execution_id: String },
    /// Merged into an earlier request for the same build.
    Duplicate { of: String },
    /// Nothing to build, and why (a pull request closed before its turn).
    Ignored { reason: String },
    /// Nothing built yet: an untrusted pull request waits for a committer's approval, which
    /// the `pending` flag (posted when `flagged`) asks for.
    Awaiting { comment: String, flagged: bool },
    /// Cannot be built; the reason went to Pagure as an `error` flag (`flagged`), or, when
    /// Pagure refused the flag, to the log only.
    Failed { reason: String, flagged: bool },
}

/// The work stage and its ports.
#[derive(Debug)]
pub struct Worker<St, P, R, S> {
    config: AcceptConfig,
    settings: WorkSettings,
    store: St,
    pipelines: P,
    status: R,
    secrets: S,
}

impl<St: ArtifactStore, P: PipelineStarter, R: Forge, S: Secrets> Worker<St, P, R, S> {
    pub fn new(config: AcceptConfig, settings: WorkSettings, store: St, pipelines: P, status: R, secrets: S) -> Self {
        Worker { config, settings, store, pipelines, status, secrets }
    }

    /// Processes one request and says what to do with its message. `last_attempt` is true
    /// when the queue will not deliver it again (then a transient failure is reported too).
    pub async fn handle(&self, request: &BuildRequest, last_attempt: bool) -> Disposition {
        self.handle_until(request, last_attempt, None).await
    }

    /// [`Worker::handle`], with the work (fetch, archive, upload, start) ending by `until`:
    /// the fetch gets no more than the time left, and work still running then is cut short
    /// as a transient failure ([`CUT_SHORT`]). The flags and the claim's release come after;
    /// the caller bounds them.
    pub async fn handle_until(
        &self,
        request: &BuildRequest,
        last_attempt: bool,
        until: Option<tokio::time::Instant>,
    ) -> Disposition {
        let mut progress = Progress::default();
        let subject = FlagSubject::from(request);
        let outcome = match until {
            None => self.process_until(request, &mut progress, None).await,
            Some(until) => {
                match tokio::time::timeout_at(until, self.process_until(request, &mut progress, Some(until))).await {
                    Ok(outcome) => outcome,
                    Err(_) => Err(WorkError::Transient(CUT_SHORT.to_owned())),
                }
            }
        };
        let gives_up = match &outcome {
            Err(WorkError::Terminal(_)) => true,
            Err(WorkError::Transient(_)) => last_attempt,
            // Nothing was built: a later request for the same head (after an approval, or a
            // change of the author's access) is decided afresh, not merged into this one.
            Ok(WorkOutcome::Awaiting { .. }) => true,
            Ok(_) => false,
        };
        if let (true, Some(claim)) = (gives_up, &progress.claim) {
            // A request for the same build after a fix (a buildspec added, the git host back)
            // must build, not be merged into this failure.
            if let Err(e) = dedupe::release(&self.store, claim, &request.request_id).await {
                tracing::warn!(request_id = %request.request_id, error = %e, "claim not released");
            }
        }
        let commit = progress.commit;
        match outcome {
            Ok(WorkOutcome::Started { key, commit, execution_id, pipeline, trust }) => {
                tracing::info!(
                    request_id = %request.request_id, %key, %commit, %execution_id, %pipeline, trust = trust.as_str(),
                    "pipeline started"
                );
                let url = self.pipelines.execution_url(&pipeline, &execution_id);
                let update = subject.with_commit(&commit).update(FlagStatus::Pending, QUEUED_COMMENT, url, None);
                // A pipeline that failed at once may have been reported final already (its
                // `.settled` marker): a late "queued" must not replace that flag, which the
                // sweep would then never correct.
                let settled = bridge_core::sweep::request_key(
                    &self.settings.key_prefix,
                    &request.project.key,
                    &request.request_id,
                    "settled",
                );
                if matches!(self.store.marker(&settled).await, Ok(Some(_))) {
                    tracing::info!(request_id = %request.request_id, "already settled: pending flag not posted");
                } else if let Err(e) = self.status.report(&update).await {
                    // The build runs whatever happens here, and its next state updates the flag.
                    tracing::warn!(request_id = %request.request_id, error = %e, "pending flag not posted");
                }
                Disposition::Done(Ending::Started { execution_id })
            }
            Ok(WorkOutcome::AlreadyStarted { execution_id }) => {
                tracing::info!(request_id = %request.request_id, %execution_id, "already started; redelivery ignored");
                Disposition::Done(Ending::Started { execution_id })
            }
            Ok(WorkOutcome::Duplicate { of, started }) => {
                tracing::info!(
                    request_id = %request.request_id, duplicate_of = %of, accepted_at = %request.received_at,
                    duplicate_of_started = started,
                    "same build already asked for; merged into it (accepted before its pipeline started)"
                );
                Disposition::Done(Ending::Duplicate { of })
            }
            Ok(WorkOutcome::Ignored { reason }) => {
                tracing::info!(request_id = %request.request_id, %reason, "nothing to build");
                Disposition::Done(Ending::Ignored { reason })
            }
            Ok(WorkOutcome::Awaiting { commit, comment }) => {
                tracing::info!(request_id = %request.request_id, %commit, trust = TrustClass::Untrusted.as_str(), awaiting = %comment, "not built: awaiting an approval");
                // The flag sits on the head that waits, and links to the pull request, where
                // the approval is given.
                let link = match self.config.projects.get(&request.project.key).await {
                    Ok(Some(project)) => subject.pagure_page(&project.pagure_url),
                    _ => request.repo_url.clone(),
                };
                let update = subject.with_commit(&commit).update(FlagStatus::Pending, &comment, link, None);
                let flagged = match self.status.report(&update).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(request_id = %request.request_id, error = %e, "awaiting flag not posted");
                        false
                    }
                };
                Disposition::Done(Ending::Awaiting { comment, flagged })
            }
            Err(WorkError::Terminal(reason)) => {
                tracing::warn!(request_id = %request.request_id, %reason, "build request failed for good");
                self.report_error(request, commit.as_deref(), &reason).await
            }
            Err(WorkError::Transient(reason)) => {
                tracing::warn!(request_id = %request.request_id, %reason, last_attempt, "build request failed, will retry");
                if last_attempt {
                    let reason = format!("the build could not be started after several attempts: {reason}");
                    // The message goes to the dead-letter queue either way.
                    let _ = self.report_error(request, commit.as_deref(), &reason).await;
                }
                Disposition::Retry(reason)
            }
        }
    }

    /// Gives a request up without working on it (its last delivery came when no time was
    /// left for it): the `error` flag says `reason`, and the message goes on to the
    /// dead-letter queue, as after a transient failure on the last attempt.
    pub async fn give_up(&self, request: &BuildRequest, reason: &str) -> Disposition {
        tracing::warn!(request_id = %request.request_id, %reason, "build request given up");
        let reason = format!("the build could not be started after several attempts: {reason}");
        let _ = self.report_error(request, None, &reason).await;
        Disposition::Retry(reason)
    }

    /// Posts the `error` flag. If Pagure cannot be reached, the message is kept for another
    /// attempt: the failure must reach Pagure or the dead-letter queue, not vanish.
    async fn report_error(&self, request: &BuildRequest, commit: Option<&str>, reason: &str) -> Disposition {
        let subject = FlagSubject::from(request);
        let subject = match commit {
            Some(commit) => subject.with_commit(commit),
            None => subject,
        };
        let link = match self.config.projects.get(&request.project.key).await {
            Ok(Some(project)) => subject.pagure_page(&project.pagure_url),
            _ => request.repo_url.clone(),
        };
        match self.status.report(&subject.update(FlagStatus::Error, reason, link, None)).await {
            Ok(()) => Disposition::Done(Ending::Failed { reason: reason.to_owned(), flagged: true }),
            Err(e) if e.is_transient() => {
                tracing::warn!(request_id = %request.request_id, error = %e, "error flag not posted; the request will be retried");
                Disposition::Retry(format!("{reason} (and the error flag could not be posted: {e})"))
            }
            Err(e) => {
                tracing::error!(request_id = %request.request_id, error = %e, %reason, "error flag refused by Pagure");
                Disposition::Done(Ending::Failed { reason: reason.to_owned(), flagged: false })
            }
        }
    }

    /// Builds and starts one request. `progress` receives the resolved commit as soon as it is
    /// known, so that a failure after the fetch is flagged on the right commit, and the claim
    /// once held.
    pub async fn process(&self, request: &BuildRequest, progress: &mut Progress) -> Result<WorkOutcome, WorkError> {
        self.process_until(request, progress, None).await
    }

    async fn process_until(
        &self,
        request: &BuildRequest,
        progress: &mut Progress,
        until: Option<tokio::time::Instant>,
    ) -> Result<WorkOutcome, WorkError> {
        let project =
            self.config.projects.get(&request.project.key).await.map_err(|e| WorkError::Transient(e.to_string()))?;
        let project = project.ok_or_else(|| {
            WorkError::Terminal(format!("project `{}` is no longer configured on the bridge", request.project.key))
        })?;
        let project = &*project;
        // The queue is trusted, but the allow-list is the SSRF boundary: check it again.
        project
            .repo
            .check(&project.key, &request.repo_url)
            .map_err(|e| WorkError::Terminal(format!("repository refused: {e}")))?;
        let base = format!("{}/{}/{}", self.settings.key_prefix, project.key, request.request_id);
        let started_key = format!("{base}.started");
        if let Some(execution_id) =
            self.store.marker(&started_key).await.map_err(|e| WorkError::Transient(e.to_string()))?
        {
            return Ok(WorkOutcome::AlreadyStarted { execution_id });
        }
        // A commit's build is known before the fetch: a duplicate costs one conditional write.
        if let Some((of, started)) = self.claim(request, project, None, progress).await? {
            self.mark_merged(&base, request, &of).await;
            return Ok(WorkOutcome::Duplicate { of, started });
        }
        let facts = self.trust_facts(request, project).await;
        if let (Some(pr), Cause::PullRequest { id }) = (&facts.pull_request, &request.cause)
            && pr.status != "Open"
        {
            // Pagure keeps `refs/pull/<id>/head` after a PR is closed or merged: only its
            // API tells.
            return Ok(WorkOutcome::Ignored { reason: format!("pull request #{id} is {}", pr.status) });
        }
        let scratch = Scratch::new(&self.settings.scratch_dir, &request.request_id)?;
        let fetched = self.fetch(request, project, &scratch.repo(), until).await?;
        progress.commit = Some(fetched.commit.clone());
        if progress.claim.is_none()
            && let Some((of, started)) = self.claim(request, project, Some(&fetched.commit), progress).await?
        {
            self.mark_merged(&base, request, &of).await;
            return Ok(WorkOutcome::Duplicate { of, started });
        }
        // Decided on the fetched head: an approval covers exactly that commit.
        let classification = trust::classify(request, &facts, &fetched.commit);
        let trust = classification.class();
        let route = trust::route(
            &classification,
            &project.key,
            &project.pipeline,
            project.untrusted_pipeline.as_deref(),
            project.approval_phrase.as_deref(),
        );
        tracing::info!(request_id = %request.request_id, trust = trust.as_str(), classification = ?classification, route = ?route, "request classified");
        let pipeline = match route {
            Route::Build { pipeline } => pipeline,
            Route::Await { comment } => return Ok(WorkOutcome::Awaiting { commit: fetched.commit, comment }),
            Route::Refuse { reason } => return Err(WorkError::Terminal(reason)),
        };
        let variables = trigger_variables(request, &fetched.commit);
        let pipeline_variables: Vec<_> =
            variables.iter().filter(|(name, v)| PIPELINE_VARIABLES.contains(name) && !v.is_empty()).cloned().collect();
        check_pipeline_variables(&pipeline_variables)
            .map_err(|e| WorkError::Terminal(format!("pipeline `{pipeline}` not started: {e}")))?;
        // Checked before the tree was fetched (`check_buildspec`); this repeats it with the
        // real values.
        let injected = std::str::from_utf8(&fetched.buildspec)
            .map_err(|e| e.to_string())
            .and_then(|text| inject(text, &variables).map_err(|e| e.to_string()))
            .map_err(|e| WorkError::Terminal(format!("`{}`: {e}", fetched.buildspec_path)))?;
        if !injected.overridden.is_empty() {
            tracing::info!(request_id = %request.request_id, overridden = ?injected.overridden, "buildspec variables replaced by the trigger's");
        }
        let zip_path = scratch.zip();
        let options = ArchiveOptions {
            // Where CodeBuild reads it, not where the default branch keeps it: the tree's own
            // file at that path (a PR's `buildspec.yml` beside the default branch's
            // `buildspec.yaml`) must never be the one that runs.
            replacements: vec![(self.settings.codebuild_buildspec.clone(), injected.text.into_bytes())],
            compression_level: self.settings.compression_level,
            ..ArchiveOptions::default()
        };
        let (repo_dir, commit, limits, zip_file) =
            (scratch.repo(), fetched.commit.clone(), self.settings.archive, zip_path.clone());
        let stats = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::create(&zip_file).map_err(ArchiveError::Io)?;
            // Stops the archive (a transient I/O error) when the time runs out, rather than
            // writing on after the request was cut short.
            let out =
                Deadline { inner: std::io::BufWriter::new(file), until: until.map(tokio::time::Instant::into_std) };
            bridge_git::archive_commit(&repo_dir, &commit, out, &options, limits)
        })
        .await
        .map_err(|e| WorkError::Transient(format!("archive task: {e}")))?
        .map_err(|e| match e {
            ArchiveError::Io(_) | ArchiveError::Write(_) => WorkError::Transient(format!("archive: {e}")),
            _ => WorkError::Terminal(format!("the tree cannot be archived: {e}")),
        })?;
        tracing::debug!(request_id = %request.request_id, files = stats.files, bytes = stats.bytes, "archived");
        let key = format!("{base}.zip");
        let stored = self
            .store
            .put_archive(&key, &zip_path, &metadata(request, &fetched, trust))
            .await
            .map_err(|e| WorkError::Transient(e.to_string()))?;
        let execution_id =
            self.pipelines.start(&pipeline, &stored, &pipeline_variables).await.map_err(|e| match e {
                StartError::Transient(m) => WorkError::Transient(m),
                StartError::Terminal(m) => WorkError::Terminal(format!("pipeline `{pipeline}`: {m}")),
            })?;
        if let Some(claim) = &progress.claim {
            // From now on an identical request (a rerun) builds again. If this is not
            // recorded, the request is tried again: a retried start with the same token
            // returns the same execution.
            dedupe::mark_started(&self.store, claim, &request.request_id, time::OffsetDateTime::now_utc())
                .await
                .map_err(|e| WorkError::Transient(e.to_string()))?;
        }
        self.store.put_marker(&started_key, &execution_id).await.map_err(|e| WorkError::Transient(e.to_string()))?;
        Ok(WorkOutcome::Started { key, commit: fetched.commit, execution_id, pipeline, trust })
    }

    /// What Pagure says about a pull request and its people; nothing for pushes (a push's
    /// trust follows from the repository alone). `None`s where Pagure did not answer.
    async fn trust_facts(&self, request: &BuildRequest, project: &ProjectConfig) -> TrustFacts {
        let mut facts = TrustFacts::default();
        let Cause::PullRequest { id } = request.cause else {
            return facts;
        };
        let path = request.project.target_fullname();
        facts.pull_request = self.status.pull_request(&project.key, &path, id).await;
        let Some(pr) = &facts.pull_request else {
            return facts;
        };
        if pr.status != "Open" {
            return facts;
        }
        // The target branch as Pagure has it: a trigger's `branch_to` is the caller's word.
        facts.author_has_commit = self.status.has_commit(&project.key, &path, &pr.author, &pr.target_branch).await;
        // A committer's PR from a source they do not control (a remote PR, someone else's
        // fork) needs an approval as anyone's does.
        if (facts.author_has_commit != Some(true) || !trust::source_is_authors(pr, &path))
            && let Some(approval) = trust::usable_approval(request)
        {
            facts.approver_has_commit =
                self.status.has_commit(&project.key, &path, &approval.by, &pr.target_branch).await;
        }
        facts
    }

    /// Claims the build for this request when its key is known (see [`bridge_core::dedupe`]):
    /// `Some((request id, started))` of the request it duplicates.
    async fn claim(
        &self,
        request: &BuildRequest,
        project: &ProjectConfig,
        commit: Option<&str>,
        progress: &mut Progress,
    ) -> Result<Option<(String, bool)>, WorkError> {
        let Some(build) = dedupe::build_key(request, commit) else {
            return Ok(None);
        };
        let key = format!("{}/{}/claims/{build}", self.settings.key_prefix, project.key);
        let now = time::OffsetDateTime::now_utc();
        let outcome = dedupe::claim_received(
            &self.store,
            &key,
            &request.request_id,
            request.rebuild,
            request.received_at,
            now,
            self.settings.dedupe_window,
        )
        .await
        .map_err(|e| WorkError::Transient(e.to_string()))?;
        Ok(match outcome {
            dedupe::ClaimOutcome::Won => {
                progress.claim = Some(key);
                None
            }
            dedupe::ClaimOutcome::DuplicateOf { request_id, started, .. } => Some((request_id, started)),
        })
    }

    /// Leaves `<prefix>/<project>/<request id>.merged`, naming the request this one was merged
    /// into, beside where its `.started` marker would be: a merge is visible in the store as
    /// well as in the log. Best effort (the merge stands without it).
    async fn mark_merged(&self, base: &str, request: &BuildRequest, into: &str) {
        let content = format!("{{\"merged_into\":\"{into}\"}}");
        if let Err(e) = self.store.put_marker(&format!("{base}.merged"), &content).await {
            tracing::warn!(request_id = %request.request_id, error = %e, "merge marker not written");
        }
    }

    async fn fetch(
        &self,
        request: &BuildRequest,
        project: &ProjectConfig,
        dest: &Path,
        until: Option<tokio::time::Instant>,
    ) -> Result<Fetched, WorkError> {
        let secrets = self.secrets.document().await.map_err(|e| WorkError::Transient(e.to_string()))?;
        let credentials = secrets.project(&project.key).and_then(|s| match (&s.git_username, &s.git_password) {
            (Some(username), Some(password)) => {
                Some(GitCredentials { username: username.clone(), password: password.clone() })
            }
            _ => None,
        });
        let target_url = project.repo.clone_url(None);
        let mut settings = bridge_git::FetchSettings {
            buildspec_paths: project.buildspec_paths.clone(),
            ..self.settings.fetch.clone()
        };
        // No more than the time left: a fetch stopped by that is cut short (tried again),
        // not a repository too slow to fetch (its own deadline, terminal).
        let left = until.map(|until| until.saturating_duration_since(tokio::time::Instant::now()));
        let shortened = left.is_some_and(|left| left < settings.deadline);
        if let Some(left) = left.filter(|_| shortened) {
            if left.is_zero() {
                return Err(WorkError::Transient(CUT_SHORT.to_owned()));
            }
            settings.deadline = left;
        }
        let (request, dest) = (request.clone(), dest.to_owned());
        tokio::task::spawn_blocking(move || {
            bridge_git::fetch_build(&request, &target_url, &dest, &settings, credentials.as_ref(), check_buildspec)
        })
        .await
        .map_err(|e| WorkError::Transient(format!("fetch task: {e}")))?
        .map_err(|e| {
            if shortened && matches!(e, bridge_git::FetchError::TimedOut(_)) {
                WorkError::Transient(format!("{CUT_SHORT} (during the fetch)"))
            } else if e.is_terminal() {
                WorkError::Terminal(e.to_string())
            } else {
                WorkError::Transient(e.to_string())
            }
        })
    }
}

/// A writer that fails (`TimedOut`) once `until` has passed.
struct Deadline<W> {
    inner: W,
    until: Option<std::time::Instant>,
}

impl<W> Deadline<W> {
    fn check(&self) -> std::io::Result<()> {
        match self.until {
            Some(until) if std::time::Instant::now() >= until => {
                Err(std::io::Error::new(std::io::ErrorKind::TimedOut, CUT_SHORT))
            }
            _ => Ok(()),
        }
    }
}

impl<W: std::io::Write> std::io::Write for Deadline<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.check()?;
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<W: std::io::Seek> std::io::Seek for Deadline<W> {
    fn seek(&mut self, pos: std::io::SeekFrom) -> std::io::Result<u64> {
        self.inner.seek(pos)
    }
}

/// The characters a pipeline variable's value may have. The templates' CodeBuild actions
/// pass the variables on as `#{variables.NAME}` inside their `EnvironmentVariables` JSON
/// text, and nothing says CodePipeline escapes what it substitutes there: a `"` or `\`
/// would end the string or add entries. These need no JSON escaping and are no variable
/// syntax (`#`, `{`, `}`, `$` are out), and they cover every value the bridge sends: request
/// ids (hex), project full names (`[ns/]name`, Pagure's `[A-Za-z0-9_.+-]`), causes (a PR
/// number or a full commit id), commits, and canonical repository URLs (scheme, host, port,
/// `[…]` around an IPv6 host, the configured base path with its `~` or `%`-escapes, Pagure
/// names).
pub fn pipeline_value_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '/' | '@' | '+' | '~' | '=' | '-' | '%' | '[' | ']')
}

/// Refuses a pipeline variable whose value has a character outside [`pipeline_value_char`],
/// naming the variable and the character (never repeating the value, which may be hostile).
pub fn check_pipeline_variables(variables: &[(&'static str, String)]) -> Result<(), String> {
    for (name, value) in variables {
        if let Some(c) = value.chars().find(|c| !pipeline_value_char(*c)) {
            return Err(format!(
                "{name} has the character {c:?}, outside what a pipeline variable may hold ([A-Za-z0-9._:/@+~=%[]-]: the pipeline pastes it into JSON unescaped)"
            ));
        }
    }
    Ok(())
}

/// A buildspec the trigger can be injected into: UTF-8 YAML, a mapping, `version: 0.2`,
/// within the size limits.
fn check_buildspec(bytes: &[u8]) -> Result<(), String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "the buildspec is not UTF-8".to_owned())?;
    inject(text, &[]).map(|_| ()).map_err(|e| e.to_string())
}

/// Object metadata and the one-line revision summary CodePipeline shows.
pub fn metadata(request: &BuildRequest, fetched: &Fetched, trust: TrustClass) -> ArtifactMetadata {
    let short = &fetched.commit[..fetched.commit.len().min(12)];
    let what = match request.cause {
        Cause::PullRequest { id } => {
            format!("PR #{id} {} -> {}", request.branch, request.branch_to.as_deref().unwrap_or(""))
        }
        Cause::Commit { .. } => format!("push to {}", request.branch),
    };
    let from = match &request.project.fork_user {
        Some(user) => format!(" from forks/{user}/{}", request.project.target_fullname()),
        None => String::new(),
    };
    let mut revision_summary = format!("{} {what} ({short}){from}", request.project.target_fullname());
    revision_summary.truncate(2048);
    ArtifactMetadata {
        entries: vec![
            ("pagure-project".into(), request.project.target_fullname()),
            ("pagure-repo".into(), request.repo_url.clone()),
            ("pagure-cause".into(), request.cause.as_trigger_value()),
            ("pagure-branch".into(), request.branch.clone()),
            ("pagure-branch-to".into(), request.branch_to.clone().unwrap_or_default()),
            ("pagure-commit".into(), fetched.commit.clone()),
            ("pagure-request-id".into(), request.request_id.clone()),
            ("pagure-trigger".into(), request.trigger.as_str().into()),
            ("pagure-trust".into(), trust.as_str().into()),
        ],
        revision_summary,
    }
}

/// A per-request scratch folder, removed when dropped (also on every error path).
struct Scratch(PathBuf);

impl Scratch {
    fn new(parent: &Path, request_id: &str) -> Result<Self, WorkError> {
        let dir = parent.join(format!("pcb-work-{request_id}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("repo")).map_err(|e| WorkError::Transient(format!("scratch folder: {e}")))?;
        Ok(Scratch(dir))
    }

    /// The fetched repository (archives come from its objects; nothing is checked out).
    fn repo(&self) -> PathBuf {
        self.0.join("repo")
    }

    fn zip(&self) -> PathBuf {
        self.0.join("source.zip")
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests;
