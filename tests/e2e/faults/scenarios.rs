//! The scenarios, each one fault and the one final state it must end in.

use super::*;

fn only(ends: &[(BuildRequest, Final, u32)]) -> &Final {
    assert_eq!(ends.len(), 1, "{ends:?}");
    &ends[0].1
}

fn failed_with(end: &Final, words: &str) -> bool {
    matches!(end, Final::Ended(Ending::Failed { reason, flagged: true }) if reason.contains(words))
}

pub(super) async fn scenarios(rig: &mut Rig) {
    let demo = rig.git_url("demo.git");
    let shas = rig.repos.shas.clone();
    let commit = |sha: &str, branch: &str| serde_json::json!({"cause": sha, "repo": demo, "branch": branch});

    // Control: no fault.
    let status = rig.json("demo", commit(&shas["f4"], "feature")).await;
    let ends = rig.settle_all().await;
    assert!(matches!(only(&ends), Final::Ended(Ending::Started { .. })), "{ends:?}");
    rig.record("none (control)", 1, usize::from(status == 202), ends);

    // S3 unavailable: moto killed as the upload begins, back for the next delivery.
    let status = rig.json("demo", commit(&shas["f3"], "feature")).await;
    let request = rig.queued().pop().expect("queued");
    rig.stop_at_upload.store(true, Ordering::SeqCst);
    let (moto, s3) = (rig.moto.clone(), rig.s3.clone());
    let (end, attempts) = rig
        .settle(&request, async || {
            // A new, empty moto on the same port: the bucket is made again, as S3 keeps it.
            moto.lock().expect("moto").restart();
            s3.create_bucket().bucket("sources").send().await.expect("bucket again");
        })
        .await;
    assert!(matches!(end, Final::Ended(Ending::Started { .. })), "{end:?}");
    assert_eq!(attempts, 2, "the first delivery failed, the second started the build");
    rig.record("S3 down mid-upload, back later", 1, usize::from(status == 202), vec![(request, end, attempts)]);

    // S3 unavailable for good.
    let status = rig.json("demo", commit(&shas["f2"], "feature")).await;
    rig.moto.lock().expect("moto").stop();
    let ends = rig.settle_all().await;
    rig.moto.lock().expect("moto").restart();
    rig.s3.create_bucket().bucket("sources").send().await.expect("bucket again");
    let end = only(&ends);
    assert!(matches!(end, Final::DeadLetter(r) if r.contains("artifact store")), "{end:?}");
    assert_eq!(ends[0].2, MAX_ATTEMPTS);
    rig.record("S3 down for good", 1, usize::from(status == 202), ends);

    // SQS send failing at accept: the queue does not exist.
    let endpoint = rig.moto.lock().expect("moto").endpoint.clone();
    let sqs = aws_sdk_sqs::Client::new(&e2e_tests::sdk_config_for(&endpoint).await);
    let broken = AcceptService::new(
        config(&rig.repos.server.base, &rig.pagure.url, "http://127.0.0.1:9").accept,
        bridge_aws::SqsQueue::new(sqs, "http://127.0.0.1:1/000000000000/missing"),
        secrets(),
        bridge_pagure::PagureWebhooks,
    );
    let body = serde_json::to_vec(&commit(&shas["f1"], "feature")).expect("json");
    let auth = format!("token {TRIGGER_TOKEN}");
    let answer = broken
        .handle(e2e_tests::trigger_request(
            "POST",
            "/trigger/demo",
            &[("content-type", "application/json"), ("authorization", &auth)],
            &body,
        ))
        .await;
    assert_eq!(answer.status(), 503);
    let reason: serde_json::Value = serde_json::from_slice(answer.body()).expect("json error");
    assert_eq!(reason["error"], "queue_unavailable", "{reason}");
    rig.record("SQS send fails at accept", 1, 0, Vec::new());

    // Git host down (nothing listens), then answering 500, then hanging.
    let dead_repo = format!("{}/demo.git", rig.dead_git);
    let status =
        rig.json("deadhost", serde_json::json!({"cause": shas["f1"], "repo": dead_repo, "branch": "feature"})).await;
    let ends = rig.settle_all().await;
    assert!(matches!(only(&ends), Final::DeadLetter(r) if r.contains("git")), "{ends:?}");
    rig.record("git host down", 1, usize::from(status == 202), ends);

    rig.repos.server.set_fault(GitFault::Status(500));
    let status = rig.json("demo", commit(&shas["f1"], "feature")).await;
    let ends = rig.settle_all().await;
    rig.repos.server.set_fault(GitFault::None);
    assert!(matches!(only(&ends), Final::DeadLetter(r) if r.contains("500")), "{ends:?}");
    rig.record("git host answers 500", 1, usize::from(status == 202), ends);

    // The same commit triggered again once the host is back: the dead letter released its
    // claim, so this builds instead of being merged into the failure.
    let status = rig.json("demo", commit(&shas["f1"], "feature")).await;
    let ends = rig.settle_all().await;
    assert!(matches!(only(&ends), Final::Ended(Ending::Started { .. })), "{ends:?}");
    rig.record("retrigger after that dead letter", 1, usize::from(status == 202), ends);

    rig.repos.server.set_fault(GitFault::Hang);
    let status = rig.json("demo", commit(&shas["rawhide"], "rawhide")).await;
    let request = rig.queued().pop().expect("queued");
    let server = &rig.repos.server;
    let (end, attempts) = rig.settle(&request, async || server.set_fault(GitFault::None)).await;
    assert!(matches!(end, Final::Ended(Ending::Started { .. })), "{end:?}");
    assert_eq!(attempts, 2, "the hang failed the first delivery only");
    rig.record("git host hangs, then answers", 1, usize::from(status == 202), vec![(request, end, attempts)]);

    // Pagure down (500) for a whole delivery, then back: the error flag is posted late, not lost.
    for _ in 0..3 {
        rig.pagure.push_fault(PagureFault::Status(500, "<html>Internal Server Error</html>"));
    }
    let nospec = rig.git_url("nospec.git");
    let nospec_sha = git(&rig.repos.server.root.join("nospec.git"), &["rev-parse", "main"]);
    let status = rig.json("nospec", serde_json::json!({"cause": nospec_sha, "repo": nospec, "branch": "main"})).await;
    let ends = rig.settle_all().await;
    assert!(failed_with(only(&ends), "on the default branch `main` of `nospec`"), "{ends:?}");
    assert_eq!(ends[0].2, 2, "the first delivery could not post the flag");
    rig.record("Pagure 500 for a delivery, then back", 1, usize::from(status == 202), ends);

    // Pagure refuses the token (401): the failure is logged, the message not retried forever.
    let status = rig.json("revoked", serde_json::json!({"cause": nospec_sha, "repo": nospec, "branch": "main"})).await;
    let ends = rig.settle_all().await;
    assert!(matches!(only(&ends), Final::Ended(Ending::Failed { flagged: false, .. })), "{ends:?}");
    rig.record("Pagure answers 401", 1, usize::from(status == 202), ends);

    // The buildspec: missing (above), malformed, 1 MB of aliases.
    let badspec = rig.git_url("badspec.git");
    let sha = git(&rig.repos.server.root.join("badspec.git"), &["rev-parse", "main"]);
    let status = rig.json("badspec", serde_json::json!({"cause": sha, "repo": badspec, "branch": "main"})).await;
    let ends = rig.settle_all().await;
    assert!(failed_with(only(&ends), "line"), "the reason names the line: {ends:?}");
    rig.record("buildspec malformed", 1, usize::from(status == 202), ends);

    let bomb = rig.git_url("bomb.git");
    let sha = git(&rig.repos.server.root.join("bomb.git"), &["rev-parse", "main"]);
    let status = rig.json("bomb", serde_json::json!({"cause": sha, "repo": bomb, "branch": "main"})).await;
    let ends = rig.settle_all().await;
    assert!(failed_with(only(&ends), "buildspec"), "{ends:?}");
    rig.record("buildspec: 1 MB, alias bomb", 1, usize::from(status == 202), ends);

    // The branch deleted between trigger and work; a force-push that drops the commit.
    let moving_bare = rig.repos.server.root.join("moving.git");
    let moving = rig.git_url("moving.git");
    let topic = git(&moving_bare, &["rev-parse", "topic"]);
    let status = rig.json("moving", serde_json::json!({"cause": topic, "repo": moving, "branch": "topic"})).await;
    git(&moving_bare, &["update-ref", "-d", "refs/heads/topic"]);
    let ends = rig.settle_all().await;
    assert!(failed_with(only(&ends), "branch `topic` does not exist"), "{ends:?}");
    rig.record("branch deleted before the work", 1, usize::from(status == 202), ends);

    let head = git(&moving_bare, &["rev-parse", "main"]);
    let status = rig.json("moving", serde_json::json!({"cause": head, "repo": moving, "branch": "main"})).await;
    git(&moving_bare, &["update-ref", "refs/heads/main", "main~1"]);
    let ends = rig.settle_all().await;
    assert!(failed_with(only(&ends), "not among the last"), "{ends:?}");
    rig.record("force-push removed the commit", 1, usize::from(status == 202), ends);

    // A pull request closed before its turn.
    let fork = rig.git_url("forks/bob/demo.git");
    let status = rig
        .json("demo", serde_json::json!({"cause": 2, "repo": fork, "branch": "bob-fix", "branch_to": "rawhide"}))
        .await;
    rig.pagure.set_pull_status("demo", 2, "Closed");
    let ends = rig.settle_all().await;
    assert!(
        matches!(only(&ends), Final::Ended(Ending::Ignored { reason }) if reason == "pull request #2 is Closed"),
        "{ends:?}"
    );
    rig.record("PR closed before the build", 1, usize::from(status == 202), ends);

    // The same PR through two doors (pagure-ci and JSON): one build.
    let a = rig.jenkins("demo", "1", &demo, "feature", "rawhide").await;
    let b = rig
        .json("demo", serde_json::json!({"cause": "1", "repo": demo, "branch": "feature", "branch_to": "rawhide"}))
        .await;
    let ends = rig.settle_all().await;
    let started = ends.iter().filter(|(_, e, _)| matches!(e, Final::Ended(Ending::Started { .. }))).count();
    assert_eq!((a, b, ends.len(), started), (201, 202, 2, 1), "{ends:?}");
    rig.record("same PR via pagure-ci and JSON", 2, usize::from(a == 201) + usize::from(b == 202), ends);

    // A burst of identical triggers, answered concurrently and worked by 16 consumers at
    // once, racing for the claim in S3: one build. Then a rebuild request, which is never
    // merged. (burst.rs sends 1,000 at the shipped binary.)
    let burst = 100;
    let body = commit(&shas["other"], "other");
    let mut answers = tokio::task::JoinSet::new();
    let gate = Arc::new(tokio::sync::Semaphore::new(64));
    for _ in 0..burst {
        let (client, url, body, gate) = (e2e_tests::http(), rig.bridge_url.clone(), body.clone(), gate.clone());
        answers.spawn(async move {
            let _permit = gate.acquire().await.expect("gate");
            let response = client
                .post(format!("{url}/trigger/demo"))
                .header("authorization", format!("token {TRIGGER_TOKEN}"))
                .json(&body)
                .send()
                .await
                .expect("answered");
            response.status().as_u16()
        });
    }
    let mut accepted = 0;
    while let Some(status) = answers.join_next().await {
        accepted += usize::from(status.expect("task") == 202);
    }
    assert_eq!(accepted, burst, "every trigger of the burst was answered 202");
    let requests = rig.queued();
    let mut consumers = tokio::task::JoinSet::new();
    for chunk in requests.chunks(requests.len().div_ceil(16)) {
        let (worker, chunk) = (rig.worker.clone(), chunk.to_vec());
        consumers.spawn(async move {
            let mut ends = Vec::new();
            for request in chunk {
                match worker.handle(&request, false).await {
                    Disposition::Done(ending) => ends.push((request, Final::Ended(ending), 1)),
                    Disposition::Retry(reason) => panic!("burst: {reason}"),
                }
            }
            ends
        });
    }
    let mut ends = Vec::new();
    while let Some(part) = consumers.join_next().await {
        ends.extend(part.expect("consumer"));
    }
    let started = ends.iter().filter(|(_, e, _)| matches!(e, Final::Ended(Ending::Started { .. }))).count();
    assert_eq!(started, 1, "one build for {burst} identical triggers");
    rig.record("burst: 100 identical triggers, 16 consumers", burst, accepted, ends);

    let mut rebuild = commit(&shas["other"], "other");
    rebuild["rebuild"] = true.into();
    let status = rig.json("demo", rebuild).await;
    let ends = rig.settle_all().await;
    assert!(matches!(only(&ends), Final::Ended(Ending::Started { .. })), "{ends:?}");
    rig.record("rebuild asked right after the burst", 1, usize::from(status == 202), ends);
}
