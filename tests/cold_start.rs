//! Cold starts under the Lambda Runtime API emulator (`scripts/bench-cold-start` runs this;
//! not a test): each Rust function (release build for the host, the SAM template's
//! environment, moto behind it) and, as the baseline measured in the same run, a Python boto3
//! function doing the accept job (`bench/accept_function.py` under `awslambdaric`).
//!
//! Per run and function: the init duration (process spawn → first `/next` request, what
//! Lambda reports as `Init Duration`) and, for both accept functions, the first invocation
//! (a JSON trigger: secret fetched, SQS message sent, 202). Prints the medians of `RUNS` runs
//! (default 10) and their ratios to the Python baseline.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use e2e_tests::Moto;
use e2e_tests::lambda::runtime_api::{Function, FunctionSpec, Outcome};
use e2e_tests::lambda::stack::{TestStack, configure_project, function_url_event, put_registry, sam_template};
use serde_json::json;

const TOKEN: &str = "COLDSTARTTRIGGERTOKEN0123456789";

fn median(values: &mut [Duration]) -> Duration {
    values.sort();
    let n = values.len();
    if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2 }
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let runs: usize = std::env::var("RUNS").ok().and_then(|r| r.parse().ok()).unwrap_or(10);
    let root = e2e_tests::root();
    let venv = e2e_tests::venv();
    let moto = Moto::start();
    let (template, registry) =
        configure_project(sam_template(), "https://pagure.example.org/", "https://pagure.example.org").await;
    let secret = json!({"projects": {"demo": {"trigger_token": TOKEN}}}).to_string();
    let mut stack = TestStack::create(&template, &moto, &secret).await;
    // BUILD=debug measures the debug build (a quick check of this program), else release.
    let release = std::env::var("BUILD").as_deref() != Ok("debug");
    let binaries = tokio::task::spawn_blocking(move || e2e_tests::lambda::stack::lambda_binaries(release));
    binaries.await.expect("build");
    let mut specs: BTreeMap<&str, FunctionSpec> = BTreeMap::new();
    for binary in ["accept", "work", "report"] {
        let mut spec =
            stack.function_built(&template, binary, "http://127.0.0.1:9", release).unwrap_or_else(|e| panic!("{e}"));
        spec.log_file = None;
        specs.insert(binary, spec);
    }
    put_registry(&moto, &specs["accept"], registry.as_ref()).await;
    // The baseline: the same environment as the Rust accept function, Python's runtime client.
    let python = FunctionSpec {
        name: "python-accept".into(),
        command: vec![
            venv.join("bin/python").display().to_string(),
            "-m".into(),
            "awslambdaric".into(),
            "accept_function.handler".into(),
        ],
        working_dir: Some(root.join("bench")),
        ..specs["accept"].clone()
    };
    specs.insert("python-accept", python);

    let event = function_url_event(
        "POST",
        "/trigger/demo",
        &[("authorization", &format!("token {TOKEN}")), ("content-type", "application/json")],
        &json!({"cause": "0123456789abcdef0123456789abcdef01234567", "repo": "https://pagure.example.org/demo.git", "branch": "main", "branch_to": null}).to_string(),
    );
    let mut init: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    let mut first: BTreeMap<&str, Vec<Duration>> = BTreeMap::new();
    for run in 0..runs {
        for (name, spec) in &specs {
            let mut function = Function::start(spec.clone()).await.expect("start");
            let took = function.ready(Duration::from_secs(10)).await.unwrap_or_else(|e| panic!("{e}"));
            init.entry(name).or_default().push(took);
            if name.ends_with("accept") {
                let started = Instant::now();
                match function.invoke_raw(&event).await {
                    Ok(Outcome::Response(body)) => {
                        let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
                        assert_eq!(answer["statusCode"], 202, "{name}: {answer}\n{}", function.output());
                    }
                    other => panic!("{name}: {other:?}\n{}", function.output()),
                }
                first.entry(name).or_default().push(started.elapsed());
            }
            function.stop().await;
        }
        eprintln!("run {}/{runs} done", run + 1);
    }
    let baseline_init = median(init.get_mut("python-accept").expect("baseline"));
    let baseline_first = median(first.get_mut("python-accept").expect("baseline"));
    println!(
        "cold start under the Runtime API emulator, medians of {runs} runs (Rust: {} build for the host)",
        if release { "release" } else { "debug" }
    );
    println!("{:<14} {:>12} {:>9} {:>16} {:>9}", "function", "init", "× python", "first invoke", "× python");
    for (name, values) in &mut init {
        let i = median(values);
        let (f, fr) = match first.get_mut(name) {
            Some(v) => {
                let f = median(v);
                (ms(f), format!("{:.2}", f.as_secs_f64() / baseline_first.as_secs_f64()))
            }
            None => ("-".into(), "-".into()),
        };
        println!(
            "{:<14} {:>12} {:>9.2} {:>16} {:>9}",
            name,
            ms(i),
            i.as_secs_f64() / baseline_init.as_secs_f64(),
            f,
            fr
        );
    }
}
