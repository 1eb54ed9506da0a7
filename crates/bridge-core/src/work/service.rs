//! The worker: one request through its ports, and what becomes of its message.

use crate::archive::ArchiveOptions;
use crate::buildspec::{PIPELINE_VARIABLES, inject, trigger_variables};
use crate::config::{AcceptConfig, ProjectConfig};
use crate::dedupe;
use crate::forge::{FlagStatus, Forge};
use crate::metrics::{self, Metric};
use crate::model::{BuildRequest, Cause, TrustClass};
use crate::ports::{ArtifactStore, PipelineStarter, Secrets};
use crate::report::FlagSubject;
use crate::retry::{Retry, Transience};

use super::source::{ArchiveOrder, BuildspecProblem, FetchError, FetchOrder, Fetched, GitCredentials, SourceFetcher};
use super::trust::{self, Route, TrustFacts};
use super::{
    Disposition, Ending, Progress, QUEUED_COMMENT, WorkError, WorkOutcome, WorkSettings, check_buildspec,
    check_pipeline_variables, metadata,
};

/// The work stage and its ports: where sources come from (`Src`), where archives and
/// markers go (`St`), the pipelines (`P`), the forge (`F`) and the secrets (`S`).
#[derive(Debug)]
pub struct Worker<Src, St, P, F, S> {
    config: AcceptConfig,
    settings: WorkSettings,
    source: Src,
    store: St,
    pipelines: P,
    forge: F,
    secrets: S,
}

impl<Src: SourceFetcher, St: ArtifactStore, P: PipelineStarter, F: Forge, S: Secrets> Worker<Src, St, P, F, S> {
    pub fn new(
        config: AcceptConfig,
        settings: WorkSettings,
        source: Src,
        store: St,
        pipelines: P,
        forge: F,
        secrets: S,
    ) -> Self {
        Worker { config, settings, source, store, pipelines, forge, secrets }
    }

    /// Processes one request and says what to do with its message. `last_attempt` is true
    /// when the queue will not deliver it again (then a transient failure is reported too).
    pub async fn handle(&self, request: &BuildRequest, last_attempt: bool) -> Disposition {
        self.handle_until(request, last_attempt, None).await
    }

    /// [`Worker::handle`], with the work (fetch, archive, upload, start) ending by `until`:
    /// the fetch gets no more than the time left, and work still running then is cut short
    /// as a transient failure ([`CUT_SHORT`](super::CUT_SHORT)). The flags and the claim's release come after;
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
                    Err(_) => Err(WorkError::CutShort),
                }
            }
        };
        let gives_up = match &outcome {
            Err(e) => !e.is_transient() || last_attempt,
            // Nothing was built: a later request for the same head (after an approval, or a
            // change of the author's access) is decided afresh, not merged into this one.
            Ok(WorkOutcome::Awaiting { .. }) => true,
            Ok(_) => false,
        };
        if let (true, Some(claim)) = (gives_up, &progress.claim) {
            // A request for the same build after a fix (a buildspec added, the git host back)
            // must build, not be merged into this failure.
            if let Err(e) = dedupe::release(&self.store, claim, &request.request_id).await {
                tracing::warn!(error = %e, "claim not released");
            }
        }
        let commit = progress.commit;
        match outcome {
            Ok(WorkOutcome::Started { key, commit, execution_id, pipeline, trust }) => {
                metrics::count(Metric::BuildsStarted, &[]);
                tracing::info!(
                    %key, %commit, %execution_id, %pipeline, trust = trust.as_str(),
                    "pipeline started"
                );
                let url = self.pipelines.execution_url(&pipeline, &execution_id);
                let update = subject.with_commit(&commit).update(FlagStatus::Pending, QUEUED_COMMENT, url, None);
                // A pipeline that failed at once may have been reported final already (its
                // `.settled` marker): a late "queued" must not replace that flag, which the
                // sweep would then never correct.
                let settled = crate::sweep::request_key(
                    &self.settings.key_prefix,
                    &request.project.key,
                    &request.request_id,
                    "settled",
                );
                if matches!(self.store.marker(&settled).await, Ok(Some(_))) {
                    tracing::info!("already settled: pending flag not posted");
                } else if let Err(e) = self.forge.report(&update).await {
                    // The build runs whatever happens here, and its next state updates the flag.
                    tracing::warn!(error = %e, "pending flag not posted");
                }
                Disposition::Done(Ending::Started { execution_id })
            }
            Ok(WorkOutcome::AlreadyStarted { execution_id }) => {
                tracing::info!(%execution_id, "already started; redelivery ignored");
                Disposition::Done(Ending::Started { execution_id })
            }
            Ok(WorkOutcome::Duplicate { of, started }) => {
                tracing::info!(
                    duplicate_of = %of, accepted_at = %request.received_at,
                    duplicate_of_started = started,
                    "same build already asked for; merged into it (accepted before its pipeline started)"
                );
                Disposition::Done(Ending::Duplicate { of })
            }
            Ok(WorkOutcome::Ignored { reason }) => {
                tracing::info!(%reason, "nothing to build");
                Disposition::Done(Ending::Ignored { reason })
            }
            Ok(WorkOutcome::Awaiting { commit, comment }) => {
                tracing::info!(%commit, trust = TrustClass::Untrusted.as_str(), awaiting = %comment, "not built: awaiting an approval");
                // The flag sits on the head that waits, and links to the pull request, where
                // the approval is given.
                let link = self.flag_link(request, &subject).await;
                let update = subject.with_commit(&commit).update(FlagStatus::Pending, &comment, link, None);
                let flagged = match self.forge.report(&update).await {
                    Ok(()) => true,
                    Err(e) => {
                        tracing::warn!(error = %e, "awaiting flag not posted");
                        false
                    }
                };
                Disposition::Done(Ending::Awaiting { comment, flagged })
            }
            Err(e) if !e.is_transient() => {
                metrics::count(Metric::Failures, &[(metrics::CLASS, Retry::Terminal.as_str())]);
                let reason = e.to_string();
                tracing::warn!(%reason, "build request failed for good");
                self.report_error(request, commit.as_deref(), &reason).await
            }
            Err(e) => {
                metrics::count(Metric::Failures, &[(metrics::CLASS, Retry::Transient.as_str())]);
                let reason = e.to_string();
                tracing::warn!(%reason, last_attempt, "build request failed, will retry");
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
        tracing::warn!(%reason, "build request given up");
        metrics::count(Metric::Failures, &[(metrics::CLASS, Retry::Transient.as_str())]);
        let reason = format!("the build could not be started after several attempts: {reason}");
        let _ = self.report_error(request, None, &reason).await;
        Disposition::Retry(reason)
    }

    /// Where a flag of this request links: its page on Pagure, or its repository when the
    /// project cannot be read.
    async fn flag_link(&self, request: &BuildRequest, subject: &FlagSubject<'_>) -> String {
        match self.config.projects.get(&request.project.key).await {
            Ok(Some(project)) => subject.pagure_page(&project.pagure_url),
            _ => request.repo_url.clone(),
        }
    }

    /// Posts the `error` flag. If Pagure cannot be reached, the message is kept for another
    /// attempt: the failure must reach Pagure or the dead-letter queue, not vanish.
    async fn report_error(&self, request: &BuildRequest, commit: Option<&str>, reason: &str) -> Disposition {
        let subject = FlagSubject::from(request);
        let subject = match commit {
            Some(commit) => subject.with_commit(commit),
            None => subject,
        };
        let link = self.flag_link(request, &subject).await;
        match self.forge.report(&subject.update(FlagStatus::Error, reason, link, None)).await {
            Ok(()) => Disposition::Done(Ending::Failed { reason: reason.to_owned(), flagged: true }),
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, "error flag not posted; the request will be retried");
                Disposition::Retry(format!("{reason} (and the error flag could not be posted: {e})"))
            }
            Err(e) => {
                tracing::error!(error = %e, %reason, "error flag refused by Pagure");
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
        let project = self.config.projects.get(&request.project.key).await?;
        let project = project.ok_or_else(|| WorkError::ProjectGone(request.project.key.clone()))?;
        let project = &*project;
        // The queue is trusted, but the allow-list is the SSRF boundary: check it again.
        project.repo.check(&project.key, &request.repo_url).map_err(WorkError::RepositoryRefused)?;
        let base = format!("{}/{}/{}", self.settings.key_prefix, project.key, request.request_id);
        let started_key = format!("{base}.started");
        if let Some(execution_id) = self.store.marker(&started_key).await? {
            return Ok(WorkOutcome::AlreadyStarted { execution_id });
        }
        // A commit's build is known before the fetch: a duplicate costs one conditional write.
        if let Some((of, started)) = self.claim(request, project, None, progress).await? {
            self.mark_merged(&base, &of).await;
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
        // Held until the archive is stored: the adapter removes it when it is dropped.
        let (workspace, fetched) = self.fetch(request, project, until).await?;
        progress.commit = Some(fetched.commit.clone());
        if progress.claim.is_none()
            && let Some((of, started)) = self.claim(request, project, Some(&fetched.commit), progress).await?
        {
            self.mark_merged(&base, &of).await;
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
        tracing::info!(trust = trust.as_str(), classification = ?classification, route = ?route, "request classified");
        let pipeline = match route {
            Route::Build { pipeline } => pipeline,
            Route::Await { comment } => return Ok(WorkOutcome::Awaiting { commit: fetched.commit, comment }),
            Route::Refuse { reason } => return Err(WorkError::NotBuilt(reason)),
        };
        let variables = trigger_variables(request, &fetched.commit);
        let pipeline_variables: Vec<_> =
            variables.iter().filter(|(name, v)| PIPELINE_VARIABLES.contains(name) && !v.is_empty()).cloned().collect();
        check_pipeline_variables(&pipeline_variables)
            .map_err(|source| WorkError::UnsafeVariable { pipeline: pipeline.clone(), source })?;
        // Checked before the tree was fetched (`check_buildspec`); this repeats it with the
        // real values.
        let injected = std::str::from_utf8(&fetched.buildspec)
            .map_err(BuildspecProblem::NotUtf8)
            .and_then(|text| Ok(inject(text, &variables)?))
            .map_err(|problem| WorkError::Buildspec { path: fetched.buildspec_path.clone(), problem })?;
        if !injected.overridden.is_empty() {
            tracing::info!(overridden = ?injected.overridden, "buildspec variables replaced by the trigger's");
        }
        let order = ArchiveOrder {
            commit: fetched.commit.clone(),
            options: ArchiveOptions {
                // Where CodeBuild reads it, not where the default branch keeps it: the tree's
                // own file at that path (a PR's `buildspec.yml` beside the default branch's
                // `buildspec.yaml`) must never be the one that runs.
                replacements: vec![(self.settings.codebuild_buildspec.clone(), injected.text.into_bytes())],
                compression_level: self.settings.compression_level,
                ..ArchiveOptions::default()
            },
            limits: self.settings.archive,
            until,
        };
        let archiving = std::time::Instant::now();
        let archive = self.source.write_archive(&workspace, order).await.map_err(WorkError::Archive)?;
        metrics::duration(Metric::ArchiveDuration, archiving.elapsed());
        tracing::debug!(files = archive.stats.files, bytes = archive.stats.bytes, "archived");
        let key = format!("{base}.zip");
        let uploading = std::time::Instant::now();
        let stored = self.store.put_archive(&key, &archive.path, &metadata(request, &fetched, trust)).await?;
        metrics::duration(Metric::UploadDuration, uploading.elapsed());
        drop(workspace);
        let execution_id = self
            .pipelines
            .start(&pipeline, &stored, &pipeline_variables)
            .await
            .map_err(|source| WorkError::Start { pipeline: pipeline.clone(), source })?;
        if let Some(claim) = &progress.claim {
            // From now on an identical request (a rerun) builds again. If this is not
            // recorded, the request is tried again: a retried start with the same token
            // returns the same execution.
            dedupe::mark_started(&self.store, claim, &request.request_id, time::OffsetDateTime::now_utc()).await?;
        }
        self.store.put_marker(&started_key, &execution_id).await?;
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
        facts.pull_request = self.forge.pull_request(&project.key, &path, id).await;
        let Some(pr) = &facts.pull_request else {
            return facts;
        };
        if pr.status != "Open" {
            return facts;
        }
        // The target branch as Pagure has it: a trigger's `branch_to` is the caller's word.
        facts.author_has_commit = self.forge.has_commit(&project.key, &path, &pr.author, &pr.target_branch).await;
        // A committer's PR from a source they do not control (a remote PR, someone else's
        // fork) needs an approval as anyone's does.
        if (facts.author_has_commit != Some(true) || !trust::source_is_authors(pr, &path))
            && let Some(approval) = trust::usable_approval(request)
        {
            facts.approver_has_commit =
                self.forge.has_commit(&project.key, &path, &approval.by, &pr.target_branch).await;
        }
        facts
    }

    /// Claims the build for this request when its key is known (see [`crate::dedupe`]):
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
        .await?;
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
    async fn mark_merged(&self, base: &str, into: &str) {
        let content = format!("{{\"merged_into\":\"{into}\"}}");
        if let Err(e) = self.store.put_marker(&format!("{base}.merged"), &content).await {
            tracing::warn!(error = %e, "merge marker not written");
        }
    }

    /// Fetches through the source port, with the project's credentials and buildspec paths,
    /// in no more than the time left.
    async fn fetch(
        &self,
        request: &BuildRequest,
        project: &ProjectConfig,
        until: Option<tokio::time::Instant>,
    ) -> Result<(Src::Workspace, Fetched), WorkError> {
        let secrets = self.secrets.document().await?;
        let credentials = secrets.project(&project.key).and_then(|s| match (&s.git_username, &s.git_password) {
            (Some(username), Some(password)) => {
                Some(GitCredentials { username: username.clone(), password: password.clone() })
            }
            _ => None,
        });
        let target_url = project.repo.clone_url(None);
        let mut settings =
            super::FetchSettings { buildspec_paths: project.buildspec_paths.clone(), ..self.settings.fetch.clone() };
        // No more than the time left: a fetch stopped by that is cut short (tried again),
        // not a repository too slow to fetch (its own deadline, terminal).
        let left = until.map(|until| until.saturating_duration_since(tokio::time::Instant::now()));
        let shortened = left.is_some_and(|left| left < settings.deadline);
        if let Some(left) = left.filter(|_| shortened) {
            if left.is_zero() {
                return Err(WorkError::CutShort);
            }
            settings.deadline = left;
        }
        let order = FetchOrder {
            target_url: &target_url,
            settings: &settings,
            credentials: credentials.as_ref(),
            check_buildspec,
        };
        let fetching = std::time::Instant::now();
        let fetched = self.source.fetch(request, order).await.map_err(|e| match e {
            FetchError::TimedOut(_) if shortened => WorkError::CutShortFetching(e),
            e => WorkError::Fetch(e),
        })?;
        metrics::duration(Metric::FetchDuration, fetching.elapsed());
        Ok(fetched)
    }
}
