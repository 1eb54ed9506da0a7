use std::io::{Cursor, Read};

use super::*;

#[test]
fn displacement_is_decided_component_by_component() {
    let options = ArchiveOptions { replacements: vec![("a/b/c.yml".into(), Vec::new())], ..Default::default() };
    let replacements = Replacements::new(&options).expect("valid");
    let displaces = |path: &str, is_dir| replacements.displaces(path.split('/'), is_dir);
    assert!(displaces("a/b/c.yml", false) && displaces("a/b/c.yml", true));
    assert!(displaces("a/b/c.yml/x", false), "inside the injected path");
    assert!(displaces("a", false) && displaces("a/b", false), "a file or link on the way");
    assert!(!displaces("a", true) && !displaces("a/b", true), "folders on the way stay");
    for other in ["a/b/c.ym", "a/b/c.yml.", "a/bb/c.yml", "ab", "a/b/c", "b"] {
        assert!(!displaces(other, false), "{other}");
    }
}

#[test]
fn injected_paths_are_checked_by_git_rules_before_anything_is_read() {
    for (path, part) in [
        ("../buildspec.yml", "component 1"),
        ("/buildspec.yml", "component 1"),
        ("a/.git/buildspec.yml", "component 2"),
        ("ci//b.yml", "component 2"),
    ] {
        let options = ArchiveOptions { replacements: vec![(path.into(), b"x".to_vec())], ..Default::default() };
        match Replacements::new(&options) {
            Err(ArchiveError::UnsafePath { path: shown, why }) => {
                assert_eq!(shown, path);
                assert!(why.contains(part), "{path}: {why}");
            }
            other => panic!("{path}: refused expected, got {other:?}"),
        }
    }
    let nested = ArchiveOptions {
        replacements: vec![("ci".into(), b"x".to_vec()), ("ci/b.yml".into(), b"y".to_vec())],
        ..Default::default()
    };
    assert!(
        matches!(Replacements::new(&nested), Err(ArchiveError::UnsafePath { why, .. }) if why.contains("another injected file"))
    );
    let injected = format!("{}/b.yml", vec!["c".repeat(200); 6].join("/"));
    let long = ArchiveOptions { replacements: vec![(injected, Vec::new())], ..Default::default() };
    assert!(matches!(Replacements::new(&long), Err(ArchiveError::PathTooLong { len: 1211, .. })));
}

/// Contents held in memory, by index.
struct InMemory(Vec<Vec<u8>>);

impl ContentReader for &InMemory {
    type Source = usize;

    fn copy(&mut self, source: &usize, _len: u64, out: &mut dyn Write) -> Result<u64, ArchiveError> {
        out.write_all(&self.0[*source])?;
        Ok(self.0[*source].len() as u64)
    }
}

/// Many small files around a large one (streamed by the writing thread), a folder, a link
/// and an injected file: the archive's bytes are the same whatever the thread count.
#[test]
fn the_bytes_do_not_depend_on_the_thread_count() {
    let mut seed = 7u64;
    let mut contents: Vec<Vec<u8>> = (0..300)
        .map(|i| {
            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (0..(seed >> 52)).map(|j| format!("line {i} {j} {}\n", seed >> (j % 40))).collect::<String>().into_bytes()
        })
        .collect();
    contents.push((0..3u32 << 20).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8).collect());
    let contents = InMemory(contents);
    let entries = || {
        let mut planned: BTreeMap<String, Planned<usize>> = (0..=300)
            .map(|i| {
                let len = contents.0[i].len() as u64;
                (format!("d/f{i:03}"), Planned::File { source: i, mode: if i % 5 == 0 { 0o755 } else { 0o644 }, len })
            })
            .collect();
        planned.insert("d/".into(), Planned::Directory { mode: 0o755 });
        planned.insert("link".into(), Planned::Symlink { target: "d/f001".into() });
        planned.insert("buildspec.yml".into(), Planned::Inline { content: b"injected".to_vec() });
        planned.into_iter().collect::<Vec<_>>()
    };
    let with = |threads, compression_level| {
        let options = ArchiveOptions { threads, compression_level, ..ArchiveOptions::default() };
        let (out, copied) =
            write_entries(Cursor::new(Vec::new()), entries(), &options, ArchiveLimits::default(), || Ok(&contents))
                .expect("archive");
        let total: u64 = contents.0.iter().map(|c| c.len() as u64).sum::<u64>() + b"injected".len() as u64;
        assert_eq!(copied, total);
        out.into_inner()
    };
    let one = with(1, DEFAULT_COMPRESSION_LEVEL);
    assert_eq!(with(2, DEFAULT_COMPRESSION_LEVEL), one);
    assert_eq!(with(5, DEFAULT_COMPRESSION_LEVEL), one);
    let mut zip = zip::ZipArchive::new(Cursor::new(one.clone())).expect("zip");
    assert_eq!(zip.len(), 301 + 3);
    let mut large = Vec::new();
    zip.by_name("d/f300").expect("large").read_to_end(&mut large).expect("read");
    assert_eq!(large, contents.0[300]);
    assert_eq!(zip.by_name("d/f005").expect("entry").unix_mode().map(|m| m & 0o777), Some(0o755));
    assert!(zip.by_name("link").expect("link").is_symlink());
    // A higher level gives a different, smaller archive of the same content.
    assert!(with(1, 9).len() < one.len());
}

/// Serves numbered contents; fails on one, or reads more than it announced.
struct Scripted {
    fail_on: u32,
    grow_on: u32,
}

impl ContentReader for Scripted {
    type Source = u32;

    fn copy(&mut self, source: &u32, _len: u64, out: &mut dyn Write) -> Result<u64, ArchiveError> {
        if *source == self.fail_on {
            return Err(ArchiveError::Read { path: format!("f{source}"), source: io::Error::other("gone") });
        }
        let len = if *source == self.grow_on { 5000 } else { 100 };
        out.write_all(&vec![b'a'; len])?;
        Ok(len as u64)
    }
}

fn scripted_entries() -> Vec<(String, Planned<u32>)> {
    (0..500).map(|i| (format!("f{i:03}"), Planned::File { source: i, mode: 0o644, len: 100 })).collect()
}

#[test]
fn a_failing_read_on_any_thread_ends_the_archive_with_its_error() {
    for threads in [1, 2, 4] {
        let options = ArchiveOptions { threads, ..ArchiveOptions::default() };
        let result =
            write_entries(Cursor::new(Vec::new()), scripted_entries(), &options, ArchiveLimits::default(), || {
                Ok(Scripted { fail_on: 321, grow_on: u32::MAX })
            });
        assert!(matches!(&result, Err(ArchiveError::Read { path, .. }) if path == "f321"), "{threads}");
        let grown = write_entries(
            Cursor::new(Vec::new()),
            scripted_entries(),
            &options,
            ArchiveLimits { max_entries: 1000, max_bytes: 50_000 },
            || Ok(Scripted { fail_on: u32::MAX, grow_on: 7 }),
        );
        assert!(matches!(grown, Err(ArchiveError::TooLarge { limit: 50_000 })), "{threads}");
        let refused = write_entries(
            Cursor::new(Vec::new()),
            scripted_entries(),
            &options,
            ArchiveLimits::default(),
            || -> Result<Scripted, ArchiveError> { Err(ArchiveError::Io(io::Error::other("no reader"))) },
        );
        assert!(refused.is_err(), "{threads}");
    }
}
