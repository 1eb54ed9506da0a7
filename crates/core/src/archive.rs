//! The source archive CodePipeline's S3 source action reads: a zip of a checked-out tree.
//!
//! - Deterministic: entries sorted by path, fixed timestamps, so the same tree gives the
//!   same bytes (and the same object ETag).
//! - Unix modes kept: executables stay executable after CodeBuild unzips.
//! - Symlinks stored as symlinks, never followed: a link to `/etc/passwd` or `../..` puts
//!   the link text, not outside content, into the zip.
//! - Streamed: memory holds the path list and a bounded window of small files being
//!   compressed on all cores ([`write_entries`]); a large file goes through the compressor
//!   in pieces. The writer is any `Write + Seek` (a temp file in `/tmp`), ZIP64 as needed.
//! - Every name is checked by git's own rules ([`crate::gitpath`]), one path component at a
//!   time: a tree holding a name git refuses to check out (`..`, `a/b` in one name, `.git` or
//!   a look-alike, ...) is refused, with the path, rather than archived. Other dot-files
//!   (`.gitignore`, `.github/`) are kept.
//! - Replacement files (the injected buildspec) are written at exactly their path, and
//!   nothing from the tree can stand in their way ([`Replacements`]).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Cursor, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, mpsc};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

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
    /// submodules), which CodeBuild cannot use, and a checked-out folder's own `.git`.
    pub skipped_special: u64,
    pub bytes: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("the tree has more than {limit} entries")]
    TooManyEntries { limit: u64 },
    #[error(
        "a path of {len} bytes is longer than {MAX_PATH_BYTES} bytes, too long to unpack safely below CodeBuild's folder: {start}…"
    )]
    PathTooLong { start: String, len: usize },
    #[error("the link `{path}` has a target longer than {MAX_LINK_TARGET_BYTES} bytes, which no system can create")]
    LinkTooLong { path: String },
    #[error("the tree holds more than {limit} bytes of files")]
    TooLarge { limit: u64 },
    #[error("a file name is not UTF-8 (zip names must be): {lossy:?}")]
    NonUtf8Name { lossy: String },
    /// A name git itself refuses (see [`crate::gitpath`]), or a tree git cannot read. `path`
    /// is the entry's path (lossy UTF-8, its folders' names joined by `/`).
    #[error("the tree entry {path:?} is refused: {why}")]
    UnsafePath { path: String, why: String },
    #[error("reading {path}: {source}")]
    Read { path: String, source: io::Error },
    #[error("writing the archive: {0}")]
    Write(#[from] zip::result::ZipError),
    #[error("writing the archive: {0}")]
    Io(#[from] io::Error),
}

/// Longest path in an archive, well below Linux's `PATH_MAX` (4096 bytes, the folder it is
/// unpacked in included). Info-ZIP `unzip` cuts a path that reaches `PATH_MAX` with a
/// warning and still writes the file (unix/unix.c `checkdir`, `APPEND_NAME`): a 4096-byte
/// entry `d…/…/e…/.gitZZZ` unpacks as a file `.git`, or as a path that is no entry of the
/// archive. With 1024 bytes, the destination folder may be about 3000 bytes deep before that
/// can happen; CodeBuild's (`/codebuild/output/src…/src`) is under 100.
pub const MAX_PATH_BYTES: usize = 1024;

/// Longest link target: Linux's `PATH_MAX`, the longest `symlink` accepts.
pub const MAX_LINK_TARGET_BYTES: usize = 4096;

/// The injected files' paths, component by component, and what they displace.
///
/// An injected file is written at exactly its path, and nothing from the tree may stand in
/// its way: the tree's entry at that path (file, link, submodule, or folder with all it
/// holds) is left out, and so is an entry on the way to it that is not a folder (a link
/// named `ci` would make `ci/buildspec.yml` land wherever the link points; a file named `ci`
/// would make the extractor fail or replace it). What is left of the tree can neither
/// replace nor redirect the injected file, whatever extractor unpacks the archive.
#[derive(Debug)]
pub struct Replacements<'a> {
    paths: Vec<Vec<&'a str>>,
}

impl<'a> Replacements<'a> {
    /// Checks the paths (each component by git's rules, none inside another).
    pub fn new(options: &'a ArchiveOptions) -> Result<Self, ArchiveError> {
        let mut paths: Vec<Vec<&str>> = Vec::new();
        for (path, _) in &options.replacements {
            crate::gitpath::check_path(path, false).map_err(|refused| ArchiveError::UnsafePath {
                path: path.clone(),
                why: format!("the injected file's path, component {}: {}", refused.component + 1, refused.why),
            })?;
            check_path_length(path)?;
            let components: Vec<&str> = path.split('/').collect();
            if let Some(other) = paths.iter().find(|p| p.starts_with(&components) || components.starts_with(p)) {
                return Err(ArchiveError::UnsafePath {
                    path: path.clone(),
                    why: format!("another injected file, `{}`, is at or inside this path", other.join("/")),
                });
            }
            paths.push(components);
        }
        Ok(Replacements { paths })
    }

    /// Whether the tree's entry at `path` (its components, each already checked by
    /// [`crate::gitpath::check_name`]) gives way to an injected file: it is at (or inside)
    /// an injected file's path, or on the way to one and not a folder.
    pub fn displaces<'p>(&self, path: impl Iterator<Item = &'p str> + Clone, is_dir: bool) -> bool {
        self.paths.iter().any(|injected| {
            let mut components = path.clone();
            for wanted in injected {
                match components.next() {
                    Some(component) if component == *wanted => {}
                    Some(_) => return false,
                    // A strict ancestor of the injected file: only a folder may stay.
                    None => return !is_dir,
                }
            }
            true
        })
    }
}

/// Refuses a path longer than [`MAX_PATH_BYTES`], which an extractor could cut short. Each
/// of its names is at most 255 bytes already ([`crate::gitpath::check_name`]).
pub fn check_path_length(path: &str) -> Result<(), ArchiveError> {
    if path.len() <= MAX_PATH_BYTES {
        return Ok(());
    }
    let start: String = path.chars().take(60).collect();
    Err(ArchiveError::PathTooLong { start, len: path.len() })
}

/// One archive entry, before its content is read. `S` names a file's content for a
/// [`ContentReader`] (a path on disk, a git blob id).
#[derive(Debug)]
pub enum Planned<S> {
    Directory {
        mode: u32,
    },
    Symlink {
        target: String,
    },
    File {
        source: S,
        mode: u32,
        len: u64,
    },
    /// Content the caller supplies (the injected buildspec). Mode 0644.
    Inline {
        content: Vec<u8>,
    },
}

/// Reads file content for [`write_entries`]. Each compressing thread opens its own (a
/// libgit2 repository handle cannot be shared between threads).
pub trait ContentReader {
    type Source;
    /// Copies the content named by `source` into `out`; returns the bytes copied. `len` is
    /// the size the walk found (the content may differ if it changed since).
    fn copy(&mut self, source: &Self::Source, len: u64, out: &mut dyn Write) -> Result<u64, ArchiveError>;
}

/// Level 6 (zlib's default) spends twice level 4's deflate time on source text for an
/// archive 2 % smaller; the archive is read once, by CodeBuild, in the bucket's region
/// (README, benchmarks).
pub const DEFAULT_COMPRESSION_LEVEL: u8 = 4;

/// Options beyond the limits.
#[derive(Debug, Clone)]
pub struct ArchiveOptions {
    /// `(path in the zip, content)`: written at exactly that path, mode 0644, in place of
    /// whatever the tree has there (see [`Replacements`]). The paths follow git's rules
    /// ([`crate::gitpath::check_path`]).
    pub replacements: Vec<(String, Vec<u8>)>,
    /// Deflate level, 1 (fastest) to 9 (smallest).
    pub compression_level: u8,
    /// Threads compressing files at once (at least 1). The archive's bytes do not depend
    /// on it.
    pub threads: usize,
}

impl Default for ArchiveOptions {
    fn default() -> Self {
        ArchiveOptions {
            replacements: Vec::new(),
            compression_level: DEFAULT_COMPRESSION_LEVEL,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get().min(8)),
        }
    }
}

/// Files larger than this are written by the writing thread on its own, through the
/// compressor as their reader gives them (in pieces: bridge-git streams them out of the
/// pack); everything else is zipped in batches on the compressing threads.
const PARALLEL_MAX_FILE: u64 = 1 << 20;
/// A batch: consecutive entries of at most this many content bytes (or one file)...
const BATCH_BYTES: u64 = 1 << 20;
/// ...and at most this many entries.
const BATCH_ENTRIES: usize = 512;
/// Most content bytes in batches handed out and not yet written: with the two above, what
/// bounds the writer's memory whatever the tree's size.
const PARALLEL_WINDOW: u64 = 8 << 20;

/// What the writing thread does next, in archive order. Planned from the entries alone, so
/// the archive's bytes do not depend on the thread count.
enum Step {
    /// Entries zipped together on a compressing thread into a small in-memory zip (one
    /// compressor for the whole batch, not one per file), then merged in as they are.
    Batch { entries: std::ops::Range<usize>, bytes: u64 },
    /// A large file, streamed by the writing thread.
    Stream(usize),
}

fn plan<S>(entries: &[(String, Planned<S>)]) -> Vec<Step> {
    let mut steps = Vec::new();
    let (mut start, mut bytes) = (0, 0u64);
    for (index, (_, entry)) in entries.iter().enumerate() {
        let len = match entry {
            Planned::File { len, .. } => *len,
            Planned::Inline { content } => content.len() as u64,
            Planned::Directory { .. } | Planned::Symlink { .. } => 0,
        };
        let stream = matches!(entry, Planned::File { .. }) && len > PARALLEL_MAX_FILE;
        let full = index > start && (bytes + len > BATCH_BYTES || index - start >= BATCH_ENTRIES);
        if (stream || full) && index > start {
            steps.push(Step::Batch { entries: start..index, bytes });
            (start, bytes) = (index, 0);
        }
        if stream {
            steps.push(Step::Stream(index));
            start = index + 1;
        } else {
            bytes += len;
        }
    }
    if start < entries.len() {
        steps.push(Step::Batch { entries: start..entries.len(), bytes });
    }
    steps
}

/// Writes one entry through `zip`'s compressor; returns the content bytes copied.
fn write_entry<W: Write + Seek, R: ContentReader>(
    zip: &mut ZipWriter<W>,
    reader: &mut R,
    (name, entry): &(String, Planned<R::Source>),
    base: SimpleFileOptions,
) -> Result<u64, ArchiveError> {
    Ok(match entry {
        Planned::Directory { mode } => {
            zip.add_directory(name, base.unix_permissions(*mode))?;
            0
        }
        Planned::Symlink { target } => {
            zip.add_symlink(name, target, base.unix_permissions(0o777))?;
            0
        }
        Planned::Inline { content } => {
            zip.start_file(name, base.unix_permissions(0o644))?;
            zip.write_all(content)?;
            content.len() as u64
        }
        Planned::File { source, mode, len } => {
            // ZIP64 headers only where needed, so small trees stay byte-identical to what
            // plain zip tools read everywhere.
            zip.start_file(name, base.unix_permissions(*mode).large_file(*len >= u64::from(u32::MAX)))?;
            reader.copy(source, *len, zip)?
        }
    })
}

/// Zips a batch of entries into memory; returns the zip and the content bytes copied.
fn zip_batch<R: ContentReader>(
    reader: &mut R,
    batch: &[(String, Planned<R::Source>)],
    bytes: u64,
    base: SimpleFileOptions,
) -> Result<(Vec<u8>, u64), ArchiveError> {
    let capacity = usize::try_from(bytes / 2).unwrap_or(usize::MAX).min(BATCH_BYTES as usize) + 4096;
    let mut zip = ZipWriter::new(Cursor::new(Vec::with_capacity(capacity)));
    let mut copied = 0;
    for entry in batch {
        copied += write_entry(&mut zip, reader, entry, base)?;
    }
    Ok((zip.finish()?.into_inner(), copied))
}

/// Writes `entries` (sorted by name) as a zip into `out` the bridge's way: deflate, fixed
/// timestamps, unix modes, links as links, ZIP64 only for entries that need it. Batches of
/// small entries are zipped on `options.threads` threads, each with a reader from
/// `open_reader`; the bytes are the same for any thread count. Returns the writer and the
/// content bytes copied.
pub fn write_entries<W, R, F>(
    out: W,
    entries: Vec<(String, Planned<R::Source>)>,
    options: &ArchiveOptions,
    limits: ArchiveLimits,
    open_reader: F,
) -> Result<(W, u64), ArchiveError>
where
    W: Write + Seek,
    R: ContentReader,
    R::Source: Sync,
    F: Fn() -> Result<R, ArchiveError> + Sync,
{
    let base = SimpleFileOptions::default()
        .compression_method(CompressionMethod::Deflated)
        .compression_level(Some(i64::from(options.compression_level.clamp(1, 9))))
        .last_modified_time(DateTime::default())
        .large_file(false);
    let steps = plan(&entries);
    // With one thread the writing thread zips the batches too; otherwise it only writes
    // (a copy, cheap next to deflate) and `threads` others zip.
    let workers = if options.threads > 1 { options.threads } else { 0 };
    let (jobs, job_queue) = mpsc::channel::<usize>();
    let job_queue = Mutex::new(job_queue);
    let (results, done) = mpsc::channel::<(usize, Result<(Vec<u8>, u64), ArchiveError>)>();
    let (entries, steps, job_queue, open_reader) = (&entries, &steps, &job_queue, &open_reader);
    let stopped = || ArchiveError::Io(io::Error::other("the compressing threads stopped"));
    std::thread::scope(|scope| {
        for _ in 0..workers {
            let results = results.clone();
            scope.spawn(move || {
                let mut reader = open_reader();
                loop {
                    let next = job_queue.lock().map(|queue| queue.recv());
                    let Ok(Ok(step)) = next else { break };
                    let Step::Batch { entries: range, bytes } = &steps[step] else { break };
                    let zipped = match &mut reader {
                        Ok(reader) => zip_batch(reader, &entries[range.clone()], *bytes, base),
                        Err(e) => Err(ArchiveError::Io(io::Error::other(e.to_string()))),
                    };
                    if results.send((step, zipped)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(results);
        // `jobs` moves in, so an early return closes the queue and the workers stop.
        let write = move || -> Result<(W, u64), ArchiveError> {
            let mut reader = open_reader()?;
            let mut zip = ZipWriter::new(out);
            let mut copied = 0u64;
            let (mut next_job, mut in_flight, mut ready) = (0usize, 0u64, BTreeMap::new());
            for (index, step) in steps.iter().enumerate() {
                // Keep the compressing threads busy up to the window, in order.
                while workers > 0 && next_job < steps.len() {
                    if let Step::Batch { bytes, .. } = &steps[next_job] {
                        if in_flight + bytes > PARALLEL_WINDOW && in_flight > 0 {
                            break;
                        }
                        in_flight += bytes;
                        jobs.send(next_job).map_err(|_| stopped())?;
                    }
                    next_job += 1;
                }
                match step {
                    Step::Stream(entry) => copied += write_entry(&mut zip, &mut reader, &entries[*entry], base)?,
                    Step::Batch { entries: range, bytes } => {
                        let (batch, batch_copied) = if workers == 0 {
                            zip_batch(&mut reader, &entries[range.clone()], *bytes, base)?
                        } else {
                            in_flight -= bytes;
                            loop {
                                if let Some(zipped) = ready.remove(&index) {
                                    break zipped;
                                }
                                let (step, zipped) = done.recv().map_err(|_| stopped())?;
                                ready.insert(step, zipped?);
                            }
                        };
                        zip.merge_archive(ZipArchive::new(Cursor::new(batch))?)?;
                        copied += batch_copied;
                    }
                }
                // A file that grew while being read counts with its real size.
                if copied > limits.max_bytes {
                    return Err(ArchiveError::TooLarge { limit: limits.max_bytes });
                }
            }
            Ok((zip.finish()?, copied))
        };
        write()
    })
}

/// Reads files of a folder.
struct FolderReader;

impl ContentReader for FolderReader {
    type Source = PathBuf;

    fn copy(&mut self, source: &PathBuf, _len: u64, out: &mut dyn Write) -> Result<u64, ArchiveError> {
        let mut file = File::open(source).map_err(|e| read_error(source, e))?;
        io::copy(&mut file, out).map_err(|e| read_error(source, e))
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
    let (_, copied) = write_entries(out, entries.into_iter().collect(), options, limits, || Ok(FolderReader))?;
    stats.bytes = copied;
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
/// without following links; returns entries sorted by zip name. Names follow the same rules
/// as a git tree's ([`crate::gitpath`]): the folder is normally a checkout, where git wrote
/// none that it refuses; its own top `.git` (the repository, not content) is left out.
fn collect(
    root: &Path,
    options: &ArchiveOptions,
    limits: ArchiveLimits,
) -> Result<(BTreeMap<String, Planned<PathBuf>>, ArchiveStats), ArchiveError> {
    let mut entries = BTreeMap::new();
    let mut stats = ArchiveStats::default();
    let replacements = Replacements::new(options)?;
    let mut pending = vec![PathBuf::new()];
    while let Some(relative) = pending.pop() {
        let dir = root.join(&relative);
        let listing = fs::read_dir(&dir).map_err(|e| read_error(&dir, e))?;
        for item in listing {
            let item = item.map_err(|e| read_error(&dir, e))?;
            let file_name = item.file_name();
            let rel = relative.join(&file_name);
            if relative.as_os_str().is_empty() && file_name.as_bytes() == b".git" {
                stats.skipped_special += 1;
                continue;
            }
            // `symlink_metadata` is lstat: a link is seen as a link, never as its target.
            let meta = fs::symlink_metadata(item.path()).map_err(|e| read_error(&item.path(), e))?;
            let kind = meta.file_type();
            let refused = |why: crate::gitpath::Refusal| ArchiveError::UnsafePath {
                path: rel.to_string_lossy().into_owned(),
                why: why.to_string(),
            };
            crate::gitpath::check_name(file_name.as_bytes(), kind.is_symlink()).map_err(refused)?;
            // A `.gitmodules` folder also covers verify_path's rule against links below one.
            if kind.is_dir() && crate::gitpath::is_gitmodules(file_name.as_bytes()) {
                return Err(refused(crate::gitpath::Refusal::GitmodulesNotAFile));
            }
            // Every component was checked as it was walked: UTF-8, no `/` inside one.
            let name = utf8(&rel)?;
            check_path_length(&name)?;
            if replacements.displaces(name.split('/'), kind.is_dir()) {
                continue;
            }
            let entry = if kind.is_symlink() {
                let target = fs::read_link(item.path()).map_err(|e| read_error(&item.path(), e))?;
                stats.symlinks += 1;
                Planned::Symlink { target: utf8(&target)? }
            } else if kind.is_dir() {
                pending.push(rel.clone());
                stats.directories += 1;
                Planned::Directory { mode: meta.permissions().mode() & 0o7777 }
            } else if kind.is_file() {
                stats.files += 1;
                stats.bytes += meta.size();
                if stats.bytes > limits.max_bytes {
                    return Err(ArchiveError::TooLarge { limit: limits.max_bytes });
                }
                Planned::File { source: item.path(), mode: meta.permissions().mode() & 0o7777, len: meta.size() }
            } else {
                stats.skipped_special += 1;
                continue;
            };
            let key = if matches!(entry, Planned::Directory { .. }) { format!("{name}/") } else { name };
            entries.insert(key, entry);
            if entries.len() as u64 > limits.max_entries {
                return Err(ArchiveError::TooManyEntries { limit: limits.max_entries });
            }
        }
    }
    add_replacements(&mut entries, &mut stats, options);
    Ok((entries, stats))
}

/// Adds the injected files, once the walk has left their places free.
pub fn add_replacements<S>(
    entries: &mut BTreeMap<String, Planned<S>>,
    stats: &mut ArchiveStats,
    options: &ArchiveOptions,
) {
    for (path, content) in &options.replacements {
        stats.files += 1;
        stats.bytes += content.len() as u64;
        entries.insert(path.clone(), Planned::Inline { content: content.clone() });
    }
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
        fs::remove_dir_all(root).expect("cleanup");
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
            let root = temp_tree("dotgit");
            fs::create_dir_all(root.join(".git/objects")).expect("the checkout's repository");
            fs::create_dir_all(root.join(made)).expect("look-alike");
            let (path, why) = refusal(&root, &ArchiveOptions::default());
            assert_eq!(path, shown);
            assert!(why.contains("hasDotgit"), "{why}");
            fs::remove_dir_all(root).expect("cleanup");
        }
        let root = temp_tree("backslash");
        fs::write(root.join("a\\..\\x"), "x").expect("file");
        let (path, why) = refusal(&root, &ArchiveOptions::default());
        assert_eq!((path.as_str(), why.contains("separator")), ("a\\..\\x", true));
        fs::remove_dir_all(root).expect("cleanup");
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
            let root = temp_tree("replace");
            layout(&root);
            let options = ArchiveOptions { replacements: vec![(path.into(), injected.clone())], ..Default::default() };
            let entries = names_and_contents(zip_of(&root, &options));
            fs::remove_dir_all(root).expect("cleanup");
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
        let root = temp_tree("bad-injected");
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
        fs::remove_dir_all(root).expect("cleanup");
    }

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

    /// A folder is walked with the same limits as a git tree: no name that `unzip` rewrites,
    /// no path an extractor could cut short (a name over 255 bytes cannot be made on Linux, so
    /// only the git walker meets one).
    #[test]
    fn names_unzip_rewrites_and_long_paths_in_a_folder_are_refused() {
        for (made, why) in
            [("buildspec.yml;1", "VMS version"), ("ci/buildspec.yml;7", "VMS version"), ("x/.git;", "VMS version")]
        {
            let root = temp_tree("vms");
            let path = root.join(made);
            fs::create_dir_all(path.parent().expect("parent")).expect("dirs");
            fs::write(&path, "pr").expect("file");
            let options = ArchiveOptions {
                replacements: vec![("buildspec.yml".into(), b"injected".to_vec())],
                ..Default::default()
            };
            let (shown, reason) = refusal(&root, &options);
            assert_eq!((shown.as_str(), reason.contains(why)), (made, true), "{reason}");
            fs::remove_dir_all(root).expect("cleanup");
        }
        let root = temp_tree("long-path");
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
        fs::remove_dir_all(root).expect("cleanup");
        // An injected path over the limit is refused before anything is walked.
        let injected = format!("{}/b.yml", vec!["c".repeat(200); 6].join("/"));
        let options = ArchiveOptions { replacements: vec![(injected, Vec::new())], ..Default::default() };
        assert!(matches!(Replacements::new(&options), Err(ArchiveError::PathTooLong { len: 1211, .. })));
    }

    /// The walk is a loop, not recursion; it ends at the first path over [`MAX_PATH_BYTES`],
    /// 513 folders down a chain of one-letter names.
    #[test]
    fn deep_trees_end_at_the_path_limit() {
        let tree_of = |depth: usize| {
            let root = temp_tree(&format!("deep-{depth}"));
            let chain: PathBuf = std::iter::repeat_n("d", depth).collect();
            fs::create_dir_all(root.join(chain)).expect("deep dirs");
            let result =
                write_tree(&root, Cursor::new(Vec::new()), &ArchiveOptions::default(), ArchiveLimits::default());
            fs::remove_dir_all(root).expect("cleanup");
            result
        };
        // `d/d/…/d`, 512 names: 1023 bytes.
        assert_eq!(tree_of(512).expect("within the limit").directories, 512);
        assert!(matches!(tree_of(1500), Err(ArchiveError::PathTooLong { len: 1025, .. })));
    }

    /// A tree of many small files around one large one, so both the threaded and the
    /// streamed paths write entries.
    fn mixed_tree(name: &str) -> PathBuf {
        let root = temp_tree(name);
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
        root
    }

    #[test]
    fn the_bytes_do_not_depend_on_the_thread_count() {
        let root = mixed_tree("threads");
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
        fs::remove_dir_all(root).expect("cleanup");
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
}
