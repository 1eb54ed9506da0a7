#![no_main]
//! The whole accept handler: method, path, query, headers and body from the input. Every
//! answer must be JSON with a documented status.
use std::sync::LazyLock;

use bridge_core::accept::{AcceptService, TriggerHttpRequest};
use bridge_core::config::LocalConfig;
use bridge_core::ports::SecretsDocument;
use bridge_local::{InProcessQueue, StaticSecrets};
use bridge_pagure::PagureWebhooks;
use libfuzzer_sys::fuzz_target;

static RUNTIME: LazyLock<tokio::runtime::Runtime> =
    LazyLock::new(|| tokio::runtime::Builder::new_current_thread().build().expect("runtime"));

static SERVICE: LazyLock<AcceptService<InProcessQueue, StaticSecrets>> = LazyLock::new(|| {
    let config = LocalConfig::parse(
        "[secrets]\nfile = \"x\"\n[projects.demo-job]\npagure_url = \"http://127.0.0.1:5600/\"\ngit_url = \"git://127.0.0.1:5602\"\nproject = \"demo\"\npipeline = \"p\"\nallow_insecure_git_url = true\n",
        std::path::Path::new("/"),
    )
    .expect("config");
    let secrets = SecretsDocument::parse(r#"{"projects": {"demo-job": {"trigger_token": "t", "hook_token": "h"}}}"#)
        .expect("secrets");
    // The receiver is dropped: enqueueing fails with 503, which is a documented answer.
    let (queue, _) = InProcessQueue::new(1);
    AcceptService::new(config.accept, queue, StaticSecrets::new(secrets), PagureWebhooks)
});

const HEADERS: [&str; 6] =
    ["content-type", "authorization", "x-pagure-topic", "x-pagure-signature-256", "x-pagure", "content-length"];

fuzz_target!(|data: &[u8]| {
    let mut parts = data.split(|&b| b == 0xff);
    let method = match parts.next().and_then(|m| m.first()) {
        Some(b) if b % 2 == 0 => http::Method::POST,
        _ => http::Method::GET,
    };
    let path = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let mut headers = http::HeaderMap::new();
    for name in HEADERS {
        if let Some(Ok(value)) = parts.next().map(http::HeaderValue::from_bytes) {
            headers.insert(name, value);
        }
    }
    let body = bytes::Bytes::copy_from_slice(parts.next().unwrap_or_default());
    let request =
        TriggerHttpRequest { method, path: format!("/{path}"), query, headers, body, source_ip: None, scheme: "https" };
    let response = RUNTIME.block_on(SERVICE.handle(request));
    assert!([200, 201, 202, 400, 401, 403, 404, 405, 413, 415, 503].contains(&response.status().as_u16()));
    assert_eq!(response.headers()["content-type"], "application/json");
});
