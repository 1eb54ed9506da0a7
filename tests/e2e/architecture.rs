//! Architecture invariants, checked on every run.

use std::collections::{BTreeSet, HashMap};
use std::process::Command;

fn metadata() -> serde_json::Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(e2e_tests::root())
        .output()
        .expect("cargo metadata");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&output.stdout).expect("metadata json")
}

/// Every package bridge-core pulls in, for any target and kind (normal, build, dev).
fn core_dependency_closure(meta: &serde_json::Value) -> BTreeSet<String> {
    let nodes: HashMap<&str, &serde_json::Value> = meta["resolve"]["nodes"]
        .as_array()
        .expect("resolve nodes")
        .iter()
        .map(|n| (n["id"].as_str().expect("id"), n))
        .collect();
    let names: HashMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|p| (p["id"].as_str().expect("id"), p["name"].as_str().expect("name")))
        .collect();
    let core = names.iter().find(|(_, name)| **name == "bridge-core").map(|(id, _)| *id).expect("bridge-core");
    let mut seen = BTreeSet::new();
    let mut stack = vec![core];
    while let Some(id) = stack.pop() {
        for dep in nodes[id]["deps"].as_array().expect("deps") {
            let dep_id = dep["pkg"].as_str().expect("pkg");
            if seen.insert(names[dep_id].to_owned()) {
                stack.push(dep_id);
            }
        }
    }
    seen
}

#[test]
fn core_has_no_aws_or_lambda_dependency() {
    let closure = core_dependency_closure(&metadata());
    assert!(closure.contains("serde"), "the closure was computed: {closure:?}");
    let offending: Vec<_> = closure
        .iter()
        .filter(|name| name.starts_with("aws-") || name.starts_with("aws_") || name.starts_with("lambda"))
        // aws-lc-rs/aws-lc-sys are a cryptography library (rustls' provider, the one the SDK
        // already links), not an AWS service client.
        .filter(|name| !name.starts_with("aws-lc-"))
        .collect();
    assert!(offending.is_empty(), "bridge-core depends on {offending:?}");
}

#[test]
fn lambda_and_cli_binaries_stay_thin() {
    for main in [
        "crates/accept/src/main.rs",
        "crates/work/src/main.rs",
        "crates/report/src/main.rs",
        "crates/pagure-ci-bridge/src/main.rs",
    ] {
        let text = std::fs::read_to_string(e2e_tests::root().join(main)).expect(main);
        let code_lines = text.lines().filter(|l| !l.trim().is_empty() && !l.trim_start().starts_with("//")).count();
        let limit = if main.contains("cli") { 60 } else { 15 };
        assert!(code_lines <= limit, "{main} has {code_lines} lines; move logic into the library");
    }
}

#[test]
fn no_test_is_ignored() {
    let mut offenders = Vec::new();
    let mut dirs = vec![e2e_tests::root().join("crates"), e2e_tests::root().join("tests")];
    let marker = ["#[", "ignore"].concat();
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs")
                && std::fs::read_to_string(&path).expect("read").contains(&marker)
            {
                offenders.push(path);
            }
        }
    }
    assert!(offenders.is_empty(), "ignored tests in {offenders:?}");
}

#[test]
fn the_example_buildspec_is_one_the_bridge_accepts() {
    let text = std::fs::read_to_string(e2e_tests::root().join("buildspec.yml")).expect("buildspec.yml");
    let variables =
        [("PAGURE_COMMIT", "05bab967134e26fd2a307065b49ce0bc2a2063ed".to_owned()), ("PAGURE_PR_ID", "2".to_owned())];
    let injected = bridge_core::buildspec::inject(&text, &variables).expect("the example buildspec is valid");
    let value: yaml_serde::Value = yaml_serde::from_str(&injected.text).expect("yaml");
    assert_eq!(value["version"], yaml_serde::Value::from(0.2));
    assert_eq!(value["env"]["variables"]["PAGURE_PR_ID"], "2");
    assert_eq!(value["env"]["variables"]["LANG"], "C.UTF-8");
    for phase in ["install", "pre_build", "build", "post_build"] {
        assert!(value["phases"][phase]["commands"].as_sequence().is_some_and(|c| !c.is_empty()), "{phase}");
    }
}
