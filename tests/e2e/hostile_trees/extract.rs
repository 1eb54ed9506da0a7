//! Differential extraction: hostile archives that pass (fixed cases written by hand and the
//! first generated ones that archive) unpacked by Info-ZIP `unzip`, Python's `zipfile`,
//! `bsdtar` and, where a JDK is installed, `jar`, below a deep destination, and checked on
//! disk; `hostile_repos` unpacks its built archives with these too.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use e2e_tests::temp_dir;
use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::TestRunner;

use super::generate::{codebuild_path, raw, tree};
use super::{INJECTED, archive, check_archive, listing, looks_like_dotgit};
use crate::hostile_repos::{Entries, Node, commit_entries};

/// How one extractor is run: (name, whether it makes links, command for `zip` into `dest`).
pub(crate) struct Extractor {
    pub name: &'static str,
    makes_links: bool,
    command: fn(&Path, &Path) -> Command,
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Info-ZIP `unzip`, Python's `zipfile` and `bsdtar` always (scripts/setup-test-env
/// installs them); `jar` where a JDK is installed.
pub(crate) fn extractors() -> Vec<Extractor> {
    for program in ["unzip", "python3", "bsdtar"] {
        assert!(on_path(program), "`{program}` is missing: run scripts/setup-test-env (scripts/test does)");
    }
    let mut all = vec![
        Extractor {
            name: "unzip",
            makes_links: true,
            command: |zip, dest| {
                // `-o`: an entry that lands on an earlier one's path replaces it, unasked,
                // as in a build's `unzip -o`; what is on disk then shows it.
                let mut c = Command::new("unzip");
                c.arg("-q").arg("-o").arg(zip).arg("-d").arg(dest);
                c
            },
        },
        Extractor {
            name: "python zipfile",
            makes_links: false,
            command: |zip, dest| {
                let mut c = Command::new("python3");
                c.args(["-c", "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])"])
                    .arg(zip)
                    .arg(dest);
                c
            },
        },
        Extractor {
            name: "bsdtar",
            makes_links: true,
            command: |zip, dest| {
                let mut c = Command::new("bsdtar");
                c.arg("-x").arg("-f").arg(zip).arg("-C").arg(dest);
                c
            },
        },
    ];
    if on_path("jar") {
        all.push(Extractor {
            name: "jar",
            makes_links: false,
            command: |zip, dest| {
                let mut c = Command::new("jar");
                c.arg("xf").arg(zip).current_dir(dest);
                c
            },
        });
    }
    all
}

/// What is on disk under `root`, walked without following links: path → (is a link, is a
/// folder).
fn on_disk(root: &Path) -> BTreeMap<String, (bool, bool)> {
    let mut found = BTreeMap::new();
    let mut pending = vec![String::new()];
    while let Some(relative) = pending.pop() {
        for item in std::fs::read_dir(root.join(&relative)).expect("read_dir") {
            let item = item.expect("entry");
            let name = item.file_name().into_string().expect("UTF-8 on disk");
            let path = if relative.is_empty() { name } else { format!("{relative}/{name}") };
            let kind = std::fs::symlink_metadata(item.path()).expect("lstat").file_type();
            if kind.is_dir() {
                pending.push(path.clone());
            }
            found.insert(path, (kind.is_symlink(), kind.is_dir()));
        }
    }
    found
}

/// How long the destination folder's path is: deep, so that a path an extractor cuts short
/// at Linux's PATH_MAX (Info-ZIP `unzip` does, and still writes the file) would show here.
/// The longest path an archive may hold ([`bridge_core::archive::MAX_PATH_BYTES`]) fits
/// below it; a limit raised far enough for the cut to happen would not.
pub(crate) const DEEP_DESTINATION_BYTES: usize = 3000;

/// A folder `DEEP_DESTINATION_BYTES` long (as an absolute path) under `work`, made one folder
/// at a time; returns it and the folders on the way, from `work` down.
fn deep_destination(work: &Path) -> (std::path::PathBuf, Vec<std::path::PathBuf>) {
    let mut dest = work.join("x");
    let mut on_the_way = vec![work.to_path_buf()];
    loop {
        std::fs::create_dir(&dest).expect("destination folder");
        let len = dest.as_os_str().len();
        if len >= DEEP_DESTINATION_BYTES {
            assert_eq!(len, DEEP_DESTINATION_BYTES);
            return (dest, on_the_way);
        }
        let name = "p".repeat((DEEP_DESTINATION_BYTES - len - 1).min(250));
        on_the_way.push(dest.clone());
        dest.push(name);
    }
}

/// Unpacks `zip` with `extractor` and checks what it wrote; returns a short note.
pub(crate) fn extract_and_check(extractor: &Extractor, zip: &Path, at: &str, injected: &[u8]) -> String {
    let entries = listing(&std::fs::read(zip).expect("zip"));
    let work = temp_dir("extract");
    let (dest, on_the_way) = deep_destination(&work);
    let zip = zip.canonicalize().expect("absolute zip path");
    let output = (extractor.command)(&zip, &dest).output().expect("extractor runs");
    // Which extractor, on which archive, for every message below.
    let on = format!("{} on {}", extractor.name, zip.display());
    assert!(
        output.status.success(),
        "{on} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Each folder on the way holds the next one only: nothing is written beside the
    // destination, at any level.
    for (folder, next) in on_the_way.iter().zip(on_the_way.iter().skip(1).chain([&dest])) {
        let beside: Vec<_> = std::fs::read_dir(folder).expect("read_dir").map(|e| e.expect("entry").path()).collect();
        assert_eq!(&beside, std::slice::from_ref(next), "{}: nothing is written beside the destination", on);
    }
    let disk = on_disk(&dest);
    // Everything on disk is an entry of the archive or a folder above one.
    let mut expected: BTreeSet<String> = BTreeSet::new();
    for name in entries.keys() {
        let path = name.strip_suffix('/').unwrap_or(name);
        let components: Vec<&str> = path.split('/').collect();
        for depth in 1..=components.len() {
            expected.insert(components[..depth].join("/"));
        }
    }
    for path in disk.keys() {
        assert!(expected.contains(path), "{}: {path:?} was written, and is no entry of the archive", on);
        assert!(!path.split('/').any(looks_like_dotgit), "{}: a `.git` on disk: {path:?}", on);
    }
    // Every entry is on disk at its own path, reached through folders only.
    let (mut links_as_links, mut links_as_files) = (0, 0);
    for (name, (is_link, is_dir, content)) in &entries {
        let path = name.strip_suffix('/').unwrap_or(name);
        let components: Vec<&str> = path.split('/').collect();
        for depth in 1..components.len() {
            let above = components[..depth].join("/");
            assert_eq!(disk.get(&above), Some(&(false, true)), "{}: {above:?} is a real folder", on);
        }
        let full = dest.join(path);
        match (disk.get(path), is_link, is_dir) {
            (Some((false, true)), false, true) => {}
            (Some((false, false)), false, false) => {
                assert_eq!(&std::fs::read(&full).expect("file"), content, "{}: {path:?}", on);
            }
            (Some((true, false)), true, false) if extractor.makes_links => {
                let target = std::fs::read_link(&full).expect("link");
                assert_eq!(target.as_os_str().as_encoded_bytes(), &content[..], "{}: {path:?}", on);
                links_as_links += 1;
            }
            (Some((false, false)), true, false) if !extractor.makes_links => {
                assert_eq!(&std::fs::read(&full).expect("file"), content, "{}: {path:?}", on);
                links_as_files += 1;
            }
            (found, _, _) => {
                panic!("{}: {path:?} is {found:?} on disk, {:?} in the archive", on, (is_link, is_dir))
            }
        }
    }
    let spec = dest.join(at);
    let kind = std::fs::symlink_metadata(&spec).expect("the CodeBuild path exists").file_type();
    assert!(kind.is_file(), "{}: {at} is a regular file", on);
    assert_eq!(std::fs::read(&spec).expect("spec"), injected, "{}: {at} holds the injected bytes", on);
    std::fs::remove_dir_all(work).expect("cleanup");
    match (links_as_links, links_as_files) {
        (0, 0) => "ok".to_owned(),
        (n, 0) => format!("ok ({n} links as links)"),
        (0, n) => format!("ok ({n} links as files)"),
        (a, b) => format!("ok ({a} links, {b} as files)"),
    }
}

/// Hostile trees that pass, written by hand: what an extractor could be fooled by if the
/// archive let it (links out, links and files on the way to the CodeBuild path, a folder
/// at it, the PR's own buildspec, odd but legal names).
fn fixed_cases() -> Vec<(&'static str, &'static str, Entries)> {
    let blob = |c: &[u8]| Node::Blob(c.to_vec());
    let link = |t: &[u8]| raw("120000", Node::Blob(t.to_vec()));
    let n = |s: &str| s.as_bytes().to_vec();
    vec![
        (
            "links-out-and-pr-buildspec",
            "buildspec.yml",
            vec![
                (n("buildspec.yml"), blob(b"phases: {build: {commands: [curl evil]}}")),
                (n("up"), link(b"../..")),
                (n("etc"), link(b"/etc")),
                (n("spec"), link(b"buildspec.yml")),
                (n(".gitmodules"), blob(b"[submodule \"x\"]\n")),
                (n("vendor"), Node::Submodule),
            ],
        ),
        (
            "folder-at-the-path",
            "buildspec.yml",
            vec![(n("buildspec.yml"), Node::Dir(vec![(n("x"), blob(b"x")), (n("up"), link(b"../../.."))]))],
        ),
        ("link-on-the-way", "ci/buildspec.yml", vec![(n("ci"), link(b"/tmp")), (n("buildspec.yml"), blob(b"root"))]),
        (
            "file-on-the-way",
            "ci/buildspec.yml",
            vec![(n("ci"), blob(b"not a folder")), (n(".github"), Node::Dir(vec![(n("w.yml"), blob(b"w"))]))],
        ),
        (
            "pr-buildspec-in-folder",
            "ci/buildspec.yml",
            vec![(
                n("ci"),
                Node::Dir(vec![
                    (n("buildspec.yml"), link(b"../../../etc/passwd")),
                    (n("buildspec.yml.orig"), blob(b"pr")),
                    (n("..."), blob(b"three dots is a name")),
                    (n(".git~2"), blob(b"not a short name of .git")),
                ]),
            )],
        ),
        // The longest path the archive holds, unpacked below a deep destination: whole, where
        // a longer one would be cut by `unzip`.
        ("longest-path", "buildspec.yml", vec![longest_path()]),
        (
            "odd-legal-names",
            "buildspec.yml",
            vec![
                (n(" "), blob(b"space")),
                (n("ab:c"), blob(b"a colon, not after a drive letter")),
                (n(".g\u{200b}it"), blob(b"U+200B is not ignored by HFS+")),
                (n("gitmod~1"), blob(b"a .gitmodules short name, as a file")),
            ],
        ),
    ]
}

/// A chain of folders of 200-byte names ending in a file, its path exactly
/// [`bridge_core::archive::MAX_PATH_BYTES`] long; its last name ends in `;1x`, which `unzip`
/// keeps.
fn longest_path() -> (Vec<u8>, Node) {
    let mut names = Vec::new();
    let mut left = bridge_core::archive::MAX_PATH_BYTES;
    while left > 255 {
        names.push(format!("{}{}", names.len(), "d".repeat(199)));
        left -= 201;
    }
    let mut node = Node::Blob(b"at the end of the longest path".to_vec());
    let mut last = "f".repeat(left - 3);
    last.push_str(";1x");
    names.push(last);
    let total: usize = names.iter().map(String::len).sum::<usize>() + names.len() - 1;
    assert_eq!(total, bridge_core::archive::MAX_PATH_BYTES);
    let top = names.remove(0);
    for name in names.into_iter().rev() {
        node = Node::Dir(vec![(name.into_bytes(), node)]);
    }
    (top.into_bytes(), node)
}

/// The first generated trees (from a fixed seed) that archive without refusal.
fn generated_passing(repo: &git2::Repository, dir: &Path, count: usize) -> Vec<(String, &'static str, Vec<u8>)> {
    let mut runner = TestRunner::deterministic();
    let strategy = (tree(), codebuild_path());
    let mut found = Vec::new();
    for attempt in 0..2000 {
        let (entries, at) = strategy.new_tree(&mut runner).expect("value").current();
        let commit = commit_entries(repo, "fixed", entries).to_string();
        if let Ok(zip) = archive(dir, &commit, at, INJECTED)
            && listing(&zip).len() >= 4
        {
            found.push((format!("generated-{attempt}"), at, zip));
        }
        if found.len() == count {
            break;
        }
    }
    assert_eq!(found.len(), count, "enough generated trees pass");
    found
}

#[test]
fn hostile_archives_extract_safely_with_every_extractor() {
    let extractors = extractors();
    let dir = temp_dir("hostile-extract");
    let repo = git2::Repository::init_bare(dir.join("repo.git")).expect("init");
    let mut archives: Vec<(String, &str, Vec<u8>)> = fixed_cases()
        .into_iter()
        .map(|(name, at, entries)| {
            let commit = commit_entries(&repo, name, entries).to_string();
            let zip = archive(&dir.join("repo.git"), &commit, at, INJECTED).unwrap_or_else(|e| panic!("{name}: {e}"));
            (name.to_owned(), at, zip)
        })
        .collect();
    archives.extend(generated_passing(&repo, &dir.join("repo.git"), 8));
    let mut table = format!(
        "| archive | CodeBuild path | entries | {} |\n|---|---|---|{}\n",
        extractors.iter().map(|e| e.name).collect::<Vec<_>>().join(" | "),
        "---|".repeat(extractors.len())
    );
    for (name, at, zip) in &archives {
        let entries = listing(zip);
        check_archive(&entries, at, INJECTED);
        let path = dir.join(format!("{name}.zip"));
        std::fs::write(&path, zip).expect("zip");
        let notes: Vec<String> = extractors.iter().map(|e| extract_and_check(e, &path, at, INJECTED)).collect();
        table.push_str(&format!("| {name} | {at} | {} | {} |\n", entries.len(), notes.join(" | ")));
    }
    println!("{table}");
    std::fs::remove_dir_all(dir).expect("cleanup");
}
