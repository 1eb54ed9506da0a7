//! The source archive of a fetched commit, zipped straight from the object database: no
//! checkout written to disk and read back.

use std::path::Path;

use bridge_core::archive::{
    ArchiveError, ArchiveLimits, ArchiveOptions, ArchiveStats, ContentReader, Planned, Replacements, add_replacements,
    check_path_length, write_entries,
};
use bridge_core::gitpath::{Refusal, check_name, is_gitmodules};
use git2::{ObjectType, Oid, Repository};

use crate::pack;

fn odb_error(e: git2::Error) -> ArchiveError {
    ArchiveError::Read { path: "the fetched repository".into(), source: std::io::Error::other(e.message().to_owned()) }
}

/// Reads blobs from a repository's object database, one handle per compressing thread.
struct BlobReader(Repository);

/// Blobs from this size are streamed out of the pack when they are stored whole there.
const STREAM_FROM: u64 = 1 << 20;

impl ContentReader for BlobReader {
    type Source = Oid;

    fn copy(&mut self, oid: &Oid, len: u64, out: &mut dyn std::io::Write) -> Result<u64, ArchiveError> {
        // `len` comes from the walk's header read; the object is not asked for it again.
        if len >= STREAM_FROM {
            let streamed = pack::blob_stream(&self.0.path().join("objects"), *oid);
            if let Some((mut content, size)) = streamed.map_err(|e| pack_error(oid, e))? {
                let copied = std::io::copy(&mut content, out).map_err(|e| pack_error(oid, e))?;
                if copied != size {
                    return Err(pack_error(oid, std::io::Error::other(format!("{copied} of {size} bytes"))));
                }
                return Ok(copied);
            }
        }
        let odb = self.0.odb().map_err(odb_error)?;
        let object = odb.read(*oid).map_err(odb_error)?;
        if object.kind() != ObjectType::Blob {
            return Err(odb_error(git2::Error::from_str("a tree entry names a non-blob")));
        }
        out.write_all(object.data())?;
        Ok(object.len() as u64)
    }
}

fn pack_error(oid: &Oid, e: std::io::Error) -> ArchiveError {
    ArchiveError::Read { path: format!("object {oid} in the fetched pack"), source: e }
}

/// Zips `commit`'s tree from the repository at `repo_dir`, the way `bridge_local::folder::write_tree`
/// zips a folder (same entries, modes, links and limits) but without a checkout. Blob
/// sizes come from object headers, so limits are checked before anything is inflated.
/// Submodule entries (commits) are skipped.
///
/// The tree objects are read raw and checked as git's fsck checks them
/// ([`bridge_core::gitpath`]): a name git refuses (`..`, `a/b` in one name, `.git` or a
/// look-alike), two entries of one name in a folder, or a mode git never writes refuses the
/// whole tree, naming the path, also where an injected file displaces the entry. Then the
/// injected files take their paths ([`bridge_core::archive::Replacements`]).
pub fn archive_commit<W: std::io::Write + std::io::Seek>(
    repo_dir: &Path,
    commit: &str,
    out: W,
    options: &ArchiveOptions,
    limits: ArchiveLimits,
) -> Result<ArchiveStats, ArchiveError> {
    let repo = Repository::open(repo_dir).map_err(odb_error)?;
    let odb = repo.odb().map_err(odb_error)?;
    let root = Oid::from_str(commit).and_then(|oid| repo.find_commit(oid)).map(|c| c.tree_id()).map_err(odb_error)?;
    let replacements = Replacements::new(options)?;
    let mut entries = std::collections::BTreeMap::new();
    let mut stats = ArchiveStats::default();
    // Folders still to read: (path with a trailing `/`, or empty for the top; tree id;
    // displaced by an injected file, so only checked). A stack, not recursion: a tree
    // 10,000 folders deep must not overflow the thread's stack.
    let mut pending = vec![(String::new(), root, false)];
    while let Some((folder, tree_id, displaced)) = pending.pop() {
        let unsafe_path = |name: &[u8], why: String| ArchiveError::UnsafePath {
            path: format!("{folder}{}", String::from_utf8_lossy(name)),
            why,
        };
        let object = odb.read(tree_id).map_err(odb_error)?;
        if object.kind() != ObjectType::Tree {
            return Err(unsafe_path(b"", format!("a folder whose object is a {}, not a tree", object.kind())));
        }
        let tree = parse_tree(object.data())
            .map_err(|why| unsafe_path(b"", format!("the folder's tree is corrupt: {why}")))?;
        let mut seen = std::collections::HashSet::with_capacity(tree.len());
        for entry in tree {
            let is_link = entry.mode == 0o120000;
            check_name(entry.name, is_link).map_err(|why| unsafe_path(entry.name, why.to_string()))?;
            if !seen.insert(entry.name) {
                return Err(unsafe_path(
                    entry.name,
                    "its folder holds two entries of this name, which extractors resolve differently (git fsck: duplicateEntries)"
                        .into(),
                ));
            }
            // Checked above: UTF-8, and no `/` inside it.
            let name = std::str::from_utf8(entry.name).map_err(|e| unsafe_path(entry.name, e.to_string()))?;
            let path = format!("{folder}{name}");
            check_path_length(&path)?;
            let is_dir = entry.mode == 0o040000;
            let displaced = displaced || replacements.displaces(path.split('/'), is_dir);
            // A `.gitmodules` folder also covers verify_path's rule against links below one.
            if matches!(entry.mode, 0o040000 | 0o160000) && is_gitmodules(entry.name) {
                return Err(unsafe_path(entry.name, Refusal::GitmodulesNotAFile.to_string()));
            }
            let planned = match entry.mode {
                0o040000 => {
                    pending.push((format!("{path}/"), entry.oid, displaced));
                    if displaced {
                        continue;
                    }
                    stats.directories += 1;
                    (format!("{path}/"), Planned::Directory { mode: 0o755 })
                }
                0o120000 | 0o100644 | 0o100664 | 0o100755 if displaced => {
                    // Left out, but still a tree git refuses if the entry is no blob.
                    blob_header(&odb, entry.oid, &path)?;
                    continue;
                }
                0o120000 => {
                    stats.symlinks += 1;
                    // Sized before it is read: a link's blob can be as large as any other.
                    let (len, _) = blob_header(&odb, entry.oid, &path)?;
                    if len > bridge_core::archive::MAX_LINK_TARGET_BYTES {
                        return Err(ArchiveError::LinkTooLong { path });
                    }
                    let target = link_target(&repo, entry.oid, &path)?;
                    (path, Planned::Symlink { target })
                }
                0o100644 | 0o100664 | 0o100755 => {
                    let (len, _) = blob_header(&odb, entry.oid, &path)?;
                    stats.files += 1;
                    stats.bytes += len as u64;
                    if stats.bytes > limits.max_bytes {
                        return Err(ArchiveError::TooLarge { limit: limits.max_bytes });
                    }
                    let mode = if entry.mode == 0o100755 { 0o755 } else { 0o644 };
                    (path, Planned::File { source: entry.oid, mode, len: len as u64 })
                }
                0o160000 => {
                    // A submodule (a commit of another repository), not content.
                    if !displaced {
                        stats.skipped_special += 1;
                    }
                    continue;
                }
                mode => {
                    return Err(ArchiveError::UnsafePath {
                        path,
                        why: format!("its mode {mode:o} is none that git writes (git fsck: badFilemode)"),
                    });
                }
            };
            entries.insert(planned.0, planned.1);
            if entries.len() as u64 > limits.max_entries {
                return Err(ArchiveError::TooManyEntries { limit: limits.max_entries });
            }
        }
    }
    add_replacements(&mut entries, &mut stats, options);
    let open = || Repository::open(repo_dir).map(BlobReader).map_err(odb_error);
    let (_, copied) = write_entries(out, entries.into_iter().collect(), options, limits, open)?;
    stats.bytes = copied;
    Ok(stats)
}

/// A blob's size and kind from its header; an entry that names anything but a blob is
/// refused with its path.
fn blob_header(odb: &git2::Odb<'_>, oid: Oid, path: &str) -> Result<(usize, ObjectType), ArchiveError> {
    let (len, kind) = odb.read_header(oid).map_err(odb_error)?;
    if kind != ObjectType::Blob {
        return Err(ArchiveError::UnsafePath {
            path: path.to_owned(),
            why: format!("a file or link whose object is a {kind}, not a blob"),
        });
    }
    Ok((len, kind))
}

/// One entry of a raw tree object.
#[derive(Debug)]
struct RawEntry<'a> {
    mode: u32,
    name: &'a [u8],
    oid: Oid,
}

/// Parses a tree object as git does (tree-walk.c `decode_tree_entry`): entries of
/// `<octal mode> <name>\0<20-byte id>`. Names are returned as they are, to be checked.
/// libgit2's own parser is not used: it hands out modes normalised (`100600` reads as
/// `100644`) and walks recursively.
fn parse_tree(data: &[u8]) -> Result<Vec<RawEntry<'_>>, &'static str> {
    const ID: usize = 20;
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|b| *b == b' ').ok_or("an entry has no mode")?;
        if space == 0 {
            return Err("an entry has an empty mode");
        }
        let mut mode = 0u32;
        for digit in &rest[..space] {
            if !(b'0'..=b'7').contains(digit) {
                return Err("an entry's mode is not octal");
            }
            mode =
                mode.checked_mul(8).and_then(|m| m.checked_add(u32::from(digit - b'0'))).ok_or("a mode overflows")?;
        }
        rest = &rest[space + 1..];
        let nul = rest.iter().position(|b| *b == 0).ok_or("an entry's name is not terminated")?;
        let name = &rest[..nul];
        rest = &rest[nul + 1..];
        let id = rest.get(..ID).ok_or("an entry's object id is cut short")?;
        let oid = Oid::from_bytes(id).map_err(|_| "an entry's object id is invalid")?;
        rest = &rest[ID..];
        entries.push(RawEntry { mode, name, oid });
    }
    Ok(entries)
}

/// A symlink's target: its blob's content, which must be a UTF-8 path.
/// An empty target, or one with a NUL, is refused: no system can make such a link (git's
/// checkout fails on it), and extractors write it as a file instead (Info-ZIP `unzip`).
fn link_target(repo: &Repository, oid: Oid, path: &str) -> Result<String, ArchiveError> {
    let blob = repo.find_blob(oid).map_err(odb_error)?;
    if blob.content().is_empty() || blob.content().contains(&0) {
        return Err(ArchiveError::UnsafePath {
            path: path.to_owned(),
            why: "a symbolic link whose target is empty or holds a NUL, which no system can create".into(),
        });
    }
    String::from_utf8(blob.content().to_vec())
        .map_err(|e| ArchiveError::NonUtf8Name { lossy: String::from_utf8_lossy(e.as_bytes()).into_owned() })
}

#[cfg(test)]
mod tests;
