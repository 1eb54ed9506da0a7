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
//! This module holds the archive's invariants and what its parts share; `generate` the
//! tree generators, `refusals` the tests that trees are refused or archived safely (and
//! names refused wherever git refuses them), `extract` the extractors and their test.
//!
//! `cargo test -p e2e-tests --test e2e hostile -- --nocapture` prints the tables.

mod extract;
mod generate;
mod refusals;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};
use std::path::Path;

use bridge_core::archive::{ArchiveError, ArchiveLimits, ArchiveOptions};

pub(crate) use extract::{extract_and_check, extractors};

const INJECTED: &[u8] = b"version: 0.2\n# injected by the bridge\nphases:\n  build:\n    commands: [make]\n";

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
