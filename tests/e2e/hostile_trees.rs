//! Generated hostile trees (issue 12, part 5): raw tree objects written byte by byte, with
//! arbitrary names (`/`, NUL, `.`/`..`, `.git` look-alikes in any case with trailing dots,
//! spaces, streams and ignorable code points), modes git writes and modes it never does,
//! links out of the tree, nesting and duplicate names, archived by
//! `bridge_git::archive_commit` with an injected buildspec at the path CodeBuild reads.
//! Each tree is either refused with a reason, or archived so that:
//!
//! - no entry name is absolute, holds a `.`, `..` or empty component, or a `\`;
//! - no component ends in `;` and digits (a VMS version `unzip` cuts) or is over 255 bytes,
//!   and no path is over `MAX_PATH_BYTES` (1024);
//! - no component is `.git` or a look-alike (checked here by a rule written apart from
//!   `bridge_core::gitpath`, so that one mistake is not made twice);
//! - no entry lies under a link entry, and no name is there twice;
//! - the entry at the CodeBuild path is a regular file, byte for byte the injected one, with
//!   nothing below it and no link or file on the way to it.
//!
//! Then differential extraction: archives of hostile trees that pass (a fixed set of
//! generated ones here, the built ones of `hostile_repos`) are unpacked by Info-ZIP `unzip`,
//! Python's `zipfile`, `bsdtar` (libarchive) and, where a JDK is installed, `jar`; on disk,
//! nothing is written outside the folder or through a link, no `.git` exists, and the
//! CodeBuild path is a regular file holding the injected bytes. The folder is 3000 bytes
//! deep, so that a path an extractor cuts at Linux's PATH_MAX would show.
//!
//! `cargo test -p e2e-tests --test e2e hostile -- --nocapture` prints the tables.

use std::cell::Cell;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::path::Path;
use std::process::Command;

use bridge_core::archive::{ArchiveError, ArchiveLimits, ArchiveOptions};
use e2e_tests::temp_dir;
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

use crate::hostile_repos::{Entries, Node, commit_entries};

const INJECTED: &[u8] = b"version: 0.2\n# injected by the bridge\nphases:\n  build:\n    commands: [make]\n";

/// Code points HFS+ ignores in names, and two it does not (for names that must stay).
static IGNORABLE: [char; 6] = ['\u{200c}', '\u{200d}', '\u{200e}', '\u{202e}', '\u{206a}', '\u{feff}'];

/// Names to start from: git's special names and their NTFS short forms, the buildspec
/// paths, names Info-ZIP `unzip` cuts a VMS version (`;` and digits) from, and ordinary names.
static SEEDS: [&str; 17] = [
    ".git",
    "git~1",
    ".gitmodules",
    "gitmod~1",
    "gi7eba~1",
    "buildspec.yml",
    "ci",
    ".github",
    ".gitignore",
    "..",
    ".",
    "src",
    "a",
    ";",
    ";1",
    ".git;",
    "buildspec.yml;1",
];

/// Endings that file systems drop or read as a stream (`.git. `, `.git::$INDEX_ALLOCATION`),
/// and VMS versions, which `unzip` drops (`.git;1`).
static TAILS: [&str; 12] = ["", "", "", ".", " ", ". .", ":", "::$INDEX_ALLOCATION", ":$DATA", "~1", ";1", ";01"];

/// A seed in random case, with an ignorable code point somewhere and a tail.
fn look_alike() -> impl Strategy<Value = Vec<u8>> {
    (
        prop::sample::select(&SEEDS[..]),
        prop::collection::vec(any::<bool>(), 16),
        prop::option::of((any::<prop::sample::Index>(), prop::sample::select(&IGNORABLE[..]))),
        prop::sample::select(&TAILS[..]),
    )
        .prop_map(|(seed, upper, ignorable, tail)| {
            let mut chars: Vec<char> = seed
                .chars()
                .zip(upper.iter().cycle())
                .map(|(c, up)| if *up { c.to_ascii_uppercase() } else { c })
                .collect();
            if let Some((at, c)) = ignorable {
                chars.insert(at.index(chars.len() + 1), c);
            }
            let mut name: String = chars.into_iter().collect();
            name.push_str(tail);
            name.into_bytes()
        })
}

fn name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        // Ordinary names, most of the time, so that many trees reach the archive.
        30 => "[a-z]{1,4}(\\.[a-z]{1,2})?".prop_map(String::into_bytes),
        2 => prop::sample::select(&SEEDS[..]).prop_map(|s| s.as_bytes().to_vec()),
        3 => look_alike(),
        // Paths inside one name, absolute ones, backslashes, NUL (which cuts the raw entry),
        // names an extractor rewrites (a drive letter, control characters).
        2 => prop::sample::select(vec![
            "zz/../buildspec.yml",
            "/abs-path.txt",
            "a/b",
            "..\\buildspec.yml",
            "a\\.git",
            "",
            "x\0y",
            "ci/",
            "c:buildspec.yml",
            "C:ci",
            "buildspec.yml\u{7}",
            "\u{1b}ci",
            "ci/buildspec.yml;7",
        ])
        .prop_map(|s| s.as_bytes().to_vec()),
        // Names at and over Linux's NAME_MAX (255 bytes).
        1 => prop::sample::select(vec![255usize, 256, 300]).prop_map(|len| vec![b'n'; len]),
        1 => prop::collection::vec(any::<u8>(), 0..8),
    ]
}

/// Link targets: out of the tree, to the buildspec, nowhere.
fn link_target() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(
            vec!["../..", "..", "/etc", "/etc/passwd", "buildspec.yml", "ci", "../../../buildspec.yml", ".git", "x/../../y", ""]
        )
        .prop_map(|s| s.as_bytes().to_vec()),
        1 => prop::collection::vec(any::<u8>(), 0..12),
    ]
}

fn raw(mode: &str, object: Node) -> Node {
    Node::Raw { mode: mode.to_owned(), object: Box::new(object) }
}

/// Modes git writes, the ancient `100664`, and modes it never writes, some of them with a
/// tree behind them and some with a blob.
static ODD_MODES: [&str; 9] = ["100600", "100777", "140000", "20000", "0", "777777", "1006440", "040755", "40001"];

fn node() -> impl Strategy<Value = Node> {
    let leaf = prop_oneof![
        14 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Node::Blob),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|c| raw("100755", Node::Blob(c))),
        1 => prop::collection::vec(any::<u8>(), 0..8).prop_map(|c| raw("100664", Node::Blob(c))),
        3 => link_target().prop_map(|t| raw("120000", Node::Blob(t))),
        1 => Just(Node::Submodule),
        1 => (prop::sample::select(&ODD_MODES[..]), prop::collection::vec(any::<u8>(), 0..8))
            .prop_map(|(mode, c)| raw(mode, Node::Blob(c))),
        // A folder's mode with a blob behind it.
        1 => Just(raw("40000", Node::Blob(b"not a tree".to_vec()))),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        let entries = move || prop::collection::vec((name(), inner.clone()), 0..6);
        prop_oneof![
            16 => entries().prop_map(Node::Dir),
            // A tree behind a file, link or odd folder mode.
            1 => (prop::sample::select(vec!["100644", "120000", "040000", "040755"]), entries())
                .prop_map(|(mode, entries)| raw(mode, Node::Dir(entries))),
        ]
    })
}

/// Ordinary names and files, folders, links out of the tree.
fn calm_entries() -> impl Strategy<Value = Entries> {
    let leaf = prop_oneof![
        4 => prop::collection::vec(any::<u8>(), 0..24).prop_map(Node::Blob),
        1 => prop::sample::select(vec!["../..", "/etc", "buildspec.yml", "ci"])
            .prop_map(|t| raw("120000", Node::Blob(t.as_bytes().to_vec()))),
    ];
    let node = leaf.prop_recursive(2, 12, 4, |inner| {
        prop::collection::vec(("[a-z]{1,4}".prop_map(String::into_bytes), inner), 0..4).prop_map(Node::Dir)
    });
    prop::collection::vec(("[a-z]{1,4}(\\.[a-z]{1,2})?".prop_map(String::into_bytes), node), 0..6)
}

/// The top of a tree, with the CodeBuild path's neighbourhood often occupied: the PR's own
/// buildspec, a folder, a link or a file on the way, and some duplicate names.
fn tree() -> impl Strategy<Value = Entries> {
    let at_the_path = prop_oneof![
        4 => Just(None),
        4 => Just(Some((b"buildspec.yml".to_vec(), Node::Blob(b"phases: {build: {commands: [curl evil]}}".to_vec())))),
        4 => Just(Some((b"ci".to_vec(), raw("120000", Node::Blob(b"/etc".to_vec()))))),
        4 => Just(Some((b"ci".to_vec(), Node::Blob(b"a file on the way".to_vec())))),
        4 => node().prop_map(|n| Some((b"ci".to_vec(), Node::Dir(vec![(b"buildspec.yml".to_vec(), n)])))),
        4 => node().prop_map(|n| Some((b"buildspec.yml".to_vec(), n))),
        // What `unzip` would write over the injected file.
        1 => Just(Some((b"buildspec.yml;1".to_vec(), Node::Blob(b"pr".to_vec())))),
        1 => Just(Some((b"ci".to_vec(), Node::Dir(vec![(b"buildspec.yml;7".to_vec(), Node::Blob(b"pr".to_vec()))])))),
        // A chain of long folder names, its path from about 600 to 2,100 bytes: within the
        // archive's limit or over it, ending in a name that a cut could make `.git`.
        3 => (5..9usize, 150..=255usize).prop_map(|(depth, len)| Some((b"long".to_vec(), long_chain(depth, len)))),
    ];
    // Half the trees are hostile all through; the other half only around the CodeBuild
    // path, so that many reach the archive and its checks.
    let rest = prop_oneof![prop::collection::vec((name(), node()), 0..7), calm_entries()];
    (rest, at_the_path, prop::option::weighted(0.1, any::<prop::sample::Index>())).prop_map(
        |(mut entries, at_the_path, duplicate)| {
            entries.extend(at_the_path);
            if let Some(index) = duplicate.filter(|_| !entries.is_empty()) {
                let name = entries[index.index(entries.len())].0.clone();
                entries.push((name, Node::Blob(b"same name".to_vec())));
            }
            entries
        },
    )
}

/// `depth` folders of names `len` bytes long, one in the other, the last holding `.gitZZZZ`.
fn long_chain(depth: usize, len: usize) -> Node {
    let mut node = Node::Dir(vec![(b".gitZZZZ".to_vec(), Node::Blob(b"x".to_vec()))]);
    for level in 1..depth {
        let mut name = vec![b'd'; len];
        name[0] = b'0' + (level % 10) as u8;
        node = Node::Dir(vec![(name, node)]);
    }
    node
}

/// Where CodeBuild reads the buildspec: the root file, or one in a folder.
fn codebuild_path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["buildspec.yml", "ci/buildspec.yml"])
}

/// Whether a name would be `.git` on some file system, written apart from
/// `bridge_core::gitpath` so that one mistake is not made twice: on HFS+ (drop the code
/// points it ignores, fold ASCII case), or on NTFS (fold case, cut an alternate data stream
/// at `:`, drop the trailing dots and spaces, or the short name `git~1`), or as it is.
fn looks_like_dotgit(name: &str) -> bool {
    const HFS_IGNORED: &str = "\u{200c}\u{200d}\u{200e}\u{200f}\u{202a}\u{202b}\u{202c}\u{202d}\u{202e}\u{206a}\u{206b}\u{206c}\u{206d}\u{206e}\u{206f}\u{feff}";
    let hfs: String = name.chars().filter(|c| !HFS_IGNORED.contains(*c)).collect::<String>().to_ascii_lowercase();
    let folded = name.to_ascii_lowercase();
    let ntfs = folded.split(':').next().unwrap_or_default().trim_end_matches(['.', ' ']);
    hfs == ".git" || ntfs == ".git" || ntfs == "git~1"
}

/// An archive's entries: name → (is a link, is a folder, content).
type Listing = BTreeMap<String, (bool, bool, Vec<u8>)>;

fn listing(zip: &[u8]) -> Listing {
    let mut zip = zip::ZipArchive::new(Cursor::new(zip)).expect("a readable zip");
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).expect("entry");
        let mut content = Vec::new();
        entry.read_to_end(&mut content).expect("content");
        let name = entry.name().expect("UTF-8 name").into_owned();
        let before = out.insert(name.clone(), (entry.is_symlink(), entry.is_dir(), content));
        assert!(before.is_none(), "{name:?} is in the archive twice");
    }
    out
}

/// The invariants of an archive made with `injected` at `at`.
fn check_archive(entries: &Listing, at: &str, injected: &[u8]) {
    let links: BTreeSet<&str> = entries.iter().filter(|(_, e)| e.0).map(|(n, _)| n.as_str()).collect();
    for name in entries.keys() {
        let path = name.strip_suffix('/').unwrap_or(name);
        assert!(!path.starts_with('/') && !path.contains('\\'), "{name:?}");
        // Extractors drop control characters and a leading drive letter: such a name could
        // land on another.
        assert!(!path.chars().any(|c| c < ' ' || c == '\u{7f}'), "{name:?}");
        let drive = |c: &str| c.len() >= 2 && c.as_bytes()[0].is_ascii_alphabetic() && c.as_bytes()[1] == b':';
        assert!(!path.split('/').any(drive), "{name:?}");
        // Info-ZIP `unzip` cuts `;` and digits from a name's end; a name or a path too long
        // for Linux is cut or fails, depending on the extractor.
        assert!(path.len() <= bridge_core::archive::MAX_PATH_BYTES, "{} bytes: {name:?}", path.len());
        let components: Vec<&str> = path.split('/').collect();
        for component in &components {
            assert!(!matches!(*component, "" | "." | ".."), "{name:?} has a {component:?} component");
            assert!(!looks_like_dotgit(component), "{name:?} has a `.git` component");
            let version = component.rsplit_once(';').is_some_and(|(_, v)| v.bytes().all(|b| b.is_ascii_digit()));
            assert!(!version, "{name:?}: {component:?} ends in a VMS version");
            assert!(component.len() <= 255, "{name:?}: a name of {} bytes", component.len());
        }
        for depth in 1..components.len() {
            let above = components[..depth].join("/");
            assert!(!links.contains(above.as_str()), "{name:?} lies under the link {above:?}");
        }
    }
    assert_eq!(entries.get(at), Some(&(false, false, injected.to_vec())), "the injected file at {at}");
    assert!(!entries.keys().any(|n| n.starts_with(&format!("{at}/"))), "nothing below {at}");
    let components: Vec<&str> = at.split('/').collect();
    for depth in 1..components.len() {
        let above = components[..depth].join("/");
        assert!(!entries.contains_key(&above), "a file or link {above:?} on the way to {at}");
    }
}

fn archive(repo_dir: &Path, commit: &str, at: &str, injected: &[u8]) -> Result<Vec<u8>, ArchiveError> {
    let options =
        ArchiveOptions { replacements: vec![(at.to_owned(), injected.to_vec())], threads: 1, ..Default::default() };
    let mut out = Cursor::new(Vec::new());
    bridge_git::archive_commit(repo_dir, commit, &mut out, &options, ArchiveLimits::default())?;
    Ok(out.into_inner())
}

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
