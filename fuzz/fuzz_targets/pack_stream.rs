#![no_main]
//! The pack reader `bridge-git` streams large blobs with (`bridge_core::pack`): a pack index,
//! a pack and an object name, as a remote server (or a damaged disk) could leave them.
//!
//! Input: one byte (low bit: mode; the rest: which name of the index to look up), then in
//! mode 0 a 4-byte little-endian index length, the index, and the pack (the seeds are real
//! packs made by `git repack`); in mode 1 the content of a blob, packed and indexed here.
//!
//! Invariants: nothing panics; a lookup that finds an offset found the name at that offset
//! in the index; a blob that reads back is exactly its declared size (else an error); a
//! blob packed here reads back byte for byte.
use std::io::{Cursor, Read, Write};

use bridge_core::pack::{OID_LEN, PACK_BLOB, find_offset, whole_blob};
use libfuzzer_sys::fuzz_target;

/// The whole blob at the name `oid`, or why not.
fn read(index: &[u8], pack: &[u8], oid: &[u8; OID_LEN]) -> std::io::Result<Option<Vec<u8>>> {
    let Some(offset) = find_offset(&mut Cursor::new(index), oid)? else { return Ok(None) };
    assert!(named_at(index, oid, offset), "offset {offset} is not the index's for that name");
    let Some((mut reader, size)) = whole_blob(Cursor::new(pack), offset)? else { return Ok(None) };
    // A deflate stream expands at most ~1032 times: the input bounds what can come out.
    let mut content = Vec::new();
    reader.read_to_end(&mut content)?;
    assert_eq!(content.len() as u64, size, "a blob read back whole has its declared size");
    Ok(Some(content))
}

/// Whether some row of a version 2 index pairs `oid` with `offset` (a linear scan, against
/// the binary search).
fn named_at(index: &[u8], oid: &[u8; OID_LEN], offset: u64) -> bool {
    let word = |at: usize| index.get(at..at + 4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    let Some(total) = word(8 + 255 * 4) else { return false };
    let total = total as usize;
    let names = 8 + 256 * 4;
    let offsets = names + total * (OID_LEN + 4);
    (0..total).any(|i| {
        let at = names + i * OID_LEN;
        if index.get(at..at + OID_LEN) != Some(oid.as_slice()) {
            return false;
        }
        match word(offsets + i * 4) {
            Some(small) if small & 0x8000_0000 == 0 => u64::from(small) == offset,
            Some(small) => {
                let at = offsets + total * 4 + (small & 0x7fff_ffff) as usize * 8;
                index.get(at..at + 8).is_some_and(|b| u64::from_be_bytes(b.try_into().expect("8 bytes")) == offset)
            }
            None => false,
        }
    })
}

/// The name in row `pick` of the index (modulo its rows), or the first bytes of the input.
fn pick_name(index: &[u8], pick: usize) -> [u8; OID_LEN] {
    let mut oid = [0u8; OID_LEN];
    let total = index.get(8 + 255 * 4..8 + 256 * 4).map_or(0, |b| u32::from_be_bytes(b.try_into().expect("4 bytes")));
    let at = 8 + 256 * 4 + (pick % (total.max(1) as usize)) * OID_LEN;
    match index.get(at..at + OID_LEN) {
        Some(name) => oid.copy_from_slice(name),
        None => index.iter().zip(oid.iter_mut()).for_each(|(from, to)| *to = *from),
    }
    oid
}

/// A version 2 pack of one whole blob, and its index naming it `oid`.
fn pack_one(content: &[u8], oid: [u8; OID_LEN], level: u32) -> (Vec<u8>, Vec<u8>) {
    let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
    let size = content.len() as u64;
    pack.push((PACK_BLOB << 4) | (size & 0x0f) as u8 | if size >> 4 != 0 { 0x80 } else { 0 });
    let mut rest = size >> 4;
    while rest != 0 {
        pack.push((rest & 0x7f) as u8 | if rest >> 7 != 0 { 0x80 } else { 0 });
        rest >>= 7;
    }
    let mut encoder = flate2::write::ZlibEncoder::new(pack, flate2::Compression::new(level % 10));
    encoder.write_all(content).expect("deflate");
    let mut pack = encoder.finish().expect("deflate");
    pack.extend_from_slice(&[0; OID_LEN]);
    let mut index = vec![0xff, b't', b'O', b'c', 0, 0, 0, 2];
    for byte in 0..=255u8 {
        index.extend_from_slice(&u32::from(byte >= oid[0]).to_be_bytes());
    }
    index.extend_from_slice(&oid);
    index.extend_from_slice(&[0; 4]);
    index.extend_from_slice(&12u32.to_be_bytes());
    index.extend_from_slice(&[0; 2 * OID_LEN]);
    (pack, index)
}

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let pick = usize::from(selector >> 1);
    if selector & 1 == 0 {
        let Some((length, rest)) = rest.split_first_chunk::<4>() else { return };
        let split = (u32::from_le_bytes(*length) as usize).min(rest.len());
        let (index, pack) = rest.split_at(split);
        let _ = read(index, pack, &pick_name(index, pick));
    } else {
        let mut oid = [0u8; OID_LEN];
        oid[0] = selector;
        let (pack, index) = pack_one(rest, oid, u32::from(selector >> 1));
        let back = read(&index, &pack, &oid).expect("a blob packed here reads back");
        assert_eq!(back.as_deref(), Some(rest), "a blob packed here reads back byte for byte");
    }
});
