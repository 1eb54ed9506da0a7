//! Architecture invariants, checked on every run.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};
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

/// Crates that do network IO, talk to AWS or run git: adapters' business, never the domain's.
fn is_forbidden_in_core(name: &str) -> bool {
    // aws-lc-rs/aws-lc-sys are a cryptography library, not an AWS service client; neither is
    // reached from core today, but the name test must not catch them by accident.
    let aws = (name.starts_with("aws-") || name.starts_with("aws_")) && !name.starts_with("aws-lc-");
    aws || name.starts_with("lambda")
        || ["reqwest", "hyper", "hyper-util", "h2", "rustls", "git2", "libgit2-sys", "openssl-sys"].contains(&name)
}

#[test]
fn core_depends_on_no_network_cloud_or_git_crate() {
    let closure = core_dependency_closure(&metadata());
    assert!(closure.contains("serde"), "the closure was computed: {closure:?}");
    let offending: Vec<_> = closure.iter().filter(|name| is_forbidden_in_core(name)).collect();
    assert!(offending.is_empty(), "bridge-core depends on {offending:?}");
    assert!(
        is_forbidden_in_core("reqwest") && is_forbidden_in_core("aws-sdk-s3") && !is_forbidden_in_core("aws-lc-rs")
    );
}

/// The production part of a source file: everything before its `#[cfg(test)]` module, and
/// nothing from a file that is itself a test module.
fn production_text(path: &Path) -> String {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
    if name == "tests.rs" || name == "proptests.rs" || path.components().any(|c| c.as_os_str() == "tests") {
        return String::new();
    }
    let text = std::fs::read_to_string(path).expect("read");
    match text.find("#[cfg(test)]") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                dirs.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// Core's production code does no file, network or process IO: it reaches the outside only
/// through its ports. (Its tests may use temporary directories.)
#[test]
fn core_does_no_io_of_its_own() {
    let forbidden =
        ["std::fs", "tokio::fs", "File::open", "File::create", "std::net::Tcp", "tokio::net", "std::process"];
    let files = rust_files(&e2e_tests::root().join("crates/bridge-core/src"));
    assert!(files.len() > 10, "{files:?}");
    let mut offenders = Vec::new();
    for file in files {
        let text = production_text(&file);
        for word in forbidden.iter().filter(|w| text.contains(**w)) {
            offenders.push(format!("{}: {word}", file.display()));
        }
    }
    assert!(offenders.is_empty(), "IO in bridge-core's production code: {offenders:#?}");
}

/// Folder = package name; the domain depends on no other member; an adapter depends on the
/// domain and on no other adapter; only the composition roots (the Lambda adapter, the
/// command line, the tests) bring adapters together.
#[test]
fn crates_are_named_for_their_folder_and_adapters_stay_apart() {
    let meta = metadata();
    let root = e2e_tests::root().join("crates");
    let members: HashMap<String, &serde_json::Value> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|p| p["manifest_path"].as_str().is_some_and(|m| Path::new(m).starts_with(&root)))
        .map(|p| (p["name"].as_str().expect("name").to_owned(), p))
        .collect();
    assert!(members.len() >= 9, "{:?}", members.keys());
    let adapters = ["bridge-pagure", "bridge-aws", "bridge-git", "bridge-local"];
    for (name, package) in &members {
        let folder = Path::new(package["manifest_path"].as_str().expect("manifest")).parent().expect("folder");
        assert_eq!(folder.file_name().and_then(|f| f.to_str()), Some(name.as_str()), "folder of {name}");
        let internal: Vec<&str> = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            .filter(|d| d["kind"].is_null())
            .map(|d| d["name"].as_str().expect("name"))
            .filter(|d| members.contains_key(*d))
            .collect();
        if name == "bridge-core" {
            assert!(internal.is_empty(), "bridge-core depends on {internal:?}");
        } else if adapters.contains(&name.as_str()) {
            assert_eq!(
                internal,
                ["bridge-core"],
                "{name} depends on {internal:?}: adapters meet only in a composition root"
            );
        }
    }
    for adapter in adapters {
        assert!(members.contains_key(adapter), "{adapter} is missing");
    }
}

/// One crate per Lambda, named for its stage, and nothing but a binary: its code is a
/// library's (bridge-lambda), never a Lambda that is also a library.
#[test]
fn each_lambda_is_a_binary_only_crate() {
    for stage in ["accept", "work", "report"] {
        let dir = e2e_tests::root().join("crates").join(stage);
        let files: Vec<_> = rust_files(&dir.join("src"));
        assert_eq!(files, [dir.join("src/main.rs")], "{stage} holds more than its main.rs");
        let manifest = std::fs::read_to_string(dir.join("Cargo.toml")).expect("manifest");
        assert!(!manifest.contains("[lib]") && !manifest.contains("[features]"), "{stage}'s manifest: {manifest}");
    }
}

/// Files stay short enough to read in one sitting.
#[test]
fn no_source_file_is_over_six_hundred_lines() {
    let root = e2e_tests::root();
    let mut long = Vec::new();
    for dir in ["crates", "tests", "fuzz/fuzz_targets"] {
        for file in rust_files(&root.join(dir)) {
            let lines = std::fs::read_to_string(&file).expect("read").lines().count();
            if lines > MAX_FILE_LINES {
                long.push(format!("{}: {lines}", file.strip_prefix(&root).expect("under root").display()));
            }
        }
    }
    assert!(long.is_empty(), "files over {MAX_FILE_LINES} lines: {long:#?}");
}

const MAX_FILE_LINES: usize = 600;

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
    let marker = ["#[", "ignore"].concat();
    let root = e2e_tests::root();
    let offenders: Vec<_> = [root.join("crates"), root.join("tests")]
        .iter()
        .flat_map(|dir| rust_files(dir))
        .filter(|path| std::fs::read_to_string(path).expect("read").contains(&marker))
        .collect();
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
