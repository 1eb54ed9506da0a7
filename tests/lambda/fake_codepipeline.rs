//! CodePipeline for the Lambda runs: moto has no `StartPipelineExecution` (its CodePipeline
//! only stores pipeline definitions), so the functions reach this fake through
//! `AWS_ENDPOINT_URL_CODEPIPELINE` (the SDK's service-specific endpoint variable) while
//! every other service goes to moto.
//!
//! It speaks CodePipeline's JSON 1.1 protocol for the three calls the bridge makes
//! (`StartPipelineExecution`, `GetPipelineExecution`, `ListActionExecutions`) and knows only
//! the pipelines it is given, as the template declares them: a start is refused, as AWS
//! refuses it, for an unknown pipeline (`PipelineNotFoundException`), a source override on
//! an action that is not the pipeline's S3 source or does not allow key overrides, or a
//! variable the pipeline does not declare (`ValidationException`). A repeated client request
//! token returns the first execution, as AWS does.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};

/// A pipeline as the template defines it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipelineSpec {
    pub name: String,
    /// The S3 source action: its name, bucket, whether it allows `S3_OBJECT_KEY` overrides.
    pub source_action: String,
    pub source_bucket: String,
    pub allow_key_override: bool,
    pub variables: Vec<String>,
    /// The CodeBuild action: its project and `EnvironmentVariables` text (with
    /// `#{variables.NAME}` and `#{codepipeline.PipelineExecutionId}` still in it).
    pub build_project: String,
    pub build_environment: String,
}

/// One started execution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    pub pipeline: String,
    pub id: String,
    pub source_key: String,
    pub variables: BTreeMap<String, String>,
    pub client_request_token: Option<String>,
    /// The CodeBuild build of this execution, once the test says one ran.
    pub build_id: Option<String>,
}

impl Execution {
    /// The environment variables CodeBuild would get from the pipeline's build action: its
    /// `EnvironmentVariables` JSON text with this execution's values pasted in.
    pub fn build_environment(&self, spec: &PipelineSpec) -> Vec<Value> {
        let mut text = spec.build_environment.replace("#{codepipeline.PipelineExecutionId}", &self.id);
        for (name, value) in &self.variables {
            text = text.replace(&format!("#{{variables.{name}}}"), value);
        }
        assert!(!text.contains("#{"), "an unresolved pipeline variable in the build action: {text}");
        serde_json::from_str::<Vec<Value>>(&text).unwrap_or_else(|e| panic!("the build action's JSON: {e}: {text}"))
    }
}

#[derive(Debug, Default)]
struct State {
    pipelines: Vec<PipelineSpec>,
    executions: Vec<Execution>,
    refused: Vec<String>,
}

#[derive(Debug)]
pub struct FakeCodePipeline {
    pub endpoint: String,
    state: Arc<Mutex<State>>,
    _stop: tokio::sync::oneshot::Sender<()>,
}

impl FakeCodePipeline {
    pub async fn start(pipelines: Vec<PipelineSpec>) -> FakeCodePipeline {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let endpoint = format!("http://{}", listener.local_addr().expect("addr"));
        let state = Arc::new(Mutex::new(State { pipelines, ..State::default() }));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let served = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => match accepted { Ok(a) => a, Err(_) => return },
                };
                let state = served.clone();
                tokio::spawn(async move {
                    let handler = service_fn(move |request| handle(state.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await;
                });
            }
        });
        FakeCodePipeline { endpoint, state, _stop: stop }
    }

    pub fn executions(&self) -> Vec<Execution> {
        self.state.lock().expect("state").executions.clone()
    }

    /// Calls refused, with AWS's error type and message.
    pub fn refused(&self) -> Vec<String> {
        self.state.lock().expect("state").refused.clone()
    }

    pub fn pipeline(&self, name: &str) -> PipelineSpec {
        let state = self.state.lock().expect("state");
        state.pipelines.iter().find(|p| p.name == name).cloned().unwrap_or_else(|| panic!("no pipeline {name}"))
    }

    /// Records that the execution's CodeBuild action ran as `build_id` (ListActionExecutions
    /// then shows it).
    pub fn build_ran(&self, execution_id: &str, build_id: &str) {
        let mut state = self.state.lock().expect("state");
        let execution = state.executions.iter_mut().find(|e| e.id == execution_id).expect("execution");
        execution.build_id = Some(build_id.to_owned());
    }
}

fn answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amzn-requestid", uuid::Uuid::new_v4().to_string())
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("response")
}

fn refuse(state: &mut State, kind: &str, message: String) -> Response<Full<Bytes>> {
    state.refused.push(format!("{kind}: {message}"));
    answer(400, json!({"__type": kind, "message": message}))
}

async fn handle(state: Arc<Mutex<State>>, request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let target = request.headers().get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    let body = request.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let input: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let mut state = state.lock().expect("state");
    let operation = target.strip_prefix("CodePipeline_20150709.").unwrap_or(&target);
    Ok(match operation {
        "StartPipelineExecution" => start(&mut state, &input),
        "GetPipelineExecution" => {
            let (name, id) = (
                input["pipelineName"].as_str().unwrap_or_default(),
                input["pipelineExecutionId"].as_str().unwrap_or_default(),
            );
            if !state.pipelines.iter().any(|p| p.name == name) {
                return Ok(refuse(&mut state, "PipelineNotFoundException", format!("Pipeline {name} not found")));
            }
            match state.executions.iter().find(|e| e.pipeline == name && e.id == id) {
                None => refuse(&mut state, "PipelineExecutionNotFoundException", format!("Execution {id} not found")),
                Some(e) => answer(
                    200,
                    json!({"pipelineExecution": {
                        "pipelineName": e.pipeline, "pipelineVersion": 1, "pipelineExecutionId": e.id,
                        "status": if e.build_id.is_some() { "Succeeded" } else { "Failed" },
                        "executionMode": "PARALLEL", "executionType": "STANDARD",
                        "variables": e.variables.iter().map(|(k, v)| json!({"name": k, "resolvedValue": v})).collect::<Vec<_>>(),
                        "trigger": {"triggerType": "StartPipelineExecution", "triggerDetail": "arn:aws:sts::123456789012:assumed-role/work/work"}
                    }}),
                ),
            }
        }
        "ListActionExecutions" => {
            let name = input["pipelineName"].as_str().unwrap_or_default();
            let Some(spec) = state.pipelines.iter().find(|p| p.name == name).cloned() else {
                return Ok(refuse(&mut state, "PipelineNotFoundException", format!("Pipeline {name} not found")));
            };
            let filter = input.pointer("/filter/pipelineExecutionId").and_then(Value::as_str);
            let details: Vec<Value> = state
                .executions
                .iter()
                .rev()
                .filter(|e| e.pipeline == name && filter.is_none_or(|id| id == e.id))
                .flat_map(|e| {
                    let source = json!({
                        "pipelineExecutionId": e.id, "actionExecutionId": uuid::Uuid::new_v4().to_string(),
                        "pipelineVersion": 1, "stageName": "Source", "actionName": spec.source_action, "status": "Succeeded",
                        "input": {"actionTypeId": {"category": "Source", "owner": "AWS", "provider": "S3", "version": "1"}},
                        "output": {"executionResult": {"externalExecutionId": e.source_key}}
                    });
                    let build = e.build_id.as_ref().map(|build| json!({
                        "pipelineExecutionId": e.id, "actionExecutionId": uuid::Uuid::new_v4().to_string(),
                        "pipelineVersion": 1, "stageName": "Build", "actionName": "Build", "status": "Succeeded",
                        "input": {"actionTypeId": {"category": "Build", "owner": "AWS", "provider": "CodeBuild", "version": "1"},
                                  "configuration": {"ProjectName": spec.build_project}},
                        "output": {"executionResult": {"externalExecutionId": build}}
                    }));
                    build.into_iter().chain([source])
                })
                .collect();
            answer(200, json!({"actionExecutionDetails": details}))
        }
        other => refuse(&mut state, "UnknownOperationException", format!("the fake does not implement `{other}`")),
    })
}

fn start(state: &mut State, input: &Value) -> Response<Full<Bytes>> {
    let name = input["name"].as_str().unwrap_or_default().to_owned();
    let Some(spec) = state.pipelines.iter().find(|p| p.name == name).cloned() else {
        return refuse(state, "PipelineNotFoundException", format!("Pipeline {name} not found"));
    };
    let token = input["clientRequestToken"].as_str().map(str::to_owned);
    if let Some(token) = &token
        && let Some(first) = state.executions.iter().find(|e| e.client_request_token.as_ref() == Some(token))
    {
        return answer(200, json!({"pipelineExecutionId": first.id}));
    }
    let mut source_key = None;
    for revision in input["sourceRevisions"].as_array().into_iter().flatten() {
        let action = revision["actionName"].as_str().unwrap_or_default();
        if action != spec.source_action {
            return refuse(state, "ValidationException", format!("action {action} is not a source action of {name}"));
        }
        match revision["revisionType"].as_str() {
            Some("S3_OBJECT_KEY") if spec.allow_key_override => {
                source_key = revision["revisionValue"].as_str().map(str::to_owned);
            }
            Some("S3_OBJECT_KEY") => {
                return refuse(
                    state,
                    "ValidationException",
                    format!("{action} does not set AllowOverrideForS3ObjectKey"),
                );
            }
            other => {
                return refuse(
                    state,
                    "ValidationException",
                    format!("revision type {other:?} is not handled by the fake"),
                );
            }
        }
    }
    let mut variables = BTreeMap::new();
    for variable in input["variables"].as_array().into_iter().flatten() {
        let (Some(variable_name), Some(value)) = (variable["name"].as_str(), variable["value"].as_str()) else {
            return refuse(state, "ValidationException", format!("a variable without name or value: {variable}"));
        };
        if !spec.variables.iter().any(|v| v == variable_name) {
            return refuse(state, "ValidationException", format!("{name} declares no variable {variable_name}"));
        }
        if value.is_empty() {
            return refuse(state, "ValidationException", format!("variable {variable_name} is empty"));
        }
        variables.insert(variable_name.to_owned(), value.to_owned());
    }
    let Some(source_key) = source_key else {
        return refuse(
            state,
            "ValidationException",
            "the fake expects an S3_OBJECT_KEY override (the bridge always sends one)".into(),
        );
    };
    let id = uuid::Uuid::new_v4().to_string();
    state.executions.push(Execution {
        pipeline: name,
        id: id.clone(),
        source_key,
        variables,
        client_request_token: token,
        build_id: None,
    });
    answer(200, json!({"pipelineExecutionId": id}))
}
