use aws_sdk_codepipeline::Client;
use aws_sdk_codepipeline::operation::start_pipeline_execution::{
    StartPipelineExecutionError, StartPipelineExecutionOutput,
};
use aws_sdk_codepipeline::types::SourceRevisionType;
use aws_sdk_codepipeline::types::error::PipelineNotFoundException;
use aws_smithy_mocks::{RuleMode, mock, mock_client};

use super::*;
use bridge_core::ports::*;

fn artifact() -> StoredArtifact {
    StoredArtifact { key: "sources/demo/0123456789abcdef0123456789abcdef.zip".into(), version_id: Some("v1".into()) }
}

#[tokio::test]
async fn start_names_exactly_the_archive_and_passes_variables() {
    let rule = mock!(Client::start_pipeline_execution)
        .match_requests(|r| {
            let revision = &r.source_revisions()[0];
            r.name() == Some("demo-ci")
                && revision.action_name() == "Source"
                && *revision.revision_type() == SourceRevisionType::S3ObjectKey
                && revision.revision_value() == "sources/demo/0123456789abcdef0123456789abcdef.zip"
                && r.variables()
                    .iter()
                    .map(|v| (v.name(), v.value()))
                    .eq([("PAGURE_CAUSE", "2"), ("PAGURE_PR_ID", "2")])
                && r.client_request_token() == Some("sources-demo-0123456789abcdef0123456789abcdef-zip")
        })
        .then_output(|| StartPipelineExecutionOutput::builder().pipeline_execution_id("exec-1").build());
    let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, &[&rule]);
    let starter = CodePipelineStarter::new(client, "Source");
    let id = starter.start("demo-ci", &artifact(), &[("PAGURE_CAUSE", "2".into()), ("PAGURE_PR_ID", "2".into())]).await;
    assert_eq!(id.expect("started"), "exec-1");
    assert_eq!(rule.num_calls(), 1);
}

#[tokio::test]
async fn missing_pipelines_are_terminal() {
    let rule = mock!(Client::start_pipeline_execution).then_error(|| {
        StartPipelineExecutionError::PipelineNotFoundException(
            PipelineNotFoundException::builder().message("nope").build(),
        )
    });
    let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, &[&rule]);
    let result = CodePipelineStarter::new(client, "Source").start("gone", &artifact(), &[]).await;
    assert!(matches!(result, Err(StartError::Terminal(_))), "{result:?}");
}

/// Limits and throttling, modeled or not, as CodePipeline may answer them (the codes and
/// messages AWS documents), are transient: retried, never an `error` flag.
#[tokio::test]
async fn limits_and_throttling_are_transient() {
    use aws_sdk_codepipeline::error::ErrorMetadata;
    use aws_sdk_codepipeline::types::error::{
        ConcurrentPipelineExecutionsLimitExceededException, ConflictException, ValidationException,
    };
    let generic = |code: &'static str, message: &'static str| {
        move || StartPipelineExecutionError::generic(ErrorMetadata::builder().code(code).message(message).build())
    };
    let rules = [
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::ConcurrentPipelineExecutionsLimitExceededException(
                ConcurrentPipelineExecutionsLimitExceededException::builder()
                    .message("The pipeline has reached the limit for concurrent pipeline executions.")
                    .build(),
            )
        }),
        mock!(Client::start_pipeline_execution)
            .then_error(generic("LimitExceededException", "The number of pipelines exceeds the limit")),
        mock!(Client::start_pipeline_execution).then_error(generic("ThrottlingException", "Rate exceeded")),
        mock!(Client::start_pipeline_execution).then_error(generic(
            "AccountLimitExceededException",
            "Cannot have more than 1 builds in queue for the account",
        )),
        // A limit reported under the validation code is still a limit.
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::ValidationException(
                ValidationException::builder().message("Concurrent build limit exceeded for the account").build(),
            )
        }),
        mock!(Client::start_pipeline_execution).then_error(|| {
            StartPipelineExecutionError::ConflictException(
                ConflictException::builder().message("an execution with this token is in progress").build(),
            )
        }),
        mock!(Client::start_pipeline_execution).then_error(generic("InternalFailure", "")),
    ];
    // Without the SDK's own retries (which retry throttling before the bridge sees it).
    let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, &rules, |c| {
        c.retry_config(aws_sdk_codepipeline::config::retry::RetryConfig::disabled())
    });
    let starter = CodePipelineStarter::new(client, "Source");
    for rule in &rules {
        let result = starter.start("demo-ci", &artifact(), &[]).await;
        assert!(matches!(result, Err(StartError::Transient(_))), "{result:?}");
        assert_eq!(rule.num_calls(), 1);
    }
    // The two terminal answers, for contrast.
    use bridge_core::retry::Retry::{Terminal, Transient};
    assert_eq!(start_error_retry(Some("ValidationException"), Some("Variable name is not valid")), Terminal);
    assert_eq!(start_error_retry(Some("PipelineNotFoundException"), None), Terminal);
    assert_eq!(
        start_error_retry(
            Some("PipelineNotFoundException"),
            Some("PipelineNotFoundException: no pipeline named 'rate-limit-exceeded-ci'")
        ),
        Terminal
    );
    assert_eq!(start_error_retry(Some("ValidationException"), Some("Rate exceeded")), Transient);
    assert_eq!(start_error_retry(None, None), Transient);
}

fn codebuild_action(execution: &str, build: &str) -> aws_sdk_codepipeline::types::ActionExecutionDetail {
    use aws_sdk_codepipeline::types::{
        ActionCategory, ActionExecutionDetail, ActionExecutionInput, ActionExecutionOutput, ActionExecutionResult,
        ActionOwner, ActionTypeId,
    };
    let type_id = ActionTypeId::builder()
        .category(ActionCategory::Build)
        .owner(ActionOwner::Aws)
        .provider("CodeBuild")
        .version("1")
        .build()
        .expect("type id");
    ActionExecutionDetail::builder()
        .pipeline_execution_id(execution)
        .action_name("Build")
        .input(ActionExecutionInput::builder().action_type_id(type_id).build())
        .output(
            ActionExecutionOutput::builder()
                .execution_result(ActionExecutionResult::builder().external_execution_id(build).build())
                .build(),
        )
        .build()
}

#[tokio::test]
async fn lookups_read_variables_and_whether_codebuild_ran() {
    use aws_sdk_codepipeline::operation::get_pipeline_execution::{
        GetPipelineExecutionError, GetPipelineExecutionOutput,
    };
    use aws_sdk_codepipeline::operation::list_action_executions::ListActionExecutionsOutput;
    use aws_sdk_codepipeline::types::error::PipelineExecutionNotFoundException;
    use aws_sdk_codepipeline::types::{PipelineExecution, ResolvedPipelineVariable};
    let get = mock!(Client::get_pipeline_execution)
        .match_requests(|r| r.pipeline_name() == Some("demo-ci") && r.pipeline_execution_id() == Some("e1"))
        .then_output(|| {
            GetPipelineExecutionOutput::builder()
                .pipeline_execution(
                    PipelineExecution::builder()
                        .pipeline_execution_id("e1")
                        .status_summary("Source: denied")
                        .variables(
                            ResolvedPipelineVariable::builder().name("PAGURE_REQUEST_ID").resolved_value("r1").build(),
                        )
                        .build(),
                )
                .build()
        });
    let actions = mock!(Client::list_action_executions)
        .match_requests(|r| r.filter().and_then(|f| f.pipeline_execution_id()) == Some("e1"))
        .then_output(|| {
            ListActionExecutionsOutput::builder().action_execution_details(codebuild_action("e1", "p:1")).build()
        });
    let missing = mock!(Client::get_pipeline_execution).then_error(|| {
        GetPipelineExecutionError::PipelineExecutionNotFoundException(
            PipelineExecutionNotFoundException::builder().message("no").build(),
        )
    });
    let recent = mock!(Client::list_action_executions).match_requests(|r| r.filter().is_none()).then_output(|| {
        ListActionExecutionsOutput::builder()
            .action_execution_details(codebuild_action("e0", "p:0"))
            .action_execution_details(codebuild_action("e2", "p:2"))
            .build()
    });
    let client = mock_client!(aws_sdk_codepipeline, RuleMode::Sequential, &[&get, &actions, &missing, &recent]);
    let lookup = CodePipelineLookup::new(client);
    let facts = lookup.execution("demo-ci", "e1").await.expect("lookup").expect("found");
    assert_eq!(facts.variables.get("PAGURE_REQUEST_ID").map(String::as_str), Some("r1"));
    assert!(facts.build_ran);
    assert_eq!(facts.summary.as_deref(), Some("Source: denied"));
    assert_eq!(lookup.execution("demo-ci", "gone").await.expect("lookup"), None);
    assert_eq!(lookup.execution_of_build("demo-ci", "p:2").await.expect("lookup").as_deref(), Some("e2"));
}

#[test]
fn tokens_and_headers() {
    assert_eq!(request_token(&"a/".repeat(100)).len(), 128);
    assert_eq!(header_safe("PR #2 fix → main"), "PR #2 fix %E2%86%92 main");
    assert_eq!(header_safe("tab\there"), "tab%09here");
    assert_eq!(header_safe("a%41"), "a%2541", "an encoded-looking name stays distinct from `aA`");
    assert_ne!(header_safe("a%41"), header_safe("aA"));
    for value in ["a%41", "PR #2 fix → main", "tab\there", "https://pagure.io/forks/é/demo.git", "100%", ""] {
        assert_eq!(header_value(&header_safe(value)), value, "read back as written");
    }
}

/// The encoder before it was `percent-encoding`'s: printable ASCII and space kept, except
/// `%`; every other character's UTF-8 bytes as `%XX`.
fn header_safe_by_hand(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if (c.is_ascii_graphic() && c != '%') || c == ' ' {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push_str(&format!("%{byte:02X}"));
            }
        }
    }
    out
}

#[test]
fn header_safe_encodes_exactly_as_before() {
    let every: String = (0..0x3000u32).chain([0xFEFF, 0xFFFD, 0x1F600, 0x10FFFF]).filter_map(char::from_u32).collect();
    assert_eq!(header_safe(&every), header_safe_by_hand(&every));
    for value in ["", "%", "%%41", "main", "feature/ü-ß", "\u{7f}\u{0}\r\n", "PR #2 fix → main"] {
        assert_eq!(header_safe(value), header_safe_by_hand(value), "{value:?}");
    }
}

#[tokio::test]
async fn store_failures_keep_their_cause_and_are_transient() {
    use bridge_core::retry::Transience;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::Config::builder().behavior_version(aws_sdk_s3::config::BehaviorVersion::latest()).build(),
    );
    let store = S3Store::new(client, "bucket", Encryption::S3Managed);
    let missing = std::path::Path::new("/nonexistent/pcb-archive.zip");
    let metadata = ArtifactMetadata { entries: Vec::new(), revision_summary: String::new() };
    let error = store.put_archive("sources/k.zip", missing, &metadata).await.expect_err("no file");
    assert!(error.is_transient(), "{error}");
    let StoreError::Failed(cause) = &error else { panic!("{error:?}") };
    assert!(cause.error().downcast_ref::<std::io::Error>().is_some(), "the I/O error itself: {cause:?}");
}
