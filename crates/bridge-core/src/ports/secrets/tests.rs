use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;
use crate::retry::Transience;

#[test]
fn secret_shards_merge_and_refuse_ambiguity() {
    assert_eq!((shard_secret_id("pcb", 0), shard_secret_id("pcb", 2)), ("pcb".into(), "pcb-shard-2".into()));
    let shard = |id: &str, text: Option<&str>| (id.to_owned(), text.map(str::to_owned));
    let merged = merge_secret_shards(&[
        shard("pcb", Some(r#"{"projects": {"a": {"trigger_token": "t1"}}, "shared_pagure_api_tokens": {"bot": "b"}}"#)),
        shard("pcb-shard-1", None),
        shard("pcb-shard-2", Some(r#"{"projects": {"b": {"hook_token": "h2"}}}"#)),
    ])
    .expect("merged");
    let document = SecretsDocument::parse(&merged).expect("a document");
    assert_eq!(document.project("a").and_then(|p| p.trigger_token.as_ref()).map(|t| t.expose()), Some("t1"));
    assert_eq!(document.project("b").and_then(|p| p.hook_token.as_ref()).map(|t| t.expose()), Some("h2"));
    assert_eq!(document.pagure_api_token("b", Some("bot")).map(|t| t.expose()), Some("b"));
    let twice = merge_secret_shards(&[
        shard("pcb", Some(r#"{"projects": {"a": {}}}"#)),
        shard("pcb-shard-1", Some(r#"{"projects": {"a": {"trigger_token": "secret-value"}}}"#)),
    ]);
    let error = twice.expect_err("a project in two shards").to_string();
    assert!(error.contains("`a`") && error.contains("pcb-shard-1") && !error.contains("secret-value"), "{error}");
    let shared_late = merge_secret_shards(&[
        shard("pcb", None),
        shard("pcb-shard-1", Some(r#"{"shared_pagure_api_tokens": {"bot": "b"}}"#)),
    ]);
    assert!(shared_late.is_err());
    let bad = merge_secret_shards(&[shard("pcb", Some(r#"{"projects": {"a": {"colour": "x"}}}"#))]);
    let bad = bad.expect_err("unknown field");
    assert!(bad.to_string().contains("secret `pcb`"), "{bad}");
    // The shard's own error is kept as the source, and decides the classification.
    let source = std::error::Error::source(&bad).expect("source").to_string();
    assert!(source.starts_with("the secrets document is malformed at line 1"), "{source}");
    assert!(bad.is_transient(), "a request waits while a person fixes the secret");
}

struct Counting {
    calls: AtomicUsize,
    fail_after: usize,
}

impl SecretSource for Counting {
    async fn fetch(&self) -> Result<String, SecretsError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        if n >= self.fail_after {
            return Err(SecretsError::Unavailable("down".into()));
        }
        Ok(format!(r#"{{"projects": {{"p{n}": {{"trigger_token": "t"}}}}}}"#))
    }
}

#[tokio::test]
async fn cache_honours_ttl_and_serves_stale_on_failure() {
    let cache = CachedSecrets::new(Counting { calls: AtomicUsize::new(0), fail_after: 2 }, Duration::from_millis(40));
    assert!(cache.document().await.expect("first").project("p0").is_some());
    assert!(cache.document().await.expect("cached").project("p0").is_some());
    assert_eq!(cache.source.calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(cache.document().await.expect("refreshed").project("p1").is_some());
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(cache.document().await.expect("stale").project("p1").is_some());
    assert_eq!(cache.source.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn cold_failure_is_an_error() {
    let cache = CachedSecrets::new(Counting { calls: AtomicUsize::new(0), fail_after: 0 }, Duration::from_secs(60));
    let error = cache.document().await.expect_err("nothing cached");
    assert!(error.is_transient(), "{error}");
    assert_eq!(error.to_string(), "the secrets could not be read: down");
}

#[test]
fn malformed_document_error_does_not_quote_secrets() {
    let err = SecretsDocument::parse(r#"{"projects": {"p": {"trigger_token": "hunter2", "oops": 1}}}"#)
        .expect_err("unknown field");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    let err = SecretsDocument::parse(r#"{"projects": {"p": {"trigger_token": "hunter2"#).expect_err("eof");
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(std::error::Error::source(&err).is_none(), "the parser's error (which may quote) is not kept");
}
