//! The local mode queue.

use bridge_core::model::BuildRequest;
use bridge_core::ports::{Queue, QueueError};
use tokio::sync::mpsc;

/// The local mode queue: a bounded channel consumed in the same process.
#[derive(Debug, Clone)]
pub struct InProcessQueue {
    sender: mpsc::Sender<BuildRequest>,
}

impl InProcessQueue {
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<BuildRequest>) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        (InProcessQueue { sender }, receiver)
    }
}

impl Queue for InProcessQueue {
    async fn enqueue(&self, request: &BuildRequest) -> Result<(), QueueError> {
        self.sender.try_send(request.clone()).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => QueueError::Full,
            mpsc::error::TrySendError::Closed(_) => QueueError::Unavailable("the consumer has stopped".into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bridge_core::model::{BuildTarget, Cause, ProjectRef, TriggerKind};

    #[tokio::test]
    async fn in_process_queue_reports_full() {
        let (queue, mut rx) = InProcessQueue::new(1);
        let req = BuildRequest::new(
            BuildTarget {
                project: ProjectRef { key: "k".into(), namespace: None, name: "n".into(), fork_user: None },
                repo_url: "https://x.org/n.git".into(),
                cause: Cause::PullRequest { id: 1 },
                branch: "a".into(),
                branch_to: Some("b".into()),
            },
            TriggerKind::Json,
            time::OffsetDateTime::UNIX_EPOCH,
        );
        queue.enqueue(&req).await.expect("first fits");
        assert!(matches!(queue.enqueue(&req).await, Err(QueueError::Full)));
        assert_eq!(rx.recv().await.expect("received"), req);
        drop(rx);
        let closed = queue.enqueue(&req).await.expect_err("closed");
        assert_eq!(closed.to_string(), "the build queue is unavailable: the consumer has stopped");
    }
}
