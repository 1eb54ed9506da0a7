use super::backend::Part;
use super::*;
use serde_json::{Map, Value, json};

fn shards(documents: &[Value]) -> SecretShards {
    let parts = documents
        .iter()
        .enumerate()
        .map(|(i, d)| Part {
            shard: bridge_aws::SecretShard { id: format!("s{i}"), text: Some(d.to_string()), version: None },
            document: d.as_object().cloned().unwrap_or_default(),
            changed: false,
        })
        .collect();
    SecretShards { parts }
}

#[test]
fn a_new_project_goes_to_the_first_shard_with_room_and_stays_where_it_is() {
    let full: Map<String, Value> = (0..700)
        .map(|i| (format!("rpms/p{i:04}"), json!({"trigger_token": "T".repeat(32), "hook_token": "H".repeat(40)})))
        .collect();
    let mut secrets = shards(&[json!({"projects": full}), json!({"projects": {"rpms/b": {}}}), json!({})]);
    secrets.project_entry("rpms/new").expect("room").insert("trigger_token".into(), json!("t"));
    assert_eq!(secrets.holding("rpms/new"), Some(1), "shard 0 is full");
    secrets.project_entry("rpms/p0001").expect("where it is").insert("trigger_token".into(), json!("u"));
    assert_eq!(secrets.holding("rpms/p0001"), Some(0));
    assert_eq!(secrets.parts.iter().map(|p| p.changed).collect::<Vec<_>>(), [true, true, false]);
    secrets.shared().insert("bot".into(), json!("b"));
    assert_eq!(secrets.view()["shared_pagure_api_tokens"], json!({"bot": "b"}));
    assert!(secrets.remove_project("rpms/b") && !secrets.remove_project("rpms/b"));
    assert_eq!(secrets.view()["projects"].as_object().map(Map::len), Some(701));
    assert!(secrets.check().is_ok());
    // What the Lambdas would refuse, the CLI refuses before writing.
    let twice = shards(&[json!({"projects": {"rpms/a": {}}}), json!({"projects": {"rpms/a": {}}})]);
    assert!(twice.check().expect_err("in two shards").to_string().contains("rpms/a"));
    let mut all_full = shards(&[json!({"projects": full})]);
    let error = all_full.project_entry("rpms/more").expect_err("no room").to_string();
    assert!(error.contains("SecretShards"), "{error}");
}
