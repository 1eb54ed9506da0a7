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
