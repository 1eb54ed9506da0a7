//! AWS adapters of bridge-core's ports: [`SqsQueue`] for `Queue`, [`SecretsManagerSource`]
//! (wrapped in core's `CachedSecrets`) for `Secrets`. Clients are built once by the caller
//! and passed in.

use aws_sdk_secretsmanager::error::DisplayErrorContext as SecretsErrorContext;
use aws_sdk_sqs::error::DisplayErrorContext as SqsErrorContext;
use aws_sdk_sqs::types::MessageAttributeValue;
use bridge_core::model::BuildRequest;
use bridge_core::ports::{Queue, QueueError, SecretSource, SecretsError};

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
        send.send().await.map(|_| ()).map_err(|e| QueueError::Unavailable(SqsErrorContext(e).to_string()))
    }
}

/// Reads the secrets document (JSON) from one Secrets Manager secret.
#[derive(Debug, Clone)]
pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    secret_id: String,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, secret_id: impl Into<String>) -> Self {
        SecretsManagerSource { client, secret_id: secret_id.into() }
    }
}

impl SecretSource for SecretsManagerSource {
    async fn fetch(&self) -> Result<String, SecretsError> {
        let output = self
            .client
            .get_secret_value()
            .secret_id(&self.secret_id)
            .send()
            .await
            .map_err(|e| SecretsError::Unavailable(SecretsErrorContext(e).to_string()))?;
        output
            .secret_string()
            .map(str::to_owned)
            .ok_or_else(|| SecretsError::Malformed(format!("secret `{}` holds no string value", self.secret_id)))
    }
}
