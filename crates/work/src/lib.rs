//! The work Lambda: each SQS record is a build request for bridge-worker. Failed records
//! are returned as `batchItemFailures` so that only they are retried (the event source
//! mapping needs `ReportBatchItemFailures`); the delivery whose `ApproximateReceiveCount`
//! reaches the queue's `maxReceiveCount` is the last, and a failure then is reported before
//! the message moves to the dead-letter queue.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use bridge_aws::{CodePipelineStarter, Encryption, S3Store, SecretsManagerSource};
use bridge_core::config::WorkLambdaConfig;
use bridge_core::model::BuildRequest;
use std::sync::Arc;

use bridge_core::ports::{ArtifactStore, CachedSecrets, PipelineStarter, Secrets};
use bridge_core::report::{PagureFlags, StatusSink};
use bridge_worker::{Disposition, WorkSettings, Worker};

type LambdaSecrets = Arc<CachedSecrets<SecretsManagerSource>>;

/// The worker as deployed.
pub type LambdaWorker = Worker<S3Store, CodePipelineStarter, PagureFlags<LambdaSecrets>, LambdaSecrets>;

/// Builds the worker once, in `main`.
pub fn build_worker(config: &WorkLambdaConfig, aws: &aws_config::SdkConfig) -> anyhow::Result<LambdaWorker> {
    let encryption = config.kms_key_id.clone().map_or(Encryption::S3Managed, Encryption::Kms);
    let store = S3Store::new(aws_sdk_s3::Client::new(aws), &config.bucket, encryption);
    let pipelines = CodePipelineStarter::new(aws_sdk_codepipeline::Client::new(aws), &config.source_action);
    let secrets = Arc::new(SecretsManagerSource::cached(aws, &config.secret_id, config.secrets_ttl));
    let flags = PagureFlags::from_config(&config.report, config.accept.projects.clone(), secrets.clone())?;
    let settings = WorkSettings { key_prefix: config.key_prefix.clone(), ..WorkSettings::with_limits(&config.work) };
    Ok(Worker::new(config.accept.clone(), settings, store, pipelines, flags, secrets))
}

/// Processes a batch, one record after the other (each needs `/tmp` space), and returns
/// the ids of the records to retry.
pub async fn handle_batch<St, P, R, S>(
    worker: &Worker<St, P, R, S>,
    event: SqsEvent,
    max_receive_count: u32,
) -> SqsBatchResponse
where
    St: ArtifactStore,
    P: PipelineStarter,
    R: StatusSink,
    S: Secrets,
{
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let Some(message_id) = record.message_id else {
            tracing::error!("an SQS record without a message id; nothing can be done with it");
            continue;
        };
        let receive_count: u32 =
            record.attributes.get("ApproximateReceiveCount").and_then(|v| v.parse().ok()).unwrap_or(1);
        let retry = match record.body.as_deref().map(BuildRequest::from_json) {
            Some(Ok(request)) => {
                matches!(worker.handle(&request, receive_count >= max_receive_count).await, Disposition::Retry(_))
            }
            _ => {
                // Not ours or corrupted: keep it (it ends in the dead-letter queue for a look).
                tracing::error!(%message_id, "the message is not a build request");
                true
            }
        };
        if retry {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = message_id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}
