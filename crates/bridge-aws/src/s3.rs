//! S3: source archives and markers (`ArtifactStore`).

use crate::error_text;
use bridge_core::ports::{
    ArtifactMetadata, ArtifactStore, ErrorCause, ListedObject, Listing, StoreError, StoredArtifact, StoredMarker,
};
use percent_encoding::{AsciiSet, CONTROLS, utf8_percent_encode};

/// An S3 call that failed: the SDK's error as its text, with its whole chain of causes.
fn sdk_failed(error: impl std::error::Error) -> StoreError {
    StoreError::Failed(error_text(error).into())
}

/// Server-side encryption of stored archives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Encryption {
    /// SSE-S3 (AES-256, keys managed by S3).
    S3Managed,
    /// SSE-KMS with this key id or ARN.
    Kms(String),
}

/// Stores archives in S3: streamed from the file (never held in memory), as one PUT up to
/// `multipart_threshold` bytes and as a multipart upload above it, encrypted, with the
/// request's metadata and CodePipeline's `codepipeline-artifact-revision-summary`.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    encryption: Encryption,
    multipart_threshold: u64,
    part_size: u64,
}

impl S3Store {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>, encryption: Encryption) -> Self {
        S3Store { client, bucket: bucket.into(), encryption, multipart_threshold: 64 << 20, part_size: 16 << 20 }
    }

    /// Sets the multipart threshold and part size (S3's minimum part size is 5 MiB).
    pub fn with_multipart(mut self, threshold: u64, part_size: u64) -> Self {
        self.multipart_threshold = threshold;
        self.part_size = part_size.max(5 << 20);
        self
    }

    fn sse(&self) -> (aws_sdk_s3::types::ServerSideEncryption, Option<String>) {
        use aws_sdk_s3::types::ServerSideEncryption;
        match &self.encryption {
            Encryption::S3Managed => (ServerSideEncryption::Aes256, None),
            Encryption::Kms(key) => (ServerSideEncryption::AwsKms, Some(key.clone())),
        }
    }

    async fn multipart(
        &self,
        key: &str,
        path: &std::path::Path,
        len: u64,
        metadata: &std::collections::HashMap<String, String>,
    ) -> Result<Option<String>, StoreError> {
        use aws_sdk_s3::primitives::ByteStream;
        use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
        let (sse, kms) = self.sse();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type("application/zip")
            .set_metadata(Some(metadata.clone()))
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms)
            .send()
            .await
            .map_err(sdk_failed)?;
        let upload_id = created.upload_id().ok_or(StoreError::Failed("S3 returned no upload id".into()))?.to_owned();
        let result = async {
            let mut parts = Vec::new();
            let mut offset = 0;
            let mut number = 1;
            while offset < len {
                let length = self.part_size.min(len - offset);
                let body = ByteStream::read_from()
                    .path(path)
                    .offset(offset)
                    .length(aws_sdk_s3::primitives::Length::Exact(length))
                    .build()
                    .await
                    .map_err(|e| StoreError::Failed(ErrorCause::new(e)))?;
                let part = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(body)
                    .send()
                    .await
                    .map_err(sdk_failed)?;
                parts.push(
                    CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(str::to_owned)).build(),
                );
                offset += length;
                number += 1;
            }
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
                .send()
                .await
                .map_err(sdk_failed)?;
            Ok(done.version_id().map(str::to_owned))
        }
        .await;
        if result.is_err() {
            // Parts of an abandoned upload cost storage until aborted.
            let _ =
                self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(&upload_id).send().await;
        }
        result
    }
}

/// What [`header_safe`] encodes besides every non-ASCII byte: the control characters
/// (DEL included) and `%` itself.
const NOT_HEADER_SAFE: &AsciiSet = &CONTROLS.add(b'%');

/// S3 user metadata travels in HTTP headers: printable ASCII (and space) only. Anything else
/// is percent-encoded, byte by byte of its UTF-8 (a branch name may hold any), and so is `%`
/// itself, so that the value can be read back exactly (`a%41` and `aA` stay two different
/// branches).
pub fn header_safe(value: &str) -> String {
    utf8_percent_encode(value, NOT_HEADER_SAFE).to_string()
}

/// The value [`header_safe`] encoded, back as it was.
pub fn header_value(encoded: &str) -> String {
    percent_encoding::percent_decode_str(encoded).decode_utf8_lossy().into_owned()
}

/// The metadata key CodePipeline shows as the revision summary.
pub const REVISION_SUMMARY_KEY: &str = "codepipeline-artifact-revision-summary";

impl ArtifactStore for S3Store {
    async fn put_archive(
        &self,
        key: &str,
        path: &std::path::Path,
        metadata: &ArtifactMetadata,
    ) -> Result<StoredArtifact, StoreError> {
        let len = std::fs::metadata(path).map_err(|e| StoreError::Failed(e.into()))?.len();
        let mut map: std::collections::HashMap<String, String> =
            metadata.entries.iter().map(|(k, v)| (k.to_ascii_lowercase(), header_safe(v))).collect();
        map.insert(REVISION_SUMMARY_KEY.into(), header_safe(&metadata.revision_summary));
        let version_id = if len > self.multipart_threshold {
            self.multipart(key, path, len, &map).await?
        } else {
            let (sse, kms) = self.sse();
            let body = aws_sdk_s3::primitives::ByteStream::from_path(path)
                .await
                .map_err(|e| StoreError::Failed(ErrorCause::new(e)))?;
            self.client
                .put_object()
                .bucket(&self.bucket)
                .key(key)
                .body(body)
                .content_type("application/zip")
                .set_metadata(Some(map))
                .server_side_encryption(sse)
                .set_ssekms_key_id(kms)
                .send()
                .await
                .map_err(sdk_failed)?
                .version_id()
                .map(str::to_owned)
        };
        Ok(StoredArtifact { key: key.to_owned(), version_id })
    }

    async fn put_marker(&self, key: &str, content: &str) -> Result<(), StoreError> {
        self.put_small(key, content).send().await.map(|_| ()).map_err(sdk_failed)
    }

    async fn marker(&self, key: &str) -> Result<Option<String>, StoreError> {
        Ok(self.read_marker(key).await?.map(|m| m.content))
    }

    async fn create_marker(&self, key: &str, content: &str) -> Result<Option<StoredMarker>, StoreError> {
        let sent = self.put_small(key, content).if_none_match("*").send().await;
        match sent {
            Ok(_) => Ok(None),
            Err(e) if lost_condition(&e) => self
                .read_marker(key)
                .await?
                .map(Some)
                // Lost to a write that is not visible yet: the message is tried again.
                .ok_or_else(|| StoreError::Contended(format!("`{key}` was being created by another request"))),
            Err(e) => Err(sdk_failed(e)),
        }
    }

    async fn replace_marker(&self, key: &str, content: &str, seen: &StoredMarker) -> Result<bool, StoreError> {
        let sent = self.put_small(key, content).if_match(&seen.version).send().await;
        match sent {
            Ok(_) => Ok(true),
            Err(e) if lost_condition(&e) || e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(sdk_failed(e)),
        }
    }

    async fn list(&self, prefix: &str, start_after: Option<&str>, max: usize) -> Result<Listing, StoreError> {
        let output = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .max_keys(max.clamp(1, 1000) as i32)
            .send()
            .await
            .map_err(sdk_failed)?;
        let objects = output
            .contents()
            .iter()
            .filter_map(|object| {
                let modified = object.last_modified()?;
                let last_modified = time::OffsetDateTime::from_unix_timestamp_nanos(modified.as_nanos()).ok()?;
                Some(ListedObject { key: object.key()?.to_owned(), last_modified })
            })
            .collect();
        Ok(Listing { objects, truncated: output.is_truncated().unwrap_or(false) })
    }

    async fn archive_metadata(&self, key: &str) -> Result<Option<Vec<(String, String)>>, StoreError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            // Values come back as `put_archive` wrote them, percent-encoded: decoded here, so
            // the sweep compares the request's own repository and branch, not their encoding.
            Ok(output) => Ok(Some(
                output
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.clone(), header_value(v))).collect())
                    .unwrap_or_default(),
            )),
            Err(e) if e.as_service_error().is_some_and(|se| se.is_not_found()) => Ok(None),
            Err(e) => Err(sdk_failed(e)),
        }
    }
}

impl S3Store {
    /// A PUT of a small marker object, encrypted as the archives are.
    fn put_small(
        &self,
        key: &str,
        content: &str,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        let (sse, kms) = self.sse();
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(content.as_bytes().to_vec().into())
            .server_side_encryption(sse)
            .set_ssekms_key_id(kms)
    }

    async fn read_marker(&self, key: &str) -> Result<Option<StoredMarker>, StoreError> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(output) => {
                let version = output.e_tag().unwrap_or_default().to_owned();
                let bytes =
                    output.body.collect().await.map_err(|e| StoreError::Failed(ErrorCause::new(e)))?.into_bytes();
                Ok(Some(StoredMarker { content: String::from_utf8_lossy(&bytes).into_owned(), version }))
            }
            Err(e) if e.as_service_error().is_some_and(|se| se.is_no_such_key()) => Ok(None),
            Err(e) => Err(sdk_failed(e)),
        }
    }
}

/// A conditional write that lost: 412 Precondition Failed, or 409 ConditionalRequestConflict
/// (S3's answer while a concurrent conditional write to the key is in flight).
pub(crate) fn lost_condition<E>(
    error: &aws_sdk_s3::error::SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
) -> bool {
    error.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 409 | 412))
}
