use super::*;

#[test]
fn routes() {
    assert_eq!(route("/healthz"), Some(Route::Health));
    assert_eq!(route("/crumbIssuer/api/json"), Some(Route::Crumb));
    assert_eq!(route("/jenkins/crumbIssuer/api/json"), Some(Route::Crumb));
    assert_eq!(
        route("/jenkins/job/demo-job/buildWithParameters"),
        Some(Route::Jenkins { prefix: "/jenkins", job: "demo-job".into() })
    );
    assert_eq!(route("/job/a/job/b%20c/build"), Some(Route::Jenkins { prefix: "", job: "a/b c".into() }));
    // A path segment, not a form: `+` and `&` are themselves, bad UTF-8 is shown, not dropped.
    for (path, job) in
        [("/job/a+b%2Bc/build", "a+b+c"), ("/job/a&b=c/build", "a&b=c"), ("/job/%FFx%zz/build", "\u{fffd}x%zz")]
    {
        assert_eq!(route(path), Some(Route::Jenkins { prefix: "", job: job.into() }), "{path}");
    }
    assert_eq!(route("/trigger/a/b"), Some(Route::Json { key: "a/b".into() }));
    assert_eq!(route("/webhook/demo"), Some(Route::Webhook { key: "demo".into() }));
    for none in [
        "/",
        "",
        "/job/buildWithParameters",
        "/job//buildWithParameters",
        "/x/a/buildWithParameters",
        "/jenkinsjob/a/build",
        "/job/a/job/buildWithParameters",
    ] {
        assert_eq!(route(none), None, "{none}");
    }
}

#[test]
fn a_refused_trigger_gets_its_status_here() {
    use crate::trigger::{TriggerError, TriggerErrorKind};
    let cases = [
        (TriggerErrorKind::RepoNotAllowed, 403, "repo_not_allowed"),
        (TriggerErrorKind::InvalidCause, 400, "invalid_cause"),
        (TriggerErrorKind::InvalidBranch, 400, "invalid_branch"),
        (TriggerErrorKind::InvalidField, 400, "invalid_field"),
        (TriggerErrorKind::MissingField, 400, "missing_field"),
        (TriggerErrorKind::MalformedBody, 400, "malformed_body"),
        (TriggerErrorKind::MissingCredentials, 401, "missing_credentials"),
        (TriggerErrorKind::InvalidSignature, 401, "invalid_signature"),
        (TriggerErrorKind::WrongInstance, 403, "wrong_instance"),
    ];
    for (kind, status, code) in cases {
        let rejection = Rejection::from(TriggerError::new(kind, "why"));
        assert_eq!((rejection.status.as_u16(), rejection.code, rejection.reason.as_str()), (status, code, "why"));
        assert_eq!(rejection.header, None);
    }
}
