//! bridge-git against `git http-backend` over smart HTTP: default branch from HEAD
//! (`rawhide`), the buildspec from it and never from the tree being built, commit and
//! pull-request causes (same project and fork), and every way a fetch ends badly.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use bridge_core::model::{BuildRequest, BuildTarget, Cause, ProjectRef, TriggerKind};
use bridge_core::retry::Transience;
use bridge_core::work::{FetchError, FetchSettings, Fetched};
use bridge_git::fetch_build;
use e2e_tests::git_server::{Fault, GitServer, demo_repos};
use e2e_tests::temp_dir;

fn request(
    repo_url: String,
    cause: Cause,
    branch: &str,
    branch_to: Option<&str>,
    fork_user: Option<&str>,
) -> BuildRequest {
    BuildRequest::new(
        BuildTarget {
            project: ProjectRef {
                key: "demo".into(),
                namespace: None,
                name: "demo".into(),
                fork_user: fork_user.map(String::from),
            },
            repo_url,
            cause,
            branch: branch.into(),
            branch_to: branch_to.map(String::from),
        },
        TriggerKind::Json,
        time::OffsetDateTime::now_utc(),
    )
}

fn settings() -> FetchSettings {
    FetchSettings { deadline: Duration::from_secs(20), deepen_steps: vec![1, 2, 4], ..FetchSettings::default() }
}

async fn fetch(
    request: BuildRequest,
    target: String,
    settings: FetchSettings,
) -> (Result<Fetched, FetchError>, std::path::PathBuf) {
    e2e_tests::libgit2_timeouts();
    let dest = temp_dir("checkout");
    let into = dest.clone();
    let result =
        tokio::task::spawn_blocking(move || fetch_build(&request, &target, &into, &settings, None, |_| Ok(())))
            .await
            .expect("join");
    (result, dest)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_and_pull_requests_check_out_with_the_default_branch_buildspec() {
    let repos = demo_repos().await;
    let target = repos.server.url("demo.git");

    // the branch tip
    let sha = repos.shas["f4"].clone();
    let (fetched, dest) = fetch(
        request(target.clone(), Cause::Commit { sha: sha.clone() }, "feature", None, None),
        target.clone(),
        settings(),
    )
    .await;
    let fetched = fetched.expect("fetch");
    assert_eq!(fetched.commit, sha);
    bridge_git::checkout(&dest, &fetched.commit).expect("checkout");
    assert_eq!(fetched.default_branch, "rawhide");
    assert_eq!(fetched.buildspec_path, "buildspec.yml");
    assert!(
        String::from_utf8_lossy(&fetched.buildspec).contains("# from rawhide"),
        "the PR's buildspec must not be used"
    );
    assert!(
        std::fs::read_to_string(dest.join("buildspec.yml")).expect("tree").contains("from the PR"),
        "the tree is the branch's"
    );
    assert_eq!(std::fs::metadata(dest.join("run.sh")).expect("run.sh").permissions().mode() & 0o777, 0o755);
    assert_eq!(std::fs::read_link(dest.join("link-out")).expect("link"), Path::new("/etc/passwd"));
    assert!(dest.join("f4").exists());

    // an older commit: found by deepening
    let sha = repos.shas["f1"].clone();
    let (fetched, dest) = fetch(
        request(target.clone(), Cause::Commit { sha: sha.clone() }, "feature", None, None),
        target.clone(),
        settings(),
    )
    .await;
    assert_eq!(fetched.expect("deepened").commit, sha);
    bridge_git::checkout(&dest, &sha).expect("checkout");
    assert!(!dest.join("f2").exists(), "checked out exactly f1");

    // a same-project PR and a fork PR: refs/pull/<id>/head of the target
    let (fetched, _) = fetch(
        request(target.clone(), Cause::PullRequest { id: 1 }, "feature", Some("rawhide"), None),
        target.clone(),
        settings(),
    )
    .await;
    assert_eq!(fetched.expect("pr").commit, repos.shas["f4"]);
    let fork = repos.server.url("forks/bob/demo.git");
    let (fetched, dest) = fetch(
        request(fork, Cause::PullRequest { id: 2 }, "bob-fix", Some("rawhide"), Some("bob")),
        target.clone(),
        settings(),
    )
    .await;
    let fetched = fetched.expect("fork pr");
    assert_eq!(fetched.commit, repos.shas["bob"]);
    bridge_git::checkout(&dest, &fetched.commit).expect("checkout");
    assert!(dest.join("bob.txt").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_end_is_classified() {
    let repos = demo_repos().await;
    let target = repos.server.url("demo.git");
    let terminal = |r: &Result<Fetched, FetchError>| r.as_ref().err().is_some_and(|e| !e.is_transient());

    let (r, _) = fetch(
        request(target.clone(), Cause::Commit { sha: repos.shas["other"].clone() }, "feature", None, None),
        target.clone(),
        settings(),
    )
    .await;
    assert!(matches!(r, Err(FetchError::CommitNotOnBranch { depth: 4, .. })), "{r:?}");
    assert!(terminal(&r));
    let (r, _) = fetch(
        request(target.clone(), Cause::Commit { sha: repos.shas["f1"].clone() }, "gone", None, None),
        target.clone(),
        settings(),
    )
    .await;
    assert!(matches!(&r, Err(FetchError::BranchGone { branch }) if branch == "gone"), "{r:?}");
    let (r, _) = fetch(
        request(target.clone(), Cause::PullRequest { id: 9 }, "x", Some("rawhide"), None),
        target.clone(),
        settings(),
    )
    .await;
    assert!(matches!(r, Err(FetchError::PullRequestGone { id: 9 })), "{r:?}");
    let nospec = repos.server.url("nospec.git");
    let (r, _) =
        fetch(request(nospec.clone(), Cause::PullRequest { id: 1 }, "x", Some("main"), None), nospec, settings()).await;
    let message = r.expect_err("no buildspec").to_string();
    assert_eq!(message, "no buildspec.yml or buildspec.yaml on the default branch `main` of `demo`");
    let missing = repos.server.url("missing.git");
    let (r, _) =
        fetch(request(missing.clone(), Cause::PullRequest { id: 1 }, "x", Some("main"), None), missing, settings())
            .await;
    assert!(matches!(r, Err(FetchError::Refused(_))), "{r:?}");

    let tiny = FetchSettings { max_bytes: 200, ..settings() };
    let (r, _) = fetch(
        request(target.clone(), Cause::PullRequest { id: 1 }, "feature", Some("rawhide"), None),
        target.clone(),
        tiny,
    )
    .await;
    assert!(matches!(r, Err(FetchError::TooLarge { limit: 200 })), "{r:?}");

    repos.server.set_fault(Fault::Status(500));
    let (r, _) = fetch(
        request(target.clone(), Cause::PullRequest { id: 1 }, "feature", Some("rawhide"), None),
        target.clone(),
        settings(),
    )
    .await;
    assert!(matches!(&r, Err(FetchError::Transient(_))), "{r:?}");
    assert!(!terminal(&r), "a 500 is retried");

    // Another host serving the same repositories: following the redirect would succeed.
    let elsewhere = GitServer::start_on(&repos.server.root, "127.0.0.2").await;
    let (r, _) = fetch(
        request(elsewhere.url("demo.git"), Cause::PullRequest { id: 1 }, "feature", Some("rawhide"), None),
        elsewhere.url("demo.git"),
        settings(),
    )
    .await;
    assert!(r.is_ok(), "the other host serves: {r:?}");
    repos.server.set_fault(Fault::RedirectTo(elsewhere.base.clone()));
    let (r, _) = fetch(
        request(target.clone(), Cause::PullRequest { id: 1 }, "feature", Some("rawhide"), None),
        target.clone(),
        settings(),
    )
    .await;
    assert!(r.is_err(), "a redirect off the host is not followed: {r:?}");

    repos.server.set_fault(Fault::Hang);
    let started = std::time::Instant::now();
    let (r, _) = fetch(
        request(target.clone(), Cause::PullRequest { id: 1 }, "feature", Some("rawhide"), None),
        target,
        settings(),
    )
    .await;
    assert!(
        matches!(&r, Err(e @ FetchError::Stalled(_)) if e.to_string().contains("stopped answering")),
        "a host that stops answering is retried: {r:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(30), "the I/O timeout ended the hang");
}

/// The archive made from the object database equals the archive of a checkout of the same
/// commit: same entries, modes, links and contents.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn archives_from_the_object_database_match_a_checkout() {
    use bridge_core::archive::{ArchiveLimits, ArchiveOptions};
    use bridge_local::folder::write_tree;
    use std::io::Read;
    let repos = demo_repos().await;
    let target = repos.server.url("demo.git");
    let sha = repos.shas["f4"].clone();
    let (fetched, dest) =
        fetch(request(target.clone(), Cause::Commit { sha: sha.clone() }, "feature", None, None), target, settings())
            .await;
    fetched.expect("fetch");
    let options =
        ArchiveOptions { replacements: vec![("buildspec.yml".into(), b"injected".to_vec())], ..Default::default() };
    let mut from_odb = std::io::Cursor::new(Vec::new());
    let odb_stats = bridge_git::archive_commit(&dest, &sha, &mut from_odb, &options, ArchiveLimits::default())
        .expect("odb archive");
    bridge_git::checkout(&dest, &sha).expect("checkout");
    let mut from_files = std::io::Cursor::new(Vec::new());
    let file_stats = write_tree(&dest, &mut from_files, &options, ArchiveLimits::default()).expect("folder archive");
    assert_eq!(
        (odb_stats.files, odb_stats.symlinks, odb_stats.bytes),
        (file_stats.files, file_stats.symlinks, file_stats.bytes)
    );
    let describe = |bytes: Vec<u8>| {
        let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).expect("zip");
        (0..zip.len())
            .map(|i| {
                let mut entry = zip.by_index(i).expect("entry");
                let mut content = Vec::new();
                entry.read_to_end(&mut content).expect("read");
                let mode = if entry.is_dir() { None } else { entry.unix_mode().map(|m| m & 0o777) };
                (entry.name().expect("name").into_owned(), mode, entry.is_symlink(), content)
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(describe(from_odb.into_inner()), describe(from_files.into_inner()));
    let limited = bridge_git::archive_commit(
        &dest,
        &sha,
        std::io::Cursor::new(Vec::new()),
        &options,
        ArchiveLimits { max_entries: 100, max_bytes: 10 },
    );
    assert!(matches!(limited, Err(bridge_core::archive::ArchiveError::TooLarge { limit: 10 })), "{limited:?}");
}

/// A 50 MB tree (50 files of 1 MiB) through fetch and archive, with the byte limit just
/// below and just above its size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fifty_megabyte_tree() {
    use bridge_core::archive::{ArchiveError, ArchiveLimits, ArchiveOptions};
    let root = temp_dir("big-root");
    let work = temp_dir("big-work");
    e2e_tests::git_server::git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("buildspec.yml"), "version: 0.2\n").expect("buildspec");
    let mut line = 0u64;
    for i in 0..50 {
        let mut content = String::with_capacity(1 << 20);
        while content.len() < (1 << 20) - 64 {
            line = line.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            content.push_str(&format!("{i:02} {line:020} {:016x}\n", line.rotate_left(17)));
        }
        std::fs::write(work.join(format!("blob{i:02}.txt")), content).expect("write");
    }
    e2e_tests::git_server::git(&work, &["add", "-A"]);
    e2e_tests::git_server::git(&work, &["commit", "-q", "-m", "big"]);
    let bare = root.join("big.git");
    let sha = e2e_tests::git_server::publish(&work, &bare, "main");
    // Packing 50 MB can take longer than the tests' 6 s I/O timeout before the first byte:
    // keep-alives every second (git's default is 5 s, under the bridge's real timeouts).
    e2e_tests::git_server::git(&bare, &["config", "uploadpack.keepAlive", "1"]);
    let server = GitServer::start(&root).await;
    let url = server.url("big.git");

    let (fetched, dest) =
        fetch(request(url.clone(), Cause::Commit { sha: sha.clone() }, "main", None, None), url, settings()).await;
    assert_eq!(fetched.expect("fetch").commit, sha);
    let total: u64 =
        (0..50).map(|i| std::fs::metadata(work.join(format!("blob{i:02}.txt"))).expect("size").len()).sum::<u64>() + 13;
    let options = ArchiveOptions::default();
    let zip_path = dest.join("source.zip");
    let file = std::fs::File::create(&zip_path).expect("zip file");
    let stats = bridge_git::archive_commit(
        &dest,
        &sha,
        std::io::BufWriter::new(file),
        &options,
        ArchiveLimits { max_entries: 100, max_bytes: total },
    )
    .expect("archive at the limit");
    assert_eq!((stats.files, stats.bytes), (51, total));
    let zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("open")).expect("valid zip");
    assert_eq!(zip.len(), 51);
    let compressed = std::fs::metadata(&zip_path).expect("size").len();
    assert!(compressed * 10 < total * 6, "deflated: {compressed} of {total}");
    let over = bridge_git::archive_commit(
        &dest,
        &sha,
        std::io::Cursor::new(Vec::new()),
        &options,
        ArchiveLimits { max_entries: 100, max_bytes: total - 1 },
    );
    assert!(matches!(over, Err(ArchiveError::TooLarge { .. })), "{over:?}");
}
