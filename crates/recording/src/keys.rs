//! Keys: a random data key per recording, wrapped by a key-encryption key (KEK) named by a key
//! id. KEKs come from a [`KeyProvider`]; [`KeyRing`] is the one built from configuration (a
//! file or an environment variable per key), and a KMS or Vault client can implement the
//! trait instead.

use std::collections::BTreeMap;
use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::RecordingId;

/// Length of a data key and of a KEK: AES-256.
pub const KEY_LEN: usize = 32;

/// Why a key could not be loaded, wrapped or unwrapped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// No KEK has this id.
    #[error("no key-encryption key named {0:?}")]
    UnknownKey(String),
    /// The KEK with this id does not open the wrapped data key: the KEK is not the one that
    /// wrapped it, or the wrapped key was altered.
    #[error("the data key does not unwrap with key-encryption key {0:?} (wrong key)")]
    WrongKey(String),
    /// The recording's data key was deleted (crypto-shredded).
    #[error("the data key was deleted: the recording is shredded")]
    Shredded,
    /// A KEK's material is not 32 bytes of hex.
    #[error("key {id:?}: {message}")]
    BadMaterial {
        /// The key id.
        id: String,
        /// What is wrong.
        message: String,
    },
    /// The system random generator failed.
    #[error("the system random generator failed")]
    Random,
}

/// A source of key-encryption keys.
pub trait KeyProvider: Send + Sync + fmt::Debug {
    /// The id of the KEK that wraps new data keys.
    fn current(&self) -> &str;
    /// The KEK named `id`.
    fn kek(&self, id: &str) -> Result<&Kek, KeyError>;
}

/// One key-encryption key.
pub struct Kek {
    id: String,
    key: LessSafeKey,
}

impl fmt::Debug for Kek {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Kek").field("id", &self.id).finish()
    }
}

/// A recording's data key (never stored in the clear).
pub struct DataKey([u8; KEY_LEN]);

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey(..)")
    }
}

impl DataKey {
    /// A fresh random data key.
    pub fn generate() -> Result<Self, KeyError> {
        let mut k = [0u8; KEY_LEN];
        random(&mut k)?;
        Ok(Self(k))
    }

    pub(crate) fn aead(&self) -> LessSafeKey {
        // 32 bytes is exactly AES-256's key length, so the key is always accepted.
        LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &self.0).expect("32-byte AES-256 key"))
    }
}

/// Fills `buf` from the system's secure random generator.
pub(crate) fn random(buf: &mut [u8]) -> Result<(), KeyError> {
    SystemRandom::new().fill(buf).map_err(|_| KeyError::Random)
}

/// What binds a wrapped data key to its recording and KEK.
fn wrap_aad(recording: &RecordingId, kek: &str) -> Vec<u8> {
    let mut aad = b"crest-dek-v1".to_vec();
    aad.extend_from_slice(recording.as_bytes());
    aad.extend_from_slice(kek.as_bytes());
    aad
}

impl Kek {
    /// A KEK from 32 bytes of key material.
    pub fn new(id: &str, material: &[u8]) -> Result<Self, KeyError> {
        let bad = |message: &str| KeyError::BadMaterial {
            id: id.to_owned(),
            message: message.to_owned(),
        };
        if material.len() != KEY_LEN {
            return Err(bad("must be 32 bytes (64 hex digits)"));
        }
        let key = UnboundKey::new(&AES_256_GCM, material).map_err(|_| bad("rejected"))?;
        Ok(Self {
            id: id.to_owned(),
            key: LessSafeKey::new(key),
        })
    }

    /// A KEK from 64 hex digits (surrounding white space ignored).
    pub fn from_hex(id: &str, text: &str) -> Result<Self, KeyError> {
        let bytes = hex::decode(text.trim()).map_err(|e| KeyError::BadMaterial {
            id: id.to_owned(),
            message: format!("not hex: {e}"),
        })?;
        Self::new(id, &bytes)
    }

    /// The key id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Wraps `dk` for `recording`: a random nonce followed by the sealed key and its tag.
    pub fn wrap(&self, recording: &RecordingId, dk: &DataKey) -> Result<Vec<u8>, KeyError> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut sealed = dk.0.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(wrap_aad(recording, &self.id)),
                &mut sealed,
            )
            .map_err(|_| KeyError::Random)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Opens a key [`wrap`](Self::wrap) made for `recording`.
    pub fn unwrap(&self, recording: &RecordingId, wrapped: &[u8]) -> Result<DataKey, KeyError> {
        let wrong = || KeyError::WrongKey(self.id.clone());
        if wrapped.len() != NONCE_LEN + KEY_LEN + AES_256_GCM.tag_len() {
            return Err(wrong());
        }
        let (nonce, sealed) = wrapped.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(wrap_aad(recording, &self.id)), &mut buf)
            .map_err(|_| wrong())?;
        let mut k = [0u8; KEY_LEN];
        k.copy_from_slice(plain);
        Ok(DataKey(k))
    }
}

/// The KEKs from configuration.
#[derive(Debug)]
pub struct KeyRing {
    current: String,
    keys: BTreeMap<String, Kek>,
}

impl KeyRing {
    /// A ring whose `current` key wraps new data keys; `current` must be among `keys`.
    pub fn new(current: &str, keys: Vec<Kek>) -> Result<Self, KeyError> {
        let keys: BTreeMap<_, _> = keys.into_iter().map(|k| (k.id.clone(), k)).collect();
        if !keys.contains_key(current) {
            return Err(KeyError::UnknownKey(current.to_owned()));
        }
        Ok(Self {
            current: current.to_owned(),
            keys,
        })
    }

    /// The ids of every key in the ring.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }
}

impl KeyProvider for KeyRing {
    fn current(&self) -> &str {
        &self.current
    }

    fn kek(&self, id: &str) -> Result<&Kek, KeyError> {
        self.keys
            .get(id)
            .ok_or_else(|| KeyError::UnknownKey(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kek(id: &str, b: u8) -> Kek {
        Kek::new(id, &[b; KEY_LEN]).unwrap()
    }

    #[test]
    fn wrap_unwrap_and_the_ways_it_fails() {
        let rec = RecordingId::from_bytes([7; 16]);
        let other = RecordingId::from_bytes([8; 16]);
        let dk = DataKey::generate().unwrap();
        let k1 = kek("k1", 1);
        let w = k1.wrap(&rec, &dk).unwrap();
        assert_eq!(k1.unwrap(&rec, &w).unwrap().0, dk.0);
        // Another KEK under the same id, another recording, a flipped byte: wrong key.
        assert_eq!(
            kek("k1", 2).unwrap(&rec, &w).unwrap_err(),
            KeyError::WrongKey("k1".into())
        );
        assert!(k1.unwrap(&other, &w).is_err());
        let mut bad = w.clone();
        bad[20] ^= 1;
        assert!(k1.unwrap(&rec, &bad).is_err());
        assert!(k1.unwrap(&rec, &w[..10]).is_err());
        // A KEK named differently (rotation target) cannot open k1's wrapping either.
        assert!(kek("k2", 1).unwrap(&rec, &w).is_err());
    }

    #[test]
    fn key_material_and_ring() {
        assert!(matches!(
            Kek::from_hex("a", "abcd"),
            Err(KeyError::BadMaterial { .. })
        ));
        assert!(matches!(
            Kek::from_hex("a", "zz"),
            Err(KeyError::BadMaterial { .. })
        ));
        let hex64 = "00".repeat(32);
        assert!(Kek::from_hex("a", &format!(" {hex64}\n")).is_ok());
        let ring = KeyRing::new("k2", vec![kek("k1", 1), kek("k2", 2)]).unwrap();
        assert_eq!(ring.current(), "k2");
        assert_eq!(ring.ids().collect::<Vec<_>>(), ["k1", "k2"]);
        assert_eq!(
            ring.kek("k9").unwrap_err(),
            KeyError::UnknownKey("k9".into())
        );
        assert!(KeyRing::new("k3", vec![kek("k1", 1)]).is_err());
    }
}
