use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use super::pattern::{Pattern, glob};
use super::*;
use crate::model::TriggerKind;

fn compile(json: &str) -> Result<Registry, RegistryError> {
    Registry::compile(&BTreeMap::new(), Some(&RegistryDocument::parse(json)?), &Deployment::example())
}

fn at(result: Result<Registry, RegistryError>) -> String {
    match result {
        Err(RegistryError::Invalid { at, .. }) => at,
        other => panic!("expected an invalid registry, got {other:?}"),
    }
}

#[test]
fn globs_stay_inside_their_segment() {
    for (pattern, text, expected) in [
        ("*", "", true),
        ("*", "abc", true),
        ("a*c", "abbbc", true),
        ("a*c", "ab", false),
        ("*-devel", "python-devel", true),
        ("*-devel", "python-devel2", false),
        ("a*b*c", "aXbYbZc", true),
        ("a*b*c", "aXbYbZ", false),
        ("abc", "abc", true),
        ("abc", "abd", false),
    ] {
        assert_eq!(glob(pattern.as_bytes(), text.as_bytes()), expected, "{pattern} ~ {text}");
    }
    let p = Pattern::parse("rpms/*").expect("test value");
    assert!(p.matches(&["rpms", "python-requests"]));
    assert!(!p.matches(&["rpms", "a", "b"]), "`*` never crosses a '/'");
    assert!(!p.matches(&["rpms"]));
}

#[test]
fn exact_rules_win_then_patterns_in_order() {
    let registry = compile(
        r#"{"version": 1, "defaults": {"approval_phrase": "/ok-to-test"},
            "rules": [{"match": "rpms/*", "buildspec": "ci/a.yml"},
                      {"match": "*/python-*", "buildspec": "ci/b.yml"},
                      {"match": "rpms/kernel", "pipeline": "pcb-kernel", "approval_phrase": "/ok"},
                      {"match": "pagure-job", "project": "pagure"}]}"#,
    )
    .expect("valid");
    let kernel = registry.get("rpms/kernel").expect("exact");
    assert_eq!((kernel.pipeline.as_str(), kernel.approval_phrase.as_deref()), ("pcb-kernel", Some("/ok")));
    let (requests, source) = registry.lookup("rpms/python-requests").expect("pattern");
    assert_eq!(source, RuleSource::Rule { index: 0, matches: "rpms/*".into() }, "the first pattern wins");
    assert_eq!(requests.buildspec_paths, ["ci/a.yml"]);
    assert_eq!(requests.repo.fullname(), "rpms/python-requests", "a pattern's key is the full name");
    assert_eq!(requests.untrusted_pipeline.as_deref(), Some("pcb-untrusted"), "the deployment's default");
    assert_eq!(requests.approval_phrase.as_deref(), Some("/ok-to-test"), "the document's default");
    assert_eq!(registry.get("modules/python-x").expect("second pattern").buildspec_paths, ["ci/b.yml"]);
    assert!(registry.get("modules/perl").is_none());
    assert!(registry.get("rpms/a/b").is_none());
    assert!(registry.get("rpms/x.git").is_none(), "not a Pagure name");
    assert!(registry.get("../rpms").is_none());
    let pagure = registry.by_fullname("pagure");
    assert_eq!(pagure.iter().map(|p| p.key.as_str()).collect::<Vec<_>>(), ["pagure-job"]);
    assert_eq!(registry.by_fullname("rpms/python-requests")[0].key, "rpms/python-requests");
}

#[test]
fn a_wrong_rule_refuses_the_document_and_says_where() {
    let rules = |r: &str| format!(r#"{{"version": 1, "rules": [{{"match": "ok"}}, {r}]}}"#);
    assert_eq!(at(compile(&rules(r#"{"pipeline": "pcb-x"}"#))), "rules[1].match");
    assert_eq!(at(compile(&rules(r#"{"match": "a b"}"#))), "rules[1].match");
    assert_eq!(at(compile(&rules(r#"{"match": "ok"}"#))), "rules[1].match", "a duplicate");
    assert_eq!(at(compile(&rules(r#"{"match": "x", "pipeline": "other"}"#))), "rules[1].pipeline");
    assert_eq!(
        at(compile(&rules(r#"{"match": "x", "untrusted_pipeline": "pcb-trusted"}"#))),
        "rules[1].untrusted_pipeline"
    );
    assert_eq!(at(compile(&rules(r#"{"match": "x/*", "project": "x/y"}"#))), "rules[1].project");
    assert_eq!(at(compile(&rules(r#"{"match": "x", "buildspec": "../b.yml"}"#))), "rules[1].buildspec");
    assert_eq!(at(compile(&rules(r#"{"match": "x", "git_url": "ftp://h"}"#))), "rules[1].git_url");
    assert_eq!(
        at(compile(&rules(r#"{"match": "x", "approval_phrase": "pretty please pagure-ci rebuild"}"#))),
        "rules[1].approval_phrase"
    );
    assert_eq!(at(compile(&rules(r#"{"match": "x", "pagure_url": "http://pagure.io/"}"#))), "rules[1].pagure_url");
    assert!(compile(&rules(r#"{"match": "x", "pagure_url": "http://127.0.0.1:5000/"}"#)).is_ok(), "loopback");
    // The bot's shared token only goes to the deployment's forge.
    assert_eq!(
        at(compile(&rules(r#"{"match": "x", "pagure_url": "https://pagure.io/", "shared_pagure_api_token": "bot"}"#))),
        "rules[1].shared_pagure_api_token"
    );
    assert!(compile(&rules(r#"{"match": "x", "shared_pagure_api_token": "bot"}"#)).is_ok());
    // Across rules: untrusted code never in a trusted pipeline, the deployment's or a rule's.
    assert_eq!(
        at(compile(&rules(
            r#"{"match": "x", "pipeline": "pcb-x", "untrusted_pipeline": "pcb-kernel"},
                             {"match": "kernel", "pipeline": "pcb-kernel"}"#
        ))),
        "rules[1].untrusted_pipeline"
    );
    assert_eq!(
        at(compile(
            r#"{"version": 1, "defaults": {"untrusted_pipeline": "pcb-trusted"}, "rules": [{"match": "x/*"}]}"#
        )),
        "rules[0].untrusted_pipeline"
    );
    // One Pagure project under two keys in one pipeline: the report could not tell them apart.
    assert!(at(compile(&rules(r#"{"match": "alias", "project": "ok"}"#))).contains("`alias`"));
    assert!(
        compile(&rules(r#"{"match": "alias", "project": "ok", "pipeline": "pcb-a", "untrusted_pipeline": "pcb-au"}"#))
            .is_ok()
    );
    // An exact rule naming a project a pattern routes under its own name.
    let alias_of_pattern =
        compile(r#"{"version": 1, "rules": [{"match": "rpms/*"}, {"match": "k", "project": "rpms/kernel"}]}"#);
    assert!(
        matches!(alias_of_pattern, Err(RegistryError::Invalid { ref message, .. }) if message.contains("rule 0 (`rpms/*`)")),
        "{alias_of_pattern:?}"
    );
    assert_eq!(at(compile(r#"{"version": 1, "defaults": {"match": "a"}}"#)), "defaults.match");
    assert_eq!(at(compile(r#"{"version": 2}"#)), "version");
    assert!(at(compile(r#"{"version": 1, "rules": [{"match": "a", "colour": 1}]}"#)).starts_with("line 1"));
    let no_pipeline = Registry::compile(
        &BTreeMap::new(),
        Some(&RegistryDocument::parse(r#"{"version": 1, "rules": [{"match": "a"}]}"#).expect("test value")),
        &Deployment { pipeline: None, ..Deployment::example() },
    );
    assert_eq!(at(no_pipeline), "rules[0].pipeline");
}

#[test]
fn documents_round_trip() {
    let text = r#"{"version": 1, "defaults": {"shared_pagure_api_token": "bot"},
                   "rules": [{"match": "rpms/*", "triggers": ["jenkins"], "allow_forks": false}]}"#;
    let document = RegistryDocument::parse(text).expect("test value");
    assert_eq!(RegistryDocument::parse(&document.to_json()).expect("test value"), document);
    let project = compile(text).expect("test value").get("rpms/a").expect("test value");
    assert_eq!(project.shared_pagure_api_token.as_deref(), Some("bot"));
    assert_eq!(project.triggers, [TriggerKind::Jenkins]);
}

#[test]
fn a_segment_may_start_with_a_glob() {
    let registry = compile(r#"{"version": 1, "rules": [{"match": "rpms/*-devel"}, {"match": "*/*"}]}"#)
        .expect("`*-devel` is a valid pattern");
    let source = |key: &str| registry.lookup(key).map(|(_, source)| source);
    assert_eq!(source("rpms/python-devel"), Some(RuleSource::Rule { index: 0, matches: "rpms/*-devel".into() }));
    assert_eq!(source("rpms/python"), Some(RuleSource::Rule { index: 1, matches: "*/*".into() }));
}

#[derive(Debug)]
struct Scripted(std::sync::Mutex<Vec<Result<Option<String>, RegistryError>>>);

impl RegistrySource for Scripted {
    fn fetch(&self) -> Pin<Box<dyn Future<Output = Result<Option<String>, RegistryError>> + Send + '_>> {
        let next = self.0.lock().expect("test value").remove(0);
        Box::pin(async move { next })
    }
}

#[tokio::test]
async fn a_failed_refresh_keeps_the_last_good_registry() {
    let one = r#"{"version": 1, "rules": [{"match": "a"}]}"#.to_owned();
    let source = Scripted(std::sync::Mutex::new(vec![
        Err(RegistryError::Unavailable("down".into())),
        Ok(None),
        Ok(Some(one)),
        Ok(Some("{".into())),
        Err(RegistryError::Unavailable("down".into())),
    ]));
    let projects = Projects::loaded(source, Duration::ZERO, BTreeMap::new(), Deployment::example());
    assert!(projects.snapshot().await.is_err(), "nothing good yet: the error shows");
    assert!(projects.get("a").await.expect("test value").is_none(), "no document: an empty registry");
    assert!(projects.get("a").await.expect("test value").is_some());
    assert!(projects.get("a").await.expect("test value").is_some(), "a malformed document keeps the last good one");
    assert!(projects.get("a").await.expect("test value").is_some(), "so does a failed read");
}
