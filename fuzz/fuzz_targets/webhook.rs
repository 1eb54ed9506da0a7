#![no_main]
//! Pagure web-hook bodies for every topic the bridge reads (`bridge_pagure::webhook`), and
//! the signature header.
use std::sync::LazyLock;

use bridge_core::auth::{Secret, signature256_matches};
use bridge_core::config::LocalConfig;
use bridge_pagure::webhook::parse_webhook;
use libfuzzer_sys::fuzz_target;

/// Whether an accepted text is a JSON object: it parsed whole, so its first non-whitespace
/// byte says what it is. (Not a `serde_json::Value` parse: that refuses a lone surrogate
/// escape in a member the parsers skip, which JSON's grammar allows.)
fn is_object_text(text: &[u8]) -> bool {
    text.iter().find(|b| !b" \t\r\n".contains(b)) == Some(&b'{')
}

const TOPICS: [&str; 6] = [
    "git.receive",
    "pull-request.new",
    "pull-request.updated",
    "pull-request.comment.added",
    "pull-request.rebased",
    "project.edit",
];

static CONFIG: LazyLock<LocalConfig> = LazyLock::new(|| {
    LocalConfig::parse(
        "[secrets]\nfile = \"x\"\n[projects.p]\npagure_url = \"https://pagure.io/\"\ngit_url = \"https://pagure.io\"\nproject = \"rpms/demo\"\npipeline = \"p\"\n",
        std::path::Path::new("/"),
    )
    .expect("config")
});

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else { return };
    let topic = TOPICS[selector as usize % TOPICS.len()];
    let project = &CONFIG.accept.projects["p"];
    if parse_webhook(project, topic, body, &["pretty please pagure-ci rebuild".into()]).is_ok() {
        // Pagure's envelope and its `msg` are objects; serde alone would take arrays.
        assert!(is_object_text(body), "a web-hook body that is not an object was read");
        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) {
            assert!(value["msg"].is_object(), "a web-hook whose msg is not an object was read: {value}");
        }
    }
    let header = String::from_utf8_lossy(&body[..body.len().min(80)]);
    let _ = signature256_matches(body, &header, &Secret::new("UIX8VLL3OC07G9OR8K9V1S5VNMOEFD80IJJI1HN7"));
});
