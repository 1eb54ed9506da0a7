//! The accept Lambda as deployed (function URL event → handler → SQS, secrets from Secrets
//! Manager), with the real AWS SDK clients against a moto server on 127.0.0.1.

use std::collections::HashMap;

use aws_sdk_sqs::types::{MessageSystemAttributeName, QueueAttributeName};
use base64::Engine as _;
use bridge_core::config::AcceptLambdaConfig;
use bridge_core::model::BuildRequest;
use e2e_tests::{CAPTURE_CI_TOKEN, CAPTURE_PROJECT_TOML, Moto, capture_secrets_json, webhook_capture};
use lambda_http::request::LambdaRequest;

/// `PCB_PROJECTS`: the capture project as a top-level table.
fn projects() -> String {
    CAPTURE_PROJECT_TOML.replace("[projects.demo-job]", "[demo-job]")
}

/// A Lambda function URL event (payload format 2.0), as AWS delivers it.
fn function_url_event(
    method: &str,
    raw_path: &str,
    raw_query: &str,
    headers: &[(&str, &str)],
    body: &[u8],
    base64: bool,
) -> lambda_http::Request {
    let mut header_map = serde_json::Map::new();
    header_map.insert("host".into(), "abc123.lambda-url.us-east-1.on.aws".into());
    header_map.insert("x-forwarded-proto".into(), "https".into());
    for (name, value) in headers {
        header_map.insert(name.to_ascii_lowercase(), (*value).into());
    }
    let body = if base64 {
        serde_json::Value::from(base64::engine::general_purpose::STANDARD.encode(body))
    } else if body.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::Value::from(String::from_utf8(body.to_vec()).expect("utf-8 body"))
    };
    let event = serde_json::json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": header_map,
        "requestContext": {
            "accountId": "anonymous", "apiId": "abc123",
            "domainName": "abc123.lambda-url.us-east-1.on.aws", "domainPrefix": "abc123",
            "http": {"method": method, "path": raw_path, "protocol": "HTTP/1.1", "sourceIp": "203.0.113.9", "userAgent": "python-requests/2.31.0"},
            "requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "routeKey": "$default", "stage": "$default",
            "time": "21/Nov/2026:20:00:00 +0000", "timeEpoch": 1_795_291_200_000u64
        },
        "body": body,
        "isBase64Encoded": base64
    });
    let request: LambdaRequest = serde_json::from_value(event).expect("function URL event");
    lambda_http::Request::from(request)
}

struct Aws {
    sqs: aws_sdk_sqs::Client,
    secrets: aws_sdk_secretsmanager::Client,
    sdk: aws_config::SdkConfig,
}

async fn aws(moto: &Moto) -> Aws {
    let sdk = moto.sdk_config().await;
    Aws { sqs: aws_sdk_sqs::Client::new(&sdk), secrets: aws_sdk_secretsmanager::Client::new(&sdk), sdk }
}

impl Aws {
    async fn queue(&self, name: &str) -> String {
        let mut create = self.sqs.create_queue().queue_name(name);
        if name.ends_with(".fifo") {
            create = create.attributes(QueueAttributeName::FifoQueue, "true");
        }
        create.send().await.expect("create queue").queue_url().expect("url").to_owned()
    }

    async fn secret(&self, name: &str, value: &str) {
        self.secrets.create_secret().name(name).secret_string(value).send().await.expect("create secret");
    }

    async fn receive(&self, queue_url: &str) -> Vec<aws_sdk_sqs::types::Message> {
        self.sqs
            .receive_message()
            .queue_url(queue_url)
            .max_number_of_messages(10)
            .message_attribute_names("All")
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await
            .expect("receive")
            .messages
            .unwrap_or_default()
    }

    fn service(&self, vars: &[(&str, &str)]) -> bridge_lambda::accept::LambdaAcceptService {
        let vars: HashMap<String, String> = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        let config = AcceptLambdaConfig::from_env(|k| vars.get(k).cloned()).expect("lambda config");
        bridge_lambda::accept::build_service(config, &self.sdk)
    }
}

async fn call(
    service: &bridge_lambda::accept::LambdaAcceptService,
    request: lambda_http::Request,
) -> (u16, serde_json::Value, Option<String>) {
    let response = bridge_lambda::accept::handle(service, request).await.expect("handler");
    let location = response.headers().get("location").map(|v| v.to_str().expect("ascii").to_owned());
    let body = serde_json::from_slice(response.body().as_ref()).expect("json body");
    (response.status().as_u16(), body, location)
}

fn jenkins_query(token: &str) -> String {
    format!(
        "cause=2&REPO=git%3A%2F%2F127.0.0.1%3A5602%2Fforks%2Fbob%2Fdemo.git&BRANCH=bob-fix&BRANCH_TO=main&token={token}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn function_url_events_land_in_sqs() {
    let moto = Moto::start();
    let aws = aws(&moto).await;
    let queue_url = aws.queue("pcb-builds").await;
    let fifo_url = aws.queue("pcb-builds.fifo").await;
    aws.secret("pcb-secrets", &capture_secrets_json()).await;
    let projects = projects();
    let base = [("PCB_SECRET_ID", "pcb-secrets"), ("PCB_PROJECTS", projects.as_str())];
    let service = aws.service(&[base[0], base[1], ("PCB_QUEUE_URL", &queue_url)]);

    // pagure-ci's Jenkins-style call through the function URL
    let (status, body, location) = call(
        &service,
        function_url_event(
            "POST",
            "/jenkins/job/demo-job/buildWithParameters",
            &jenkins_query(CAPTURE_CI_TOKEN),
            &[("content-length", "0")],
            b"",
            false,
        ),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let messages = aws.receive(&queue_url).await;
    assert_eq!(messages.len(), 1);
    let request = BuildRequest::from_json(messages[0].body().expect("body")).expect("a BuildRequest");
    assert_eq!(
        location.expect("Location"),
        format!("https://abc123.lambda-url.us-east-1.on.aws/jenkins/queue/item/{}/", request.queue_item_number())
    );
    assert_eq!(request.repo_url, "git://127.0.0.1:5602/forks/bob/demo.git");
    assert_eq!(request.project.fork_user.as_deref(), Some("bob"));
    let attributes = messages[0].message_attributes().expect("attributes");
    assert_eq!(attributes["idempotency_key"].string_value(), Some(request.idempotency_key.as_str()));
    assert_eq!(attributes["project"].string_value(), Some("demo-job"));
    assert_eq!(attributes["trigger"].string_value(), Some("jenkins"));

    // a signed web-hook delivered with a base64 body
    let capture = webhook_capture("git.receive");
    let headers: Vec<(&str, &str)> = capture.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let (status, body, _) =
        call(&service, function_url_event("POST", "/webhook/demo-job", "", &headers, &capture.body, true)).await;
    assert_eq!(status, 202, "{body}");
    let messages = aws.receive(&queue_url).await;
    assert_eq!(messages.len(), 1);
    let request = BuildRequest::from_json(messages[0].body().expect("body")).expect("a BuildRequest");
    assert_eq!(request.cause.as_trigger_value(), "05bab967134e26fd2a307065b49ce0bc2a2063ed");
    assert_eq!(body["request_id"], request.request_id.as_str());

    // FIFO: grouped by project, deduplicated by request id
    let fifo = aws.service(&[base[0], base[1], ("PCB_QUEUE_URL", &fifo_url)]);
    let (status, _, _) = call(
        &fifo,
        function_url_event(
            "POST",
            "/job/demo-job/buildWithParameters",
            &jenkins_query(CAPTURE_CI_TOKEN),
            &[],
            b"",
            false,
        ),
    )
    .await;
    assert_eq!(status, 201);
    let messages = aws.receive(&fifo_url).await;
    assert_eq!(messages.len(), 1);
    let system = messages[0].attributes().expect("system attributes");
    assert_eq!(system[&MessageSystemAttributeName::MessageGroupId], "demo-job");
    let request = BuildRequest::from_json(messages[0].body().expect("body")).expect("a BuildRequest");
    assert_eq!(system[&MessageSystemAttributeName::MessageDeduplicationId], request.request_id);

    // a refused call queues nothing
    let (status, body, _) = call(
        &service,
        function_url_event("POST", "/job/demo-job/buildWithParameters", &jenkins_query("WRONG"), &[], b"", false),
    )
    .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")));
    assert!(aws.receive(&queue_url).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_rotate_after_the_ttl_and_outages_answer_503() {
    let projects = projects();
    let moto = Moto::start();
    let aws = aws(&moto).await;
    let queue_url = aws.queue("pcb-builds").await;
    aws.secret("pcb-secrets", &capture_secrets_json()).await;
    let fresh = aws.service(&[
        ("PCB_SECRET_ID", "pcb-secrets"),
        ("PCB_PROJECTS", &projects),
        ("PCB_QUEUE_URL", &queue_url),
        ("PCB_SECRETS_TTL_SECONDS", "0"),
    ]);
    let cached = aws.service(&[
        ("PCB_SECRET_ID", "pcb-secrets"),
        ("PCB_PROJECTS", &projects),
        ("PCB_QUEUE_URL", &queue_url),
        ("PCB_SECRETS_TTL_SECONDS", "3600"),
    ]);
    let jenkins = |token: &str| {
        function_url_event("POST", "/job/demo-job/buildWithParameters", &jenkins_query(token), &[], b"", false)
    };
    assert_eq!(call(&fresh, jenkins(CAPTURE_CI_TOKEN)).await.0, 201);
    assert_eq!(call(&cached, jenkins(CAPTURE_CI_TOKEN)).await.0, 201);

    let rotated = capture_secrets_json().replace(CAPTURE_CI_TOKEN, "ROTATEDTOKEN0000000000000000000");
    aws.secrets.put_secret_value().secret_id("pcb-secrets").secret_string(rotated).send().await.expect("rotate");
    assert_eq!(call(&fresh, jenkins(CAPTURE_CI_TOKEN)).await.0, 401, "TTL 0 sees the rotation");
    assert_eq!(call(&fresh, jenkins("ROTATEDTOKEN0000000000000000000")).await.0, 201);
    assert_eq!(call(&cached, jenkins(CAPTURE_CI_TOKEN)).await.0, 201, "within the TTL the cached copy serves");
    assert_eq!(aws.receive(&queue_url).await.len(), 4);

    let no_queue = aws.service(&[
        ("PCB_SECRET_ID", "pcb-secrets"),
        ("PCB_PROJECTS", &projects),
        ("PCB_QUEUE_URL", &format!("{}/000000000000/missing", moto.endpoint)),
    ]);
    let (status, body, _) = call(&no_queue, jenkins("ROTATEDTOKEN0000000000000000000")).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("queue_unavailable")), "{body}");

    let no_secret =
        aws.service(&[("PCB_SECRET_ID", "missing"), ("PCB_PROJECTS", &projects), ("PCB_QUEUE_URL", &queue_url)]);
    let (status, body, _) = call(&no_secret, jenkins(CAPTURE_CI_TOKEN)).await;
    assert_eq!((status, body["error"].as_str()), (503, Some("secrets_unavailable")), "{body}");
    assert!(aws.receive(&queue_url).await.is_empty(), "nothing queued by the failures");
}
