use bridge_core::config::AcceptLambdaConfig;
use lambda_http::{run, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    bridge_aws::init_lambda_tracing();
    let config = AcceptLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    let aws = aws_config::load_from_env().await;
    let service = accept::build_service(config, &aws);
    run(service_fn(|request| accept::handle(&service, request))).await
}
