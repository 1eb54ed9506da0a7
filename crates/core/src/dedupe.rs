//! Merging requests for the same build. The same push can arrive through pagure-ci and a
//! web-hook, a web-hook can be delivered twice, and a script can fire a burst of identical
//! calls: each is a separate request (its own id and message), but only the first within
//! the window starts a pipeline. The others end as duplicates of it.
//!
//! The claim is a marker in the artifact store, `<prefix>/<project>/claims/<build key>`,
//! created with a conditional write (S3 `If-None-Match: *`) so that of concurrent requests
//! exactly one wins, and taken over with a compare and swap (`If-Match`) once it is older
//! than the window or released.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::model::{BuildRequest, Cause, short_digest};
use crate::ports::{ArtifactStore, StoreError};

/// The build a request asks for: its event (the idempotency key) and, for a pull request,
/// the head commit it resolved to (a PR's new head is a new build; its key alone would not
/// tell). `None` while a PR's head is unknown.
pub fn build_key(request: &BuildRequest, resolved_commit: Option<&str>) -> Option<String> {
    match (&request.cause, resolved_commit) {
        (Cause::Commit { .. }, _) => Some(request.idempotency_key.clone()),
        (Cause::PullRequest { .. }, Some(commit)) => Some(short_digest(&[&request.idempotency_key, commit])),
        (Cause::PullRequest { .. }, None) => None,
    }
}

/// What a claim marker holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Claim {
    request_id: String,
    /// Unix seconds.
    claimed_at: i64,
    /// Set when the claiming request failed for good: a retrigger (after a fix on the
    /// default branch, say) must not be merged into a build that never ran.
    #[serde(default)]
    released: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This request builds.
    Won,
    /// Another request claimed the same build `age` ago; this one starts nothing.
    DuplicateOf { request_id: String, age: Duration },
}

/// Claims the build `key` for `request_id` at `now`. A rebuild takes the claim whatever is
/// there (it always builds, and identical calls right after it merge into it). A window of
/// zero claims nothing.
pub async fn claim<St: ArtifactStore>(
    store: &St,
    key: &str,
    request_id: &str,
    rebuild: bool,
    now: OffsetDateTime,
    window: Duration,
) -> Result<ClaimOutcome, StoreError> {
    if window.is_zero() {
        return Ok(ClaimOutcome::Won);
    }
    let mine =
        serde_json::json!(Claim { request_id: request_id.into(), claimed_at: now.unix_timestamp(), released: false })
            .to_string();
    if rebuild {
        store.put_marker(key, &mine).await?;
        return Ok(ClaimOutcome::Won);
    }
    // Each lost race means another request changed the claim in between; its new content
    // decides on the next turn. A few turns are plenty: a change needs a stale claim.
    for _ in 0..4 {
        let Some(seen) = store.create_marker(key, &mine).await? else {
            return Ok(ClaimOutcome::Won);
        };
        // An unreadable claim (not ours, or damaged) is treated as stale: build rather than drop.
        let held: Option<Claim> = crate::json::from_str(&seen.content).ok();
        if let Some(held) = &held {
            if held.request_id == request_id {
                // Our own claim: this is a redelivery of the request that won.
                return Ok(ClaimOutcome::Won);
            }
            let age = Duration::from_secs(u64::try_from(now.unix_timestamp() - held.claimed_at).unwrap_or(0));
            if !held.released && age < window {
                return Ok(ClaimOutcome::DuplicateOf { request_id: held.request_id.clone(), age });
            }
        }
        if store.replace_marker(key, &mine, &seen).await? {
            return Ok(ClaimOutcome::Won);
        }
    }
    Err(StoreError(format!("the claim `{key}` kept changing under this request")))
}

/// Marks `request_id`'s claim as released, so that the next request for the same build is
/// not merged into this failed one. Only the holder releases: a claim since taken by
/// another request is left alone.
pub async fn release<St: ArtifactStore>(store: &St, key: &str, request_id: &str) -> Result<(), StoreError> {
    let Some(content) = store.marker(key).await? else {
        return Ok(());
    };
    match crate::json::from_str::<Claim>(&content) {
        Ok(mut held) if held.request_id == request_id => {
            held.released = true;
            store.put_marker(key, &serde_json::json!(held).to_string()).await
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{BuildTarget, ProjectRef, TriggerKind};
    use crate::ports::DirectoryStore;

    fn request(cause: Cause) -> BuildRequest {
        let branch_to = matches!(cause, Cause::PullRequest { .. }).then(|| "main".to_owned());
        BuildRequest::new(
            BuildTarget {
                project: ProjectRef { key: "demo".into(), namespace: None, name: "demo".into(), fork_user: None },
                repo_url: "https://pagure.io/demo.git".into(),
                cause,
                branch: "fix".into(),
                branch_to,
            },
            TriggerKind::Jenkins,
            OffsetDateTime::UNIX_EPOCH,
        )
    }

    fn store() -> (DirectoryStore, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("pcb-dedupe-{}", uuid::Uuid::new_v4().simple()));
        (DirectoryStore::new(&dir), dir)
    }

    const WINDOW: Duration = Duration::from_secs(60);

    fn at(seconds: i64) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp(1_800_000_000 + seconds).expect("time")
    }

    #[test]
    fn build_key_is_the_event_for_commits_and_the_event_and_head_for_pull_requests() {
        let commit = request(Cause::Commit { sha: "a".repeat(40) });
        assert_eq!(build_key(&commit, None).as_deref(), Some(commit.idempotency_key.as_str()));
        assert_eq!(build_key(&commit, Some("b")), build_key(&commit, None));
        let pr = request(Cause::PullRequest { id: 7 });
        assert_eq!(build_key(&pr, None), None);
        let one = build_key(&pr, Some(&"1".repeat(40))).expect("key");
        let two = build_key(&pr, Some(&"2".repeat(40))).expect("key");
        assert_ne!(one, two);
        assert_eq!(one.len(), 32);
    }

    #[tokio::test]
    async fn the_first_claim_wins_the_others_are_duplicates_within_the_window() {
        let (store, dir) = store();
        assert_eq!(claim(&store, "c/k", "first", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(
            claim(&store, "c/k", "second", false, at(59), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id: "first".into(), age: Duration::from_secs(59) }
        );
        // The winner's redelivery still builds.
        assert_eq!(claim(&store, "c/k", "first", false, at(30), WINDOW).await.expect("store"), ClaimOutcome::Won);
        // After the window, the next request takes the claim over, and holds it.
        assert_eq!(claim(&store, "c/k", "third", false, at(60), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(
            claim(&store, "c/k", "fourth", false, at(61), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id: "third".into(), age: Duration::from_secs(1) }
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn rebuilds_always_win_and_take_the_claim_and_a_zero_window_claims_nothing() {
        let (store, dir) = store();
        assert_eq!(claim(&store, "c/k", "first", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(claim(&store, "c/k", "rebuild", true, at(1), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert!(matches!(
            claim(&store, "c/k", "echo", false, at(2), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id, .. } if request_id == "rebuild"
        ));
        assert_eq!(claim(&store, "c/zero", "a", false, at(0), Duration::ZERO).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(claim(&store, "c/zero", "b", false, at(0), Duration::ZERO).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(store.marker("c/zero").await.expect("store"), None);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_released_claim_is_taken_over_and_only_its_holder_releases_it() {
        let (store, dir) = store();
        assert_eq!(claim(&store, "c/k", "failed", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        release(&store, "c/k", "someone-else").await.expect("store");
        assert!(matches!(
            claim(&store, "c/k", "x", false, at(1), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { .. }
        ));
        release(&store, "c/k", "failed").await.expect("store");
        assert_eq!(claim(&store, "c/k", "retrigger", false, at(2), WINDOW).await.expect("store"), ClaimOutcome::Won);
        release(&store, "c/missing", "failed").await.expect("store");
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_damaged_claim_is_replaced_rather_than_dropping_builds() {
        let (store, dir) = store();
        store.put_marker("c/k", "not json").await.expect("store");
        assert_eq!(claim(&store, "c/k", "a", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert!(matches!(
            claim(&store, "c/k", "b", false, at(1), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { .. }
        ));
        let _ = std::fs::remove_dir_all(dir);
    }

    /// How many of 100 concurrent claims (ids `<prefix><n>`) at `now` win.
    async fn winners(store: &std::sync::Arc<DirectoryStore>, prefix: &str, now: OffsetDateTime) -> usize {
        let tasks: Vec<_> = (0..100)
            .map(|i| {
                let (store, id) = (store.clone(), format!("{prefix}{i}"));
                tokio::spawn(async move { claim(&*store, "c/k", &id, false, now, WINDOW).await })
            })
            .collect();
        let mut won = 0;
        for task in tasks {
            won += usize::from(task.await.expect("task").expect("claim") == ClaimOutcome::Won);
        }
        won
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn of_a_hundred_concurrent_claims_exactly_one_wins() {
        let (store, dir) = store();
        let store = std::sync::Arc::new(store);
        assert_eq!(winners(&store, "r", at(0)).await, 1);
        // And of concurrent take-overs of a stale claim, exactly one wins too.
        assert_eq!(winners(&store, "s", at(600)).await, 1);
        let _ = std::fs::remove_dir_all(dir);
    }
}
