use std::collections::BTreeMap;
use std::io::{Cursor, Read};

use super::*;

type Entries = Vec<(&'static [u8], Node)>;

/// A tree entry written raw, so that names git's own tools refuse can be made.
enum Node {
    File(&'static [u8]),
    Link(&'static str),
    Dir(Vec<(&'static [u8], Node)>),
    Submodule,
    /// A blob under a mode of one's choosing.
    Mode(&'static str),
    /// An empty tree under a mode of one's choosing.
    TreeAs(&'static str),
}

fn write(odb: &git2::Odb<'_>, node: &Node) -> (&'static str, Oid) {
    let blob = |content: &[u8]| odb.write(ObjectType::Blob, content).expect("blob");
    match node {
        Node::File(content) => ("100644", blob(content)),
        Node::Link(target) => ("120000", blob(target.as_bytes())),
        Node::Submodule => ("160000", Oid::from_str("0123456789abcdef0123456789abcdef01234567").expect("oid")),
        Node::Mode(mode) => (mode, blob(b"odd")),
        Node::TreeAs(mode) => (mode, odb.write(ObjectType::Tree, b"").expect("empty tree")),
        Node::Dir(entries) => {
            let mut raw = Vec::new();
            for (name, node) in entries {
                let (mode, oid) = write(odb, node);
                raw.extend_from_slice(mode.as_bytes());
                raw.push(b' ');
                raw.extend_from_slice(name);
                raw.push(0);
                raw.extend_from_slice(oid.as_bytes());
            }
            ("40000", odb.write(ObjectType::Tree, &raw).expect("tree"))
        }
    }
}

/// A repository whose one commit holds `entries`; returns its folder and the commit.
fn repo_with(label: &str, entries: Entries) -> (std::path::PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("pcb-git-archive-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let repo = Repository::init_bare(&dir).expect("init");
    let odb = repo.odb().expect("odb");
    let (_, tree) = write(&odb, &Node::Dir(entries));
    let commit = format!(
        "tree {tree}\nauthor M <m@example.org> 1700000000 +0000\ncommitter M <m@example.org> 1700000000 +0000\n\nx\n"
    );
    let commit = odb.write(ObjectType::Commit, commit.as_bytes()).expect("commit");
    (dir, commit.to_string())
}

const INJECTED: &[u8] = b"version: 0.2\n# injected\n";

fn archive(label: &str, entries: Entries, at: &str) -> Result<Vec<u8>, ArchiveError> {
    let (dir, commit) = repo_with(label, entries);
    let options = ArchiveOptions { replacements: vec![(at.into(), INJECTED.to_vec())], ..Default::default() };
    let mut out = Cursor::new(Vec::new());
    let result = archive_commit(&dir, &commit, &mut out, &options, ArchiveLimits::default());
    std::fs::remove_dir_all(&dir).expect("cleanup");
    result.map(|_| out.into_inner())
}

/// Name → (is a link, content).
fn contents(zip: Vec<u8>) -> BTreeMap<String, (bool, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(Cursor::new(zip)).expect("zip");
    (0..zip.len())
        .map(|i| {
            let mut entry = zip.by_index(i).expect("entry");
            let mut content = Vec::new();
            entry.read_to_end(&mut content).expect("read");
            (entry.name().expect("name").into_owned(), (entry.is_symlink(), content))
        })
        .collect()
}

fn spec() -> (&'static [u8], Node) {
    (b"buildspec.yml", Node::File(b"from the PR"))
}

/// The issue's names and git's other look-alikes: each refuses the tree, naming the path
/// and the rule.
#[test]
fn names_git_refuses_refuse_the_tree_with_their_path() {
    // (label, top entries, the path the refusal names, the rule it cites)
    let cases: Vec<(&str, Entries, &str, &str)> = vec![
        ("slash", vec![spec(), (b"zz/../buildspec.yml", Node::File(b"pr"))], "zz/../buildspec.yml", "fullPathname"),
        ("dotdot-dir", vec![(b"..", Node::Dir(vec![spec()]))], "..", "hasDotdot"),
        ("dot", vec![spec(), (b".", Node::File(b"x"))], ".", "hasDot"),
        (
            "nested-dotgit",
            vec![
                spec(),
                (
                    b"a",
                    Node::Dir(vec![(
                        b".git",
                        Node::Dir(vec![
                            (b"config", Node::File(b"[core]\n\tfsmonitor = evil\n")),
                            (b"hooks", Node::Dir(vec![(b"post-checkout", Node::Mode("100755"))])),
                        ]),
                    )]),
                ),
            ],
            "a/.git",
            "hasDotgit",
        ),
        ("absolute", vec![spec(), (b"/abs-path.txt", Node::File(b"x"))], "/abs-path.txt", "fullPathname"),
        ("top-dotgit", vec![spec(), (b".git", Node::Dir(vec![(b"config", Node::File(b"x"))]))], ".git", "hasDotgit"),
        ("case", vec![spec(), (b".GiT", Node::File(b"x"))], ".GiT", "hasDotgit"),
        ("ntfs-dots", vec![spec(), (b".git. .", Node::File(b"x"))], ".git. .", "hasDotgit"),
        ("ntfs-short", vec![spec(), (b"GIT~1", Node::Dir(vec![(b"config", Node::File(b"x"))]))], "GIT~1", "hasDotgit"),
        (
            "ntfs-stream",
            vec![spec(), (b".git::$INDEX_ALLOCATION", Node::File(b"x"))],
            ".git::$INDEX_ALLOCATION",
            "hasDotgit",
        ),
        (
            "hfs",
            vec![spec(), (b"d", Node::Dir(vec![(".g\u{200c}it".as_bytes(), Node::File(b"x"))]))],
            "d/.g\u{200c}it",
            "hasDotgit",
        ),
        (
            "gitmodules-link",
            vec![spec(), (b".gitmodules", Node::Link("/etc/passwd"))],
            ".gitmodules",
            "gitmodulesSymlink",
        ),
        ("backslash", vec![spec(), (b"..\\buildspec.yml", Node::File(b"x"))], "..\\buildspec.yml", "separator"),
        ("empty", vec![spec(), (b"", Node::File(b"x"))], "", "emptyName"),
        ("non-utf8", vec![spec(), (b"caf\xe9", Node::File(b"x"))], "caf\u{fffd}", "not UTF-8"),
        (
            "duplicate",
            vec![(b"buildspec.yml", Node::File(b"pr")), (b"buildspec.yml", Node::Dir(vec![(b"x", Node::File(b"x"))]))],
            "buildspec.yml",
            "duplicateEntries",
        ),
        ("mode", vec![spec(), (b"odd", Node::Mode("100600"))], "odd", "badFilemode"),
        ("empty-link", vec![spec(), (b"l", Node::Link(""))], "l", "no system can create"),
        ("mode-type", vec![spec(), (b"odd", Node::Mode("140000"))], "odd", "badFilemode"),
        ("gitmodules-folder", vec![spec(), (b".gitmodules", Node::Dir(vec![]))], ".gitmodules", "gitmodulesBlob"),
        ("gitmodules-submodule", vec![spec(), (b"GITMOD~1", Node::Submodule)], "GITMOD~1", "gitmodulesBlob"),
        (
            "displaced-not-a-blob",
            vec![(b"buildspec.yml", Node::TreeAs("100644")), (b"ci", Node::Link("x"))],
            "buildspec.yml",
            "not a blob",
        ),
        (
            "link-below-gitmodules",
            vec![spec(), (b".GITMODULES", Node::Dir(vec![(b"x", Node::Link("y"))]))],
            ".GITMODULES",
            "gitmodulesBlob",
        ),
        // Info-ZIP unzip strips a trailing `;` and digits: `buildspec.yml;1` would land on
        // the injected file, `.git;` would be `.git`.
        ("vms-version", vec![spec(), (b"buildspec.yml;1", Node::File(b"pr"))], "buildspec.yml;1", "VMS version"),
        (
            "vms-dotgit",
            vec![spec(), (b".GIT;1", Node::Dir(vec![(b"config", Node::File(b"x"))]))],
            ".GIT;1",
            "VMS version",
        ),
        (
            "vms-nested",
            vec![(b"ci", Node::Dir(vec![(b"buildspec.yml;7", Node::File(b"pr"))]))],
            "ci/buildspec.yml;7",
            "VMS version",
        ),
        (
            "long-name",
            vec![spec(), (String::leak("n".repeat(256)).as_bytes(), Node::File(b"x"))],
            String::leak("n".repeat(256)),
            "NAME_MAX",
        ),
        // Inside what the injected file displaces: still a tree git refuses.
        (
            "displaced",
            vec![(b"buildspec.yml", Node::Dir(vec![(b"..", Node::File(b"x"))]))],
            "buildspec.yml/..",
            "hasDotdot",
        ),
    ];
    for (label, entries, path, rule) in cases {
        match archive(label, entries, "buildspec.yml") {
            Err(error @ ArchiveError::UnsafePath { .. }) => {
                let ArchiveError::UnsafePath { path: shown, why } = &error else { unreachable!() };
                assert_eq!(shown, path, "{label}");
                assert!(why.contains(rule), "{label}: {why}");
                assert!(error.to_string().contains(&format!("{path:?}")), "{label}: {error}");
            }
            other => panic!("{label}: refusal expected, got {:?}", other.map(contents)),
        }
    }
    // A path an extractor could cut short: `unzip` truncates one that reaches PATH_MAX
    // and still writes the file, `…/e…/.gitZ` as `…/e…/.git`. The walk stops at the
    // first folder over the limit, before the rest is read.
    let mut chain = Node::Dir(vec![(b".gitZZZZ", Node::File(b"x"))]);
    for _ in 0..19 {
        chain = Node::Dir(vec![(String::leak("d".repeat(200)).as_bytes(), chain)]);
    }
    match archive("long-path", vec![spec(), (b"top", chain)], "buildspec.yml") {
        Err(error @ ArchiveError::PathTooLong { len, .. }) => {
            assert_eq!(len, 3 + 6 * 201, "top/ and six folders: {error}");
            assert!(error.to_string().contains("top/ddd"), "names the path's start: {error}");
        }
        other => panic!("long-path: PathTooLong expected, got {:?}", other.map(contents)),
    }
}

/// Whatever stands at or on the way to the injected path, the archive holds the injected
/// file there and nothing from the tree that could replace or redirect it.
#[test]
fn the_injected_file_always_takes_its_path() {
    let check = |label: &str, entries, at: &str| {
        let entries = contents(archive(label, entries, at).expect(label));
        assert_eq!(entries.get(at), Some(&(false, INJECTED.to_vec())), "{label}: {entries:?}");
        assert!(!entries.keys().any(|n| n.starts_with(&format!("{at}/"))), "{label}: {entries:?}");
        entries
    };
    let entries = check(
        "folder-at-path",
        vec![
            (b"buildspec.yml", Node::Dir(vec![(b"inner", Node::Dir(vec![(b"x", Node::File(b"x"))]))])),
            (b"keep", Node::File(b"k")),
        ],
        "buildspec.yml",
    );
    assert!(entries.contains_key("keep"));
    check("link-at-path", vec![(b"buildspec.yml", Node::Link("/etc/passwd"))], "buildspec.yml");
    check("submodule-at-path", vec![(b"buildspec.yml", Node::Submodule)], "buildspec.yml");
    let entries = check(
        "link-on-the-way",
        vec![(b"ci", Node::Link("elsewhere")), (b"elsewhere", Node::Dir(vec![spec()]))],
        "ci/buildspec.yml",
    );
    assert!(!entries.contains_key("ci"), "{entries:?}");
    assert_eq!(entries["elsewhere/buildspec.yml"].1, b"from the PR", "other paths stay as they are");
    let entries = check("file-on-the-way", vec![(b"ci", Node::File(b"x")), spec()], "ci/buildspec.yml");
    assert!(!entries.contains_key("ci"), "{entries:?}");
    assert_eq!(entries["buildspec.yml"].1, b"from the PR", "the root file is not the one CodeBuild reads here");
    let entries = check(
        "folder-on-the-way",
        vec![(
            b"ci",
            Node::Dir(vec![
                (b"buildspec.yml", Node::Link("../../etc/passwd")),
                (b"other.yml", Node::File(b"o")),
                (b"sub", Node::Dir(vec![(b"buildspec.yml", Node::File(b"deeper"))])),
            ]),
        )],
        "ci/buildspec.yml",
    );
    assert!(entries.contains_key("ci/") && entries.contains_key("ci/other.yml"), "{entries:?}");
    assert_eq!(entries["ci/sub/buildspec.yml"].1, b"deeper", "only the exact path is replaced");
    let entries = check("absent", vec![(b"README", Node::File(b"r"))], "ci/buildspec.yml");
    assert_eq!(entries.keys().collect::<Vec<_>>(), ["README", "ci/buildspec.yml"]);
}

#[test]
fn raw_trees_parse_as_git_reads_them() {
    let id = [7u8; 20];
    let mut raw = b"100644 a\0".to_vec();
    raw.extend_from_slice(&id);
    raw.extend_from_slice(b"040000 b/c\0");
    raw.extend_from_slice(&id);
    let entries = parse_tree(&raw).expect("parsed");
    let seen: Vec<(u32, &[u8])> = entries.iter().map(|e| (e.mode, e.name)).collect();
    assert_eq!(seen, [(0o100644, &b"a"[..]), (0o040000, &b"b/c"[..])]);
    for (bad, why) in [
        (&b"100644 a\0short"[..], "cut short"),
        (b"100644 a", "not terminated"),
        (b" a\0", "empty mode"),
        (b"10064x a\0", "not octal"),
        (b"1006440000000000000 a\0", "overflows"),
        (b"100644", "no mode"),
    ] {
        let error = parse_tree(bad).expect_err("refused");
        assert!(error.contains(why), "{bad:?}: {error}");
    }
}
