//! Ten thousand rules, and secret shards.

use super::*;

const NAMESPACES: [&str; 5] = ["rpms", "modules", "containers", "flatpaks", "tests"];

/// 5,000 exact rules then 5,000 patterns, some overlapping on purpose (an exact rule inside a
/// pattern's range, patterns that shadow later ones, patterns with a glob first segment).
fn big_document() -> RegistryDocument {
    let mut rules = Vec::new();
    for i in 0..5_000 {
        let mut r = rule(&format!("{}/python3-pkg{i:05}", NAMESPACES[i % 5]));
        if i % 13 == 0 {
            r.pipeline = Some(format!("pcb-exact-{i}"));
        }
        rules.push(r);
    }
    for i in 0..5_000 {
        let matches = match i % 10 {
            3 => format!("*/stem{i:05}-*"),
            7 => format!("{}/*-stem{i:05}", NAMESPACES[i % 5]),
            // Broad patterns late in the document: everything under the namespace that no
            // earlier rule took, e.g. exact-looking names.
            9 if i >= 4_950 => format!("{}/*", NAMESPACES[(i / 10) % 5]),
            _ => format!("{}/stem{i:05}-*", NAMESPACES[i % 5]),
        };
        rules.push(RuleSettings { pipeline: Some(format!("pcb-pattern-{i}")), ..rule(&matches) });
    }
    RegistryDocument { rules, ..RegistryDocument::default() }
}

/// `*` over one segment, written plainly (recursion), as a reference.
fn reference_glob(pattern: &[u8], text: &[u8]) -> bool {
    match pattern.split_first() {
        None => text.is_empty(),
        Some((b'*', rest)) => (0..=text.len()).any(|skip| reference_glob(rest, &text[skip..])),
        Some((c, rest)) => text.first() == Some(c) && reference_glob(rest, &text[1..]),
    }
}

/// The rule a plain reading of the document picks: an exact `match`, else the first pattern
/// in document order whose segments all match.
fn reference(document: &RegistryDocument, key: &str) -> Option<usize> {
    let rules = &document.rules;
    let matches = |i: usize| rules[i].matches.as_deref().expect("match");
    if let Some(i) = (0..rules.len()).find(|&i| !matches(i).contains('*') && matches(i) == key) {
        return Some(i);
    }
    let key_segments: Vec<&str> = key.split('/').collect();
    (0..rules.len()).find(|&i| {
        let pattern: Vec<&str> = matches(i).split('/').collect();
        matches(i).contains('*')
            && pattern.len() == key_segments.len()
            && pattern.iter().zip(&key_segments).all(|(p, k)| reference_glob(p.as_bytes(), k.as_bytes()))
    })
}

#[test]
fn ten_thousand_rules_route_each_key_to_the_rule_that_should_win() {
    let document = big_document();
    let text = document.to_json();
    let parsed = RegistryDocument::parse(&text).expect("parse");
    let registry = Registry::compile(&BTreeMap::new(), Some(&parsed), &deployment_values()).expect("compile");
    assert_eq!(registry.len(), 10_000);

    let mut keys = Vec::new();
    for i in (0..5_000).step_by(37).chain([0, 4_999]) {
        let ns = NAMESPACES[i % 5];
        keys.push(format!("{ns}/python3-pkg{i:05}")); // an exact rule
        keys.push(format!("{ns}/stem{i:05}-extras")); // a pattern (or a broad one, or none)
        keys.push(format!("{}/stem{i:05}-x", NAMESPACES[(i + 1) % 5])); // another namespace
        keys.push(format!("{ns}/x-stem{i:05}")); // a suffix pattern
        keys.push(format!("epel/stem{i:05}-y")); // only a `*/…` pattern can take it
        keys.push(format!("{ns}/python3-pkg{i:05}x")); // near an exact key
    }
    keys.extend(["rpms/zz-nothing", "epel/zz-nothing", "rpms/a/b", "rpms", "rpms/*"].map(String::from));
    let (mut exact, mut pattern, mut none) = (0, 0, 0);
    for key in &keys {
        let expected = reference(&document, key).filter(|_| bridge_core::config::is_project_key(key));
        let found = registry.lookup(key);
        match (expected, &found) {
            (None, None) => none += 1,
            (Some(index), Some((project, RuleSource::Rule { index: got, .. }))) => {
                assert_eq!(*got, index, "`{key}`: rule {got} won, rule {index} should have");
                let wanted = document.rules[index].pipeline.clone().unwrap_or_else(|| "pcb-trusted".into());
                assert_eq!(project.pipeline, wanted, "`{key}`: the winning rule's settings");
                assert_eq!(project.repo.fullname(), *key, "the key is the full name");
                if index < 5_000 { exact += 1 } else { pattern += 1 }
            }
            _ => panic!("`{key}`: expected rule {expected:?}, found {found:?}"),
        }
    }
    assert!(
        exact > 100 && pattern > 300 && none > 50,
        "a real mix was checked: {exact} exact, {pattern} pattern, {none} none"
    );
}

/// A forge past one secret's 64 KiB: the Lambdas' reader merges every shard (a shard not
/// made yet is empty), the editor writes only where it read and makes shards on demand, and
/// an edit that raced another is refused, not merged over it.
#[tokio::test]
async fn secret_shards_are_merged_by_readers_and_made_by_the_editor() {
    use bridge_core::ports::SecretSource as _;
    let moto = Moto::start();
    let (_, secrets) = deployment(&moto).await;
    let base = json!({"projects": {"rpms/a": {"trigger_token": TRIGGER_TOKEN}}, "shared_pagure_api_tokens": {"bot": API_TOKEN}});
    secrets.create_secret().name("pcb-tokens").secret_string(base.to_string()).send().await.expect("base");
    let second = json!({"projects": {"rpms/b": {"hook_token": HOOK_TOKEN}}});
    secrets.create_secret().name("pcb-tokens-shard-2").secret_string(second.to_string()).send().await.expect("shard 2");

    let reader = bridge_aws::SecretsManagerSource::new(secrets.clone(), "pcb-tokens").sharded(3);
    let document = bridge_core::ports::SecretsDocument::parse(&reader.fetch().await.expect("merged")).expect("doc");
    assert!(document.project("rpms/a").and_then(|p| p.trigger_token.as_ref()).is_some());
    assert!(document.project("rpms/b").and_then(|p| p.hook_token.as_ref()).is_some(), "shard 1 absent, shard 2 read");
    assert_eq!(document.pagure_api_token("rpms/b", Some("bot")).map(|t| t.expose()), Some(API_TOKEN));

    // A project in two shards is refused by the reader, naming it, never a value.
    let twice = json!({"projects": {"rpms/a": {"trigger_token": "another-value"}}});
    secrets.create_secret().name("pcb-tokens-shard-1").secret_string(twice.to_string()).send().await.expect("dup");
    let error = reader.fetch().await.expect_err("ambiguous").to_string();
    assert!(error.contains("rpms/a") && !error.contains("another-value") && !error.contains(TRIGGER_TOKEN), "{error}");
    secrets
        .delete_secret()
        .secret_id("pcb-tokens-shard-1")
        .force_delete_without_recovery(true)
        .send()
        .await
        .expect("rm");

    // The editor: shard 1 does not exist; a write there creates it.
    let editor = SecretsManagerEditor::new(secrets.clone(), "pcb-tokens").sharded(3);
    let shards = editor.read_shards().await.expect("shards");
    assert_eq!(
        shards.iter().map(|s| (s.id.as_str(), s.text.is_some())).collect::<Vec<_>>(),
        [("pcb-tokens", true), ("pcb-tokens-shard-1", false), ("pcb-tokens-shard-2", true)]
    );
    let made = json!({"projects": {"rpms/c": {"trigger_token": TRIGGER_TOKEN}}}).to_string();
    editor.write_shard(&shards[1], &made).await.expect("created on demand");
    let stored = secrets.get_secret_value().secret_id("pcb-tokens-shard-1").send().await.expect("made");
    assert_eq!(stored.secret_string(), Some(made.as_str()));
    // A stale read loses: shard 2 changed since `shards` was read.
    secrets
        .put_secret_value()
        .secret_id("pcb-tokens-shard-2")
        .secret_string(second.to_string())
        .send()
        .await
        .expect("rotate");
    let stale = editor.write_shard(&shards[2], "{}").await.expect_err("changed since read");
    assert!(stale.contains("changed while it was being edited"), "{stale}");
    let kept = secrets.get_secret_value().secret_id("pcb-tokens-shard-2").send().await.expect("kept");
    assert_eq!(kept.secret_string(), Some(second.to_string().as_str()), "the stale write changed nothing");
}
