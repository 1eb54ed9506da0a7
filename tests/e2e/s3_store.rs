//! The S3 artifact store with the real aws-sdk-s3 against moto: a versioned bucket,
//! single PUT and multipart uploads streamed from a file, encryption, metadata, markers.

use std::io::Write;

use aws_sdk_s3::types::ServerSideEncryption;
use bridge_aws::{Encryption, REVISION_SUMMARY_KEY, S3Store};
use bridge_core::ports::{ArtifactMetadata, ArtifactStore};
use e2e_tests::{Moto, temp_dir};

fn metadata() -> ArtifactMetadata {
    ArtifactMetadata {
        entries: vec![
            ("pagure-commit".into(), "05bab967134e26fd2a307065b49ce0bc2a2063ed".into()),
            ("pagure-branch".into(), "fix-é".into()),
        ],
        revision_summary: "demo PR #2 bob-fix -> rawhide (05bab967134e)".into(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_stream_to_a_versioned_bucket_with_metadata() {
    let moto = Moto::start();
    let s3 = moto.versioned_bucket("sources").await;
    let store = S3Store::new(s3.clone(), "sources", Encryption::S3Managed).with_multipart(6 << 20, 5 << 20);

    let dir = temp_dir("s3");
    for (name, size) in [("small.zip", 1000usize), ("large.zip", 13 << 20)] {
        let path = dir.join(name);
        let mut file = std::fs::File::create(&path).expect("file");
        let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
        file.write_all(&content).expect("write");
        let key = format!("sources/demo/{name}");
        let stored = store.put_archive(&key, &path, &metadata()).await.expect("stored");
        assert!(stored.version_id.is_some(), "{name}: a versioned bucket returns a version");
        let object = s3.get_object().bucket("sources").key(&key).send().await.expect("get");
        assert_eq!(object.server_side_encryption(), Some(&ServerSideEncryption::Aes256), "{name}");
        assert_eq!(object.version_id(), stored.version_id.as_deref());
        let meta = object.metadata().expect("metadata").clone();
        assert_eq!(meta["pagure-commit"], "05bab967134e26fd2a307065b49ce0bc2a2063ed");
        assert_eq!(meta["pagure-branch"], "fix-%C3%A9");
        assert_eq!(meta[REVISION_SUMMARY_KEY], "demo PR #2 bob-fix -> rawhide (05bab967134e)");
        let body = object.body.collect().await.expect("body").into_bytes();
        assert!(body.len() == content.len() && body[..] == content[..], "{name}: content round-trips");
    }

    assert_eq!(store.marker("sources/demo/x.started").await.expect("absent"), None);
    store.put_marker("sources/demo/x.started", "exec-1").await.expect("marker");
    assert_eq!(store.marker("sources/demo/x.started").await.expect("present").as_deref(), Some("exec-1"));
}

/// Build claims on S3 are conditional writes (`If-None-Match: *`, then `If-Match` on the
/// ETag to take over a stale one): of concurrent requests for one build exactly one wins,
/// and of concurrent take-overs exactly one too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_on_s3_have_exactly_one_winner() {
    use bridge_core::dedupe::{ClaimOutcome, claim};
    let moto = Moto::start();
    let s3 = moto.versioned_bucket("sources").await;
    let store = std::sync::Arc::new(S3Store::new(s3, "sources", Encryption::S3Managed));
    let window = std::time::Duration::from_secs(60);
    let start = time::OffsetDateTime::now_utc();
    for (round, now) in [("first", start), ("after the window", start + time::Duration::seconds(61))] {
        let tasks: Vec<_> = (0..40)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    claim(&*store, "sources/demo/claims/k", &format!("{round}-{i}"), false, now, window).await
                })
            })
            .collect();
        let mut winners = Vec::new();
        for task in tasks {
            match task.await.expect("task").expect("claim") {
                ClaimOutcome::Won => winners.push(()),
                ClaimOutcome::DuplicateOf { request_id, .. } => assert!(request_id.starts_with(round), "{request_id}"),
            }
        }
        assert_eq!(winners.len(), 1, "{round}: exactly one of 40 concurrent claims wins");
    }
}
