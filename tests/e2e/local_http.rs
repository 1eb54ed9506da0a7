//! Local mode over real HTTP: what only a socket shows (size cap while streaming,
//! keep-alive, headers). The shipped binary itself is tested in `crates/pagure-ci-bridge/tests`.

use e2e_tests::{CAPTURE_CI_TOKEN, CAPTURE_PROJECT_TOML, LocalBridge, capture_secrets_json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_over_http_with_json_errors_and_keep_alive() {
    let mut bridge = LocalBridge::start(CAPTURE_PROJECT_TOML, &capture_secrets_json()).await;
    let _ = e2e_tests::http(); // installs the TLS provider
    let client = reqwest::Client::builder().pool_max_idle_per_host(1).build().expect("client");

    let health = client.get(bridge.url("/healthz")).send().await.expect("healthz");
    assert_eq!(health.status(), 200);

    // A body far over the cap is refused, read past the cap only to be thrown away; the
    // connection stays usable for the requests below.
    let big = vec![b'x'; 4 * 1024 * 1024];
    let response = client
        .post(bridge.url("/trigger/demo-job"))
        .header("content-type", "application/json")
        .header("authorization", format!("token {CAPTURE_CI_TOKEN}"))
        .body(big)
        .send()
        .await
        .expect("413");
    assert_eq!(response.status(), 413);
    assert!(response.headers().get("connection").is_none(), "the drained connection is kept alive");
    assert_eq!(response.headers()["content-type"], "application/json");
    let body: serde_json::Value = response.json().await.expect("json");
    assert_eq!(body["error"], "payload_too_large");

    let response = client.delete(bridge.url("/trigger/demo-job")).send().await.expect("405");
    assert_eq!(response.status(), 405);
    assert_eq!(response.headers()["allow"], "POST");

    for n in 1..=20u64 {
        let response = client
            .post(bridge.url("/trigger/demo-job"))
            .bearer_auth(CAPTURE_CI_TOKEN)
            .json(&serde_json::json!({"cause": n, "repo": "git://127.0.0.1:5602/demo.git", "branch": "feature", "branch_to": "main"}))
            .send()
            .await
            .expect("trigger");
        assert_eq!(response.status(), 202);
        let queued = bridge.next_queued().await;
        assert_eq!(queued.cause.as_trigger_value(), n.to_string());
    }
}
