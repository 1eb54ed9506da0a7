//! The source archive CodePipeline's S3 source action reads: a zip of a checked-out tree.
//!
//! - Deterministic: entries sorted by path, fixed timestamps, so the same tree gives the
//!   same bytes (and the same object ETag).
//! - Unix modes kept: executables stay executable after CodeBuild unzips.
//! - Symlinks stored as symlinks, never followed: a link to `/etc/passwd` or `../..` puts
//!   the link text, not outside content, into the zip.
//! - Streamed: files are copied through the compressor; memory holds one path list, never a
//!   whole file. The writer is any `Write + Seek` (a temp file in `/tmp`), ZIP64 as needed.
//! - Every `.git` entry (any case, any depth) is left out, but the top one when asked for;
//!   other dot-files (`.gitignore`, `.github/`) are kept. Replacement files (the injected buildspec) take the place of, or
//!   are added beside, what the tree has at their path.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipWriter};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveLimits {
    /// Most entries (files, links, directories).
    pub max_entries: u64,
    /// Most bytes of file content, before compression.
    pub max_bytes: u64,
}

impl Default for ArchiveLimits {
    fn default() -> Self {
        ArchiveLimits { max_entries: 200_000, max_bytes: 4 * 1024 * 1024 * 1024 }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveStats {
    pub files: u64,
    pub symlinks: u64,
    pub directories: u64,
    /// Entries left out: neither file, link nor directory (FIFOs, sockets, devices, git
    /// submodules), which CodeBuild cannot use, and `.git` entries ([`leaves_out`]).
    pub skipped_special: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the tree has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error("a path is longer than {MAX_PATH_BYTES} bytes and could not be unpacked: {start}…")]
    PathTooLong { start: String },
    #[error("the tree holds more than {limit} bytes of files")]
    TooLarge { limit: u64 },
    #[error("a file name is not UTF-8 (zip names must be): {lossy:?}")]
    NonUtf8Name { lossy: String },
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("writing the archive: {0}")]
    Write(#[from] zip::result::ZipError),
    #[error("writing the archive: {0}")]
    Io(#[from] io::Error),
}

/// Longest path in an archive: Linux's `PATH_MAX`. CodeBuild unpacks on Linux, where a
/// longer one cannot be created.
pub const MAX_PATH_BYTES: usize = 4096;

/// Whether an entry named `name` is left out of the archive. A `.git` anywhere (any case)
/// would be a repository, with its own config and hooks, wherever the build unpacks it; git
/// itself refuses to check such paths out. Only the top one (`at_top`) is kept, and only
/// when the project asks for it.
pub fn leaves_out(name: &str, at_top: bool, include_git: bool) -> bool {
    name.eq_ignore_ascii_case(".git") && !(at_top && include_git)
}

/// Refuses a path the build's machine could not create.
pub fn check_path_length(path: &str) -> Result<(), ArchiveError> {
    if path.len() <= MAX_PATH_BYTES {
        return Ok(());
    }
    let start: String = path.chars().take(60).collect();
    Err(ArchiveError::PathTooLong { start })
}

#[derive(Debug)]
enum Entry {
    Directory { mode: u32 },
    File { source: PathBuf, mode: u32, len: u64 },
    Symlink { target: String },
    Replacement { content: Vec<u8> },
}

/// Options beyond the limits.
#[derive(Debug, Clone, Default)]
pub struct ArchiveOptions {
    pub include_git: bool,
    /// `(path in the zip, content)`: written instead of the tree's file at that path, or
    /// added. Mode 0644.
    pub replacements: Vec<(String, Vec<u8>)>,
}

/// Writes zip entries the bridge's way: deflate, fixed timestamps, unix modes, links as
/// links, ZIP64 only for entries that need it. The caller adds entries in sorted order.
pub struct ArchiveWriter<W: Write + Seek> {
    zip: ZipWriter<W>,
    base: SimpleFileOptions,
}

impl<W: Write + Seek> std::fmt::Debug for ArchiveWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArchiveWriter")
    }
}

impl<W: Write + Seek> ArchiveWriter<W> {
    pub fn new(out: W) -> Self {
        let base = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .last_modified_time(DateTime::default())
            .large_file(false);
        ArchiveWriter { zip: ZipWriter::new(out), base }
    }

    /// `name` ends with `/`.
    pub fn directory(&mut self, name: &str, mode: u32) -> Result<(), ArchiveError> {
        Ok(self.zip.add_directory(name, self.base.unix_permissions(mode))?)
    }

    pub fn symlink(&mut self, name: &str, target: &str) -> Result<(), ArchiveError> {
        Ok(self.zip.add_symlink(name, target, self.base.unix_permissions(0o777))?)
    }

    /// Copies `content` (of about `len` bytes) into a new entry; returns the bytes copied.
    pub fn file(&mut self, name: &str, mode: u32, len: u64, content: &mut impl io::Read) -> Result<u64, ArchiveError> {
        // ZIP64 headers only where needed, so small trees stay byte-identical to what plain
        // zip tools read everywhere.
        self.zip.start_file(name, self.base.unix_permissions(mode).large_file(len >= u32::MAX as u64))?;
        io::copy(content, &mut self.zip).map_err(ArchiveError::Io)
    }

    pub fn finish(self) -> Result<W, ArchiveError> {
        Ok(self.zip.finish()?)
    }
}

/// Zips the tree under `root` into `out`.
pub fn write_tree<W: Write + Seek>(
    root: &Path,
    out: W,
    options: &ArchiveOptions,
    limits: ArchiveLimits,
) -> Result<ArchiveStats, ArchiveError> {
    let (entries, mut stats) = collect(root, options, limits)?;
    let mut zip = ArchiveWriter::new(out);
    for (name, entry) in entries {
        match entry {
            Entry::Directory { mode } => zip.directory(&name, mode)?,
            Entry::Symlink { target } => zip.symlink(&name, &target)?,
            Entry::Replacement { content } => {
                zip.file(&name, 0o644, content.len() as u64, &mut content.as_slice())?;
            }
            Entry::File { source, mode, len } => {
                let mut file = File::open(&source).map_err(|e| read_error(&source, e))?;
                let copied = zip.file(&name, mode, len, &mut file).map_err(|e| match e {
                    ArchiveError::Io(e) => read_error(&source, e),
                    other => other,
                })?;
                // A file that grew while being read counts with its real size.
                stats.bytes = stats.bytes - len + copied;
                if stats.bytes > limits.max_bytes {
                    return Err(ArchiveError::TooLarge { limit: limits.max_bytes });
                }
            }
        }
    }
    zip.finish()?;
    Ok(stats)
}

fn read_error(path: &Path, source: io::Error) -> ArchiveError {
    ArchiveError::Read { path: path.display().to_string(), source }
}

fn utf8(path: &Path) -> Result<String, ArchiveError> {
    path.to_str()
        .map(str::to_owned)
        .ok_or_else(|| ArchiveError::NonUtf8Name { lossy: path.to_string_lossy().into_owned() })
}

/// Walks the tree without recursion (a 10,000-level tree must not overflow the stack) and
/// without following links; returns entries sorted by zip name.
fn collect(
    root: &Path,
    options: &ArchiveOptions,
    limits: ArchiveLimits,
) -> Result<(BTreeMap<String, Entry>, ArchiveStats), ArchiveError> {
    let mut entries = BTreeMap::new();
    let mut stats = ArchiveStats::default();
    let replaced: BTreeMap<&str, &Vec<u8>> = options.replacements.iter().map(|(p, c)| (p.as_str(), c)).collect();
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let listing = fs::read_dir(&dir).map_err(|e| read_error(&dir, e))?;
        for item in listing {
            let item = item.map_err(|e| read_error(&dir, e))?;
            let rel = relative.join(item.file_name());
            let name = utf8(&rel)?;
            check_path_length(&name)?;
            if leaves_out(&item.file_name().to_string_lossy(), relative.as_os_str().is_empty(), options.include_git) {
                stats.skipped_special += 1;
                continue;
            }
            if replaced.contains_key(name.as_str()) {
                continue;
            }
            // `symlink_metadata` is lstat: a link is seen as a link, never as its target.
            let meta = fs::symlink_metadata(item.path()).map_err(|e| read_error(&item.path(), e))?;
            let kind = meta.file_type();
            let entry = if kind.is_symlink() {
                let target = fs::read_link(item.path()).map_err(|e| read_error(&item.path(), e))?;
                stats.symlinks += 1;
                Entry::Symlink { target: utf8(&target)? }
            } else if kind.is_dir() {
                pending.push(rel.clone());
                stats.directories += 1;
                Entry::Directory { mode: meta.permissions().mode() & 0o7777 }
            } else if kind.is_file() {
                stats.files += 1;
                stats.bytes += meta.size();
                if stats.bytes > limits.max_bytes {
                    return Err(ArchiveError::TooLarge { limit: limits.max_bytes });
                }
                Entry::File { source: item.path(), mode: meta.permissions().mode() & 0o7777, len: meta.size() }
            } else {
                stats.skipped_special += 1;
                continue;
            };
            let key = if matches!(entry, Entry::Directory { .. }) { format!("{name}/") } else { name };
            entries.insert(key, entry);
            if entries.len() as u64 > limits.max_entries {
                return Err(ArchiveError::TooManyEntries { limit: limits.max_entries });
            }
        }
    }
    for (path, content) in &options.replacements {
        stats.files += 1;
        stats.bytes += content.len() as u64;
        entries.insert(path.clone(), Entry::Replacement { content: content.clone() });
    }
    Ok((entries, stats))
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Read};
    use std::os::unix::fs::symlink;

    use super::*;

    fn temp_tree(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("pcb-archive-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    fn zip_of(root: &Path, options: &ArchiveOptions) -> Vec<u8> {
        let mut out = Cursor::new(Vec::new());
        write_tree(root, &mut out, options, ArchiveLimits::default()).expect("archive");
        out.into_inner()
    }

    #[test]
    fn keeps_modes_links_and_dot_files_but_not_git() {
        let root = temp_tree("modes");
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
            ArchiveOptions { include_git: false, replacements: vec![("buildspec.yml".into(), b"injected".to_vec())] };
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
        let with_git = zip_of(&root, &ArchiveOptions { include_git: true, ..options });
        assert!(
            zip::ZipArchive::new(Cursor::new(with_git))
                .expect("zip")
                .file_names()
                .any(|n| n.expect("name") == ".git/config")
        );
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn limits_end_in_clear_errors() {
        let root = temp_tree("limits");
        for i in 0..5 {
            fs::write(root.join(format!("f{i}")), vec![b'x'; 100]).expect("file");
        }
        let tight = |max_entries, max_bytes| {
            write_tree(
                &root,
                Cursor::new(Vec::new()),
                &ArchiveOptions::default(),
                ArchiveLimits { max_entries, max_bytes },
            )
        };
        assert!(matches!(tight(4, 1 << 20), Err(ArchiveError::TooManyEntries { limit: 4 })));
        assert!(matches!(tight(100, 499), Err(ArchiveError::TooLarge { limit: 499 })));
        assert_eq!(tight(5, 500).expect("fits").bytes, 500);
        fs::remove_dir_all(root).expect("cleanup");
    }

    #[test]
    fn deep_trees_do_not_overflow_the_stack() {
        let root = temp_tree("deep");
        let mut dir = root.clone();
        // Deep enough to overflow a recursive walk's stack in a debug build; shallow enough
        // for PATH_MAX via relative creation.
        for _ in 0..1500 {
            dir.push("d");
        }
        fs::create_dir_all(&dir).expect("deep dirs");
        let stats = write_tree(&root, Cursor::new(Vec::new()), &ArchiveOptions::default(), ArchiveLimits::default())
            .expect("archive");
        assert_eq!(stats.directories, 1500);
        fs::remove_dir_all(root).expect("cleanup");
    }
}
