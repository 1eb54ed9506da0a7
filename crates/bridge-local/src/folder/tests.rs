use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::os::unix::fs::symlink;

use super::*;

/// A fresh folder, removed with the returned guard.
fn temp_tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path().to_owned();
    (dir, root)
}

fn zip_of(root: &Path, options: &ArchiveOptions) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    write_tree(root, &mut out, options, ArchiveLimits::default()).expect("archive");
    out.into_inner()
}

#[test]
fn keeps_modes_links_and_dot_files_but_not_git() {
    let (_dir, root) = temp_tree();
    fs::create_dir_all(root.join(".git/objects")).expect("git");
    fs::write(root.join(".git/config"), "[core]").expect("git config");
    fs::create_dir_all(root.join(".github/workflows")).expect("dirs");
    fs::write(root.join(".gitignore"), "target\n").expect("file");
    fs::write(root.join("run.sh"), "#!/bin/sh\necho hi\n").expect("file");
    fs::set_permissions(root.join("run.sh"), fs::Permissions::from_mode(0o755)).expect("chmod");
    fs::write(root.join("buildspec.yml"), "from the PR").expect("file");
    symlink("/etc/passwd", root.join("passwd")).expect("link");
    symlink("../../..", root.join("up")).expect("link");
    symlink("/proc/self/environ", root.join(".github/env")).expect("link");
    let options =
        ArchiveOptions { replacements: vec![("buildspec.yml".into(), b"injected".to_vec())], ..Default::default() };
    let bytes = zip_of(&root, &options);
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes.clone())).expect("zip");
    let names: Vec<String> = zip.file_names().map(|n| n.expect("name").into_owned()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "entries sorted");
    assert!(!names.iter().any(|n| n.starts_with(".git/")), "{names:?}");
    for wanted in
        [".gitignore", ".github/", ".github/workflows/", "run.sh", "buildspec.yml", "passwd", "up", ".github/env"]
    {
        assert!(names.iter().any(|n| n == wanted), "{wanted} missing from {names:?}");
    }
    let mode = zip.by_name("run.sh").expect("run.sh").unix_mode().expect("mode");
    assert_eq!(mode & 0o777, 0o755);
    for (link, target) in [("passwd", "/etc/passwd"), ("up", "../../.."), (".github/env", "/proc/self/environ")] {
        let mut entry = zip.by_name(link).expect("link");
        assert!(entry.is_symlink(), "{link} stored as a link");
        let mut text = String::new();
        entry.read_to_string(&mut text).expect("read");
        assert_eq!(text, target, "{link} holds the link text, not the target's content");
    }
    let mut spec = String::new();
    zip.by_name("buildspec.yml").expect("spec").read_to_string(&mut spec).expect("read");
    assert_eq!(spec, "injected");
    assert_eq!(zip_of(&root, &options), bytes, "deterministic");
}

fn refusal(root: &Path, options: &ArchiveOptions) -> (String, String) {
    match write_tree(root, Cursor::new(Vec::new()), options, ArchiveLimits::default()) {
        Err(ArchiveError::UnsafePath { path, why }) => (path, why),
        other => panic!("refused expected: {other:?}"),
    }
}

/// The checkout's own `.git` is not content; any other `.git` look-alike, anywhere, is a
/// repository an extractor would write: the folder is refused, naming the path.
#[test]
fn git_look_alikes_in_a_folder_are_refused_with_their_path() {
    for (made, shown) in [
        ("sub/.git/config", "sub/.git"),
        (".GIT/config", ".GIT"),
        ("a/b/.git. /hooks", "a/b/.git. "),
        ("x/git~1/config", "x/git~1"),
        ("d/.g\u{200c}it/hooks", "d/.g\u{200c}it"),
    ] {
        let (_dir, root) = temp_tree();
        fs::create_dir_all(root.join(".git/objects")).expect("the checkout's repository");
        fs::create_dir_all(root.join(made)).expect("look-alike");
        let (path, why) = refusal(&root, &ArchiveOptions::default());
        assert_eq!(path, shown);
        assert!(why.contains("hasDotgit"), "{why}");
    }
    let (_dir, root) = temp_tree();
    fs::write(root.join("a\\..\\x"), "x").expect("file");
    let (path, why) = refusal(&root, &ArchiveOptions::default());
    assert_eq!((path.as_str(), why.contains("separator")), ("a\\..\\x", true));
}

fn names_and_contents(bytes: Vec<u8>) -> BTreeMap<String, (bool, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(bytes)).expect("zip");
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).expect("entry");
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("read");
            (entry.name().expect("name").into_owned(), (entry.is_symlink(), content))
        })
        .collect()
}

/// Whatever the tree has at the injected path, or on the way to it, the injected file is
/// what lands there: a folder there goes with all it holds, a link or a file on the way
/// goes, a folder on the way stays.
#[test]
fn the_injected_file_takes_its_path_whatever_stands_there() {
    let injected = b"injected".to_vec();
    let build = |layout: &dyn Fn(&Path), path: &str| {
        let (_dir, root) = temp_tree();
        layout(&root);
        let options = ArchiveOptions { replacements: vec![(path.into(), injected.clone())], ..Default::default() };
        let entries = names_and_contents(zip_of(&root, &options));
        assert_eq!(entries.get(path), Some(&(false, injected.clone())), "{path} in {entries:?}");
        assert!(!entries.keys().any(|n| n.starts_with(&format!("{path}/"))), "{entries:?}");
        entries
    };
    // A folder at the path, with content.
    let entries = build(
        &|root| {
            fs::create_dir_all(root.join("buildspec.yml/deep")).expect("dir");
            fs::write(root.join("buildspec.yml/deep/x"), "x").expect("file");
            fs::write(root.join("keep.txt"), "k").expect("file");
        },
        "buildspec.yml",
    );
    assert!(entries.contains_key("keep.txt") && !entries.contains_key("buildspec.yml/"), "{entries:?}");
    // A link at the path.
    build(&|root| symlink("/etc/passwd", root.join("buildspec.yml")).expect("link"), "buildspec.yml");
    // A link on the way: `ci` -> elsewhere; it goes, the folder-less path stays.
    let entries = build(
        &|root| {
            fs::create_dir_all(root.join("elsewhere")).expect("dir");
            fs::write(root.join("elsewhere/buildspec.yml"), "pr").expect("file");
            symlink("elsewhere", root.join("ci")).expect("link");
        },
        "ci/buildspec.yml",
    );
    assert!(!entries.contains_key("ci"), "the link on the way is left out: {entries:?}");
    assert_eq!(entries["elsewhere/buildspec.yml"], (false, b"pr".to_vec()), "other paths are kept");
    // A file on the way.
    let entries = build(&|root| fs::write(root.join("ci"), "file").expect("file"), "ci/buildspec.yml");
    assert!(!entries.contains_key("ci"), "{entries:?}");
    // A folder on the way stays, with its other content; a link next to the path stays.
    let entries = build(
        &|root| {
            fs::create_dir_all(root.join("ci")).expect("dir");
            fs::write(root.join("ci/buildspec.yml"), "pr").expect("file");
            fs::write(root.join("ci/other.yml"), "o").expect("file");
            symlink("/etc", root.join("ci/buildspec.ym")).expect("link");
        },
        "ci/buildspec.yml",
    );
    assert!(entries.contains_key("ci/") && entries.contains_key("ci/other.yml"), "{entries:?}");
    assert_eq!(entries["ci/buildspec.ym"], (true, b"/etc".to_vec()));
}

#[test]
fn injected_paths_follow_git_rules_too() {
    let (_dir, root) = temp_tree();
    for (path, part) in [
        ("../buildspec.yml", "component 1"),
        ("/buildspec.yml", "component 1"),
        ("a/.git/buildspec.yml", "component 2"),
        ("ci//b.yml", "component 2"),
    ] {
        let options = ArchiveOptions { replacements: vec![(path.into(), b"x".to_vec())], ..Default::default() };
        let (shown, why) = refusal(&root, &options);
        assert_eq!(shown, path);
        assert!(why.contains(part), "{path}: {why}");
    }
    let nested = ArchiveOptions {
        replacements: vec![("ci".into(), b"x".to_vec()), ("ci/b.yml".into(), b"y".to_vec())],
        ..Default::default()
    };
    assert!(refusal(&root, &nested).1.contains("another injected file"));
}

#[test]
fn limits_end_in_clear_errors() {
    let (_dir, root) = temp_tree();
    for i in 0..5 {
        fs::write(root.join(format!("f{i}")), vec![b'x'; 100]).expect("file");
    }
    let tight = |max_entries, max_bytes| {
        write_tree(&root, Cursor::new(Vec::new()), &ArchiveOptions::default(), ArchiveLimits { max_entries, max_bytes })
    };
    assert!(matches!(tight(4, 1 << 20), Err(ArchiveError::TooManyEntries { limit: 4 })));
    assert!(matches!(tight(100, 499), Err(ArchiveError::TooLarge { limit: 499 })));
    assert_eq!(tight(5, 500).expect("fits").bytes, 500);
}

/// A folder is walked with the same limits as a git tree: no name that `unzip` rewrites,
/// no path an extractor could cut short (a name over 255 bytes cannot be made on Linux, so
/// only the git walker meets one).
#[test]
fn names_unzip_rewrites_and_long_paths_in_a_folder_are_refused() {
    for (made, why) in
        [("buildspec.yml;1", "VMS version"), ("ci/buildspec.yml;7", "VMS version"), ("x/.git;", "VMS version")]
    {
        let (_dir, root) = temp_tree();
        let path = root.join(made);
        fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
        fs::write(&path, "pr").expect("file");
        let options =
            ArchiveOptions { replacements: vec![("buildspec.yml".into(), b"injected".to_vec())], ..Default::default() };
        let (shown, reason) = refusal(&root, &options);
        assert_eq!((shown.as_str(), reason.contains(why)), (made, true), "{reason}");
    }
    let (_dir, root) = temp_tree();
    // Six names of 200 bytes: 1205 bytes in all, each name well within NAME_MAX.
    let deep: PathBuf = (0..6).map(|i| format!("{i}{}", "d".repeat(199))).collect();
    fs::create_dir_all(root.join(&deep)).expect("deep dirs");
    match write_tree(&root, Cursor::new(Vec::new()), &ArchiveOptions::default(), ArchiveLimits::default()) {
        Err(error @ ArchiveError::PathTooLong { .. }) => {
            let text = error.to_string();
            assert!(text.contains("a path of 1205 bytes is longer than 1024 bytes"), "{text}");
            assert!(text.contains(&format!("0{}", "d".repeat(59))), "names the path's start: {text}");
        }
        other => panic!("PathTooLong expected: {other:?}"),
    }
    // An injected path over the limit is refused before anything is walked.
    let injected = format!("{}/b.yml", vec!["c".repeat(200); 6].join("/"));
    let options = ArchiveOptions { replacements: vec![(injected, Vec::new())], ..Default::default() };
    assert!(matches!(Replacements::new(&options), Err(ArchiveError::PathTooLong { len: 1211, .. })));
}

/// The walk is a loop, not recursion; it ends at the first path over `MAX_PATH_BYTES`,
/// 513 folders down a chain of one-letter names.
#[test]
fn deep_trees_end_at_the_path_limit() {
    let tree_of = |depth: usize| {
        let (_dir, root) = temp_tree();
        let chain: PathBuf = std::iter::repeat_n("d", depth).collect();
        fs::create_dir_all(root.join(chain)).expect("deep dirs");
        write_tree(&root, Cursor::new(Vec::new()), &ArchiveOptions::default(), ArchiveLimits::default())
    };
    // `d/d/…/d`, 512 names: 1023 bytes.
    assert_eq!(tree_of(512).expect("within the limit").directories, 512);
    assert!(matches!(tree_of(1500), Err(ArchiveError::PathTooLong { len: 1025, .. })));
}

/// A tree of many small files around one large one, so both the threaded and the
/// streamed paths write entries.
fn mixed_tree() -> (tempfile::TempDir, PathBuf) {
    let (dir, root) = temp_tree();
    let mut seed = 7u64;
    for i in 0..300 {
        let dir = root.join(format!("d{}", i % 7));
        fs::create_dir_all(&dir).expect("dir");
        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let text: String = (0..(seed >> 52)).map(|j| format!("line {i} {j} {}\n", seed >> (j % 40))).collect();
        fs::write(dir.join(format!("f{i}.txt")), text).expect("file");
    }
    let large: Vec<u8> = (0..3u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect();
    fs::write(root.join("d3/large.bin"), large).expect("large");
    symlink("f1.txt", root.join("d1/link")).expect("link");
    (dir, root)
}

#[test]
fn the_bytes_do_not_depend_on_the_thread_count() {
    let (_dir, root) = mixed_tree();
    let with = |threads| zip_of(&root, &ArchiveOptions { threads, ..ArchiveOptions::default() });
    let one = with(1);
    assert_eq!(with(2), one);
    assert_eq!(with(5), one);
    let mut zip = zip::ZipArchive::new(Cursor::new(one)).expect("zip");
    assert_eq!(zip.len(), 7 + 300 + 1 + 1);
    for i in [0usize, 150, 299] {
        let mut content = Vec::new();
        zip.by_name(&format!("d{}/f{i}.txt", i % 7)).expect("entry").read_to_end(&mut content).expect("read");
        assert_eq!(content, fs::read(root.join(format!("d{}/f{i}.txt", i % 7))).expect("source"));
    }
    let mut large = Vec::new();
    zip.by_name("d3/large.bin").expect("large").read_to_end(&mut large).expect("read");
    assert_eq!(large, fs::read(root.join("d3/large.bin")).expect("source"));
    // A higher level gives a different, smaller archive of the same content.
    let nine = zip_of(&root, &ArchiveOptions { compression_level: 9, ..ArchiveOptions::default() });
    assert!(nine.len() < with(1).len());
}
