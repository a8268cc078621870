//! Positions as callers see them: watch cursors, page tokens and revisions are sealed (AEAD)
//! with a key every replica shares, so they are opaque, unforgeable, valid on any replica,
//! and reveal nothing of how much happened where the caller may not look.
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hmac;
use ring::rand::{SecureRandom, SystemRandom};
use uuid::Uuid;

/// What a sealed position is for: one kind is never accepted as another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    WatchCursor,
    TokensPage,
    ApplicationsPage,
    MembersPage,
    AuditPage,
    /// A revision a mutation committed at; not bound to an account (Authorize must wait
    /// for it before it knows the token's account).
    Revision,
}

impl Purpose {
    fn tag(self) -> u8 {
        match self {
            Purpose::WatchCursor => 1,
            Purpose::TokensPage => 2,
            Purpose::ApplicationsPage => 3,
            Purpose::MembersPage => 4,
            Purpose::AuditPage => 5,
            Purpose::Revision => 6,
        }
    }
}

/// Format version, first byte of every sealed position.
const VERSION: u8 = 1;

/// Seals and opens positions.
pub struct Sealer {
    key: LessSafeKey,
    ids: hmac::Key,
    rng: SystemRandom,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(<redacted>)")
    }
}

fn aad(purpose: Purpose, account: Option<Uuid>) -> [u8; 18] {
    let mut aad = [0u8; 18];
    aad[0] = VERSION;
    aad[1] = purpose.tag();
    aad[2..].copy_from_slice(account.unwrap_or_default().as_bytes());
    aad
}

impl Sealer {
    /// A sealer over a 32-byte key: the cipher's key and, derived from it, the id key.
    pub fn new(key: &[u8; 32]) -> Self {
        let ids = hmac::Key::new(hmac::HMAC_SHA256, key);
        let derived = hmac::sign(&ids, b"api-tokens positions v1");
        let cipher = UnboundKey::new(&CHACHA20_POLY1305, &derived.as_ref()[..32])
            .map(LessSafeKey::new)
            // CHACHA20_POLY1305 takes exactly a 32-byte key, which is what is passed.
            .unwrap_or_else(|_| unreachable!("a 32-byte ChaCha20-Poly1305 key"));
        Sealer {
            key: cipher,
            ids,
            rng: SystemRandom::new(),
        }
    }

    /// A sealer with a random key: for a process of its own (tests, benchmarks).
    pub fn random() -> Self {
        let mut key = [0u8; 32];
        // The system's random source failing is not something to serve through.
        SystemRandom::new()
            .fill(&mut key)
            .unwrap_or_else(|_| panic!("the system random source failed"));
        Sealer::new(&key)
    }

    /// `position` sealed for `purpose` and `account`: a fresh random nonce each time, so two
    /// seals of one position differ and a heartbeat says nothing of what moved.
    pub fn seal(&self, purpose: Purpose, account: Option<Uuid>, position: i64) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        if self.rng.fill(&mut nonce).is_err() {
            // Never reuse a nonce: without randomness, refuse to seal (the caller gets
            // nothing to resume from, which is safe).
            return String::new();
        }
        let mut body = position.to_be_bytes().to_vec();
        let sealed = self.key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad(purpose, account)),
            &mut body,
        );
        if sealed.is_err() {
            return String::new();
        }
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len());
        out.push(VERSION);
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&body);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The position sealed in `text`, if this service sealed it for `purpose` and `account`.
    pub fn open(&self, purpose: Purpose, account: Option<Uuid>, text: &str) -> Option<i64> {
        let bytes = URL_SAFE_NO_PAD.decode(text).ok()?;
        let (&version, rest) = bytes.split_first()?;
        if version != VERSION || rest.len() < NONCE_LEN {
            return None;
        }
        let (nonce, sealed) = rest.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
        let mut sealed = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(purpose, account)), &mut sealed)
            .ok()?;
        let position = i64::from_be_bytes(<[u8; 8]>::try_from(&plain[..]).ok()?);
        (position >= 0).then_some(position)
    }

    /// A stable opaque id for a row of a server-wide sequence (audit events): the same row
    /// always gets the same id, and ids say nothing of the sequence.
    pub fn opaque_id(&self, account: Uuid, position: i64) -> String {
        let mut message = account.as_bytes().to_vec();
        message.extend_from_slice(&position.to_be_bytes());
        let tag = hmac::sign(&self.ids, &message);
        let mut id = [0u8; 16];
        id.copy_from_slice(&tag.as_ref()[..16]);
        Uuid::from_bytes(id).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_positions_open_only_for_their_purpose_and_account() {
        let sealer = Sealer::random();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let cursor = sealer.seal(Purpose::WatchCursor, Some(a), 42);
        assert_eq!(
            sealer.open(Purpose::WatchCursor, Some(a), &cursor),
            Some(42)
        );
        assert_eq!(sealer.open(Purpose::WatchCursor, Some(b), &cursor), None);
        assert_eq!(sealer.open(Purpose::TokensPage, Some(a), &cursor), None);
        assert_eq!(
            Sealer::random().open(Purpose::WatchCursor, Some(a), &cursor),
            None
        );
        assert_eq!(sealer.open(Purpose::WatchCursor, Some(a), "garbage"), None);
    }

    #[test]
    fn two_seals_of_one_position_differ() {
        let sealer = Sealer::random();
        let a = Uuid::new_v4();
        assert_ne!(
            sealer.seal(Purpose::WatchCursor, Some(a), 7),
            sealer.seal(Purpose::WatchCursor, Some(a), 7)
        );
    }

    #[test]
    fn flipping_any_byte_is_refused() {
        let sealer = Sealer::random();
        let a = Uuid::new_v4();
        let bytes = URL_SAFE_NO_PAD
            .decode(sealer.seal(Purpose::AuditPage, Some(a), 9))
            .unwrap();
        for i in 0..bytes.len() {
            let mut forged = bytes.clone();
            forged[i] ^= 1;
            let forged = URL_SAFE_NO_PAD.encode(forged);
            assert_eq!(
                sealer.open(Purpose::AuditPage, Some(a), &forged),
                None,
                "byte {i}"
            );
        }
    }

    #[test]
    fn opaque_ids_are_stable_and_distinct() {
        let sealer = Sealer::random();
        let a = Uuid::new_v4();
        assert_eq!(sealer.opaque_id(a, 1), sealer.opaque_id(a, 1));
        assert_ne!(sealer.opaque_id(a, 1), sealer.opaque_id(a, 2));
    }
}
