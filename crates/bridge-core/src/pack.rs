//! Reading one object straight out of a git pack file: the lookup in a version 2 pack index,
//! the entry header, and the entry's zlib stream, inflated in pieces. `bridge-git` uses it
//! to stream a large blob without libgit2 inflating it whole; it lives here, over any
//! `Read + Seek`, so that the `pack_stream` fuzz target runs the same code without
//! libgit2 and OpenSSL.
//!
//! The pack bytes come from a remote server. Everything read is checked as git checks it
//! (`Documentation/gitformat-pack.txt`, `packfile.c`): the index's magic, version, monotonic
//! fan-out and length; an offset inside the pack, after its `PACK` header; an entry header
//! of at most 64 bits of size; and a zlib stream that ends (checksum verified) at exactly
//! the declared size. Anything else is `InvalidData`, never a panic or a short read that
//! looks whole.

use std::io::{self, BufRead, Read, Seek, SeekFrom};

/// Length of an object name in the indexes this reads (SHA-1).
pub const OID_LEN: usize = 20;

/// Object type 3 in a pack entry header: a blob stored whole.
pub const PACK_BLOB: u8 = 3;

/// Magic and version 2 at the start of a pack index.
const INDEX_MAGIC: [u8; 8] = [0xff, b't', b'O', b'c', 0, 0, 0, 2];
/// Magic, version and fan-out table.
const INDEX_HEADER: u64 = 8 + 256 * 4;
/// The pack's and the index's checksums end the index.
const INDEX_TRAILER: u64 = 2 * OID_LEN as u64;
/// `PACK`, version, object count.
const PACK_HEADER: u64 = 12;
/// The pack's checksum ends the pack.
const PACK_TRAILER: u64 = OID_LEN as u64;

fn invalid(what: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.into())
}

/// Looks `oid` up in a version 2 pack index; returns its offset in the pack, `None` if the
/// index does not hold it.
pub fn find_offset<R: Read + Seek>(index: &mut R, oid: &[u8; OID_LEN]) -> io::Result<Option<u64>> {
    let length = index.seek(SeekFrom::End(0))?;
    index.seek(SeekFrom::Start(0))?;
    let mut header = [0u8; INDEX_HEADER as usize];
    index.read_exact(&mut header).map_err(|_| invalid("pack index: shorter than its header"))?;
    if header[..8] != INDEX_MAGIC {
        return Err(invalid("pack index: not a version 2 index"));
    }
    let fanout = |i: usize| u64::from(u32::from_be_bytes(header[8 + i * 4..12 + i * 4].try_into().expect("4 bytes")));
    if (1..256).any(|i| fanout(i - 1) > fanout(i)) {
        return Err(invalid("pack index: the fan-out table is not monotonic"));
    }
    let total = fanout(255);
    // Names (20 bytes), CRC-32s (4) and offsets (4) per object, then the table of 8-byte
    // offsets, then the trailer: git's own length check (`check_packed_git_idx`).
    let small_tables = INDEX_HEADER + total * (OID_LEN as u64 + 8);
    if length < small_tables + INDEX_TRAILER {
        return Err(invalid(format!("pack index: {length} bytes cannot hold {total} objects")));
    }
    let large_entries = (length - small_tables - INDEX_TRAILER) / 8;
    let first = usize::from(oid[0]);
    let (mut low, mut high) = (if first == 0 { 0 } else { fanout(first - 1) }, fanout(first));
    let mut name = [0u8; OID_LEN];
    // Binary search among the names that start with the same byte.
    while low < high {
        let middle = low + (high - low) / 2;
        index.seek(SeekFrom::Start(INDEX_HEADER + middle * OID_LEN as u64))?;
        index.read_exact(&mut name)?;
        match name.as_slice().cmp(oid) {
            std::cmp::Ordering::Less => low = middle + 1,
            std::cmp::Ordering::Greater => high = middle,
            std::cmp::Ordering::Equal => {
                // The top bit of a 4-byte offset points into the table of 8-byte offsets
                // (packs over 2 GiB).
                let offsets_at = INDEX_HEADER + total * (OID_LEN as u64 + 4);
                let mut small = [0u8; 4];
                index.seek(SeekFrom::Start(offsets_at + middle * 4))?;
                index.read_exact(&mut small)?;
                let small = u32::from_be_bytes(small);
                if small & 0x8000_0000 == 0 {
                    return Ok(Some(u64::from(small)));
                }
                let large_index = u64::from(small & 0x7fff_ffff);
                if large_index >= large_entries {
                    return Err(invalid("pack index: an offset points past the table of large offsets"));
                }
                let mut large = [0u8; 8];
                index.seek(SeekFrom::Start(offsets_at + total * 4 + large_index * 8))?;
                index.read_exact(&mut large)?;
                return Ok(Some(u64::from_be_bytes(large)));
            }
        }
    }
    Ok(None)
}

/// A pack entry's header: type in bits 4–6 of the first byte, size in its low 4 bits and 7
/// more per following byte while the top bit is set.
pub fn entry_header(pack: &mut impl Read) -> io::Result<(u8, u64)> {
    let mut byte = [0u8; 1];
    pack.read_exact(&mut byte)?;
    let kind = (byte[0] >> 4) & 7;
    let mut size = u64::from(byte[0] & 0x0f);
    let mut shift = 4;
    while byte[0] & 0x80 != 0 {
        // Bits past the 64th would be dropped: a size that does not fit is refused.
        if shift > 57 {
            return Err(invalid("pack entry: size too long"));
        }
        pack.read_exact(&mut byte)?;
        size |= u64::from(byte[0] & 0x7f) << shift;
        shift += 7;
    }
    Ok((kind, size))
}

/// The blob stored whole at `offset` of `pack`, as a reader of its content and the
/// content's size; `None` if the entry there is something else (a delta, a commit, a tree).
pub fn whole_blob<R: BufRead + Seek>(mut pack: R, offset: u64) -> io::Result<Option<(Inflate<R>, u64)>> {
    let length = pack.seek(SeekFrom::End(0))?;
    pack.seek(SeekFrom::Start(0))?;
    let mut header = [0u8; PACK_HEADER as usize];
    pack.read_exact(&mut header).map_err(|_| invalid("pack: shorter than its header"))?;
    if header[..4] != *b"PACK" || !matches!(header[4..8], [0, 0, 0, 2 | 3]) {
        return Err(invalid("pack: not a version 2 or 3 pack"));
    }
    if offset < PACK_HEADER || offset.saturating_add(PACK_TRAILER) >= length {
        return Err(invalid(format!("pack: the index points at byte {offset} of a {length}-byte pack")));
    }
    pack.seek(SeekFrom::Start(offset))?;
    let (kind, size) = entry_header(&mut pack)?;
    if kind != PACK_BLOB {
        return Ok(None);
    }
    Ok(Some((Inflate::new(pack, size), size)))
}

/// Inflates one zlib stream from a buffered reader: exactly `size` bytes, then the end of
/// the stream (its Adler-32 checked), or `InvalidData`. git refuses an entry the same way
/// (`unpack_compressed_entry`: `Z_STREAM_END` and `total_out == size`). Reads nothing past
/// the stream.
pub struct Inflate<R> {
    input: R,
    state: flate2::Decompress,
    size: u64,
    ended: bool,
}

impl<R> std::fmt::Debug for Inflate<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflate").field("size", &self.size).field("inflated", &self.state.total_out()).finish()
    }
}

impl<R: BufRead> Inflate<R> {
    pub fn new(input: R, size: u64) -> Self {
        Inflate { input, state: flate2::Decompress::new(true), size, ended: false }
    }
}

impl<R: BufRead> Read for Inflate<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.ended || buf.is_empty() {
            return Ok(0);
        }
        // Past the declared size, one byte of room is left: the stream must end without
        // filling it.
        let mut probe = [0u8; 1];
        loop {
            let left = self.size - self.state.total_out();
            let room: &mut [u8] = if left == 0 {
                &mut probe
            } else {
                let len = buf.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                &mut buf[..len]
            };
            let input = self.input.fill_buf()?;
            let at_end = input.is_empty();
            let (in_before, out_before) = (self.state.total_in(), self.state.total_out());
            let status = self
                .state
                .decompress(input, room, flate2::FlushDecompress::None)
                .map_err(|e| invalid(format!("pack entry: corrupt zlib stream ({e})")))?;
            let consumed = usize::try_from(self.state.total_in() - in_before).expect("at most the input");
            let produced = usize::try_from(self.state.total_out() - out_before).expect("at most the room");
            self.input.consume(consumed);
            if left == 0 && produced > 0 {
                return Err(invalid(format!("pack entry: inflates to more than its {} bytes", self.size)));
            }
            if status == flate2::Status::StreamEnd {
                self.ended = true;
                if self.state.total_out() != self.size {
                    return Err(invalid(format!(
                        "pack entry: inflates to {} of its {} bytes",
                        self.state.total_out(),
                        self.size
                    )));
                }
                return Ok(produced);
            }
            if produced > 0 {
                return Ok(produced);
            }
            if at_end {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "pack entry: the pack ends inside it"));
            }
            if consumed == 0 {
                return Err(invalid("pack entry: the zlib stream makes no progress"));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Cursor, Write};

    use super::*;

    /// A pack entry header for `kind` and `size`.
    fn header(kind: u8, size: u64) -> Vec<u8> {
        let mut out = vec![(kind << 4) | (size & 0x0f) as u8];
        let mut rest = size >> 4;
        while rest != 0 {
            *out.last_mut().expect("a byte") |= 0x80;
            out.push((rest & 0x7f) as u8);
            rest >>= 7;
        }
        out
    }

    fn zlib(content: &[u8]) -> Vec<u8> {
        let mut encoder = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        encoder.write_all(content).expect("deflate");
        encoder.finish().expect("deflate")
    }

    /// A pack of one entry (`entry`, already encoded) and a version 2 index naming it `oid`.
    fn pack_and_index(entry: &[u8], oid: [u8; OID_LEN]) -> (Vec<u8>, Vec<u8>) {
        let mut pack = b"PACK\0\0\0\x02\0\0\0\x01".to_vec();
        pack.extend_from_slice(entry);
        pack.extend_from_slice(&[0; OID_LEN]);
        let mut index = INDEX_MAGIC.to_vec();
        for byte in 0..=255u8 {
            index.extend_from_slice(&u32::from(byte >= oid[0]).to_be_bytes());
        }
        index.extend_from_slice(&oid);
        index.extend_from_slice(&[0; 4]);
        index.extend_from_slice(&12u32.to_be_bytes());
        index.extend_from_slice(&[0; INDEX_TRAILER as usize]);
        (pack, index)
    }

    fn read_blob(pack: &[u8], index: &[u8], oid: &[u8; OID_LEN]) -> io::Result<Option<Vec<u8>>> {
        let Some(offset) = find_offset(&mut Cursor::new(index), oid)? else { return Ok(None) };
        let Some((mut reader, size)) = whole_blob(Cursor::new(pack), offset)? else { return Ok(None) };
        let mut out = Vec::new();
        reader.read_to_end(&mut out)?;
        assert_eq!(out.len() as u64, size);
        Ok(Some(out))
    }

    const OID: [u8; OID_LEN] = [0x5a; OID_LEN];

    #[test]
    fn a_whole_blob_reads_back_in_pieces() {
        let content: Vec<u8> = (0..100_000u32).flat_map(|i| (i % 251).to_le_bytes()).collect();
        let mut entry = header(PACK_BLOB, content.len() as u64);
        entry.extend(zlib(&content));
        let (pack, index) = pack_and_index(&entry, OID);
        assert_eq!(read_blob(&pack, &index, &OID).expect("read").as_deref(), Some(content.as_slice()));
        let mut other = OID;
        other[19] ^= 1;
        assert_eq!(read_blob(&pack, &index, &other).expect("read"), None, "absent name");
        let mut tree = header(2, content.len() as u64);
        tree.extend(zlib(&content));
        let (pack, index) = pack_and_index(&tree, OID);
        assert_eq!(read_blob(&pack, &index, &OID).expect("read"), None, "not a blob");
        let mut empty = header(PACK_BLOB, 0);
        empty.extend(zlib(b""));
        let (pack, index) = pack_and_index(&empty, OID);
        assert_eq!(read_blob(&pack, &index, &OID).expect("read"), Some(Vec::new()));
    }

    /// A stream that does not end at the declared size (longer, shorter, cut, corrupt) is an
    /// error, never content that looks whole.
    #[test]
    fn a_stream_that_disagrees_with_its_size_is_refused() {
        let content = b"hello, pack reader; hello, pack reader; hello".repeat(50);
        let stream = zlib(&content);
        let declared = content.len() as u64;
        for (what, size, stream) in [
            ("longer", declared - 1, stream.clone()),
            ("shorter", declared + 1, stream.clone()),
            ("cut", declared, stream[..stream.len() - 5].to_vec()),
            ("bad checksum", declared, {
                let mut s = stream.clone();
                *s.last_mut().expect("a byte") ^= 1;
                s
            }),
            ("not zlib", declared, vec![0x13; 40]),
        ] {
            let mut entry = header(PACK_BLOB, size);
            entry.extend(&stream);
            let (pack, index) = pack_and_index(&entry, OID);
            let error = read_blob(&pack, &index, &OID).expect_err(what);
            assert!(
                matches!(error.kind(), io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof),
                "{what}: {error}"
            );
        }
    }

    #[test]
    fn broken_indexes_and_packs_are_refused() {
        let mut entry = header(PACK_BLOB, 3);
        entry.extend(zlib(b"abc"));
        let (pack, index) = pack_and_index(&entry, OID);
        let refused = |pack: &[u8], index: &[u8]| read_blob(pack, index, &OID).is_err();
        assert!(!refused(&pack, &index));
        assert!(refused(&pack, &index[..index.len() - 1]), "index too short for its count");
        assert!(refused(&pack, &index[..100]), "index shorter than its header");
        let mut bad = index.clone();
        bad[7] = 1;
        assert!(refused(&pack, &bad), "index version 1");
        let mut bad = index.clone();
        bad[8 + 4 * 10..8 + 4 * 11].copy_from_slice(&7u32.to_be_bytes());
        assert!(refused(&pack, &bad), "fan-out not monotonic");
        let offset_at = (INDEX_HEADER + 24) as usize;
        for (offset, why) in [
            (0x8000_0000u32, "large offset past its table"),
            (3, "offset in the pack header"),
            (4000, "offset past the pack"),
        ] {
            let mut bad = index.clone();
            bad[offset_at..offset_at + 4].copy_from_slice(&offset.to_be_bytes());
            assert!(refused(&pack, &bad), "{why}");
        }
        let mut bad = pack.clone();
        bad[0] = b'K';
        assert!(refused(&bad, &index), "not a pack");
        assert!(entry_header(&mut Cursor::new([0xff; 12])).is_err(), "size over 64 bits");
        let largest = (1 << 60) - 1;
        assert_eq!(entry_header(&mut Cursor::new(header(PACK_BLOB, largest))).expect("fits"), (PACK_BLOB, largest));
        assert!(entry_header(&mut Cursor::new(header(PACK_BLOB, 1 << 60))).is_err(), "a tenth byte");
    }
}
