use bridge_core::config::WorkLambdaConfig;
use lambda_runtime::{LambdaEvent, run, service_fn};

fn main() -> Result<(), lambda_runtime::Error> {
    bridge_aws::init_lambda_tracing();
    // libgit2's timeouts are process-wide: set them before the runtime starts threads.
    bridge_git::init_libgit2(std::time::Duration::from_secs(10), std::time::Duration::from_secs(60))?;
    let config = WorkLambdaConfig::from_env(|key| std::env::var(key).ok())?;
    tokio::runtime::Runtime::new()?.block_on(async {
        let worker = work::build_worker(&config, &aws_config::load_from_env().await)?;
        let handler = |event: LambdaEvent<_>| work::handle_batch(&worker, event.payload, config.max_receive_count);
        run(service_fn(|event| async { Ok::<_, lambda_runtime::Error>(handler(event).await) })).await
    })
}
