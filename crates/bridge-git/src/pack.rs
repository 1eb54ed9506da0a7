//! Streaming a blob out of a pack file. libgit2 inflates an object whole before handing it
//! over (it has no streaming read for packed objects), so a 100 MB file would be 100 MB of
//! memory; here a blob stored whole in a pack (not as a delta) is inflated in pieces,
//! straight from the file. Deltas, loose objects and anything unexpected return `None`, and
//! the caller reads through libgit2 as before.
//!
//! The parsing (index lookup, entry header, zlib stream, each checked as git checks it) is
//! [`bridge_core::pack`], over `Read + Seek`, where the `pack_stream` fuzz target reaches it
//! without libgit2; this module finds and opens the files.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};

use bridge_core::pack::{find_offset, whole_blob};
use git2::Oid;

/// Where `oid` is stored whole in one of the packs under `objects_dir/pack`, as a reader of
/// its content and the content's size; `None` if it is not (a delta, a loose object).
pub fn blob_stream(objects_dir: &Path, oid: Oid) -> io::Result<Option<(impl Read + use<>, u64)>> {
    let Ok(listing) = std::fs::read_dir(objects_dir.join("pack")) else { return Ok(None) };
    let Ok(name) = <&[u8; bridge_core::pack::OID_LEN]>::try_from(oid.as_bytes()) else { return Ok(None) };
    let mut indexes: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    indexes.sort();
    for index in indexes {
        // Unbuffered: the binary search reads 20 bytes here and there.
        let Some(offset) = find_offset(&mut File::open(&index)?, name)? else { continue };
        let pack = BufReader::with_capacity(64 << 10, File::open(index.with_extension("pack"))?);
        return whole_blob(pack, offset);
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn git(dir: &Path, args: &[&str]) -> String {
        let out = Command::new("git")
            .args(["-c", "user.name=t", "-c", "user.email=t@example.com", "-c", "gc.auto=0"])
            .args(args)
            .current_dir(dir)
            .output()
            .expect("git runs");
        assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).expect("utf-8").trim().to_owned()
    }

    /// Text of `len` bytes that deflates like source code.
    fn text(len: usize, seed: u32) -> Vec<u8> {
        let mut out = Vec::with_capacity(len);
        let mut x = seed;
        while out.len() < len {
            x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
            out.extend_from_slice(format!("let value_{} = call({});\n", x % 977, x % 31).as_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn whole_blobs_stream_from_the_pack_and_the_rest_is_left_to_libgit2() {
        let dir = std::env::temp_dir().join(format!("pcb-pack-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        git(&dir, &["init", "-q"]);
        let first = text(3 << 20, 1);
        std::fs::write(dir.join("big.rs"), &first).expect("write");
        git(&dir, &["add", "big.rs"]);
        git(&dir, &["commit", "-q", "-m", "one"]);
        let mut second = first.clone();
        second.extend_from_slice(b"// one more line\n");
        std::fs::write(dir.join("big.rs"), &second).expect("write");
        git(&dir, &["add", "big.rs"]);
        git(&dir, &["commit", "-q", "-m", "two"]);
        let ids: Vec<Oid> = ["HEAD~1:big.rs", "HEAD:big.rs"]
            .iter()
            .map(|spec| Oid::from_str(&git(&dir, &["rev-parse", spec])).expect("oid"))
            .collect();
        let objects = dir.join(".git/objects");
        assert!(blob_stream(&objects, ids[0]).expect("read").is_none(), "loose objects are left to libgit2");

        git(&dir, &["repack", "-a", "-d", "-q"]);
        let mut whole = 0;
        for (oid, content) in ids.iter().zip([&first, &second]) {
            // The other version is stored as a delta of this one (None).
            if let Some((mut reader, size)) = blob_stream(&objects, *oid).expect("read") {
                let mut read = Vec::new();
                reader.read_to_end(&mut read).expect("inflate");
                assert_eq!((size, &read), (content.len() as u64, content));
                whole += 1;
            }
        }
        assert_eq!(whole, 1, "one version whole, the other a delta of it");
        let missing = Oid::from_str("0123456789abcdef0123456789abcdef01234567").expect("oid");
        assert!(blob_stream(&objects, missing).expect("read").is_none());
        std::fs::remove_dir_all(dir).expect("cleanup");
    }
}
