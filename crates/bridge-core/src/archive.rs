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
//!
//! This module plans and writes; it reads nothing itself. The adapters walk a tree and hand
//! [`write_entries`] its entries with a [`ContentReader`]: `bridge-git` a commit's tree out
//! of the object database, `bridge-local` a folder on disk (`folder::write_tree`).

use std::collections::BTreeMap;
use std::io::{self, Cursor, Seek, Write};
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
mod tests;
