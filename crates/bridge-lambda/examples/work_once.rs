//! Benchmark helper (scripts/bench-work): one build request, read from the JSON file named
//! by the first argument, through the real worker (fetch, inject, zip, S3 upload), with the
//! work Lambda's environment configuration. Starts no pipeline (the baseline does not
//! either) and reads no secrets.

use bridge_aws::{Encryption, S3Store};
use bridge_core::config::WorkLambdaConfig;
use bridge_core::forge::LogStatus;
use bridge_core::model::BuildRequest;
use bridge_core::ports::SecretsDocument;
use bridge_core::work::{Disposition, WorkSettings, Worker};
use bridge_git::GitFetcher;
use bridge_local::{LocalPipeline, StaticSecrets};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    bridge_git::init_libgit2(std::time::Duration::from_secs(10), std::time::Duration::from_secs(60))?;
    let config = WorkLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    let path = std::env::args().nth(1).ok_or("usage: work_once REQUEST.json")?;
    let request = BuildRequest::from_json(&std::fs::read_to_string(path)?)?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let aws = aws_config::load_from_env().await;
        let store = S3Store::new(aws_sdk_s3::Client::new(&aws), &config.bucket, Encryption::S3Managed);
        let settings =
            WorkSettings { key_prefix: config.key_prefix.clone(), ..WorkSettings::with_limits(&config.work) };
        let secrets = StaticSecrets::new(SecretsDocument::default());
        let worker = Worker::new(
            config.accept.clone(),
            settings,
            GitFetcher::default(),
            store,
            LocalPipeline::new("http://localhost/"),
            LogStatus,
            secrets,
        );
        match worker.handle(&request, true).await {
            Disposition::Done(ending) => {
                println!("{ending:?}");
                Ok(())
            }
            Disposition::Retry(reason) => Err(reason.into()),
        }
    })
}
