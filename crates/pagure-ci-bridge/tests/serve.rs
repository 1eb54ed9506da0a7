//! The README's first command as a user runs it: the shipped binary serving the example
//! configuration, answering a trigger and queueing it. (What the worker then does depends
//! on reaching pagure.io; the whole local path is tested against a local git server in
//! tests/e2e/local_pipeline.rs.)

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn http(port: u16, request: &str) -> String {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    stream.write_all(request.as_bytes()).expect("write");
    let mut answer = String::new();
    let _ = stream.read_to_string(&mut answer);
    answer
}

#[test]
fn serve_example_config_accepts_and_queues_a_trigger() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let mut child = Command::new(env!("CARGO_BIN_EXE_pagure-ci-bridge"))
        .current_dir(&root)
        .args(["serve", "--config", "examples/local.toml", "--listen", &format!("127.0.0.1:{port}")])
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("start pagure-ci-bridge");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "did not listen within 10 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    let body = r#"{"cause": "42", "repo": "https://pagure.io/forks/alice/pagure.git", "branch": "fix-ci", "branch_to": "master"}"#;
    let answer = http(
        port,
        &format!(
            "POST /trigger/pagure HTTP/1.1\r\nHost: localhost\r\nAuthorization: token local-trigger-token\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        ),
    );
    assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
    assert!(answer.contains(r#""status":"queued""#), "{answer}");

    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let mut queued = None;
    for line in lines.by_ref() {
        let line = line.expect("log line");
        let entry: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        if entry["fields"]["message"] == "build request queued" {
            queued = Some(entry);
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let entry = queued.expect("a `build request queued` log line");
    assert_eq!(entry["fields"]["fork_user"], "alice");
    assert_eq!(entry["fields"]["cause"], "42");
    assert_eq!(entry["fields"]["branch"], "fix-ci");
    assert_eq!(entry["fields"]["trigger"], "json");
}

#[test]
fn check_config_names_the_bad_key() {
    let dir = std::env::temp_dir().join(format!("pcb-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("bad.toml");
    std::fs::write(&file, "[secrets]\nfile = \"s.json\"\n[projects.a]\npagure_url = \"https://pagure.io/\"\ngit_url = \"ftp://pagure.io\"\nproject = \"a\"\npipeline = \"p\"\n").expect("write");
    let output = Command::new(env!("CARGO_BIN_EXE_pagure-ci-bridge"))
        .args(["check-config", "--config"])
        .arg(&file)
        .output()
        .expect("run");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("projects.a.git_url"), "{stderr}");
    let ok = Command::new(env!("CARGO_BIN_EXE_pagure-ci-bridge"))
        .current_dir(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
        .args(["check-config", "--config", "examples/local.toml"])
        .output()
        .expect("run");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 inline project(s)"));
}
