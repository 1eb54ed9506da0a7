//! A smart-HTTP git server for tests: `git http-backend` (CGI) behind a small hyper server
//! on 127.0.0.1, serving every repository under a root folder, with switchable faults.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::AsyncWriteExt;

/// How the server answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    None,
    /// Every request gets this status.
    Status(u16),
    /// Accept the request, then never answer.
    Hang,
    /// Redirect every request to this base URL (another host).
    RedirectTo(String),
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

async fn cgi(
    (root, fault): (PathBuf, Arc<Mutex<Fault>>),
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Full<Bytes>>, Infallible> {
    let fault = fault.lock().expect("fault").clone();
    match fault {
        Fault::Status(code) => {
            let mut response = hyper::Response::new(Full::new(Bytes::from_static(b"injected failure")));
            *response.status_mut() = hyper::StatusCode::from_u16(code).expect("status");
            return Ok(response);
        }
        Fault::Hang => {
            std::future::pending::<()>().await;
        }
        Fault::RedirectTo(base) => {
            let location = format!("{base}{}", request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"));
            let mut response = hyper::Response::new(Full::new(Bytes::new()));
            *response.status_mut() = hyper::StatusCode::FOUND;
            response.headers_mut().insert("location", location.parse().expect("location"));
            return Ok(response);
        }
        Fault::None => {}
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
    let output = child.wait_with_output().await.expect("http-backend output");
    let _ = writer.await;
    let raw = output.stdout;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| (i, 4))
        .or_else(|| raw.windows(2).position(|w| w == b"\n\n").map(|i| (i, 2)));
    let (head, content) = match split {
        Some((i, n)) => (&raw[..i], &raw[i + n..]),
        None => (&raw[..0], &raw[..]),
    };
    let mut response = hyper::Response::new(Full::new(Bytes::copy_from_slice(content)));
    for line in String::from_utf8_lossy(head).lines() {
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
