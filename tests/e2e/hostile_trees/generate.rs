//! The generators of hostile trees: `.git` look-alikes and other names file systems and
//! extractors read otherwise, link targets, modes git writes and never writes, nesting, and
//! trees whose CodeBuild path's neighbourhood is occupied.

use proptest::prelude::*;

use crate::hostile_repos::{Entries, Node};

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
pub(super) fn look_alike() -> impl Strategy<Value = Vec<u8>> {
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

pub(super) fn name() -> impl Strategy<Value = Vec<u8>> {
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

pub(super) fn raw(mode: &str, object: Node) -> Node {
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
pub(super) fn tree() -> impl Strategy<Value = Entries> {
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
pub(super) fn codebuild_path() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["buildspec.yml", "ci/buildspec.yml"])
}
