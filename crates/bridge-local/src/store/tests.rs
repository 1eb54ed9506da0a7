use bridge_core::retry::Transience;

use super::*;

fn metadata() -> ArtifactMetadata {
    ArtifactMetadata { entries: vec![("pagure-commit".into(), "abc".into())], revision_summary: "demo push".into() }
}

#[tokio::test]
async fn archives_and_their_metadata_are_files_in_the_folder() {
    let dir = tempfile::tempdir().expect("dir");
    let store = DirectoryStore::new(dir.path().join("artifacts"));
    let zip = dir.path().join("source.zip");
    std::fs::write(&zip, b"PK").expect("zip");
    let stored = store.put_archive("sources/demo/r1.zip", &zip, &metadata()).await.expect("stored");
    assert_eq!(stored, StoredArtifact { key: "sources/demo/r1.zip".into(), version_id: None });
    assert_eq!(std::fs::read(dir.path().join("artifacts/sources/demo/r1.zip")).expect("copy"), b"PK");
    let entries = store.archive_metadata("sources/demo/r1.zip").await.expect("read");
    assert_eq!(entries, Some(vec![("pagure-commit".to_owned(), "abc".to_owned())]));
    assert_eq!(store.archive_metadata("sources/demo/gone.zip").await.expect("read"), None);
    // The metadata file is the store's own: not listed.
    store.put_marker("sources/demo/r1.started", "exec-1").await.expect("marker");
    let listing = store.list("sources/demo/", None, 10).await.expect("list");
    let keys: Vec<_> = listing.objects.iter().map(|o| o.key.as_str()).collect();
    assert_eq!(keys, ["sources/demo/r1.started", "sources/demo/r1.zip"]);
    let page = store.list("sources/", Some("sources/demo/r1.started"), 10).await.expect("list");
    assert_eq!(page.objects.len(), 1);
    assert!(!store.list("sources/", None, 1).await.expect("list").objects.is_empty());
    assert!(store.list("sources/", None, 1).await.expect("list").truncated);
}

#[tokio::test]
async fn markers_are_created_once_and_swapped_only_from_the_version_seen() {
    let dir = tempfile::tempdir().expect("dir");
    let store = DirectoryStore::new(dir.path());
    assert_eq!(store.marker("c/k").await.expect("read"), None);
    assert_eq!(store.create_marker("c/k", "first").await.expect("create"), None);
    let seen = store.create_marker("c/k", "second").await.expect("create").expect("exists");
    assert_eq!(seen.content, "first");
    assert!(store.replace_marker("c/k", "third", &seen).await.expect("swap"));
    assert!(!store.replace_marker("c/k", "fourth", &seen).await.expect("stale"), "changed since it was seen");
    assert_eq!(store.marker("c/k").await.expect("read").as_deref(), Some("third"));
}

/// Of 100 concurrent creations of one marker, exactly one creates it: the file system
/// decides (a hard link fails when the name exists).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn of_a_hundred_concurrent_creations_exactly_one_wins() {
    let dir = tempfile::tempdir().expect("dir");
    let store = Arc::new(DirectoryStore::new(dir.path()));
    let tasks: Vec<_> = (0..100)
        .map(|i| {
            let store = store.clone();
            tokio::spawn(async move { store.create_marker("c/k", &format!("r{i}")).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        created += usize::from(task.await.expect("task").expect("create").is_none());
    }
    assert_eq!(created, 1);
}

#[tokio::test]
async fn keys_that_could_leave_the_folder_are_refused_for_good() {
    let dir = tempfile::tempdir().expect("dir");
    let store = DirectoryStore::new(dir.path().join("inside"));
    for key in ["../outside", "a//b", "./a", "a/.."] {
        let error = store.put_marker(key, "x").await.expect_err(key);
        assert!(matches!(&error, StoreError::RefusedKey(k) if k == key) && !error.is_transient(), "{error}");
    }
    assert!(!dir.path().join("outside").exists());
    // An I/O failure is kept as the cause, and is worth another try.
    std::fs::write(dir.path().join("inside"), "a file where the folder should be").expect("file");
    let error = store.put_marker("c/k", "x").await.expect_err("not a folder");
    let StoreError::Failed(cause) = &error else { panic!("{error:?}") };
    assert!(cause.error().downcast_ref::<std::io::Error>().is_some() && error.is_transient(), "{error}");
}
