//! The hot tier: sealed recordings on local disk, synced at every chunk boundary, so a crash
//! (kill -9, power loss) leaves everything up to the last chunk readable; recovery cuts a torn
//! tail and seals the final chunk.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};

use crate::RecordingId;
use crate::keys::DataKey;
use crate::seal::{OpenError, Sealer, open};

/// The hot tier's directory.
#[derive(Debug, Clone)]
pub struct HotTier {
    dir: PathBuf,
}

/// A recording being written to the hot tier.
#[derive(Debug)]
pub struct HotFile {
    file: File,
}

impl HotFile {
    /// Appends `bytes` (a batch ending at a chunk boundary) and syncs the file's data.
    pub fn append(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.file.write_all(bytes)?;
        self.file.sync_data()
    }
}

/// What recovery did to a recording a crash left open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recovered {
    /// What the file looked like.
    pub found: Option<OpenError>,
    /// Whole chunks kept.
    pub chunks: u64,
    /// Bytes cut from a torn tail.
    pub cut: u64,
    /// The recovered plaintext (to measure its length).
    pub plain: Vec<u8>,
}

impl HotTier {
    /// The tier in `dir` (created if missing).
    pub fn new(dir: impl Into<PathBuf>) -> io::Result<Self> {
        let dir = dir.into();
        fs::create_dir_all(&dir)?;
        Ok(Self { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where recording `id` lives.
    pub fn path(&self, id: &RecordingId) -> PathBuf {
        self.dir.join(format!("{id}.crec"))
    }

    /// Creates the file of a new recording (refusing to overwrite one) and syncs the
    /// directory, so the file itself survives a crash.
    pub fn create(&self, id: &RecordingId) -> io::Result<HotFile> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(self.path(id))?;
        File::open(&self.dir)?.sync_all()?;
        Ok(HotFile { file })
    }

    /// Reads recording `id`.
    pub fn read(&self, id: &RecordingId) -> io::Result<Vec<u8>> {
        fs::read(self.path(id))
    }

    /// Whether recording `id` is here.
    pub fn contains(&self, id: &RecordingId) -> bool {
        self.path(id).exists()
    }

    /// Deletes recording `id`; a file already gone is not an error.
    pub fn delete(&self, id: &RecordingId) -> io::Result<()> {
        match fs::remove_file(self.path(id)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// The ids of every recording file here.
    pub fn list(&self) -> io::Result<Vec<RecordingId>> {
        let mut out = Vec::new();
        for e in fs::read_dir(&self.dir)? {
            let name = e?.file_name();
            if let Some(id) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".crec"))
                .and_then(|n| n.parse().ok())
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    /// Makes a recording a crash left open whole again: keeps every chunk that opens, cuts a
    /// torn tail, seals an empty final chunk and syncs. A file that never got its header is
    /// given one. A file that is already complete is left as it is.
    pub fn recover(&self, id: &RecordingId, dk: &DataKey) -> Result<Recovered, RecoverError> {
        let path = self.path(id);
        let mut data = match fs::read(&path) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(RecoverError::Io(e)),
        };
        let (mut sealer, opened, found) = if data.len() < crate::seal::HEADER_LEN {
            let s = Sealer::new(id, dk).map_err(|_| RecoverError::Random)?;
            data = s.header().to_vec();
            (s, None, Some(OpenError::NotARecording))
        } else {
            let o = open(&data, id, dk).map_err(RecoverError::Open)?;
            match &o.error {
                None => {
                    return Ok(Recovered {
                        found: None,
                        chunks: o.chunks,
                        cut: 0,
                        plain: o.plain,
                    });
                }
                Some(OpenError::Truncated { .. } | OpenError::PartialChunk { .. }) => {}
                // Altered or reordered chunks are evidence, not a crash: leave them.
                Some(e) => return Err(RecoverError::Open(e.clone())),
            }
            let s = Sealer::resume(id, dk, &data, o.chunks).map_err(RecoverError::Open)?;
            let found = o.error.clone();
            (s, Some(o), found)
        };
        let valid = opened.as_ref().map_or(data.len() as u64, |o| o.valid_len);
        let cut = data.len() as u64 - valid;
        data.truncate(valid as usize);
        let mut tail = Vec::new();
        sealer.seal(&[], true, &mut tail);
        data.extend_from_slice(&tail);
        // Write the whole file anew beside the old one, then rename over it: a crash during
        // recovery leaves one or the other, never a mix.
        let tmp = path.with_extension("crec.recover");
        {
            let mut f = File::create(&tmp).map_err(RecoverError::Io)?;
            f.write_all(&data).map_err(RecoverError::Io)?;
            f.sync_all().map_err(RecoverError::Io)?;
        }
        fs::rename(&tmp, &path).map_err(RecoverError::Io)?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(RecoverError::Io)?;
        Ok(Recovered {
            found,
            chunks: sealer.chunks(),
            cut,
            plain: opened.map(|o| o.plain).unwrap_or_default(),
        })
    }
}

/// Why a recording could not be recovered.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RecoverError {
    /// Reading or writing the file failed.
    #[error("hot tier: {0}")]
    Io(#[from] io::Error),
    /// The file is damaged in a way no crash causes.
    #[error(transparent)]
    Open(OpenError),
    /// No random nonce base for a new header.
    #[error("the system random generator failed")]
    Random,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recover_cuts_the_torn_tail_and_seals() {
        let dir = tempfile::tempdir().unwrap();
        let hot = HotTier::new(dir.path()).unwrap();
        let id = RecordingId::generate().unwrap();
        let dk = DataKey::generate().unwrap();
        let mut s = Sealer::new(&id, &dk).unwrap();
        let mut f = hot.create(&id).unwrap();
        let mut buf = s.header().to_vec();
        s.seal(b"chunk one ", false, &mut buf);
        s.seal(b"chunk two", false, &mut buf);
        f.append(&buf).unwrap();
        f.append(&[0, 0, 0, 40, 1, 2]).unwrap(); // a torn write
        assert!(hot.create(&id).is_err(), "never overwrites");
        let r = hot.recover(&id, &dk).unwrap();
        assert!(matches!(
            r.found,
            Some(OpenError::PartialChunk { chunk: 2, .. })
        ));
        assert_eq!((r.chunks, r.cut), (3, 6));
        let data = hot.read(&id).unwrap();
        assert_eq!(
            open(&data, &id, &dk).unwrap().complete().unwrap(),
            b"chunk one chunk two"
        );
        // Complete now: a second recovery changes nothing.
        let again = hot.recover(&id, &dk).unwrap();
        assert_eq!((again.found, again.cut), (None, 0));
        assert_eq!(hot.list().unwrap(), [id]);

        // A file that never got its header.
        let id2 = RecordingId::generate().unwrap();
        drop(hot.create(&id2).unwrap());
        let r = hot.recover(&id2, &dk).unwrap();
        assert_eq!(r.found, Some(OpenError::NotARecording));
        let data = hot.read(&id2).unwrap();
        assert!(
            open(&data, &id2, &dk)
                .unwrap()
                .complete()
                .unwrap()
                .is_empty()
        );

        // Tampering is not a crash: recovery refuses.
        let mut bad = hot.read(&id).unwrap();
        let n = bad.len();
        bad[n - 5] ^= 1;
        fs::write(hot.path(&id), &bad).unwrap();
        assert!(matches!(
            hot.recover(&id, &dk),
            Err(RecoverError::Open(OpenError::Tampered { .. }))
        ));
        hot.delete(&id).unwrap();
        hot.delete(&id).unwrap();
    }
}
