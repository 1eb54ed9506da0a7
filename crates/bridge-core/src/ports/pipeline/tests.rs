use super::*;

#[test]
fn start_errors_carry_their_classification_and_cause() {
    let missing = StartError::new(Retry::Terminal, "no pipeline named `gone`");
    assert!(matches!(missing, StartError::Terminal(_)) && !missing.is_transient());
    assert_eq!(missing.to_string(), "the pipeline cannot be started: no pipeline named `gone`");
    assert_eq!(missing.cause().to_string(), "no pipeline named `gone`");
    let throttled = StartError::new(Retry::Transient, ErrorCause::new(std::io::Error::other("rate exceeded")));
    assert!(throttled.is_transient());
    assert_eq!(std::error::Error::source(&throttled).map(ToString::to_string).as_deref(), Some("rate exceeded"));
}

#[tokio::test]
async fn in_memory_pipelines_answer_what_was_set_and_record_retries() {
    let pipelines = InMemoryPipelines::default();
    let build = BuildAction { build_id: Some("p:1".into()), ..BuildAction::default() };
    let state = ExecutionState { status: "Failed".into(), builds: vec![build], ..ExecutionState::default() };
    pipelines.set_execution("ci", "e1", state.clone());
    assert!(state.is_finished());
    assert_eq!(pipelines.execution_state("ci", "e1").await.expect("lookup"), Some(state));
    assert_eq!(pipelines.execution_state("other", "e1").await.expect("lookup"), None);
    assert!(pipelines.execution("ci", "e1").await.expect("lookup").expect("found").build_ran);
    assert_eq!(pipelines.execution_of_build("ci", "p:1").await.expect("lookup").as_deref(), Some("e1"));
    assert!(pipelines.retry_failed_actions("ci", "Build", "e1").await.expect("retry"));
    pipelines.refuse_retries.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(!pipelines.retry_failed_actions("ci", "Build", "e1").await.expect("retry"));
    assert_eq!(pipelines.retries(), [("ci".to_owned(), "Build".to_owned(), "e1".to_owned())]);
}

/// A lookup that answers only what every lookup must: the optional questions say so.
struct Minimal;

impl PipelineLookup for Minimal {
    async fn execution(&self, _: &str, _: &str) -> Result<Option<ExecutionFacts>, LookupError> {
        Ok(None)
    }

    async fn execution_of_build(&self, _: &str, _: &str) -> Result<Option<String>, LookupError> {
        Ok(None)
    }
}

#[tokio::test]
async fn optional_lookups_are_unsupported_and_terminal() {
    let error = Minimal.execution_state("ci", "e1").await.expect_err("unsupported");
    assert!(matches!(error, LookupError::Unsupported(_)) && !error.is_transient(), "{error}");
    assert_eq!(error.to_string(), "pipeline lookup failed: this lookup cannot tell an execution's state");
    assert!(Minimal.builds(&[]).await.is_err());
    assert!(!Minimal.retry_failed_actions("ci", "Build", "e1").await.expect("refused"));
}
