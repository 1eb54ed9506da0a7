//! Generated trees are refused with a reason or archived safely (and what git's own fsck
//! finds wrong is never archived); generated names are refused wherever git refuses them.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use bridge_core::archive::ArchiveError;
use e2e_tests::temp_dir;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use super::generate::{codebuild_path, look_alike, name, tree};
use super::{INJECTED, archive, check_archive, listing};
use crate::hostile_repos::commit_entries;

/// What `git fsck` (the tree checks, `badFilemode` raised to a warning) reports about the
/// objects of a repository: its warnings and errors about trees, but `zeroPaddedFilemode`
/// (`040000`, which git reads as `40000`).
fn fsck(repo_dir: &Path, commit: &str) -> Vec<String> {
    let output = Command::new("git")
        .args(["-c", "fsck.badFilemode=warn", "fsck", "--no-dangling", "--no-progress", commit])
        .current_dir(repo_dir)
        .output()
        .expect("git fsck runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    text.lines()
        .filter(|line| line.starts_with("warning") || line.starts_with("error") || line.starts_with("broken link"))
        // Not about trees: what a `.gitmodules` blob says. And links named `.gitignore`,
        // `.gitattributes`, `.mailmap`: fsck's info level, which verify_path checks out (git
        // only declines to read them); nothing reads them in the archive.
        .filter(|line| !line.contains("zeroPaddedFilemode") && !line.contains(" in blob "))
        .filter(|line| {
            !["gitignoreSymlink", "gitattributesSymlink", "mailmapSymlink"].iter().any(|id| line.contains(id))
        })
        .map(str::to_owned)
        .collect()
}

#[test]
fn hostile_generated_trees_are_refused_or_archived_safely() {
    let dir = temp_dir("hostile-trees");
    let count = Cell::new(0u32);
    let (archived, refused, with_fsck) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let mut reasons = BTreeMap::<String, u32>::new();
    let mut runner = TestRunner::new(Config { cases: 128, failure_persistence: None, ..Config::default() });
    let reasons_cell = std::cell::RefCell::new(&mut reasons);
    runner
        .run(&(tree(), codebuild_path()), |(entries, at)| {
            // A repository for each tree: fsck reads every object there is.
            let dir = dir.join(format!("{}.git", count.replace(count.get() + 1)));
            let repo = git2::Repository::init_bare(&dir).expect("init");
            let commit = commit_entries(&repo, "generated", entries).to_string();
            let fsck = fsck(&dir, &commit);
            let result = archive(&dir, &commit, at, INJECTED);
            std::fs::remove_dir_all(&dir).expect("cleanup");
            match result {
                Ok(zip) => {
                    check_archive(&listing(&zip), at, INJECTED);
                    // What git's own fsck finds wrong with a tree is never archived.
                    prop_assert!(fsck.is_empty(), "archived, but git fsck says: {fsck:?}");
                    archived.set(archived.get() + 1);
                }
                Err(error) => {
                    // A rule of git's fsck cited for a refusal is one fsck finds too (unless
                    // git cannot read the tree at all, which it then says instead; and but
                    // `gitmodulesBlob`, which fsck cannot see for a submodule whose commit
                    // is not there, as the generated ones are not).
                    if let ArchiveError::UnsafePath { why, .. } = &error
                        && let Some(rule) = why.split("git fsck: ").nth(1).map(|r| r.trim_end_matches(')'))
                        && rule != "gitmodulesBlob"
                        && !fsck.iter().any(|m| m.contains("badTree") || m.contains("broken link"))
                    {
                        prop_assert!(
                            fsck.iter().any(|m| m.contains(rule)),
                            "refused for {rule}, git fsck says {fsck:?}"
                        );
                        with_fsck.set(with_fsck.get() + 1);
                    }
                    let reason = error.to_string();
                    prop_assert!(!reason.trim().is_empty());
                    // Every refusal of a generated tree names what is wrong with it.
                    prop_assert!(
                        matches!(
                            error,
                            ArchiveError::UnsafePath { .. }
                                | ArchiveError::NonUtf8Name { .. }
                                | ArchiveError::PathTooLong { .. }
                                | ArchiveError::Read { .. }
                        ),
                        "{reason}"
                    );
                    // Counted by rule: the reason without the path.
                    let rule = match &error {
                        ArchiveError::UnsafePath { why, .. } => why.clone(),
                        other => format!("{other:?}").split([' ', '{', '(']).next().unwrap_or_default().to_owned(),
                    };
                    *reasons_cell.borrow_mut().entry(rule).or_default() += 1;
                    refused.set(refused.get() + 1);
                }
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    println!(
        "generated trees: {} archived safely, {} refused ({} for a rule git fsck also reported)",
        archived.get(),
        refused.get(),
        with_fsck.get()
    );
    for (rule, count) in &reasons {
        println!("  refused {count:>4} × {rule}");
    }
    assert!(archived.get() >= 30, "the generator must reach the archive's happy path too: {}", archived.get());
    assert!(refused.get() >= 15, "and its refusals: {}", refused.get());
    std::fs::remove_dir_all(dir).expect("cleanup");
}

/// `bridge_core::gitpath` against git itself: generated paths (look-alikes, dots, empty
/// components, links below `.gitmodules`) go through `git update-index --index-info`, whose
/// `verify_path` (with `core.protectNTFS` and `core.protectHFS` on) drops those it refuses.
/// Every path git refuses is refused here; every path refused here that git accepts is
/// refused for a rule beyond git's (a backslash, a control character, a drive letter, a VMS
/// version, a name over 255 bytes).
#[test]
fn hostile_names_are_refused_wherever_git_refuses_them() {
    use bridge_core::gitpath::{Refusal, check_path};
    let dir = temp_dir("hostile-verify-path");
    let git = |args: &[&str], input: &[u8]| {
        let mut child = Command::new("git")
            .args(["-c", "core.protectNTFS=true", "-c", "core.protectHFS=true"])
            .args(args)
            .current_dir(&dir)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("git runs");
        std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), input).expect("input");
        let output = child.wait_with_output().expect("git ends");
        assert!(output.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&output.stderr));
        output.stdout
    };
    git(&["init", "-q"], b"");
    let blob = String::from_utf8(git(&["hash-object", "-w", "--stdin"], b"x")).expect("id").trim().to_owned();
    // Look-alikes above all: the names where a port could go wrong.
    let component = prop_oneof![3 => look_alike(), 2 => name()].prop_filter("one UTF-8 component", |n| {
        !n.contains(&b'/') && !n.contains(&0) && std::str::from_utf8(n).is_ok()
    });
    let path = (prop::collection::vec(component, 1..4), any::<bool>());
    let (compared, beyond, by_git) = (Cell::new(0u32), Cell::new(0u32), Cell::new(0u32));
    let mut runner = TestRunner::new(Config { cases: 8, failure_persistence: None, ..Config::default() });
    runner
        .run(&prop::collection::vec(path, 100..200), |paths| {
            let _ = std::fs::remove_file(dir.join(".git/index"));
            // A folder of its own for each path: no path is a folder of another.
            let joined: Vec<(String, bool)> = paths
                .iter()
                .enumerate()
                .map(|(i, (components, link))| {
                    let parts: Vec<&str> = components.iter().map(|c| std::str::from_utf8(c).expect("UTF-8")).collect();
                    (format!("p{i}/{}", parts.join("/")), *link)
                })
                .collect();
            let mut input = Vec::new();
            for (path, link) in &joined {
                let mode = if *link { "120000" } else { "100644" };
                input.extend_from_slice(format!("{mode} {blob}\t{path}\0").as_bytes());
            }
            git(&["update-index", "-z", "--add", "--index-info"], &input);
            let listed = git(&["ls-files", "-z"], b"");
            let accepted: BTreeSet<&[u8]> = listed.split(|b| *b == 0).filter(|p| !p.is_empty()).collect();
            for (path, link) in &joined {
                let ours = check_path(path, *link);
                if !accepted.contains(path.as_bytes()) {
                    prop_assert!(ours.is_err(), "git refuses {path:?} (link: {link}), gitpath accepts it");
                    by_git.set(by_git.get() + 1);
                } else if let Err(refused) = ours {
                    prop_assert!(
                        matches!(
                            refused.why,
                            Refusal::Backslash
                                | Refusal::Control
                                | Refusal::DriveLetter
                                | Refusal::VersionSuffix
                                | Refusal::TooLong
                        ),
                        "gitpath refuses {path:?} (link: {link}) for {}, git accepts it",
                        refused.why
                    );
                    beyond.set(beyond.get() + 1);
                }
                compared.set(compared.get() + 1);
            }
            Ok(())
        })
        .unwrap_or_else(|failure| panic!("{failure}"));
    let version = String::from_utf8(git(&["--version"], b"")).expect("version");
    println!(
        "{} generated paths compared with {}: {} refused by both, {} refused beyond git's rules, the rest accepted by both",
        compared.get(),
        version.trim(),
        by_git.get(),
        beyond.get()
    );
    assert!(by_git.get() >= 100, "git refused enough of them for the comparison to mean something");
    std::fs::remove_dir_all(dir).expect("cleanup");
}
