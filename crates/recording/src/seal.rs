//! The sealed recording file: a clear header, then the audio in chunks, each sealed with
//! AES-256-GCM under the recording's data key as it is written.
//!
//! ```text
//!  header  "CRESTREC" | version 1 | recording id (16) | nonce base (12)          37 bytes
//!  chunk   length u32 BE (ciphertext + 16-byte tag) | ciphertext | tag           repeated
//!          nonce = nonce base XOR chunk index;  AAD = header | index u64 BE | final u8
//! ```
//!
//! The index and the final flag are authenticated, so a flipped byte, chunks swapped or
//! dropped, and a file cut short are each detected and told apart ([`OpenError`]). A file
//! without its final chunk is what a crash leaves: every whole chunk up to there still opens,
//! and [`Sealer::resume`] appends the final chunk during recovery.

use aws_lc_rs::aead::{Aad, LessSafeKey, NONCE_LEN, Nonce};

use crate::RecordingId;
use crate::keys::{DataKey, KeyError, random};

const MAGIC: &[u8; 8] = b"CRESTREC";
const VERSION: u8 = 1;
/// Length of the clear header.
pub const HEADER_LEN: usize = 8 + 1 + 16 + NONCE_LEN;
const TAG_LEN: usize = 16;
/// The largest chunk a reader accepts (plaintext).
pub const MAX_CHUNK: usize = 1 << 20;

/// Why a sealed file does not open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The file does not start with a Crest recording header.
    #[error("not a Crest recording (bad magic)")]
    NotARecording,
    /// A format version this build does not read.
    #[error("recording format version {0} is not supported")]
    Version(u8),
    /// The header names another recording (a file put in the wrong place).
    #[error("the file holds recording {found}, not {expected}")]
    WrongRecording {
        /// The recording asked for.
        expected: RecordingId,
        /// The one in the header.
        found: RecordingId,
    },
    /// The file ends cleanly after `chunks` chunks, but none was the final one.
    #[error(
        "truncated: {chunks} whole chunks and no final chunk (cut short, or still being written)"
    )]
    Truncated {
        /// Whole chunks before the end.
        chunks: u64,
    },
    /// The file ends inside chunk `chunk`.
    #[error("truncated inside chunk {chunk} at byte {offset}")]
    PartialChunk {
        /// The chunk cut short.
        chunk: u64,
        /// Where it starts.
        offset: u64,
    },
    /// Chunk `chunk` fails its authentication tag: its bytes were altered.
    #[error("chunk {chunk} at byte {offset} fails its authentication tag (altered)")]
    Tampered {
        /// The chunk.
        chunk: u64,
        /// Where it starts.
        offset: u64,
    },
    /// The chunk at `position` is intact but is chunk `chunk`: chunks were reordered.
    #[error("chunk at position {position} is chunk {chunk} (chunks reordered)")]
    Reordered {
        /// Where it was found.
        position: u64,
        /// Which chunk it is.
        chunk: u64,
    },
    /// Bytes follow the final chunk.
    #[error("{bytes} bytes after the final chunk at byte {offset}")]
    TrailingData {
        /// Where they start.
        offset: u64,
        /// How many.
        bytes: u64,
    },
    /// A chunk length beyond [`MAX_CHUNK`].
    #[error("chunk {chunk} at byte {offset} claims {len} bytes (corrupt length)")]
    BadLength {
        /// The chunk.
        chunk: u64,
        /// Where it starts.
        offset: u64,
        /// The length it claims.
        len: u64,
    },
}

fn nonce(base: &[u8; NONCE_LEN], index: u64) -> Nonce {
    let mut n = *base;
    for (b, i) in n[NONCE_LEN - 8..].iter_mut().zip(index.to_be_bytes()) {
        *b ^= i;
    }
    Nonce::assume_unique_for_key(n)
}

fn aad(header: &[u8; HEADER_LEN], index: u64, last: bool) -> [u8; HEADER_LEN + 9] {
    let mut a = [0u8; HEADER_LEN + 9];
    a[..HEADER_LEN].copy_from_slice(header);
    a[HEADER_LEN..HEADER_LEN + 8].copy_from_slice(&index.to_be_bytes());
    a[HEADER_LEN + 8] = u8::from(last);
    a
}

/// Seals a recording's bytes chunk by chunk.
#[derive(Debug)]
pub struct Sealer {
    key: LessSafeKey,
    header: [u8; HEADER_LEN],
    base: [u8; NONCE_LEN],
    index: u64,
    finished: bool,
}

impl Sealer {
    /// A sealer for a new file of `id` under `dk`, with a random nonce base.
    pub fn new(id: &RecordingId, dk: &DataKey) -> Result<Self, KeyError> {
        let mut base = [0u8; NONCE_LEN];
        random(&mut base)?;
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8] = VERSION;
        header[9..25].copy_from_slice(id.as_bytes());
        header[25..].copy_from_slice(&base);
        Ok(Self {
            key: dk.aead(),
            header,
            base,
            index: 0,
            finished: false,
        })
    }

    /// A sealer that continues a file whose header is `header` after `chunks` chunks (crash
    /// recovery appends the final chunk with it).
    pub fn resume(
        id: &RecordingId,
        dk: &DataKey,
        header: &[u8],
        chunks: u64,
    ) -> Result<Self, OpenError> {
        let header = parse_header(header, id)?;
        let mut base = [0u8; NONCE_LEN];
        base.copy_from_slice(&header[25..]);
        Ok(Self {
            key: dk.aead(),
            header,
            base,
            index: chunks,
            finished: false,
        })
    }

    /// The clear header, the first bytes of the file.
    pub fn header(&self) -> &[u8] {
        &self.header
    }

    /// Chunks sealed so far.
    pub fn chunks(&self) -> u64 {
        self.index
    }

    /// Whether the final chunk was sealed.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Seals `plain` as the next chunk (the final one when `last`) and appends it to `out`.
    /// Nothing is sealed after the final chunk.
    pub fn seal(&mut self, plain: &[u8], last: bool, out: &mut Vec<u8>) {
        if self.finished {
            return;
        }
        let start = out.len();
        let len = u32::try_from(plain.len() + TAG_LEN).unwrap_or(u32::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(plain);
        // Sealing fails only for inputs beyond GCM's 64 GB limit; chunks are far smaller.
        let tag = self
            .key
            .seal_in_place_separate_tag(
                nonce(&self.base, self.index),
                Aad::from(aad(&self.header, self.index, last)),
                &mut out[start + 4..],
            )
            .expect("chunk within AES-GCM limits");
        out.extend_from_slice(tag.as_ref());
        self.index += 1;
        self.finished = last;
    }
}

fn parse_header(data: &[u8], id: &RecordingId) -> Result<[u8; HEADER_LEN], OpenError> {
    if data.len() < HEADER_LEN || &data[..8] != MAGIC {
        return Err(OpenError::NotARecording);
    }
    if data[8] != VERSION {
        return Err(OpenError::Version(data[8]));
    }
    let mut found = [0u8; 16];
    found.copy_from_slice(&data[9..25]);
    let found = RecordingId::from_bytes(found);
    if found != *id {
        return Err(OpenError::WrongRecording {
            expected: *id,
            found,
        });
    }
    let mut h = [0u8; HEADER_LEN];
    h.copy_from_slice(&data[..HEADER_LEN]);
    Ok(h)
}

/// What reading a sealed file found.
#[derive(Debug)]
pub struct Opened {
    /// The plaintext of every chunk that opened, in order.
    pub plain: Vec<u8>,
    /// Chunks that opened.
    pub chunks: u64,
    /// Bytes of the file up to the end of the last chunk that opened.
    pub valid_len: u64,
    /// Why reading stopped short of a complete file, if it did.
    pub error: Option<OpenError>,
}

impl Opened {
    /// The plaintext of a complete, intact file.
    pub fn complete(self) -> Result<Vec<u8>, OpenError> {
        match self.error {
            None => Ok(self.plain),
            Some(e) => Err(e),
        }
    }
}

/// Opens the sealed file `data` of recording `id`: decrypts and checks every chunk, in order,
/// until the final chunk or the first fault, which is named in [`Opened::error`].
pub fn open(data: &[u8], id: &RecordingId, dk: &DataKey) -> Result<Opened, OpenError> {
    let header = parse_header(data, id)?;
    let mut base = [0u8; NONCE_LEN];
    base.copy_from_slice(&header[25..]);
    let key = dk.aead();
    let bounds = chunk_bounds(data);
    let mut plain = Vec::with_capacity(data.len());
    let mut out = Opened {
        plain: Vec::new(),
        chunks: 0,
        valid_len: HEADER_LEN as u64,
        error: None,
    };
    let mut buf = Vec::new();
    let try_open = |buf: &mut Vec<u8>, body: &[u8], index: u64, last: bool| -> bool {
        buf.clear();
        buf.extend_from_slice(body);
        key.open_in_place(
            nonce(&base, index),
            Aad::from(aad(&header, index, last)),
            buf,
        )
        .is_ok()
    };
    let mut finished = false;
    for (i, b) in bounds.chunks.iter().enumerate() {
        let i = i as u64;
        let body = &data[b.start + 4..b.end];
        let last = if try_open(&mut buf, body, i, false) {
            false
        } else if try_open(&mut buf, body, i, true) {
            true
        } else {
            // Intact but elsewhere in the sequence, or altered?
            let n = bounds.chunks.len() as u64 + 1;
            let moved = (0..n)
                .filter(|&j| j != i)
                .find(|&j| try_open(&mut buf, body, j, false) || try_open(&mut buf, body, j, true));
            out.error = Some(match moved {
                Some(chunk) => OpenError::Reordered { position: i, chunk },
                None => OpenError::Tampered {
                    chunk: i,
                    offset: b.start as u64,
                },
            });
            break;
        };
        plain.extend_from_slice(&buf[..buf.len() - TAG_LEN]);
        out.chunks = i + 1;
        out.valid_len = b.end as u64;
        if last {
            finished = true;
            if b.end < data.len() {
                out.error = Some(OpenError::TrailingData {
                    offset: b.end as u64,
                    bytes: (data.len() - b.end) as u64,
                });
            }
            break;
        }
    }
    if out.error.is_none() && !finished {
        out.error = Some(
            bounds
                .fault
                .unwrap_or(OpenError::Truncated { chunks: out.chunks }),
        );
    }
    out.plain = plain;
    Ok(out)
}

#[derive(Debug)]
struct Bounds {
    chunks: Vec<std::ops::Range<usize>>,
    /// Why the chunk sequence stopped before the end of the data.
    fault: Option<OpenError>,
}

/// Splits the data after the header into chunks by their lengths, without decrypting.
fn chunk_bounds(data: &[u8]) -> Bounds {
    let mut chunks = Vec::new();
    let mut at = HEADER_LEN;
    let mut fault = None;
    while at < data.len() {
        let index = chunks.len() as u64;
        let Some(len) = data.get(at..at + 4) else {
            fault = Some(OpenError::PartialChunk {
                chunk: index,
                offset: at as u64,
            });
            break;
        };
        // The slice is exactly 4 bytes long.
        let len = u32::from_be_bytes(len.try_into().expect("4 bytes")) as usize;
        if !(TAG_LEN..=MAX_CHUNK + TAG_LEN).contains(&len) {
            fault = Some(OpenError::BadLength {
                chunk: index,
                offset: at as u64,
                len: len as u64,
            });
            break;
        }
        let end = at + 4 + len;
        if end > data.len() {
            fault = Some(OpenError::PartialChunk {
                chunk: index,
                offset: at as u64,
            });
            break;
        }
        chunks.push(at..end);
        at = end;
    }
    Bounds { chunks, fault }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sealed(chunks: &[&[u8]]) -> (RecordingId, DataKey, Vec<u8>) {
        let id = RecordingId::generate().unwrap();
        let dk = DataKey::generate().unwrap();
        let mut s = Sealer::new(&id, &dk).unwrap();
        let mut out = s.header().to_vec();
        for (i, c) in chunks.iter().enumerate() {
            s.seal(c, i + 1 == chunks.len(), &mut out);
        }
        (id, dk, out)
    }

    #[test]
    fn round_trip_is_exact() {
        let (id, dk, file) = sealed(&[b"hello ", b"sealed ", b"world"]);
        let o = open(&file, &id, &dk).unwrap();
        assert_eq!(o.chunks, 3);
        assert_eq!(o.complete().unwrap(), b"hello sealed world");
        // An empty final chunk is fine too.
        let (id, dk, file) = sealed(&[b"x", b""]);
        assert_eq!(open(&file, &id, &dk).unwrap().complete().unwrap(), b"x");
    }

    #[test]
    fn each_fault_has_its_own_error() {
        let (id, dk, file) = sealed(&[&[1; 100], &[2; 100], &[3; 100]]);
        let chunk = 4 + 100 + TAG_LEN;
        let c1 = HEADER_LEN + chunk;
        let err = |data: &[u8]| open(data, &id, &dk).unwrap().error.unwrap();

        let mut flipped = file.clone();
        flipped[c1 + 50] ^= 0x20;
        assert_eq!(
            err(&flipped),
            OpenError::Tampered {
                chunk: 1,
                offset: c1 as u64
            }
        );

        let mut swapped = file[..HEADER_LEN].to_vec();
        swapped.extend_from_slice(&file[c1..c1 + chunk]);
        swapped.extend_from_slice(&file[HEADER_LEN..c1]);
        swapped.extend_from_slice(&file[c1 + chunk..]);
        assert_eq!(
            err(&swapped),
            OpenError::Reordered {
                position: 0,
                chunk: 1
            }
        );

        // Cut at a chunk boundary: the first two chunks still open.
        let o = open(&file[..c1 + chunk], &id, &dk).unwrap();
        assert_eq!(o.error, Some(OpenError::Truncated { chunks: 2 }));
        assert_eq!(o.plain.len(), 200);
        assert_eq!(o.valid_len, (c1 + chunk) as u64);
        // Cut inside a chunk.
        assert_eq!(
            err(&file[..c1 + 10]),
            OpenError::PartialChunk {
                chunk: 1,
                offset: c1 as u64
            }
        );
        // Dropping the final chunk's flag cannot be faked: the last chunk alone, as chunk 1.
        let mut dropped = file[..c1].to_vec();
        dropped.extend_from_slice(&file[c1 + chunk..]);
        assert_eq!(
            err(&dropped),
            OpenError::Reordered {
                position: 1,
                chunk: 2
            }
        );
        let mut trailing = file.clone();
        trailing.extend_from_slice(b"junk");
        assert!(matches!(
            err(&trailing),
            OpenError::TrailingData { bytes: 4, .. }
        ));
        let mut badlen = file.clone();
        badlen[c1] = 0xff;
        assert!(matches!(
            err(&badlen),
            OpenError::BadLength { chunk: 1, .. }
        ));

        let other = DataKey::generate().unwrap();
        assert_eq!(
            open(&file, &id, &other).unwrap().error,
            Some(OpenError::Tampered {
                chunk: 0,
                offset: HEADER_LEN as u64
            })
        );
        let wrong_id = RecordingId::generate().unwrap();
        assert!(matches!(
            open(&file, &wrong_id, &dk),
            Err(OpenError::WrongRecording { .. })
        ));
        assert_eq!(
            open(b"RIFF....", &id, &dk).unwrap_err(),
            OpenError::NotARecording
        );
        let mut v2 = file.clone();
        v2[8] = 2;
        assert_eq!(open(&v2, &id, &dk).unwrap_err(), OpenError::Version(2));
    }

    #[test]
    fn resume_appends_the_final_chunk() {
        let id = RecordingId::generate().unwrap();
        let dk = DataKey::generate().unwrap();
        let mut s = Sealer::new(&id, &dk).unwrap();
        let mut file = s.header().to_vec();
        s.seal(b"one", false, &mut file);
        s.seal(b"two", false, &mut file);
        let whole = file.len();
        file.extend_from_slice(&[0, 0, 0]); // a torn write
        let o = open(&file, &id, &dk).unwrap();
        assert!(matches!(
            o.error,
            Some(OpenError::PartialChunk { chunk: 2, .. })
        ));
        file.truncate(o.valid_len as usize);
        assert_eq!(file.len(), whole);
        let mut r = Sealer::resume(&id, &dk, &file, o.chunks).unwrap();
        r.seal(b"", true, &mut file);
        assert_eq!(
            open(&file, &id, &dk).unwrap().complete().unwrap(),
            b"onetwo"
        );
    }
}
