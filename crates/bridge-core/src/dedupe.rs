//! Merging requests for the same build. The same push can arrive through pagure-ci and a
//! web-hook, a web-hook can be delivered twice, and a script can fire a burst of identical
//! calls: each is a separate request (its own id and message), but only the first within
//! the window starts a pipeline. The others end as duplicates of it.
//!
//! A request is merged only into a build that had not started when the request was
//! accepted: the build that then starts includes everything it asks for, and its flags
//! answer it. A request accepted after the earlier identical pipeline started always builds
//! (it takes the claim over): pagure-ci's "rerun CI" sends exactly the call of the first
//! trigger, and a rerun someone asks for after seeing that build's flag must never be
//! merged into it. The holder records when its pipeline started ([`mark_started`]).
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
    /// When the holder's pipeline started (Unix milliseconds); `None` while it has not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    started_ms: Option<i64>,
}

fn unix_ms(at: OffsetDateTime) -> i64 {
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimOutcome {
    /// This request builds.
    Won,
    /// Another request claimed the same build `age` ago, and its pipeline had not started
    /// when this one was accepted (`started`: it has started since); this one starts nothing.
    DuplicateOf { request_id: String, age: Duration, started: bool },
}

/// Claims the build `key` for `request_id` at `now`, for a request being handled now (see
/// [`claim_received`]).
pub async fn claim<St: ArtifactStore>(
    store: &St,
    key: &str,
    request_id: &str,
    rebuild: bool,
    now: OffsetDateTime,
    window: Duration,
) -> Result<ClaimOutcome, StoreError> {
    claim_received(store, key, request_id, rebuild, now, now, window).await
}

/// Claims the build `key` for `request_id`, accepted at `received_at`, at `now`. The request
/// is a duplicate only of a claim that is not released, was made less than `window` ago, and
/// whose pipeline had not started at `received_at`; otherwise it takes the claim over. A
/// rebuild takes the claim whatever is there (it always builds, and identical calls accepted
/// before its pipeline starts merge into it). A window of zero claims nothing.
pub async fn claim_received<St: ArtifactStore>(
    store: &St,
    key: &str,
    request_id: &str,
    rebuild: bool,
    received_at: OffsetDateTime,
    now: OffsetDateTime,
    window: Duration,
) -> Result<ClaimOutcome, StoreError> {
    if window.is_zero() {
        return Ok(ClaimOutcome::Won);
    }
    let mine = serde_json::json!(Claim {
        request_id: request_id.into(),
        claimed_at: now.unix_timestamp(),
        released: false,
        started_ms: None,
    })
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
            let before_start = held.started_ms.is_none_or(|started| unix_ms(received_at) <= started);
            if !held.released && age < window && before_start {
                return Ok(ClaimOutcome::DuplicateOf {
                    request_id: held.request_id.clone(),
                    age,
                    started: held.started_ms.is_some(),
                });
            }
        }
        if store.replace_marker(key, &mine, &seen).await? {
            return Ok(ClaimOutcome::Won);
        }
    }
    Err(StoreError::Contended(format!("the claim `{key}` kept changing under this request")))
}

/// Records in `request_id`'s claim that its pipeline started at `at`: requests accepted from
/// then on build again. A compare and swap, so that a claim since taken over by another
/// request is left alone; a missing claim (a window of zero) stays missing.
pub async fn mark_started<St: ArtifactStore>(
    store: &St,
    key: &str,
    request_id: &str,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    if store.marker(key).await?.is_none() {
        return Ok(());
    }
    let fresh = Claim {
        request_id: request_id.into(),
        claimed_at: at.unix_timestamp(),
        released: false,
        started_ms: Some(unix_ms(at)),
    };
    for _ in 0..4 {
        // The conditional create reads the claim with its version (it exists: claims are
        // never deleted, so the create only fails).
        let Some(seen) = store.create_marker(key, &serde_json::json!(fresh).to_string()).await? else {
            return Ok(());
        };
        let Ok(mut held) = crate::json::from_str::<Claim>(&seen.content) else {
            return Ok(());
        };
        if held.request_id != request_id || held.started_ms.is_some() {
            return Ok(());
        }
        held.started_ms = fresh.started_ms;
        if store.replace_marker(key, &serde_json::json!(held).to_string(), &seen).await? {
            return Ok(());
        }
    }
    Err(StoreError::Contended(format!("the claim `{key}` kept changing while its start was recorded")))
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
    use crate::fakes::FakeStore;
    use crate::model::{BuildTarget, ProjectRef, TriggerKind};

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

    /// Markers in memory, created and swapped atomically as S3's conditional writes do
    /// (`bridge-local` and `bridge-aws` test their own stores' atomicity).
    fn store() -> FakeStore {
        FakeStore::default()
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
        let store = store();
        assert_eq!(claim(&store, "c/k", "first", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(
            claim(&store, "c/k", "second", false, at(59), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id: "first".into(), age: Duration::from_secs(59), started: false }
        );
        // The winner's redelivery still builds.
        assert_eq!(claim(&store, "c/k", "first", false, at(30), WINDOW).await.expect("store"), ClaimOutcome::Won);
        // After the window, the next request takes the claim over, and holds it.
        assert_eq!(claim(&store, "c/k", "third", false, at(60), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(
            claim(&store, "c/k", "fourth", false, at(61), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id: "third".into(), age: Duration::from_secs(1), started: false }
        );
    }

    #[tokio::test]
    async fn rebuilds_always_win_and_take_the_claim_and_a_zero_window_claims_nothing() {
        let store = store();
        assert_eq!(claim(&store, "c/k", "first", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(claim(&store, "c/k", "rebuild", true, at(1), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert!(matches!(
            claim(&store, "c/k", "echo", false, at(2), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id, .. } if request_id == "rebuild"
        ));
        assert_eq!(claim(&store, "c/zero", "a", false, at(0), Duration::ZERO).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(claim(&store, "c/zero", "b", false, at(0), Duration::ZERO).await.expect("store"), ClaimOutcome::Won);
        assert_eq!(store.marker("c/zero").await.expect("store"), None);
    }

    /// pagure-ci's "rerun CI" is the first trigger's call again: once the first build's
    /// pipeline started, an identical request accepted later builds; one accepted before the
    /// start, whenever it is handled, is merged into that build.
    #[tokio::test]
    async fn requests_accepted_after_the_holders_pipeline_started_build_again() {
        let store = store();
        let ms = |seconds: i64, millis: i64| at(seconds) + time::Duration::milliseconds(millis);
        assert_eq!(claim(&store, "c/k", "first", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        // Not started yet: merged, whenever it was accepted.
        assert_eq!(
            claim_received(&store, "c/k", "echo", false, ms(3, 0), at(4), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id: "first".into(), age: Duration::from_secs(4), started: false }
        );
        mark_started(&store, "c/k", "first", ms(5, 250)).await.expect("store");
        // Accepted up to the start (to the millisecond), handled after it: merged.
        assert_eq!(
            claim_received(&store, "c/k", "late-echo", false, ms(5, 250), at(9), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id: "first".into(), age: Duration::from_secs(9), started: true }
        );
        // Accepted a millisecond after the start (a rerun): builds, and holds the claim.
        assert_eq!(
            claim_received(&store, "c/k", "rerun", false, ms(5, 251), at(10), WINDOW).await.expect("store"),
            ClaimOutcome::Won
        );
        assert!(matches!(
            claim_received(&store, "c/k", "rerun-echo", false, at(11), at(11), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id, started: false, .. } if request_id == "rerun"
        ));
        // Only the holder's start is recorded; the first's late record changes nothing.
        mark_started(&store, "c/k", "first", at(12)).await.expect("store");
        assert!(matches!(
            claim_received(&store, "c/k", "x", false, at(13), at(13), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id, started: false, .. } if request_id == "rerun"
        ));
        mark_started(&store, "c/k", "rerun", at(14)).await.expect("store");
        // The first start is kept: a second record does not move it.
        mark_started(&store, "c/k", "rerun", at(20)).await.expect("store");
        assert!(matches!(
            claim_received(&store, "c/k", "y", false, at(14), at(21), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { request_id, started: true, .. } if request_id == "rerun"
        ));
        assert_eq!(
            claim_received(&store, "c/k", "z", false, ms(14, 1), at(21), WINDOW).await.expect("store"),
            ClaimOutcome::Won
        );
        // No claim (a window of zero): nothing is written.
        mark_started(&store, "c/none", "first", at(0)).await.expect("store");
        assert_eq!(store.marker("c/none").await.expect("store"), None);
    }

    #[tokio::test]
    async fn a_released_claim_is_taken_over_and_only_its_holder_releases_it() {
        let store = store();
        assert_eq!(claim(&store, "c/k", "failed", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        release(&store, "c/k", "someone-else").await.expect("store");
        assert!(matches!(
            claim(&store, "c/k", "x", false, at(1), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { .. }
        ));
        release(&store, "c/k", "failed").await.expect("store");
        assert_eq!(claim(&store, "c/k", "retrigger", false, at(2), WINDOW).await.expect("store"), ClaimOutcome::Won);
        release(&store, "c/missing", "failed").await.expect("store");
    }

    #[tokio::test]
    async fn a_damaged_claim_is_replaced_rather_than_dropping_builds() {
        let store = store();
        store.put_marker("c/k", "not json").await.expect("store");
        assert_eq!(claim(&store, "c/k", "a", false, at(0), WINDOW).await.expect("store"), ClaimOutcome::Won);
        assert!(matches!(
            claim(&store, "c/k", "b", false, at(1), WINDOW).await.expect("store"),
            ClaimOutcome::DuplicateOf { .. }
        ));
    }

    /// How many of 100 concurrent claims (ids `<prefix><n>`) at `now` win.
    async fn winners(store: &std::sync::Arc<FakeStore>, prefix: &str, now: OffsetDateTime) -> usize {
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
        let store = store();
        let store = std::sync::Arc::new(store);
        assert_eq!(winners(&store, "r", at(0)).await, 1);
        // And of concurrent take-overs of a stale claim, exactly one wins too.
        assert_eq!(winners(&store, "s", at(600)).await, 1);
    }
}
