//! The report function: EventBridge delivers "CodeBuild Build State Change" and "CodePipeline
//! Pipeline Execution State Change" events; each becomes a flag update through bridge-core's
//! report stage ([`bridge_core::report::invoke`]).
//!
//! An EventBridge *schedule* event runs the sweep instead ([`bridge_core::sweep`]): flags
//! still pending `PCB_SWEEP_AFTER_SECONDS` after their pipeline started are settled from
//! CodePipeline and CodeBuild, within the invocation's deadline.
//!
//! An event whose flag cannot be posted fails the invocation, so Lambda's asynchronous
//! retries try again and its dead-letter queue keeps what never succeeds (a 401 too: fix
//! the token, then redrive). Events the bridge did not cause are answered `ignored`.

use bridge_core::report::ReportService;
use bridge_core::report::invoke::handle_with_sweep;
use bridge_core::sweep::Sweeper;

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
pub type LambdaReportService = ReportService<
    bridge_pagure::PagureForge<std::sync::Arc<bridge_core::ports::CachedSecrets<bridge_aws::SecretsManagerSource>>>,
    bridge_aws::CodePipelineLookup,
    Option<bridge_core::sweep::SettlementMarkers<bridge_aws::S3Store>>,
>;

/// The report Lambda: the report stage, and the sweep when the function knows the work
/// stage's bucket (`PCB_BUCKET`).
#[derive(Debug)]
pub struct LambdaReport {
    pub service: LambdaReportService,
    pub sweeper: Option<Sweeper<bridge_aws::S3Store>>,
}

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

/// Serves EventBridge events until the runtime stops.
pub async fn serve(function: &LambdaReport) -> Result<(), crate::Error> {
    lambda_runtime::run(lambda_runtime::service_fn(|event| function.handle(event))).await
}
