use bridge_core::config::ReportLambdaConfig;
use lambda_runtime::{LambdaEvent, run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    bridge_aws::init_lambda_tracing();
    let config = ReportLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    let service = report::build_service(&config, &aws_config::load_from_env().await)?;
    run(service_fn(|event: LambdaEvent<serde_json::Value>| async {
        report::handle(&service, event.payload).await.map_err(lambda_runtime::Error::from)
    }))
    .await
}
