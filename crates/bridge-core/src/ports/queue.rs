//! The build queue: where the accept stage puts the requests it accepted. SQS in AWS
//! (`bridge-aws`), an in-process channel in local mode (`bridge-local`).

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Mutex;

use super::ErrorCause;
use crate::model::BuildRequest;
use crate::retry::{Retry, Transience};

/// Why a request was not queued. Either way nothing was queued, and sending it again later
/// may succeed: the accept stage answers 503.
#[derive(Debug, Clone, thiserror::Error)]
pub enum QueueError {
    #[error("the build queue is full")]
    Full,
    #[error("the build queue is unavailable: {0}")]
    Unavailable(#[source] ErrorCause),
}

impl Transience for QueueError {
    fn retry(&self) -> Retry {
        match self {
            QueueError::Full | QueueError::Unavailable(_) => Retry::Transient,
        }
    }
}

/// Where accepted build requests go.
pub trait Queue: Send + Sync {
    fn enqueue(&self, request: &BuildRequest) -> impl Future<Output = Result<(), QueueError>> + Send;
}

/// One queue shared (a handler and whoever looks at what it queued).
impl<T: Queue> Queue for std::sync::Arc<T> {
    fn enqueue(&self, request: &BuildRequest) -> impl Future<Output = Result<(), QueueError>> + Send {
        (**self).enqueue(request)
    }
}

/// A bounded queue held in memory: the tests' and benchmarks' [`Queue`]. Requests wait until
/// [`InMemoryQueue::take`]; beyond `capacity` the queue is full. A capacity of zero refuses
/// every request as full.
#[derive(Debug, Default)]
pub struct InMemoryQueue {
    capacity: usize,
    queued: Mutex<VecDeque<BuildRequest>>,
}

impl InMemoryQueue {
    pub fn new(capacity: usize) -> Self {
        InMemoryQueue { capacity, queued: Mutex::default() }
    }

    /// Every request queued so far, oldest first; the queue is empty afterwards.
    pub fn take(&self) -> Vec<BuildRequest> {
        self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner).drain(..).collect()
    }
}

impl Queue for InMemoryQueue {
    async fn enqueue(&self, request: &BuildRequest) -> Result<(), QueueError> {
        let mut queued = self.queued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if queued.len() >= self.capacity {
            return Err(QueueError::Full);
        }
        queued.push_back(request.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests;
