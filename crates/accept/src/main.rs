use bridge_core::config::AcceptLambdaConfig;
use bridge_lambda::accept;

#[tokio::main]
async fn main() -> Result<(), bridge_lambda::Error> {
    bridge_lambda::init_tracing();
    let config = AcceptLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    let service = accept::build_service(config, &aws_config::load_from_env().await);
    accept::serve(&service).await
}
