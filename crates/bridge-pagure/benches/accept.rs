//! The accept handler in process: route, authenticate, parse, validate, enqueue on an
//! in-memory queue (drained each iteration so it never fills). One benchmark per door (the
//! web-hook door is Pagure's, [`PagureWebhooks`]: hence here), and a refused request for
//! comparison.

use bridge_core::accept::{AcceptService, TriggerHttpRequest};
use bridge_core::auth::{Secret, sign256};
use bridge_core::config::LocalConfig;
use bridge_core::fakes::FakeSecrets;
use bridge_core::ports::{InMemoryQueue, SecretsDocument};
use bridge_pagure::PagureWebhooks;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

const CONFIG: &str =
    concat!("[secrets]\nfile = \"unused\"\n", include_str!("../../../tests/fixtures/capture-project.toml"));
const TOKEN: &str = "MKKMQGHTH104Z0A1Z6IJ5IE3QUS7XA9P";
const HOOK: &str = "UIX8VLL3OC07G9OR8K9V1S5VNMOEFD80IJJI1HN7";

fn request(method: &str, path: &str, query: &str, headers: &[(&str, &str)], body: &[u8]) -> TriggerHttpRequest {
    let mut map = http::HeaderMap::new();
    for (name, value) in headers {
        map.insert(
            http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
            http::HeaderValue::from_str(value).expect("header"),
        );
    }
    TriggerHttpRequest {
        method: method.parse().expect("method"),
        path: path.into(),
        query: query.into(),
        headers: map,
        body: bytes::Bytes::copy_from_slice(body),
        source_ip: Some("127.0.0.1".parse().expect("ip")),
        scheme: "https",
    }
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let config = LocalConfig::parse(CONFIG, std::path::Path::new("/")).expect("config");
    let secrets = SecretsDocument::parse(&format!(
        r#"{{"projects": {{"demo-job": {{"trigger_token": "{TOKEN}", "hook_token": "{HOOK}"}}}}}}"#
    ))
    .expect("secrets");
    let queue = std::sync::Arc::new(InMemoryQueue::new(1024));
    let service = AcceptService::new(config.accept, queue.clone(), FakeSecrets::new(secrets), PagureWebhooks);

    let jenkins = request(
        "POST",
        "/jenkins/job/demo-job/buildWithParameters",
        &format!(
            "cause=2&REPO=git%3A%2F%2F127.0.0.1%3A5602%2Fforks%2Fbob%2Fdemo.git&BRANCH=bob-fix&BRANCH_TO=main&token={TOKEN}"
        ),
        &[("host", "bridge.example")],
        b"",
    );
    let json_body = br#"{"cause": "05bab967134e26fd2a307065b49ce0bc2a2063ed", "repo": "git://127.0.0.1:5602/demo.git", "branch": "feature-1", "branch_to": null}"#;
    let auth = format!("token {TOKEN}");
    let json = request(
        "POST",
        "/trigger/demo-job",
        "",
        &[("content-type", "application/json"), ("authorization", &auth)],
        json_body,
    );
    let hook_body = std::fs::read(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/fixtures/pagure/webhooks/pull-request.updated.body.json"
    ))
    .expect("fixture");
    let signature = sign256(&hook_body, &Secret::new(HOOK));
    let webhook = request(
        "POST",
        "/webhook/demo-job",
        "",
        &[
            ("content-type", "application/json"),
            ("x-pagure", "http://127.0.0.1:5600/"),
            ("x-pagure-topic", "pull-request.updated"),
            ("x-pagure-signature-256", &signature),
        ],
        &hook_body,
    );
    let refused = request(
        "POST",
        "/jenkins/job/demo-job/buildWithParameters",
        "cause=2&REPO=x&BRANCH=b&BRANCH_TO=main&token=wrong",
        &[],
        b"",
    );

    let mut group = c.benchmark_group("accept");
    group.throughput(Throughput::Elements(1));
    for (name, req, status) in
        [("jenkins", &jenkins, 201), ("json", &json, 202), ("webhook", &webhook, 202), ("refused_401", &refused, 401)]
    {
        group.bench_function(name, |b| {
            b.iter(|| {
                let response = runtime.block_on(service.handle(req.clone()));
                assert_eq!(response.status().as_u16(), status);
                queue.take();
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
