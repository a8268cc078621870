//! Token secrets: generated, parsed, digested and compared without ever being shown.
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// Characters in a secret: 32 hexadecimal digits in groups 8-4-4-4-12.
const SECRET_LEN: usize = 36;
/// Where the groups' hyphens are.
const HYPHENS: [usize; 4] = [8, 13, 18, 23];
/// `HYPHENS` as a mask over the secret's characters.
const HYPHEN_AT: [bool; SECRET_LEN] = {
    let mut at = [false; SECRET_LEN];
    let mut i = 0;
    while i < HYPHENS.len() {
        at[HYPHENS[i]] = true;
        i += 1;
    }
    at
};

/// A token secret in its canonical form (lower-case, UUID-shaped), held inline so that
/// parsing a presented one allocates nothing. `Debug` redacts it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret([u8; SECRET_LEN]);

/// Why a presented secret is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum SecretParseError {
    #[error("must not be empty")]
    Empty,
    #[error("must be UUID-shaped: 32 hexadecimal digits in groups 8-4-4-4-12")]
    NotUuidShaped,
}

impl Secret {
    /// A new secret: 122 random bits from the operating system's generator, as a UUID v4.
    pub fn generate() -> Self {
        let mut canonical = [0u8; SECRET_LEN];
        uuid::Uuid::new_v4()
            .hyphenated()
            .encode_lower(&mut canonical);
        Secret(canonical)
    }

    /// Accepts any 8-4-4-4-12 hexadecimal string: Circonus secrets are UUID-shaped but
    /// not always RFC 4122 (some carry version nibble 6), so the shape is checked, not the version.
    pub fn parse(presented: &str) -> Result<Self, SecretParseError> {
        Self::parse_bytes(presented.as_bytes())
    }

    /// `parse`, on bytes as they arrive: the Authorize request's reader checks the secret
    /// where it lies in the request, with no string made first. Anything that is not ASCII
    /// is not UUID-shaped.
    pub fn parse_bytes(presented: &[u8]) -> Result<Self, SecretParseError> {
        if presented.is_empty() {
            return Err(SecretParseError::Empty);
        }
        let Ok(bytes) = <&[u8; SECRET_LEN]>::try_from(presented) else {
            return Err(SecretParseError::NotUuidShaped);
        };
        // Lower-cased first, so a digit is one of 16 bytes. Every byte is checked without
        // branching, which the compiler turns into a few vector instructions (this runs on
        // every Authorize).
        let mut canonical = *bytes;
        canonical.make_ascii_lowercase();
        let shaped = canonical
            .iter()
            .zip(HYPHEN_AT)
            .fold(true, |shaped, (&b, hyphen)| {
                let digit = (b.wrapping_sub(b'0') < 10) | (b.wrapping_sub(b'a') < 6);
                shaped & ((hyphen & (b == b'-')) | (!hyphen & digit))
            });
        if !shaped {
            return Err(SecretParseError::NotUuidShaped);
        }
        Ok(Secret(canonical))
    }

    pub fn digest(&self) -> SecretDigest {
        SecretDigest(Sha256::digest(self.0).into())
    }

    /// The canonical form's bytes, for the cache's keyed hash.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret itself, for the one response that returns it.
    pub fn expose(&self) -> &str {
        // ok: only ASCII is ever held (`parse` checks it, `generate` writes it); an empty
        // string here would hand a caller a secret that is not theirs to notice.
        std::str::from_utf8(&self.0).expect("a secret holds only ASCII")
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// SHA-256 of a secret: what is stored and looked up. A fast hash is right because
/// the secret has 122 random bits; there is nothing to brute-force.
#[derive(Clone, Copy, Eq)]
pub struct SecretDigest(pub [u8; 32]);

impl SecretDigest {
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(SecretDigest)
    }
}

impl PartialEq for SecretDigest {
    /// Constant time, so a comparison leaks nothing of where two digests differ.
    fn eq(&self, other: &Self) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl std::hash::Hash for SecretDigest {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.hash(state);
    }
}

impl std::fmt::Debug for SecretDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretDigest(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_parse_and_differ() {
        let a = Secret::generate();
        let b = Secret::generate();
        assert_ne!(a, b);
        assert_eq!(Secret::parse(a.expose()).unwrap(), a);
        assert_ne!(a.digest(), b.digest());
    }

    #[test]
    fn accepts_circonus_shapes_and_normalises_case() {
        let s = Secret::parse("EC45E8A2-D6D9-624C-C21C-A83F573731C1").unwrap();
        assert_eq!(s.expose(), "ec45e8a2-d6d9-624c-c21c-a83f573731c1");
    }

    #[test]
    fn rejects_malformed() {
        assert_eq!(Secret::parse(""), Err(SecretParseError::Empty));
        for bad in [
            "abc-123",
            "ec45e8a2d6d9624cc21ca83f573731c1",
            "ec45e8a2-d6d9-624c-c21c-a83f573731cZ",
            "ec45e8a2-d6d9-624c-c21c-a83f573731c1 ",
        ] {
            assert_eq!(
                Secret::parse(bad),
                Err(SecretParseError::NotUuidShaped),
                "{bad}"
            );
        }
    }

    #[test]
    fn every_position_is_checked() {
        let good = "EC45e8a2-d6d9-624c-c21c-a83f573731c1";
        assert!(Secret::parse(good).is_ok());
        for at in 0..good.len() {
            let replacements: &[u8] = match HYPHENS.contains(&at) {
                true => b"0aA_ ",
                false => b"-gG:/@`{ ",
            };
            for &r in replacements {
                let mut bad = good.as_bytes().to_vec();
                bad[at] = r;
                let bad = String::from_utf8(bad).unwrap();
                assert_eq!(
                    Secret::parse(&bad),
                    Err(SecretParseError::NotUuidShaped),
                    "{bad}"
                );
            }
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let s = Secret::generate();
        assert!(!format!("{s:?}").contains(s.expose()));
        assert!(!format!("{:?}", s.digest()).contains("0x"));
    }
}
