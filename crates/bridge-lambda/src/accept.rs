//! The accept function: translates a function URL event (payload 2.0) into bridge-core's
//! `TriggerHttpRequest` and answers with the core handler's response.

use bridge_aws::{SecretsManagerSource, SqsQueue};
use bridge_core::accept::{AcceptService, TriggerHttpRequest};
use bridge_core::config::AcceptLambdaConfig;
use bridge_core::ports::CachedSecrets;
use bridge_pagure::PagureWebhooks;
use bytes::Bytes;
use lambda_http::request::RequestContext;
use lambda_http::{Body, Request, RequestExt, Response};

/// The service as deployed: SQS queue, Secrets Manager secret behind a TTL cache, Pagure's
/// web-hooks.
pub type LambdaAcceptService = AcceptService<SqsQueue, CachedSecrets<SecretsManagerSource>>;

/// Builds the service once, in `main`, from the environment and the AWS configuration.
pub fn build_service(config: AcceptLambdaConfig, aws: &aws_config::SdkConfig) -> LambdaAcceptService {
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(aws), config.queue_url);
    let accept = bridge_aws::S3Registry::attached(&config.accept, aws);
    AcceptService::new(
        accept,
        queue,
        SecretsManagerSource::cached(aws, config.secret_id, config.secret_shards, config.secrets_ttl),
        PagureWebhooks,
    )
}

/// Converts a function URL request. The body arrives decoded (lambda_http undoes base64);
/// the path is the raw path, the query the raw query string.
pub fn to_trigger_request(request: Request) -> TriggerHttpRequest {
    let source_ip = match request.request_context_ref() {
        Some(RequestContext::ApiGatewayV2(ctx)) => ctx.http.source_ip.as_deref().and_then(|ip| ip.parse().ok()),
        _ => None,
    };
    let path = match request.raw_http_path() {
        "" => request.uri().path().to_owned(),
        raw => raw.to_owned(),
    };
    let query = request.uri().query().unwrap_or("").to_owned();
    let (parts, body) = request.into_parts();
    let body = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    TriggerHttpRequest { method: parts.method, path, query, headers: parts.headers, body, source_ip, scheme: "https" }
}

/// The Lambda handler: a few lines around the core.
pub async fn handle(service: &LambdaAcceptService, request: Request) -> Result<Response<Body>, lambda_http::Error> {
    let response = service.handle(to_trigger_request(request)).await;
    Ok(response.map(|bytes| Body::Binary(bytes.to_vec())))
}

/// Serves function URL requests until the runtime stops.
pub async fn serve(service: &LambdaAcceptService) -> Result<(), crate::Error> {
    lambda_http::run(lambda_http::service_fn(|request| handle(service, request))).await
}
