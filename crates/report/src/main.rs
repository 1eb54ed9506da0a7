use bridge_core::config::ReportLambdaConfig;
use lambda_runtime::{run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    bridge_aws::init_lambda_tracing();
    let config = ReportLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    let lambda = report::build_service(&config, &aws_config::load_from_env().await)?;
    run(service_fn(|event| lambda.handle(event))).await
}
