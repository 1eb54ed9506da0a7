//! The source archive of a folder on disk (a checkout): the tree walked without following
//! links, each name checked by git's rules, then written by core's
//! [`write_entries`](bridge_core::archive::write_entries) exactly as the git adapter writes
//! a commit's tree. The same commit gives the same entries either way.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Seek, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bridge_core::archive::{
    ArchiveError, ArchiveLimits, ArchiveOptions, ArchiveStats, ContentReader, Planned, Replacements, add_replacements,
    check_path_length, write_entries,
};

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
/// as a git tree's ([`bridge_core::gitpath`]): the folder is normally a checkout, where git wrote
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
            let refused = |why: bridge_core::gitpath::Refusal| ArchiveError::UnsafePath {
                path: rel.to_string_lossy().into_owned(),
                why: why.to_string(),
            };
            bridge_core::gitpath::check_name(file_name.as_bytes(), kind.is_symlink()).map_err(refused)?;
            // A `.gitmodules` folder also covers verify_path's rule against links below one.
            if kind.is_dir() && bridge_core::gitpath::is_gitmodules(file_name.as_bytes()) {
                return Err(refused(bridge_core::gitpath::Refusal::GitmodulesNotAFile));
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

#[cfg(test)]
mod tests;
