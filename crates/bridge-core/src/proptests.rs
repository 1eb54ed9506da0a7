//! Property tests of everything that parses outside input: no input panics, accepted values
//! are fixed points of canonicalisation, and the branch rule agrees with git itself.

use std::process::Command;

use proptest::prelude::*;

use crate::accept::{AcceptService, TriggerHttpRequest};
use crate::auth::{Secret, parse_authorization, sign256, signature256_matches};
use crate::config::LocalConfig;
use crate::config::ProjectConfig;
use crate::fakes::FakeSecrets;
use crate::ports::{InMemoryQueue, SecretsDocument};
use crate::trigger::{
    RawTrigger, TriggerError, TriggerErrorKind, WebhookDialect, WebhookOutcome, parse_jenkins, parse_json,
};
use crate::validate::{RepoPolicy, check_branch, parse_cause};

const CONFIG: &str =
    concat!("[secrets]\nfile = \"unused\"\n", include_str!("../../../tests/fixtures/capture-project.toml"));

fn config() -> LocalConfig {
    LocalConfig::parse(CONFIG, std::path::Path::new("/")).expect("config")
}

/// Strings built from the characters that matter to the parsers.
fn tricky() -> impl Strategy<Value = String> {
    proptest::string::string_regex(r"[a-zA-Z0-9./:@%?#&=\-_~^*\[\]\\{} \n\t\u{0}\u{7f}é]{0,60}").expect("regex")
}

proptest! {
    #[test]
    fn jenkins_parameters_never_panic(query in tricky(), body in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_jenkins(&query, &body);
    }

    #[test]
    fn json_trigger_never_panics(body in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_json(&body);
    }

    #[test]
    fn json_trigger_shaped_input(cause in tricky(), repo in tricky(), branch in tricky(), to in proptest::option::of(tricky())) {
        let body = serde_json::json!({"cause": cause, "repo": repo, "branch": branch, "branch_to": to}).to_string();
        let raw = parse_json(body.as_bytes()).expect("well-formed object parses");
        prop_assert_eq!(raw.repo, repo);
    }

    #[test]
    fn causes_canonicalise(value in "[0-9a-fA-F]{0,70}") {
        if let Ok(cause) = parse_cause(&value) {
            prop_assert_eq!(parse_cause(&cause.as_trigger_value()), Ok(cause));
        }
    }

    #[test]
    fn repo_urls_accepted_are_canonical_fixed_points(candidate in prop_oneof![
        tricky(),
        tricky().prop_map(|s| format!("git://127.0.0.1:5602/{s}")),
        "[a-z]{1,5}".prop_map(|u| format!("git://127.0.0.1:5602/forks/{u}/demo")),
    ]) {
        let policy = RepoPolicy::new("git://127.0.0.1:5602", "demo", true).expect("policy");
        if let Ok((url, project)) = policy.check("k", &candidate) {
            prop_assert_eq!(policy.check("k", &url), Ok((url.clone(), project)));
            prop_assert!(url.starts_with("git://127.0.0.1:5602/"));
            prop_assert!(!url.contains(".."));
        }
    }

    #[test]
    fn authorization_never_panics(value in tricky()) {
        let _ = parse_authorization(&value);
    }

    #[test]
    fn signatures_detect_any_change(body in proptest::collection::vec(any::<u8>(), 1..200), flip in any::<prop::sample::Index>()) {
        let key = Secret::new("UIX8VLL3OC07G9OR8K9V1S5VNMOEFD80IJJI1HN7");
        let signature = sign256(&body, &key);
        prop_assert!(signature256_matches(&body, &signature, &key));
        let mut changed = body.clone();
        let i = flip.index(changed.len());
        changed[i] ^= 1;
        prop_assert!(!signature256_matches(&changed, &signature, &key));
    }
}

/// Branch names built from the pieces git's rules are about (`check_refname_component` in
/// git's `refs.c` and `check_branch_ref`): dots, slashes, `@{`, `.lock`, `HEAD`, a leading
/// `-`, control characters, the refused punctuation, and plain and non-ASCII letters.
fn branch_name() -> impl Strategy<Value = String> {
    let piece = prop_oneof![
        4 => proptest::string::string_regex(r"[ab./@{}~^:?*\[\\ \-é]").expect("regex"),
        1 => prop_oneof![
            Just("HEAD"), Just(".lock"), Just("lock"), Just("@{"), Just(".."), Just("\t"), Just("\u{1}"), Just("\u{7f}"),
            Just("@{-1}"), Just("refs/heads/"),
        ]
        .prop_map(str::to_owned),
    ];
    proptest::collection::vec(piece, 1..8).prop_map(|pieces| pieces.concat())
}

/// The oracle runs outside any repository (`/` as the ceiling), as the bridge's check does:
/// inside one, git first expands `@{-1}` and `@` through the repository's history.
fn git_accepts_branch(name: &str) -> bool {
    let outside = std::env::temp_dir();
    Command::new("git")
        .args(["check-ref-format", "--branch", name])
        .current_dir(&outside)
        .env("GIT_CEILING_DIRECTORIES", &outside)
        .env_remove("GIT_DIR")
        .output()
        .expect("git")
        .status
        .success()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// `git check-ref-format --branch <name>` is the oracle. The bridge is stricter in one
    /// documented way: the name `@` is refused (and names over 255 bytes, not generated here).
    #[test]
    fn branch_rule_agrees_with_git(name in branch_name()) {
        let ours = check_branch(&name).is_ok();
        prop_assert_eq!(ours, git_accepts_branch(&name) && name != "@", "name {:?}", name);
    }
}

#[test]
fn branch_oracle_sees_the_names_that_matter() {
    for (name, git) in
        [("main", true), ("HEAD", false), ("-x", false), ("@", true), ("a@{-1}", false), ("x.lock", false)]
    {
        assert_eq!(git_accepts_branch(name), git, "git check-ref-format --branch {name:?}");
    }
}

/// A web-hook door for the handler's properties (Pagure's own is tested with its parser in
/// `bridge-pagure`): the length of `x-pagure-topic` chooses its outcome, so that every
/// outcome and every refusal kind a dialect may give reaches the handler.
#[derive(Debug)]
struct TestWebhooks;

impl WebhookDialect for TestWebhooks {
    fn read_delivery(
        &self,
        _project: &ProjectConfig,
        headers: &http::HeaderMap,
        body: &[u8],
        _hook_secret: &Secret,
        _rebuild_phrases: &[String],
    ) -> Result<WebhookOutcome, TriggerError> {
        use TriggerErrorKind::*;
        let kinds = [
            RepoNotAllowed,
            InvalidCause,
            InvalidBranch,
            InvalidField,
            MissingField,
            MalformedBody,
            MissingCredentials,
            InvalidSignature,
            WrongInstance,
        ];
        let Some(topic) = headers.get("x-pagure-topic") else {
            return Err(TriggerError::new(MissingCredentials, "no topic"));
        };
        let raw = RawTrigger {
            cause: String::from_utf8_lossy(body).into_owned(),
            repo: "git://127.0.0.1:5602/demo.git".into(),
            branch: "main".into(),
            branch_to: None,
            rebuild: false,
        };
        let approval = crate::model::Approval { by: "carol".into(), commit: raw.cause.clone() };
        Ok(match topic.len() % (kinds.len() + 3) {
            0 => WebhookOutcome::Ignore("a short topic".into()),
            1 => WebhookOutcome::Build(raw),
            2 => WebhookOutcome::Approve(raw, approval),
            n => return Err(TriggerError::new(kinds[n - 3], "refused")),
        })
    }
}

fn request_strategy() -> impl Strategy<Value = TriggerHttpRequest> {
    let method = prop_oneof![Just("GET"), Just("POST"), Just("PUT"), Just("DELETE")];
    let path = prop_oneof![
        tricky().prop_map(|s| format!("/{s}")),
        tricky().prop_map(|s| format!("/job/{s}/buildWithParameters")),
        tricky().prop_map(|s| format!("/trigger/{s}")),
        Just("/webhook/demo-job".to_owned()),
        Just("/jenkins/job/demo-job/buildWithParameters".to_owned()),
    ];
    let header = (
        prop_oneof![
            Just("content-type"),
            Just("authorization"),
            Just("x-pagure-topic"),
            Just("x-pagure-signature-256"),
            Just("content-length"),
            Just("x-pagure")
        ],
        "[ -~]{0,40}",
    );
    (method, path, tricky(), proptest::collection::vec(header, 0..5), proptest::collection::vec(any::<u8>(), 0..200))
        .prop_map(|(method, path, query, headers, body)| {
            let mut map = http::HeaderMap::new();
            for (name, value) in headers {
                if let Ok(value) = http::HeaderValue::from_str(&value) {
                    map.append(name, value);
                }
            }
            TriggerHttpRequest {
                method: method.parse().expect("method"),
                path,
                query,
                headers: map,
                body: bytes::Bytes::from(body),
                source_ip: None,
                scheme: "https",
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// The handler answers every request with JSON and a status from its documented set.
    #[test]
    fn handler_is_total(request in request_strategy()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let secrets = SecretsDocument::parse(r#"{"projects": {"demo-job": {"trigger_token": "t", "hook_token": "h"}}}"#).expect("secrets");
        let service = AcceptService::new(config().accept, InMemoryQueue::new(16), FakeSecrets::new(secrets), TestWebhooks);
        let response = runtime.block_on(service.handle(request));
        prop_assert!([200, 201, 202, 400, 401, 403, 404, 405, 413, 415, 503].contains(&response.status().as_u16()), "{}", response.status());
        prop_assert_eq!(response.headers()["content-type"].to_str().expect("ascii"), "application/json");
        let body: serde_json::Value = serde_json::from_slice(response.body()).expect("JSON body");
        prop_assert!(body.is_object());
    }
}
