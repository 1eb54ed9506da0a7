//! Every kind of bad input, through the real handler: right status, JSON error body with a
//! code and a reason, nothing queued, and no credential in any log line.

use e2e_tests::{
    CAPTURE_CI_TOKEN, CAPTURE_HOOK_TOKEN, CAPTURE_PROJECT_TOML, capture_logs, capture_project_as, local_service,
    trigger_request, webhook_headers,
};

fn config() -> String {
    [
        "[accept]\nsource_cidrs = [\"127.0.0.0/8\", \"::1/128\"]\n".to_owned(),
        CAPTURE_PROJECT_TOML.to_owned(),
        capture_project_as("jenkins-only", "triggers = [\"jenkins\"]"),
        capture_project_as("folder/secured", ""),
        capture_project_as("no-secrets", ""),
    ]
    .concat()
}

const BASIC_PASSWORD: &str = "basic-password-s3cret";

fn secrets() -> String {
    serde_json::json!({"projects": {
        "demo-job": {"trigger_token": CAPTURE_CI_TOKEN, "hook_token": CAPTURE_HOOK_TOKEN},
        "jenkins-only": {"trigger_token": CAPTURE_CI_TOKEN, "hook_token": CAPTURE_HOOK_TOKEN},
        "folder/secured": {"trigger_token": CAPTURE_CI_TOKEN, "jenkins_username": "pagure", "jenkins_password": BASIC_PASSWORD},
    }})
    .to_string()
}

const SHA: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
const REPO: &str = "git%3A%2F%2F127.0.0.1%3A5602%2Fdemo.git";

fn jenkins(query: &str) -> String {
    format!("/jenkins/job/demo-job/buildWithParameters?{query}")
}

fn jenkins_ok(overrides: &[(&str, &str)]) -> String {
    let mut params = vec![
        ("cause", SHA.to_owned()),
        ("REPO", REPO.to_owned()),
        ("BRANCH", "main".into()),
        ("BRANCH_TO", "None".into()),
        ("token", CAPTURE_CI_TOKEN.into()),
    ];
    for (name, value) in overrides {
        params.retain(|(n, _)| n != name);
        if !value.is_empty() || *name == "BRANCH" {
            params.push((name, (*value).to_owned()));
        }
    }
    jenkins(&params.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("&"))
}

fn json_body(cause: &str, repo: &str, branch: &str, branch_to: Option<&str>) -> Vec<u8> {
    serde_json::json!({"cause": cause, "repo": repo, "branch": branch, "branch_to": branch_to}).to_string().into_bytes()
}

struct Case {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    source_ip: Option<&'static str>,
    status: u16,
    code: &'static str,
}

fn case(name: &'static str, method: &'static str, path: impl Into<String>, status: u16, code: &'static str) -> Case {
    Case { name, method, path: path.into(), headers: vec![], body: vec![], source_ip: Some("127.0.0.1"), status, code }
}

impl Case {
    /// Sets a header, replacing one of the same name.
    fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        if !value.is_empty() {
            self.headers.push((name.into(), value.into()));
        }
        self
    }
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }
    fn json(self, body: Vec<u8>) -> Self {
        self.header("Content-Type", "application/json")
            .header("Authorization", &format!("token {CAPTURE_CI_TOKEN}"))
            .body(body)
    }
    fn signed_webhook(mut self, topic: &str, body: &[u8]) -> Self {
        self.headers.extend(webhook_headers(topic, body, CAPTURE_HOOK_TOKEN));
        self.body = body.to_vec();
        self
    }
    fn from(mut self, ip: Option<&'static str>) -> Self {
        self.source_ip = ip;
        self
    }
}

fn git_receive(branch: &str, end_commit: &str) -> Vec<u8> {
    serde_json::json!({"i": 1, "msg_id": "2026-x", "timestamp": 1, "topic": "git.receive",
        "msg": {"branch": branch, "end_commit": end_commit, "project_fullname": "demo", "pagure_instance": "http://127.0.0.1:5600/"}})
    .to_string()
    .into_bytes()
}

fn cases() -> Vec<Case> {
    let repo = "git://127.0.0.1:5602/demo.git";
    let pr = |branch: &str, to: Option<&str>| json_body("1", repo, branch, to);
    let receive = git_receive("main", SHA);
    vec![
        // routing and methods
        case("unknown path", "GET", "/nope", 404, "not_found"),
        case("root", "GET", "/", 404, "not_found"),
        case("job without a name", "POST", "/job//buildWithParameters", 404, "not_found"),
        case("GET on build", "GET", jenkins_ok(&[]), 405, "method_not_allowed"),
        case("PUT on JSON trigger", "PUT", "/trigger/demo-job", 405, "method_not_allowed"),
        case("POST on crumb", "POST", "/crumbIssuer/api/json", 405, "method_not_allowed"),
        case("GET on web-hook", "GET", "/webhook/demo-job", 405, "method_not_allowed"),
        // size
        case("body over the cap", "POST", "/trigger/demo-job", 413, "payload_too_large").json(vec![b' '; 256 * 1024 + 1]),
        case("declared length over the cap", "POST", "/webhook/demo-job", 413, "payload_too_large").header("Content-Length", "10485760"),
        // content types
        case("JSON trigger as text/plain", "POST", "/trigger/demo-job", 415, "unsupported_media_type").header("Content-Type", "text/plain").body(pr("b", Some("main"))),
        case("JSON trigger without a type", "POST", "/trigger/demo-job", 415, "unsupported_media_type").body(pr("b", Some("main"))),
        case("web-hook as a form", "POST", "/webhook/demo-job", 415, "unsupported_media_type").header("Content-Type", "application/x-www-form-urlencoded").body("a=b"),
        case("Jenkins call with a JSON body", "POST", jenkins_ok(&[]), 415, "unsupported_media_type").header("Content-Type", "application/json").body("{}"),
        // projects
        case("unknown job", "POST", format!("/job/nope/buildWithParameters?cause=1&REPO={REPO}&BRANCH=a&BRANCH_TO=main&token=x"), 404, "unknown_project"),
        case("unknown JSON project", "POST", "/trigger/nope", 404, "unknown_project").json(pr("b", Some("main"))),
        case("dot-dot project key", "POST", "/webhook/../demo-job", 404, "unknown_project"),
        case("trigger kind disabled", "POST", "/trigger/jenkins-only", 403, "trigger_disabled").json(pr("b", Some("main"))),
        // authentication
        case("Jenkins call without token", "POST", jenkins_ok(&[("token", "")]), 401, "missing_credentials"),
        case("Jenkins call with a wrong token", "POST", jenkins_ok(&[("token", "MKKMQGHTH104Z0A1Z6IJ5IE3QUS7XA9Q")]), 401, "invalid_token"),
        case("Jenkins token in the wrong case", "POST", jenkins_ok(&[("token", "mkkmqghth104z0a1z6ij5ie3qus7xa9p")]), 401, "invalid_token"),
        case("Basic auth required but absent", "POST", format!("/job/folder/job/secured/buildWithParameters?cause={SHA}&REPO={REPO}&BRANCH=main&BRANCH_TO=None&token={CAPTURE_CI_TOKEN}"), 401, "invalid_credentials"),
        case("Basic auth with a wrong password", "POST", format!("/job/folder/job/secured/buildWithParameters?cause={SHA}&REPO={REPO}&BRANCH=main&BRANCH_TO=None&token={CAPTURE_CI_TOKEN}"), 401, "invalid_credentials").header("Authorization", "Basic cGFndXJlOndyb25n"),
        case("JSON trigger without credentials", "POST", "/trigger/demo-job", 401, "missing_credentials").header("Content-Type", "application/json").body(pr("b", Some("main"))),
        case("JSON trigger with a wrong bearer", "POST", "/trigger/demo-job", 401, "invalid_token").header("Content-Type", "application/json").header("Authorization", "Bearer wrong").body(pr("b", Some("main"))),
        case("JSON trigger with Basic auth", "POST", "/trigger/demo-job", 401, "invalid_credentials").header("Content-Type", "application/json").header("Authorization", "Basic cGFndXJlOndyb25n").body(pr("b", Some("main"))),
        case("JSON trigger with a wrong signature", "POST", "/trigger/demo-job", 401, "invalid_signature").header("Content-Type", "application/json").header("X-Pagure-Signature-256", &"0".repeat(64)).body(pr("b", Some("main"))),
        case("web-hook without signature", "POST", "/webhook/demo-job", 401, "missing_credentials").header("Content-Type", "application/json").header("X-Pagure-Topic", "git.receive").body(receive.clone()),
        case("web-hook with a tampered body", "POST", "/webhook/demo-job", 401, "invalid_signature").signed_webhook("git.receive", &receive).body(git_receive("main", &"a".repeat(40))),
        case("web-hook signed with SHA-1 only", "POST", "/webhook/demo-job", 401, "missing_credentials").header("Content-Type", "application/json").header("X-Pagure-Topic", "git.receive").header("X-Pagure-Signature", "9559f4ad36544f61a9ff1e1c3ec3454d38e3b6e9").body(receive.clone()),
        case("web-hook signature not hex", "POST", "/webhook/demo-job", 401, "invalid_signature").header("Content-Type", "application/json").header("X-Pagure-Topic", "git.receive").header("X-Pagure-Signature-256", "not-hex").body(receive.clone()),
        case("project without secrets", "POST", "/trigger/no-secrets", 401, "not_configured").json(pr("b", Some("main"))),
        case("web-hook from another Pagure", "POST", "/webhook/demo-job", 403, "wrong_instance").signed_webhook("git.receive", &receive).header("X-Pagure", "https://evil.example/"),
        // fields
        case("Jenkins call without cause", "POST", jenkins_ok(&[("cause", "")]), 400, "missing_field"),
        case("Jenkins call without REPO", "POST", jenkins_ok(&[("REPO", "")]), 400, "missing_field"),
        case("Jenkins cause given twice", "POST", format!("{}&cause=1", jenkins_ok(&[])), 400, "invalid_field"),
        case("JSON that does not parse", "POST", "/trigger/demo-job", 400, "malformed_body").json(b"{\"cause\": ".to_vec()),
        case("JSON without branch", "POST", "/trigger/demo-job", 400, "malformed_body").json(br#"{"cause": "1", "repo": "r"}"#.to_vec()),
        case("JSON with an unknown field", "POST", "/trigger/demo-job", 400, "malformed_body").json(br#"{"cause": "1", "repo": "r", "branch": "b", "colour": "red"}"#.to_vec()),
        case("JSON array", "POST", "/trigger/demo-job", 400, "malformed_body").json(b"[1, 2]".to_vec()),
        // serde reads a struct from an array in field order: the trigger spelled as one.
        case("JSON trigger spelled as an array", "POST", "/trigger/demo-job", 400, "malformed_body").json(format!(r#"["{SHA}", "{repo}", "main", null]"#).into_bytes()),
        case("JSON trigger as a string", "POST", "/trigger/demo-job", 400, "malformed_body").json(br#""cause""#.to_vec()),
        case("JSON trigger as null", "POST", "/trigger/demo-job", 400, "malformed_body").json(b"null".to_vec()),
        case("cause is a word", "POST", jenkins_ok(&[("cause", "abc")]), 400, "invalid_cause"),
        case("cause is zero", "POST", jenkins_ok(&[("cause", "0")]), 400, "invalid_cause"),
        case("cause is a short sha", "POST", jenkins_ok(&[("cause", &SHA[..39])]), 400, "invalid_cause"),
        case("cause has a leading zero", "POST", jenkins_ok(&[("cause", "01")]), 400, "invalid_cause"),
        case("cause is an abbreviated sha", "POST", jenkins_ok(&[("cause", "05bab96")]), 400, "invalid_cause"),
        case("branch is an option", "POST", jenkins_ok(&[("BRANCH", "-rf")]), 400, "invalid_branch"),
        case("branch is empty", "POST", jenkins_ok(&[("BRANCH", "")]), 400, "invalid_branch"),
        case("branch with ..", "POST", jenkins_ok(&[("BRANCH", "a..b")]), 400, "invalid_branch"),
        case("branch with a space", "POST", jenkins_ok(&[("BRANCH", "a%20b")]), 400, "invalid_branch"),
        case("branch ending in .lock", "POST", jenkins_ok(&[("BRANCH", "x.lock")]), 400, "invalid_branch"),
        case("branch with a newline", "POST", jenkins_ok(&[("BRANCH", "a%0Ab")]), 400, "invalid_branch"),
        case("branch is HEAD", "POST", jenkins_ok(&[("BRANCH", "HEAD")]), 400, "invalid_branch"),
        case("JSON branch is HEAD", "POST", "/trigger/demo-job", 400, "invalid_branch").json(json_body(SHA, repo, "HEAD", None)),
        case("target branch is HEAD", "POST", "/trigger/demo-job", 400, "invalid_branch").json(pr("b", Some("HEAD"))),
        case("branch with @{-1}", "POST", jenkins_ok(&[("BRANCH", "%40%7B-1%7D")]), 400, "invalid_branch"),
        case("target branch with ~", "POST", "/trigger/demo-job", 400, "invalid_branch").json(pr("b", Some("a~1"))),
        case("PR without target branch", "POST", "/trigger/demo-job", 400, "missing_field").json(pr("b", None)),
        case("commit with a target branch", "POST", "/trigger/demo-job", 400, "invalid_field").json(json_body(SHA, repo, "b", Some("main"))),
        case("web-hook without topic", "POST", "/webhook/demo-job", 400, "missing_field").signed_webhook("git.receive", &receive).header("X-Pagure-Topic", ""),
        case("web-hook topic differs from body", "POST", "/webhook/demo-job", 400, "invalid_field").signed_webhook("pull-request.new", &receive),
        case("signed web-hook that is not JSON", "POST", "/webhook/demo-job", 400, "malformed_body").signed_webhook("git.receive", b"not json"),
        case("signed git.receive with msg as an array", "POST", "/webhook/demo-job", 400, "malformed_body").signed_webhook("git.receive", format!(r#"{{"topic": "git.receive", "msg": ["main", "{SHA}", "demo"]}}"#).as_bytes()),
        case("signed web-hook envelope as an array", "POST", "/webhook/demo-job", 400, "malformed_body").signed_webhook("git.receive", format!(r#"["git.receive", {{"branch": "main", "end_commit": "{SHA}", "project_fullname": "demo"}}]"#).as_bytes()),
        case("signed git.receive without end_commit", "POST", "/webhook/demo-job", 400, "malformed_body").signed_webhook("git.receive", br#"{"topic": "git.receive", "msg": {"branch": "main", "project_fullname": "demo"}}"#),
        // the SSRF boundary
        case("repository over https", "POST", jenkins_ok(&[("REPO", "https%3A%2F%2F127.0.0.1%3A5602%2Fdemo.git")]), 403, "repo_not_allowed"),
        case("repository on another host", "POST", jenkins_ok(&[("REPO", "git%3A%2F%2Fevil.example%3A5602%2Fdemo.git")]), 403, "repo_not_allowed"),
        case("repository on another loopback address", "POST", jenkins_ok(&[("REPO", "git%3A%2F%2F127.0.0.2%3A5602%2Fdemo.git")]), 403, "repo_not_allowed"),
        case("repository with userinfo", "POST", jenkins_ok(&[("REPO", "git%3A%2F%2Fx%40127.0.0.1%3A5602%2Fdemo.git")]), 403, "repo_not_allowed"),
        case("repository path with ..", "POST", jenkins_ok(&[("REPO", "git%3A%2F%2F127.0.0.1%3A5602%2Fx%2F..%2Fdemo.git")]), 403, "repo_not_allowed"),
        case("repository percent-encoded", "POST", jenkins_ok(&[("REPO", "git%3A%2F%2F127.0.0.1%3A5602%2Fdem%256f.git")]), 403, "repo_not_allowed"),
        case("repository of another project", "POST", jenkins_ok(&[("REPO", "git%3A%2F%2F127.0.0.1%3A5602%2Fother.git")]), 403, "repo_not_allowed"),
        case("repository on the file system", "POST", jenkins_ok(&[("REPO", "file%3A%2F%2F%2Fetc%2Fdemo.git")]), 403, "repo_not_allowed"),
        case("instance metadata", "POST", jenkins_ok(&[("REPO", "http%3A%2F%2F169.254.169.254%2Flatest%2Fmeta-data")]), 403, "repo_not_allowed"),
        case("repository on another port", "POST", jenkins_ok(&[("REPO", "git%3A%2F%2F127.0.0.1%3A22%2Fdemo.git")]), 403, "repo_not_allowed"),
        // source allow-list
        case("caller outside the allow-list", "POST", jenkins_ok(&[]), 403, "source_not_allowed").from(Some("192.0.2.1")),
        case("caller without an address", "POST", jenkins_ok(&[]), 403, "source_not_allowed").from(None),
    ]
}

#[test]
fn every_bad_input_is_refused_with_a_reason_and_nothing_is_queued() {
    let cases = cases();
    assert!(cases.len() >= 60, "{} cases", cases.len());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let (service, mut queued) = local_service(&config(), &secrets());
    let (failures, logs) = capture_logs(|| {
        runtime.block_on(async {
            let mut failures = Vec::new();
            for case in &cases {
                let headers: Vec<(&str, &str)> = case.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
                let mut request = trigger_request(case.method, &case.path, &headers, &case.body);
                request.source_ip = case.source_ip.map(|ip| ip.parse().expect("ip"));
                let response = service.handle(request).await;
                let status = response.status().as_u16();
                let content_type = response.headers().get("content-type").map(|v| v.to_str().unwrap_or("").to_owned());
                let body: serde_json::Value = serde_json::from_slice(response.body()).unwrap_or_default();
                let reason_ok = body["reason"].as_str().is_some_and(|r| r.len() > 10);
                if status != case.status
                    || body["error"] != case.code
                    || !reason_ok
                    || content_type.as_deref() != Some("application/json")
                {
                    failures.push(format!(
                        "{}: got {status} {body} ({content_type:?}), want {} {}",
                        case.name, case.status, case.code
                    ));
                }
                if case.status == 405 && response.headers().get("allow").is_none() {
                    failures.push(format!("{}: 405 without Allow", case.name));
                }
                if queued.try_recv().is_ok() {
                    failures.push(format!("{}: something was queued", case.name));
                }
            }
            failures
        })
    });
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
    for secret in [CAPTURE_CI_TOKEN, CAPTURE_HOOK_TOKEN, BASIC_PASSWORD, "mkkmqghth104z0a1z6ij5ie3qus7xa9p"] {
        assert!(!logs.contains(secret), "a secret reached the logs");
    }
    let refusals = logs.lines().filter(|l| l.contains("trigger refused")).count();
    assert_eq!(refusals, cases.len(), "one log line per refusal");
}
