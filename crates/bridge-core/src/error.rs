//! Rejections: the accept edge's answer to a refused request, with the right status and a
//! JSON body `{"error": "<code>", "reason": "<what to do>"}`. Only the HTTP edges (the accept
//! handler, local mode's server) make them: the stages below say what went wrong in their
//! own error types (e.g. [`crate::trigger::TriggerError`]), and the accept handler chooses
//! the status.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};

/// A refused request. `code` is stable (documented in the README's troubleshooting table);
/// `reason` is for a human and never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub status: StatusCode,
    pub code: &'static str,
    pub reason: String,
    /// Extra header, e.g. `Allow` for 405 or `WWW-Authenticate` for 401.
    pub header: Option<(header::HeaderName, &'static str)>,
}

impl Rejection {
    pub fn new(status: StatusCode, code: &'static str, reason: impl Into<String>) -> Self {
        Rejection { status, code, reason: reason.into(), header: None }
    }

    /// 400 with a specific code (`invalid_branch`, `missing_field`, …).
    pub fn invalid(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, reason)
    }

    pub fn unauthorized(code: &'static str, reason: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, reason)
    }

    pub fn with_header(mut self, name: header::HeaderName, value: &'static str) -> Self {
        self.header = Some((name, value));
        self
    }

    pub fn into_response(self) -> Response<Bytes> {
        let body = serde_json::json!({"error": self.code, "reason": self.reason});
        let mut response = json_response(self.status, &body);
        if let Some((name, value)) = self.header {
            response.headers_mut().insert(name, HeaderValue::from_static(value));
        }
        response
    }
}

/// A JSON response with `Content-Type: application/json`.
pub fn json_response(status: StatusCode, body: &serde_json::Value) -> Response<Bytes> {
    let mut response = Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}
