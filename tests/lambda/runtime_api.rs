//! A Lambda Runtime API emulator: one HTTP server per function on 127.0.0.1, speaking the
//! API a custom runtime (`provided.al2023`, or `awslambdaric`) polls:
//! `GET /2018-06-01/runtime/invocation/next` (answered when an invocation is queued, with
//! the `Lambda-Runtime-Aws-Request-Id`, `-Deadline-Ms`, `-Invoked-Function-Arn` and
//! `-Trace-Id` headers), `POST …/invocation/<id>/response`, `POST …/invocation/<id>/error`
//! and `POST /2018-06-01/runtime/init/error`.
//!
//! The function is a process started with `AWS_LAMBDA_RUNTIME_API` and the other variables
//! the Lambda service sets, on an otherwise empty environment (so that it sees exactly what
//! a deployment gives it). Its init duration is the time from the spawn to its first
//! `/next` request, as Lambda's `Init Duration` counts it. Its output (stdout and stderr)
//! is kept for error messages and, when asked, appended to a log file.

use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};

pub const ACCOUNT: &str = "123456789012";
pub const REGION: &str = "us-east-1";

/// How to start a function.
#[derive(Debug, Clone)]
pub struct FunctionSpec {
    pub name: String,
    /// The program and its arguments (a `bootstrap`, or `python -m awslambdaric handler`).
    pub command: Vec<String>,
    /// The function's own environment (the template's variables).
    pub environment: BTreeMap<String, String>,
    /// What the test environment adds that a deployment gets from elsewhere (endpoints of
    /// the emulated services, dummy credentials in place of the role's, the log variables
    /// the Lambda service derives from the function's `LoggingConfig`).
    pub test_environment: BTreeMap<String, String>,
    pub memory_mb: u32,
    pub timeout: Duration,
    pub working_dir: Option<PathBuf>,
    /// Where the function's output is appended (JSON lines, as CloudWatch would keep them).
    pub log_file: Option<PathBuf>,
}

/// What an invocation ended with.
#[derive(Debug, Clone)]
pub enum Outcome {
    Response(Bytes),
    /// `/error`: the `Lambda-Runtime-Function-Error-Type` header and the body.
    Error(String, String),
}

struct Invocation {
    id: String,
    event: Bytes,
    deadline_ms: u128,
    done: oneshot::Sender<Outcome>,
}

struct State {
    name: String,
    queue: tokio::sync::Mutex<mpsc::Receiver<Invocation>>,
    running: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    first_next: watch::Sender<Option<Instant>>,
    init_error: Mutex<Option<String>>,
}

/// A running function and its Runtime API.
pub struct Function {
    pub spec: FunctionSpec,
    pub spawned: Instant,
    state: Arc<State>,
    sender: mpsc::Sender<Invocation>,
    child: tokio::process::Child,
    output: Arc<Mutex<String>>,
    _stop: oneshot::Sender<()>,
}

impl std::fmt::Debug for Function {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Function").field("name", &self.spec.name).finish()
    }
}

/// The variables the Lambda service sets for every function (reserved: a template may not
/// set them), for a custom runtime.
pub fn lambda_environment(spec: &FunctionSpec, runtime_api: &str) -> BTreeMap<String, String> {
    let name = &spec.name;
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_owned()),
        ("AWS_LAMBDA_FUNCTION_NAME", name.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", spec.memory_mb.to_string()),
        ("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}")),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/12/01/[$LATEST]0123456789abcdef0123456789abcdef".to_owned()),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand".to_owned()),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023".to_owned()),
        ("_HANDLER", "bootstrap".to_owned()),
        ("LAMBDA_TASK_ROOT", spec.working_dir.as_ref().map_or("/var/task".to_owned(), |d| d.display().to_string())),
        ("LAMBDA_RUNTIME_DIR", "/var/runtime".to_owned()),
        ("TZ", ":UTC".to_owned()),
        ("LANG", "en_US.UTF-8".to_owned()),
        ("PATH", "/usr/local/bin:/usr/bin/:/bin:/opt/bin".to_owned()),
        (
            "LD_LIBRARY_PATH",
            "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/var/task:/var/task/lib:/opt/lib".to_owned(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Names the Lambda service reserves (a function's configuration may not set them).
pub const RESERVED: &[&str] = &[
    "_HANDLER",
    "_X_AMZN_TRACE_ID",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_EXECUTION_ENV",
    "AWS_LAMBDA_FUNCTION_NAME",
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "AWS_LAMBDA_FUNCTION_VERSION",
    "AWS_LAMBDA_INITIALIZATION_TYPE",
    "AWS_LAMBDA_LOG_GROUP_NAME",
    "AWS_LAMBDA_LOG_STREAM_NAME",
    "AWS_ACCESS_KEY",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_LAMBDA_RUNTIME_API",
    "LAMBDA_TASK_ROOT",
    "LAMBDA_RUNTIME_DIR",
];

impl Function {
    /// Starts the Runtime API and then the process. Returns at once: see [`Function::ready`].
    pub async fn start(spec: FunctionSpec) -> Result<Function, String> {
        if let Some(reserved) = spec.environment.keys().find(|k| RESERVED.contains(&k.as_str())) {
            return Err(format!("{}: the environment sets `{reserved}`, which Lambda reserves", spec.name));
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| e.to_string())?;
        let runtime_api = listener.local_addr().map_err(|e| e.to_string())?.to_string();
        let (sender, receiver) = mpsc::channel(16);
        let state = Arc::new(State {
            name: spec.name.clone(),
            queue: tokio::sync::Mutex::new(receiver),
            running: Mutex::new(HashMap::new()),
            first_next: watch::channel(None).0,
            init_error: Mutex::new(None),
        });
        let (stop, mut stopped) = oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let handler = service_fn(move |request| route(state.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await;
                });
            }
        });

        let [program, args @ ..] = spec.command.as_slice() else { return Err("an empty command".into()) };
        let mut command = tokio::process::Command::new(program);
        command
            .args(args)
            .env_clear()
            .envs(lambda_environment(&spec, &runtime_api))
            .envs(&spec.environment)
            .envs(&spec.test_environment)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(dir) = &spec.working_dir {
            command.current_dir(dir);
        }
        let spawned = Instant::now();
        let mut child = command.spawn().map_err(|e| format!("{}: cannot start {program}: {e}", spec.name))?;
        let output = Arc::new(Mutex::new(String::new()));
        let log = match &spec.log_file {
            Some(path) => Some(Arc::new(tokio::sync::Mutex::new(
                tokio::fs::OpenOptions::new().create(true).append(true).open(path).await.map_err(|e| e.to_string())?,
            ))),
            None => None,
        };
        let stdout = child.stdout.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
        let stderr = child.stderr.take().map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>);
        for stream in [stdout, stderr].into_iter().flatten() {
            let output = output.clone();
            let log = log.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if let Some(log) = &log {
                        let _ = log.lock().await.write_all(format!("{line}\n").as_bytes()).await;
                    }
                    let mut kept = output.lock().expect("output");
                    kept.push_str(&line);
                    kept.push('\n');
                }
            });
        }
        Ok(Function { spec, spawned, state, sender, child, output, _stop: stop })
    }

    /// What the process printed so far (its last 6,000 characters).
    pub fn output(&self) -> String {
        let text = self.output.lock().expect("output").clone();
        let cut = text.char_indices().rev().nth(6_000).map_or(0, |(i, _)| i);
        text[cut..].to_owned()
    }

    /// Every line the process printed so far (stdout and stderr, each line whole).
    pub fn lines(&self) -> Vec<String> {
        self.output.lock().expect("output").lines().map(str::to_owned).collect()
    }

    /// Waits until the runtime asks for its first event; the init duration. An error (with
    /// the process's output) when it exits, reports an init error, or takes longer than
    /// `limit` (Lambda's init phase is limited to 10 s).
    pub async fn ready(&mut self, limit: Duration) -> Result<Duration, String> {
        let mut first = self.state.first_next.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            if let Some(at) = *first.borrow_and_update() {
                return Ok(at - self.spawned);
            }
            if let Some(error) = self.state.init_error.lock().expect("init error").clone() {
                return Err(format!(
                    "{}: init error reported to /init/error: {error}\n{}",
                    self.spec.name,
                    self.output()
                ));
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the output readers drain.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Err(format!(
                    "{}: the process exited ({status}) before asking for an event; its output:\n{}",
                    self.spec.name,
                    self.output()
                ));
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(format!(
                    "{}: no /next request within {limit:?}; output:\n{}",
                    self.spec.name,
                    self.output()
                ));
            }
            let _ = tokio::time::timeout(Duration::from_millis(20), first.changed()).await;
        }
    }

    /// One synchronous invocation: the event goes to the next `/next`, the answer is what
    /// the runtime posts to `/response` or `/error`. Fails after the function's timeout.
    pub async fn invoke_raw(&mut self, event: &serde_json::Value) -> Result<Outcome, String> {
        self.ready(Duration::from_secs(10)).await?;
        let id = uuid::Uuid::new_v4().to_string();
        let deadline = SystemTime::now() + self.spec.timeout;
        let (done, answer) = oneshot::channel();
        let invocation = Invocation {
            id: id.clone(),
            event: Bytes::from(serde_json::to_vec(event).expect("event json")),
            deadline_ms: deadline.duration_since(UNIX_EPOCH).expect("clock").as_millis(),
            done,
        };
        self.sender.send(invocation).await.map_err(|_| "the emulator stopped".to_owned())?;
        match tokio::time::timeout(self.spec.timeout + Duration::from_secs(1), answer).await {
            Ok(Ok(outcome)) => Ok(outcome),
            Ok(Err(_)) => Err(format!("{}: invocation {id} dropped; output:\n{}", self.spec.name, self.output())),
            Err(_) => Err(format!(
                "{}: invocation {id} timed out after {:?}; output:\n{}",
                self.spec.name,
                self.spec.timeout,
                self.output()
            )),
        }
    }

    /// An invocation that must succeed: the function's JSON answer.
    pub async fn invoke(&mut self, event: &serde_json::Value) -> serde_json::Value {
        match self.invoke_raw(event).await {
            Ok(Outcome::Response(body)) => serde_json::from_slice(&body).unwrap_or_else(|e| {
                panic!("{}: the response is not JSON ({e}): {}", self.spec.name, String::from_utf8_lossy(&body))
            }),
            Ok(Outcome::Error(kind, body)) => {
                panic!("{}: the invocation failed ({kind}): {body}\noutput:\n{}", self.spec.name, self.output())
            }
            Err(e) => panic!("{e}"),
        }
    }

    /// Stops the process.
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

fn respond(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_owned())))
        .expect("response")
}

const PREFIX: &str = "/2018-06-01/runtime/";

async fn route(state: Arc<State>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let error_type = request
        .headers()
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("Unhandled")
        .to_owned();
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let Some(rest) = path.strip_prefix(PREFIX) else {
        return Ok(respond(StatusCode::NOT_FOUND, r#"{"errorMessage":"unknown path","errorType":"InvalidRequest"}"#));
    };
    match (method.as_str(), rest.split('/').collect::<Vec<_>>().as_slice()) {
        ("GET", ["invocation", "next"]) => {
            state.first_next.send_if_modified(|first| {
                if first.is_none() {
                    *first = Some(Instant::now());
                    true
                } else {
                    false
                }
            });
            let Some(invocation) = state.queue.lock().await.recv().await else {
                return Ok(respond(StatusCode::GONE, r#"{"errorMessage":"stopped"}"#));
            };
            state.running.lock().expect("running").insert(invocation.id.clone(), invocation.done);
            let trace = format!(
                "Root=1-{:08x}-{};Parent={};Sampled=0",
                SystemTime::now().duration_since(UNIX_EPOCH).expect("clock").as_secs(),
                &uuid::Uuid::new_v4().simple().to_string()[..24],
                &uuid::Uuid::new_v4().simple().to_string()[..16]
            );
            let response = Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header("lambda-runtime-aws-request-id", &invocation.id)
                .header("lambda-runtime-deadline-ms", invocation.deadline_ms.to_string())
                .header(
                    "lambda-runtime-invoked-function-arn",
                    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:function:{}", state.name),
                )
                .header("lambda-runtime-trace-id", trace)
                .body(Full::new(invocation.event))
                .expect("response");
            Ok(response)
        }
        ("POST", ["invocation", id, kind @ ("response" | "error")]) => {
            let Some(done) = state.running.lock().expect("running").remove(*id) else {
                return Ok(respond(
                    StatusCode::BAD_REQUEST,
                    r#"{"errorMessage":"unknown or finished request id","errorType":"InvalidRequestID"}"#,
                ));
            };
            let outcome = if *kind == "response" {
                Outcome::Response(body)
            } else {
                Outcome::Error(error_type, String::from_utf8_lossy(&body).into_owned())
            };
            let _ = done.send(outcome);
            Ok(respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        ("POST", ["init", "error"]) => {
            *state.init_error.lock().expect("init error") =
                Some(format!("{error_type}: {}", String::from_utf8_lossy(&body)));
            Ok(respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#))
        }
        _ => Ok(respond(StatusCode::NOT_FOUND, r#"{"errorMessage":"unknown path","errorType":"InvalidRequest"}"#)),
    }
}
