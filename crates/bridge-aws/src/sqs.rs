//! SQS: the build-request queue (`Queue`) and message visibility for retries.

use crate::error_text;
use aws_sdk_sqs::types::MessageAttributeValue;
use bridge_core::model::BuildRequest;
use bridge_core::ports::{Queue, QueueError};

/// Message attributes set on every build request message.
pub mod attributes {
    pub const IDEMPOTENCY_KEY: &str = "idempotency_key";
    pub const PROJECT: &str = "project";
    pub const TRIGGER: &str = "trigger";
}

/// Sends build requests to an SQS queue: the JSON request as body, the idempotency key,
/// project and trigger kind as string attributes. On a FIFO queue (URL ending in `.fifo`)
/// messages are grouped per project and deduplicated by request id, so an SDK retry of the
/// same send is not delivered twice while two pushes in a row both are.
#[derive(Debug, Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    queue_url: String,
    fifo: bool,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, queue_url: impl Into<String>) -> Self {
        let queue_url = queue_url.into();
        let fifo = queue_url.ends_with(".fifo");
        SqsQueue { client, queue_url, fifo }
    }
}

fn string_attribute(value: &str) -> MessageAttributeValue {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        // `data_type` is set just above, the only field `build` checks.
        .expect("data_type is set")
}

impl Queue for SqsQueue {
    async fn enqueue(&self, request: &BuildRequest) -> Result<(), QueueError> {
        let mut send = self
            .client
            .send_message()
            .queue_url(&self.queue_url)
            .message_body(request.to_json())
            .message_attributes(attributes::IDEMPOTENCY_KEY, string_attribute(&request.idempotency_key))
            .message_attributes(attributes::PROJECT, string_attribute(&request.project.key))
            .message_attributes(attributes::TRIGGER, string_attribute(request.trigger.as_str()));
        if self.fifo {
            send = send.message_group_id(&request.project.key).message_deduplication_id(&request.request_id);
        }
        // The SDK error is kept as its text (with its whole chain of causes).
        send.send().await.map(|_| ()).map_err(|e| QueueError::Unavailable(error_text(e).into()))
    }
}

impl SqsQueue {
    /// Makes a received message visible again `delay` from now (`ChangeMessageVisibility`;
    /// SQS takes up to 12 hours): how the work Lambda spaces its retries instead of waiting
    /// out the queue's visibility timeout.
    pub async fn change_visibility(&self, receipt_handle: &str, delay: std::time::Duration) -> Result<(), QueueError> {
        let seconds = i32::try_from(delay.as_secs().min(MAX_VISIBILITY_SECONDS)).unwrap_or(i32::MAX);
        self.client
            .change_message_visibility()
            .queue_url(&self.queue_url)
            .receipt_handle(receipt_handle)
            .visibility_timeout(seconds)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| QueueError::Unavailable(error_text(e).into()))
    }
}

/// SQS's longest visibility timeout (12 hours).
pub const MAX_VISIBILITY_SECONDS: u64 = 43_200;
