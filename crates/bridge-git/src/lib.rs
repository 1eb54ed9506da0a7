//! Fetching what a build request names, with git2 (libgit2, linked statically):
//!
//! 1. the **target** project's default branch, read from the remote's `HEAD` (Fedora's
//!    dist-git uses `rawhide`, not `main`), shallowly, to read the buildspec from it: the
//!    tree being built never supplies its own build instructions;
//! 2. the tree to build: for a commit, the branch shallowly, deepened in bounded steps
//!    until the commit is there; for a pull request, `refs/pull/<id>/head` of the target
//!    repository (Pagure keeps it for same-project, fork and remote PRs);
//! 3. an archive of exactly that commit, zipped straight from the object database
//!    ([`archive_commit`]): no checkout written to disk and read back.
//!
//! [`GitFetcher`] is the adapter of the work stage's source port
//! ([`bridge_core::work::SourceFetcher`]): a scratch folder per request, the blocking git
//! work off the async runtime.
//!
//! The caller has checked the URLs against the project's allow-list; here redirects are
//! never followed, so a fetch cannot be sent to another host. Size and time limits abort a
//! transfer with a terminal error; network trouble and server errors are transient.

mod archive;
mod fetch;
mod pack;
mod source;

use std::time::Duration;

pub use archive::archive_commit;
pub use fetch::{GitMessage, checkout, fetch_build};
pub use source::{GitFetcher, Scratch};

/// Sets libgit2's process-wide options. Call once from `main`, before any thread is spawned.
/// - Connect and I/O timeouts: a server that accepts and then says nothing must not hang a
///   worker; the per-transfer deadline only runs while data arrives.
/// - How much of a pack file it keeps mapped: its default, 8 GiB on 64-bit, lets a large
///   fetch map the whole pack into the process; 12 MiB is shared by the archive's threads.
/// - No second hashing of every object read: each object in the scratch repository was
///   named by hashing it as it arrived (the indexer); hashing it again when the archive
///   read it cost 1.2 s of CPU on the 200 MB benchmark, about a tenth of the work stage's.
#[allow(unsafe_code)]
pub fn init_libgit2(connect: Duration, io: Duration) -> Result<(), String> {
    let ms = |d: Duration| i32::try_from(d.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: these write C globals without synchronisation; the contract is to call this
    // before other threads use libgit2, which is what `main` (and the test harness, once,
    // before its first fetch) does.
    unsafe {
        git2::opts::set_server_connect_timeout_in_milliseconds(ms(connect)).map_err(|e| e.to_string())?;
        git2::opts::set_server_timeout_in_milliseconds(ms(io)).map_err(|e| e.to_string())?;
        git2::opts::set_mwindow_size(4 << 20).map_err(|e| e.to_string())?;
        git2::opts::set_mwindow_mapped_limit(12 << 20).map_err(|e| e.to_string())?;
    }
    git2::opts::strict_hash_verification(false);
    Ok(())
}
