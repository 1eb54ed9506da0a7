//! Streaming a blob out of a pack file. libgit2 inflates an object whole before handing it
//! over (it has no streaming read for packed objects), so a 100 MB file would be 100 MB of
//! memory; here a blob stored whole in a pack (not as a delta) is inflated in pieces,
//! straight from the file. Deltas, loose objects and anything unexpected return `None`, and
//! the caller reads through libgit2 as before.
//!
//! Formats: `Documentation/gitformat-pack.txt` in git (pack index version 2, pack entries).

use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use git2::Oid;

/// Object type 3 in a pack entry header: a blob stored whole.
const PACK_BLOB: u8 = 3;

/// Where `oid` is stored whole in one of the packs under `objects_dir/pack`, as a reader of
/// its content and the content's size; `None` if it is not (a delta, a loose object).
pub fn blob_stream(objects_dir: &Path, oid: Oid) -> io::Result<Option<(impl Read + use<>, u64)>> {
    let Ok(listing) = std::fs::read_dir(objects_dir.join("pack")) else { return Ok(None) };
    let mut indexes: Vec<PathBuf> = listing
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "idx"))
        .collect();
    indexes.sort();
    for index in indexes {
        let Some(offset) = find_offset(&index, oid)? else { continue };
        let mut pack = BufReader::with_capacity(64 << 10, File::open(index.with_extension("pack"))?);
        pack.seek(SeekFrom::Start(offset))?;
        let (kind, size) = entry_header(&mut pack)?;
        if kind != PACK_BLOB {
            return Ok(None);
        }
        let content = flate2::bufread::ZlibDecoder::new(pack).take(size);
        return Ok(Some((content, size)));
    }
    Ok(None)
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, format!("pack index: {what}"))
}

/// Looks `oid` up in a version 2 pack index; returns its offset in the pack.
fn find_offset(index: &Path, oid: Oid) -> io::Result<Option<u64>> {
    let mut file = File::open(index)?;
    let mut header = [0u8; 8 + 256 * 4];
    file.read_exact(&mut header)?;
    if header[..8] != [0xff, b't', b'O', b'c', 0, 0, 0, 2] {
        return Err(invalid("not a version 2 index"));
    }
    let fanout = |i: usize| u32::from_be_bytes(header[8 + i * 4..12 + i * 4].try_into().expect("4 bytes")) as u64;
    let first = oid.as_bytes()[0] as usize;
    let total = fanout(255);
    let (mut low, mut high) = (if first == 0 { 0 } else { fanout(first - 1) }, fanout(first));
    let names_at = header.len() as u64;
    let mut name = [0u8; 20];
    // Binary search among the names that start with the same byte.
    while low < high {
        let middle = (low + high) / 2;
        file.seek(SeekFrom::Start(names_at + middle * 20))?;
        file.read_exact(&mut name)?;
        match name.as_slice().cmp(oid.as_bytes()) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => {
                // Names, then CRC-32s, then 4-byte offsets (the top bit points into a table of
                // 8-byte offsets for packs over 2 GiB).
                let offsets_at = names_at + total * 24;
                let mut small = [0u8; 4];
                file.seek(SeekFrom::Start(offsets_at + middle * 4))?;
                file.read_exact(&mut small)?;
                let small = u32::from_be_bytes(small);
                if small & 0x8000_0000 == 0 {
                    return Ok(Some(u64::from(small)));
                }
                let mut large = [0u8; 8];
                file.seek(SeekFrom::Start(offsets_at + total * 4 + u64::from(small & 0x7fff_ffff) * 8))?;
                file.read_exact(&mut large)?;
                return Ok(Some(u64::from_be_bytes(large)));
            }
        }
    }
    Ok(None)
}

/// A pack entry's header: type in bits 4–6 of the first byte, size in its low 4 bits and 7
/// more per following byte while the top bit is set.
fn entry_header(pack: &mut impl Read) -> io::Result<(u8, u64)> {
    let mut byte = [0u8; 1];
    pack.read_exact(&mut byte)?;
    let kind = (byte[0] >> 4) & 7;
    let mut size = u64::from(byte[0] & 0x0f);
    let mut shift = 4;
    while byte[0] & 0x80 != 0 {
        if shift > 57 {
            return Err(invalid("entry size too long"));
        }
        pack.read_exact(&mut byte)?;
        size |= u64::from(byte[0] & 0x7f) << shift;
        shift += 7;
    }
    Ok((kind, size))
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
