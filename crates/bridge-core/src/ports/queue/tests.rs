use super::*;
use crate::model::{BuildRequest, BuildTarget, Cause, ProjectRef, TriggerKind};

fn request() -> BuildRequest {
    BuildRequest::new(
        BuildTarget {
            project: ProjectRef { key: "k".into(), namespace: None, name: "n".into(), fork_user: None },
            repo_url: "https://x.org/n.git".into(),
            cause: Cause::PullRequest { id: 1 },
            branch: "a".into(),
            branch_to: Some("b".into()),
        },
        TriggerKind::Json,
        time::OffsetDateTime::UNIX_EPOCH,
    )
}

#[tokio::test]
async fn in_memory_queue_holds_up_to_its_capacity() {
    let queue = InMemoryQueue::new(1);
    let req = request();
    queue.enqueue(&req).await.expect("first fits");
    let full = queue.enqueue(&req).await.expect_err("full");
    assert!(matches!(full, QueueError::Full) && full.is_transient());
    assert_eq!(queue.take(), std::slice::from_ref(&req));
    queue.enqueue(&req).await.expect("room again");
    assert!(matches!(InMemoryQueue::new(0).enqueue(&req).await, Err(QueueError::Full)));
}

#[test]
fn an_unavailable_queue_keeps_its_cause() {
    let error = QueueError::Unavailable(super::super::ErrorCause::new(std::io::Error::other("gone")));
    assert_eq!(error.to_string(), "the build queue is unavailable: gone");
    assert_eq!(std::error::Error::source(&error).map(ToString::to_string).as_deref(), Some("gone"));
    assert!(error.is_transient());
}
