use super::*;
use crate::model::{BuildTarget, ProjectRef};

const HEAD: &str = "05bab967134e26fd2a307065b49ce0bc2a2063ed";
const OLD: &str = "d2085936e8b068ce55bd07cbf3cf794b8fe7a996";

fn request(cause: Cause, fork_user: Option<&str>, trigger: TriggerKind) -> BuildRequest {
    let branch_to = matches!(cause, Cause::PullRequest { .. }).then(|| "main".to_owned());
    BuildRequest::new(
        BuildTarget {
            project: ProjectRef {
                key: "demo".into(),
                namespace: None,
                name: "demo".into(),
                fork_user: fork_user.map(String::from),
            },
            repo_url: "https://pagure.example.org/demo.git".into(),
            cause,
            branch: "fix".into(),
            branch_to,
        },
        trigger,
        time::OffsetDateTime::UNIX_EPOCH,
    )
}

fn pr(fork_user: Option<&str>) -> BuildRequest {
    request(Cause::PullRequest { id: 7 }, fork_user, TriggerKind::Webhook)
}

fn approved(by: &str, commit: &str) -> BuildRequest {
    pr(Some("alice")).approved(Approval { by: by.into(), commit: commit.into() })
}

/// alice's PR from her own fork of `demo`.
fn facts(author: Option<bool>, approver: Option<bool>) -> TrustFacts {
    from("forks/alice/demo", author, approver)
}

/// alice's PR whose `repo_from.fullname` is `source` (`""`: a remote PR, null).
fn from(source: &str, author: Option<bool>, approver: Option<bool>) -> TrustFacts {
    TrustFacts {
        pull_request: Some(PullRequestFacts {
            status: "Open".into(),
            author: "alice".into(),
            target_branch: "main".into(),
            head: Some(HEAD.into()),
            source: (!source.is_empty()).then(|| source.to_owned()),
        }),
        author_has_commit: author,
        approver_has_commit: approver,
    }
}

fn alice(known: bool) -> Untrusted {
    Untrusted::Author { author: "alice".into(), branch: "main".into(), known }
}

#[test]
fn pushes_are_trusted_only_in_the_project_itself() {
    let own = request(Cause::Commit { sha: HEAD.into() }, None, TriggerKind::Json);
    assert_eq!(classify(&own, &TrustFacts::default(), HEAD), Classification::Trusted);
    let fork = request(Cause::Commit { sha: HEAD.into() }, Some("bob"), TriggerKind::Jenkins);
    assert_eq!(
        classify(&fork, &facts(Some(true), Some(true)), HEAD),
        Classification::Untrusted { why: Untrusted::ForkPush { user: "bob".into() }, approval: None },
        "whatever Pagure says of anyone"
    );
}

#[test]
fn pull_requests_are_trusted_by_their_authors_commit_access() {
    for fork in [None, Some("alice")] {
        assert_eq!(classify(&pr(fork), &facts(Some(true), None), HEAD), Classification::Trusted);
        assert_eq!(
            classify(&pr(fork), &facts(Some(false), None), HEAD),
            Classification::Untrusted { why: alice(true), approval: None }
        );
        assert_eq!(
            classify(&pr(fork), &facts(None, None), HEAD),
            Classification::Untrusted { why: alice(false), approval: None },
            "unknown is untrusted"
        );
        assert_eq!(
            classify(&pr(fork), &TrustFacts::default(), HEAD),
            Classification::Untrusted { why: Untrusted::PullRequestUnknown { id: 7 }, approval: None }
        );
    }
}

#[test]
fn a_committers_access_vouches_only_for_sources_they_control() {
    for own in ["demo", "forks/alice/demo"] {
        assert_eq!(classify(&pr(None), &from(own, Some(true), None), HEAD), Classification::Trusted, "{own}");
    }
    // A non-committer's PR: the author is the reason, whatever the source.
    assert_eq!(
        classify(&pr(None), &from("", Some(false), None), HEAD),
        Classification::Untrusted { why: alice(true), approval: None }
    );
    for (source, shown) in [
        ("", None),
        ("forks/bob/demo", Some("forks/bob/demo")),
        ("forks/alice/other", Some("forks/alice/other")),
        ("other", Some("other")),
        ("forks/Alice/demo", Some("forks/Alice/demo")),
        ("forks/alice/demo/x", Some("forks/alice/demo/x")),
        ("Demo", Some("Demo")),
    ] {
        let why = Untrusted::Source { author: "alice".into(), source: shown.map(String::from) };
        assert_eq!(
            classify(&pr(Some("alice")), &from(source, Some(true), None), HEAD),
            Classification::Untrusted { why: why.clone(), approval: None },
            "{source:?}"
        );
        // The existing approval path, bound to one head, still applies.
        assert_eq!(
            classify(&approved("carol", HEAD), &from(source, Some(true), Some(true)), HEAD),
            Classification::Approved { by: "carol".into() },
            "{source:?}"
        );
        assert_eq!(
            classify(&approved("carol", OLD), &from(source, Some(true), Some(true)), HEAD).class(),
            TrustClass::Untrusted,
            "{source:?}"
        );
    }
    // In a namespace, the fork's fullname carries the namespace too.
    let mut namespaced = pr(None);
    namespaced.project.namespace = Some("rpms".into());
    for own in ["rpms/demo", "forks/alice/rpms/demo"] {
        assert_eq!(classify(&namespaced, &from(own, Some(true), None), HEAD), Classification::Trusted, "{own}");
    }
    for other in ["demo", "forks/alice/demo", "forks/bob/rpms/demo"] {
        assert_eq!(classify(&namespaced, &from(other, Some(true), None), HEAD).class(), TrustClass::Untrusted);
    }
    assert_eq!(
        Untrusted::Source { author: "alice".into(), source: None }.describe(),
        "untrusted: a remote pull request from alice; its source is not the project or the author's fork"
    );
    assert_eq!(
        Untrusted::Source { author: "alice".into(), source: Some("forks/bob/demo".into()) }.describe(),
        "untrusted: a pull request from alice out of `forks/bob/demo`; its source is not the project or the author's fork"
    );
    let remote =
        Classification::Untrusted { why: Untrusted::Source { author: "alice".into(), source: None }, approval: None };
    let Route::Await { comment } = route(&remote, "demo", "demo-ci", None, Some("/ok-to-test")) else { panic!() };
    assert!(comment.starts_with("Waiting for a committer to comment `/ok-to-test` (untrusted: a remote"), "{comment}");
}

#[test]
fn approvals_need_a_committer_and_the_same_head() {
    assert_eq!(
        classify(&approved("carol", HEAD), &facts(Some(false), Some(true)), HEAD),
        Classification::Approved { by: "carol".into() }
    );
    assert_eq!(
        classify(&approved("carol", &HEAD.to_uppercase()), &facts(Some(false), Some(true)), HEAD),
        Classification::Approved { by: "carol".into() }
    );
    assert_eq!(
        classify(&approved("mallory", HEAD), &facts(Some(false), Some(false)), HEAD),
        Classification::Untrusted {
            why: alice(true),
            approval: Some(ApprovalRefused::NotCommitter { by: "mallory".into(), known: true })
        }
    );
    assert_eq!(
        classify(&approved("carol", HEAD), &facts(Some(false), None), HEAD),
        Classification::Untrusted {
            why: alice(true),
            approval: Some(ApprovalRefused::NotCommitter { by: "carol".into(), known: false })
        }
    );
    assert_eq!(
        classify(&approved("carol", OLD), &facts(Some(false), Some(true)), HEAD),
        Classification::Untrusted {
            why: alice(true),
            approval: Some(ApprovalRefused::HeadMoved { by: "carol".into(), approved: OLD.into(), head: HEAD.into() })
        }
    );
    // Pagure unknown: no approval can make up for it.
    assert_eq!(classify(&approved("carol", HEAD), &TrustFacts::default(), HEAD).class(), TrustClass::Untrusted);
    // A trusted author needs no approval, and a useless one changes nothing.
    assert_eq!(classify(&approved("mallory", OLD), &facts(Some(true), Some(false)), HEAD), Classification::Trusted);
}

#[test]
fn approvals_count_only_from_the_web_hook_door() {
    for trigger in [TriggerKind::Json, TriggerKind::Jenkins] {
        let mut forged = request(Cause::PullRequest { id: 7 }, Some("alice"), trigger);
        forged.approval = Some(Approval { by: "carol".into(), commit: HEAD.into() });
        assert_eq!(usable_approval(&forged), None);
        assert_eq!(
            classify(&forged, &facts(Some(false), Some(true)), HEAD),
            Classification::Untrusted { why: alice(true), approval: None },
            "{trigger:?}"
        );
    }
}

#[test]
fn routes_follow_the_project_settings() {
    let untrusted = Classification::Untrusted { why: alice(true), approval: None };
    let build = |p: &str| Route::Build { pipeline: p.into() };
    for c in [Classification::Trusted, Classification::Approved { by: "carol".into() }] {
        assert_eq!(route(&c, "demo", "demo-ci", Some("demo-untrusted"), Some("/ok-to-test")), build("demo-ci"));
        assert_eq!(route(&c, "demo", "demo-ci", None, None), build("demo-ci"));
    }
    assert_eq!(
        route(&untrusted, "demo", "demo-ci", Some("demo-untrusted"), Some("/ok-to-test")),
        build("demo-untrusted")
    );
    assert_eq!(
        route(&untrusted, "demo", "demo-ci", None, Some("/ok-to-test")),
        Route::Await {
            comment: "Waiting for a committer to comment `/ok-to-test` (untrusted pull request from alice)".into()
        }
    );
    let Route::Refuse { reason } = route(&untrusted, "demo", "demo-ci", None, None) else { panic!() };
    assert!(
        reason.starts_with(
            "not built: untrusted pull request from alice, and project `demo` has neither untrusted_pipeline"
        ) && reason.contains("approval_phrase"),
        "{reason}"
    );
    let moved = Classification::Untrusted {
        why: alice(true),
        approval: Some(ApprovalRefused::HeadMoved { by: "carol".into(), approved: OLD.into(), head: HEAD.into() }),
    };
    assert_eq!(
        route(&moved, "demo", "demo-ci", None, Some("/ok-to-test")),
        Route::Await {
            comment: "Waiting for a committer to comment `/ok-to-test` again: the head moved to 05bab967134e after carol approved d2085936e8b0 (untrusted pull request from alice)".into()
        }
    );
    let stranger = Classification::Untrusted {
        why: alice(true),
        approval: Some(ApprovalRefused::NotCommitter { by: "mallory".into(), known: true }),
    };
    let Route::Await { comment } = route(&stranger, "demo", "demo-ci", None, Some("/ok-to-test")) else { panic!() };
    assert!(comment.contains("mallory may not commit"), "{comment}");
    let fork_push = Classification::Untrusted { why: Untrusted::ForkPush { user: "bob".into() }, approval: None };
    let Route::Refuse { reason } = route(&fork_push, "demo", "demo-ci", None, Some("/ok-to-test")) else { panic!() };
    assert!(reason.contains("untrusted push to the fork of bob") && reason.contains("untrusted_pipeline"), "{reason}");
}
