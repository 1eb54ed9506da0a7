use bridge_core::config::WorkLambdaConfig;
use lambda_runtime::{run, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    bridge_aws::init_lambda_tracing();
    // libgit2's timeouts are process-wide: set them before the runtime starts threads.
    bridge_git::init_libgit2(std::time::Duration::from_secs(10), std::time::Duration::from_secs(60))?;
    let config = WorkLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let function = work::WorkFunction::new(&config, &aws_config::load_from_env().await)?;
        run(service_fn(|event| async { Ok::<_, lambda_runtime::Error>(function.handle(event).await) })).await
    })
}
