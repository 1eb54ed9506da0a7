//! The work Lambda: each SQS record is a build request for core's worker
//! ([`bridge_core::work::Worker`], fetching with `bridge-git`). Failed records
//! are returned as `batchItemFailures` so that only they are retried (the event source
//! mapping needs `ReportBatchItemFailures`); the delivery whose `ApproximateReceiveCount`
//! reaches the queue's `maxReceiveCount` is the last, and a failure then is reported before
//! the message moves to the dead-letter queue.
//!
//! Time: a function timeout would return the whole batch, to come back only after the
//! queue's visibility timeout. So each record is bounded by what is left of the invocation
//! ([`Timing`]): its work ends [`Timing::margin`] before the deadline, its flags
//! [`Timing::reserve`] before it; a record with less than [`Timing::min_start`] of work time
//! left is not started, and goes back at once. A record that failed for a transient reason
//! (cut short included) comes back after the [`RetrySchedule`]'s wait for its delivery
//! count (`ChangeMessageVisibility`, through [`MessageVisibility`]).

use std::time::Duration;

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use bridge_aws::{CodePipelineStarter, Encryption, S3Store, SecretsManagerSource, SqsQueue};
use bridge_core::config::{RetrySchedule, WorkLambdaConfig};
use bridge_core::model::BuildRequest;
use std::sync::Arc;
use tokio::time::Instant;

use bridge_core::forge::Forge;
use bridge_core::metrics::{self, Metric};
use bridge_core::ports::{ArtifactStore, CachedSecrets, PipelineStarter, QueueError, Secrets};
use bridge_core::retry::Retry;
use bridge_core::work::{CUT_SHORT, Disposition, SourceFetcher, WorkSettings, Worker};
use bridge_git::GitFetcher;
use bridge_pagure::PagureForge;

type LambdaSecrets = Arc<CachedSecrets<SecretsManagerSource>>;

/// The worker as deployed.
pub type LambdaWorker = Worker<GitFetcher, S3Store, CodePipelineStarter, PagureForge<LambdaSecrets>, LambdaSecrets>;

/// Builds the worker once, in `main`.
pub fn build_worker(config: &WorkLambdaConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<LambdaWorker> {
    let encryption = config.kms_key_id.clone().map_or(Encryption::S3Managed, Encryption::Kms);
    let store = S3Store::new(aws_sdk_s3::Client::new(aws), &config.bucket, encryption);
    let pipelines = CodePipelineStarter::new(aws_sdk_codepipeline::Client::new(aws), &config.source_action);
    let secrets =
        Arc::new(SecretsManagerSource::cached(aws, &config.secret_id, config.secret_shards, config.secrets_ttl));
    let accept = bridge_aws::S3Registry::attached(&config.accept, aws);
    let flags = PagureForge::from_config(&config.report, accept.projects.clone(), secrets.clone())?;
    let settings = WorkSettings { key_prefix: config.key_prefix.clone(), ..WorkSettings::with_limits(&config.work) };
    // Scratch folders in `/tmp`, the only writable place in Lambda.
    Ok(Worker::new(accept, settings, GitFetcher::default(), store, pipelines, flags, secrets))
}

/// The queue, for `ChangeMessageVisibility` (`None` without `PCB_QUEUE_URL`).
pub fn build_visibility(config: &WorkLambdaConfig, aws: &aws_config::SdkConfig) -> Option<SqsQueue> {
    if config.queue_url.is_none() {
        tracing::warn!(
            "PCB_QUEUE_URL is not set: failed requests are tried again only after the queue's visibility timeout"
        );
    }
    config.queue_url.as_ref().map(|url| SqsQueue::new(aws_sdk_sqs::Client::new(aws), url))
}

/// The deployed function: what it keeps between invocations, and one invocation.
#[derive(Debug)]
pub struct WorkFunction {
    worker: LambdaWorker,
    visibility: Option<SqsQueue>,
    settings: BatchSettings,
}

impl WorkFunction {
    pub fn new(config: &WorkLambdaConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<Self> {
        Ok(WorkFunction {
            worker: build_worker(config, aws)?,
            visibility: build_visibility(config, aws),
            settings: BatchSettings::from_config(config),
        })
    }

    /// One invocation, bounded by its deadline. Boxed: the batch's future (worker, SDK
    /// calls) is too deep to lay out inline in the runtime's.
    pub fn handle(
        &self,
        event: lambda_runtime::LambdaEvent<SqsEvent>,
    ) -> std::pin::Pin<Box<dyn Future<Output = SqsBatchResponse> + Send + '_>> {
        let deadline = deadline_instant(event.context.deadline());
        Box::pin(handle_batch_until(&self.worker, event.payload, &self.settings, &self.visibility, Some(deadline)))
    }
}

/// When a received message becomes visible again: the narrow part of the queue the work
/// Lambda needs. `SqsQueue` is the deployed one; `None` changes nothing (the message comes
/// back after the queue's visibility timeout).
pub trait MessageVisibility {
    /// Makes the message received with `receipt_handle` visible again `delay` from now.
    fn delay(&self, receipt_handle: &str, delay: Duration) -> impl Future<Output = Result<(), QueueError>> + Send;
}

impl MessageVisibility for SqsQueue {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        self.change_visibility(receipt_handle, delay).await
    }
}

impl<V: MessageVisibility + Sync> MessageVisibility for Option<V> {
    async fn delay(&self, receipt_handle: &str, delay: Duration) -> Result<(), QueueError> {
        match self {
            Some(visibility) => visibility.delay(receipt_handle, delay).await,
            None => Ok(()),
        }
    }
}

/// How a batch spends the invocation's time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// A record's work (fetch, archive, upload, start) ends this long before the deadline;
    /// what follows it (its flag, the claim's release) has the rest, up to `reserve`.
    pub margin: Duration,
    /// Nothing but `ChangeMessageVisibility` calls and the answer after this long before the
    /// deadline.
    pub reserve: Duration,
    /// A record is started only with at least this much work time left.
    pub min_start: Duration,
    /// Longest wait for one `ChangeMessageVisibility` call.
    pub visibility_call: Duration,
}

impl Default for Timing {
    /// 30 s of margin (a Pagure flag takes well under a second; its client's worst case,
    /// four attempts of 10 s, is cut at `reserve`), 5 s of reserve, 30 s at least to start.
    fn default() -> Self {
        Timing {
            margin: Duration::from_secs(30),
            reserve: Duration::from_secs(5),
            min_start: Duration::from_secs(30),
            visibility_call: Duration::from_secs(2),
        }
    }
}

/// What a batch needs besides the worker.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// The queue's `maxReceiveCount`.
    pub max_receive_count: u32,
    pub retry: RetrySchedule,
    pub timing: Timing,
}

impl BatchSettings {
    pub fn from_config(config: &WorkLambdaConfig) -> Self {
        BatchSettings {
            max_receive_count: config.max_receive_count,
            retry: config.work.retry_schedule(),
            timing: Timing::default(),
        }
    }
}

/// The invocation's deadline (`lambda_runtime::Context::deadline`) as an `Instant`.
pub fn deadline_instant(deadline: std::time::SystemTime) -> Instant {
    Instant::now() + deadline.duration_since(std::time::SystemTime::now()).unwrap_or_default()
}

/// Processes a batch, one record after the other (each needs `/tmp` space), without a
/// deadline or visibility changes (tests, tools), and returns the ids of the records to retry.
pub async fn handle_batch<Src, St, P, R, S>(
    worker: &Worker<Src, St, P, R, S>,
    event: SqsEvent,
    max_receive_count: u32,
) -> SqsBatchResponse
where
    Src: SourceFetcher,
    St: ArtifactStore,
    P: PipelineStarter,
    R: Forge,
    S: Secrets,
{
    let settings = BatchSettings {
        max_receive_count,
        retry: RetrySchedule { first: Duration::ZERO, max: Duration::ZERO },
        timing: Timing::default(),
    };
    handle_batch_until(worker, event, &settings, &None::<SqsQueue>, None).await
}

/// One record of the batch, as received.
struct Record {
    message_id: String,
    receipt_handle: Option<String>,
    receive_count: u32,
    request: Option<BuildRequest>,
}

impl Record {
    fn read(message: SqsMessage) -> Option<Record> {
        let Some(message_id) = message.message_id else {
            tracing::error!("an SQS record without a message id; nothing can be done with it");
            return None;
        };
        let receive_count = message.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
        let request = message.body.as_deref().and_then(|body| BuildRequest::from_json(body).ok());
        Some(Record { message_id, receipt_handle: message.receipt_handle, receive_count, request })
    }

    /// The record's span: the request's fields (none when the body is not a request), the
    /// message and its delivery. At ERROR level, so that it is enabled at any log level.
    fn span(&self) -> tracing::Span {
        let span = tracing::error_span!(
            "work",
            request_id = tracing::field::Empty,
            project = tracing::field::Empty,
            cause = tracing::field::Empty,
            message_id = %self.message_id,
            receive_count = self.receive_count,
        );
        if let Some(request) = &self.request {
            span.record("request_id", request.request_id.as_str());
            span.record("project", request.project.key.as_str());
            span.record("cause", request.cause.as_trigger_value().as_str());
        }
        span
    }
}

/// Processes a batch as the deployed Lambda does, one record after the other, and returns
/// the ids of the records to retry. Records on later deliveries go first (the one on its
/// last must not be the one left without time). With a `deadline`, each record's work is
/// bounded as [`Timing`] says; records not started come back at once, failed ones after
/// `settings.retry`'s wait for their delivery count.
pub async fn handle_batch_until<Src, St, P, R, S, V>(
    worker: &Worker<Src, St, P, R, S>,
    event: SqsEvent,
    settings: &BatchSettings,
    visibility: &V,
    deadline: Option<Instant>,
) -> SqsBatchResponse
where
    Src: SourceFetcher,
    St: ArtifactStore,
    P: PipelineStarter,
    R: Forge,
    S: Secrets,
    V: MessageVisibility,
{
    let timing = settings.timing;
    let mut records: Vec<Record> = event.records.into_iter().filter_map(Record::read).collect();
    records.sort_by_key(|record| std::cmp::Reverse(record.receive_count));
    let mut response = SqsBatchResponse::default();
    let mut not_started = Vec::new();
    for record in records {
        let span = record.span();
        match tracing::Instrument::instrument(handle_record(worker, &record, settings, visibility, deadline), span)
            .await
        {
            Next::Done => {}
            Next::Retry => fail(&mut response, &record.message_id),
            Next::NotStarted => {
                fail(&mut response, &record.message_id);
                not_started.push(record);
            }
        }
    }
    for record in &not_started {
        change_visibility(visibility, record, Duration::ZERO, deadline, timing).await;
    }
    response
}

/// What becomes of a record's message.
enum Next {
    /// Deleted by the event source mapping.
    Done,
    /// Returned as a batch item failure (after its visibility was changed, if it was).
    Retry,
    /// Returned, and made visible again at once.
    NotStarted,
}

/// One record of the batch, inside its span.
async fn handle_record<Src, St, P, R, S, V>(
    worker: &Worker<Src, St, P, R, S>,
    record: &Record,
    settings: &BatchSettings,
    visibility: &V,
    deadline: Option<Instant>,
) -> Next
where
    Src: SourceFetcher,
    St: ArtifactStore,
    P: PipelineStarter,
    R: Forge,
    S: Secrets,
    V: MessageVisibility,
{
    let timing = settings.timing;
    let last_attempt = record.receive_count >= settings.max_receive_count;
    let Some(request) = &record.request else {
        // Not ours or corrupted: keep it (it ends in the dead-letter queue for a look).
        tracing::error!(last_attempt, "the message is not a build request");
        if last_attempt {
            // Given up here, never seen by the worker: counted here.
            metrics::count(Metric::Failures, &[(metrics::CLASS, Retry::Terminal.as_str())]);
        }
        return Next::Retry;
    };
    let (work_until, flags_until) = match deadline {
        Some(deadline) => (Some(before(deadline, timing.margin)), Some(before(deadline, timing.reserve))),
        None => (None, None),
    };
    if let Some(work_until) = work_until
        && work_until.saturating_duration_since(Instant::now()) < timing.min_start
    {
        if last_attempt {
            // Its last delivery, and no time for it: say so on Pagure rather than let
            // it reach the dead-letter queue unreported.
            let reason = "the work function had no time left for it on its last delivery";
            bounded(flags_until, worker.give_up(request, reason)).await;
            return Next::Retry;
        }
        tracing::info!("not started: no time left in this invocation; back to the queue at once");
        return Next::NotStarted;
    }
    let disposition = bounded(flags_until, worker.handle_until(request, last_attempt, work_until)).await;
    let Disposition::Retry(reason) = disposition else {
        return Next::Done;
    };
    if !last_attempt {
        let wait = settings.retry.delay(record.receive_count);
        tracing::info!(wait_seconds = wait.as_secs(), %reason, "tried again later");
        change_visibility(visibility, record, wait, deadline, timing).await;
    }
    Next::Retry
}

/// `by` before `deadline` (now, if that is before the clock's start: long past).
fn before(deadline: Instant, by: Duration) -> Instant {
    deadline.checked_sub(by).unwrap_or_else(Instant::now)
}

/// Runs `work` until `until` (if any); running out is a transient failure.
async fn bounded(until: Option<Instant>, work: impl Future<Output = Disposition>) -> Disposition {
    match until {
        None => work.await,
        Some(until) => tokio::time::timeout_at(until, work)
            .await
            .unwrap_or_else(|_| Disposition::Retry(format!("{CUT_SHORT} (while reporting)"))),
    }
}

fn fail(response: &mut SqsBatchResponse, message_id: &str) {
    let mut failure = BatchItemFailure::default();
    failure.item_identifier = message_id.to_owned();
    response.batch_item_failures.push(failure);
}

/// Best effort: without it the message comes back after the queue's visibility timeout.
async fn change_visibility<V: MessageVisibility>(
    visibility: &V,
    record: &Record,
    wait: Duration,
    deadline: Option<Instant>,
    timing: Timing,
) {
    let Some(receipt_handle) = &record.receipt_handle else {
        return;
    };
    // The last second is the answer's.
    let limit = match deadline {
        Some(deadline) => timing
            .visibility_call
            .min(before(deadline, Duration::from_secs(1)).saturating_duration_since(Instant::now())),
        None => timing.visibility_call,
    };
    let outcome = tokio::time::timeout(limit, visibility.delay(receipt_handle, wait)).await;
    let error = match outcome {
        Ok(Ok(())) => return,
        Ok(Err(e)) => e.to_string(),
        Err(_) => format!("no answer within {limit:?}"),
    };
    tracing::warn!(message_id = %record.message_id, %error, wait_seconds = wait.as_secs(), "visibility not changed; the message comes back after the queue's visibility timeout");
}

/// libgit2's connect and I/O time limits, process-wide: set before any thread starts.
pub fn init_git() -> Result<(), String> {
    bridge_git::init_libgit2(Duration::from_secs(10), Duration::from_secs(60))
}

/// Serves SQS batches until the runtime stops.
pub async fn serve(function: &WorkFunction) -> Result<(), crate::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(|event| async {
        Ok::<_, crate::Error>(function.handle(event).await)
    }))
    .await
}

#[cfg(test)]
mod tests;
