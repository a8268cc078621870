//! The grant cache: what each presented secret grants, keyed by a keyed hash of the secret,
//! with an index from each token and each owner to their entries, so a change forgets exactly
//! those entries instead of scanning the whole cache.
//!
//! Why a keyed hash and not the secret's SHA-256 digest: a warm Authorize then runs no SHA-256
//! (about 3,500 instructions in software, a tenth of that with the CPU's SHA extensions); the
//! digest is computed only on a miss, to look the secret up in the database, where it is
//! compared with the stored digest as before. What makes a hit safe:
//! - The key is SipHash-2-4 with 128-bit output under a 128-bit key drawn from the operating
//!   system's generator when the process starts. It is never stored, logged or sent, and dies
//!   with the process. SipHash is a pseudo-random function: without the key, its output for a
//!   chosen input cannot be predicted, so a caller who does not know a cached secret lands on
//!   its entry with probability (entries held) / 2^128 per guess: 2^-111 with 100,000 tokens
//!   cached. Two real secrets share a key with probability about n² / 2^129 (2^-95 at
//!   100,000), and the secrets themselves carry 122 random bits.
//! - The comparison of two keys does not branch on where they differ, and what the table's
//!   timing could tell about the keys tells nothing of the secrets or the hash key (a PRF's
//!   outputs reveal neither).
//! - Neither the secret nor anything that recovers it is kept: only the keyed hash, which
//!   without the process's key is no more than a random number.
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex, MutexGuard};

use hashbrown::HashMap;
use quick_cache::sync::Cache;
use quick_cache::{DefaultHashBuilder, Lifecycle, UnitWeighter};
use ring::rand::{SecureRandom, SystemRandom};
use siphasher::sip128::SipHasher24;
use uuid::Uuid;

use crate::domain::{Secret, TokenGrant};

/// A presented secret's key in the caches: its keyed hash (see the module's comment).
#[derive(Clone, Copy)]
pub(crate) struct SecretKey([u64; 2]);

impl PartialEq for SecretKey {
    /// One comparison of the folded difference, with no early exit.
    fn eq(&self, other: &Self) -> bool {
        ((self.0[0] ^ other.0[0]) | (self.0[1] ^ other.0[1])) == 0
    }
}

impl Eq for SecretKey {}

impl Hash for SecretKey {
    /// One half: the keyed hash's output is already uniform.
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write_u64(self.0[0]);
    }
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// The keyed hash, with this process's key. `Debug` does not show the key.
#[derive(Clone)]
pub(crate) struct SecretHasher(SipHasher24);

impl SecretHasher {
    /// A hasher with a key drawn from the operating system's generator.
    pub fn random() -> Self {
        let mut key = [0u8; 16];
        if SystemRandom::new().fill(&mut key).is_err() {
            // Where ring cannot read the generator, the same source through another door:
            // the bytes of two random UUIDs (122 random bits each), as secrets are made.
            let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
            for (k, (x, y)) in key
                .iter_mut()
                .zip(a.as_bytes().iter().zip(b.as_bytes().iter().rev()))
            {
                *k = x ^ y;
            }
        }
        SecretHasher(SipHasher24::new_with_key(&key))
    }

    pub fn key(&self, secret: &Secret) -> SecretKey {
        let (high, low) = self.0.hash(secret.as_bytes()).as_u64();
        SecretKey([high, low])
    }
}

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(<redacted>)")
    }
}

/// One or a few entries' keys: a token has one secret, two while a rotation overlaps; an
/// owner has as many as their tokens in use.
#[derive(Debug)]
enum Keys {
    One(SecretKey),
    Many(Vec<SecretKey>),
}

impl Keys {
    fn push(&mut self, key: SecretKey) {
        match self {
            Keys::One(first) => *self = Keys::Many(vec![*first, key]),
            Keys::Many(keys) => keys.push(key),
        }
    }

    /// Removes one occurrence of `key`; true when none is left.
    fn remove(&mut self, key: &SecretKey) -> bool {
        match self {
            Keys::One(only) => only == key,
            Keys::Many(keys) => {
                if let Some(at) = keys.iter().position(|k| k == key) {
                    keys.swap_remove(at);
                }
                keys.is_empty()
            }
        }
    }

    fn into_vec(self) -> Vec<SecretKey> {
        match self {
            Keys::One(key) => vec![key],
            Keys::Many(keys) => keys,
        }
    }
}

/// Which entries each token and each owner has in the cache.
#[derive(Debug, Default)]
struct Index {
    tokens: HashMap<Uuid, Keys>,
    owners: HashMap<Uuid, Keys>,
}

fn add(map: &mut HashMap<Uuid, Keys>, id: Uuid, key: SecretKey) {
    match map.get_mut(&id) {
        Some(keys) => keys.push(key),
        None => {
            map.insert(id, Keys::One(key));
        }
    }
}

fn remove(map: &mut HashMap<Uuid, Keys>, id: Uuid, key: &SecretKey) {
    if map.get_mut(&id).is_some_and(|keys| keys.remove(key)) {
        map.remove(&id);
    }
}

impl Index {
    fn add(&mut self, key: SecretKey, grant: &TokenGrant) {
        add(&mut self.tokens, grant.token_id, key);
        if let Some(owner) = grant.owner_id {
            add(&mut self.owners, owner, key);
        }
    }

    fn remove(&mut self, key: &SecretKey, grant: &TokenGrant) {
        remove(&mut self.tokens, grant.token_id, key);
        if let Some(owner) = grant.owner_id {
            remove(&mut self.owners, owner, key);
        }
    }
}

/// Hands the entries the cache evicts back to the writer, which holds the index's lock.
#[derive(Clone, Default)]
pub(crate) struct Evictions;

type Grant = Arc<TokenGrant>;

impl Lifecycle<SecretKey, Grant> for Evictions {
    type RequestState = Vec<(SecretKey, Grant)>;

    fn on_evict(&self, evicted: &mut Self::RequestState, key: SecretKey, grant: Grant) {
        evicted.push((key, grant));
    }
}

/// Whose entries to forget.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Holder {
    Token(Uuid),
    Owner(Uuid),
}

/// Grants by secret key, bounded by size, and the index of their tokens and owners. Lookups
/// take no lock of ours; every write holds the index's lock for the whole change, so each
/// entry in the cache is in the index (a load's placeholder is not yet, and a change that
/// races a load is caught by the caller's staleness check, `AuthCache::drop_if_stale_grant`).
pub(crate) struct Grants {
    map: Cache<SecretKey, Grant, UnitWeighter, DefaultHashBuilder, Evictions>,
    index: Mutex<Index>,
}

/// A load under way for a key: holds its place so concurrent misses wait for it.
pub(crate) type Loading<'a> = quick_cache::sync::PlaceholderGuard<
    'a,
    SecretKey,
    Grant,
    UnitWeighter,
    DefaultHashBuilder,
    Evictions,
>;

impl Grants {
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        Grants {
            map: Cache::with(
                capacity,
                capacity as u64,
                UnitWeighter,
                DefaultHashBuilder::default(),
                Evictions,
            ),
            index: Mutex::default(),
        }
    }

    fn index(&self) -> MutexGuard<'_, Index> {
        // A poisoned lock only means a panic mid-update; the index still over-approximates.
        self.index.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &SecretKey) -> Option<Grant> {
        self.map.get(key)
    }

    /// The cached grant, or the place to put one (concurrent misses of a key share one load).
    pub async fn get_or_loading(&self, key: &SecretKey) -> Result<Grant, Loading<'_>> {
        self.map.get_value_or_guard_async(key).await
    }

    /// Keeps what a load found in its place (nothing, if the place was taken away meanwhile).
    pub fn keep(&self, loading: Loading<'_>, key: SecretKey, grant: Grant) {
        let mut index = self.index();
        let mut evicted = Vec::new();
        index.add(key, &grant);
        if loading
            .insert_with_lifecycle(Arc::clone(&grant), &mut evicted)
            .is_err()
        {
            index.remove(&key, &grant);
        }
        for (key, grant) in &evicted {
            index.remove(key, grant);
        }
    }

    /// Inserts outright (tests and measurements; the hot path keeps through `keep`).
    #[cfg(test)]
    pub fn insert(&self, key: SecretKey, grant: Grant) {
        let mut index = self.index();
        let mut evicted = Vec::new();
        index.add(key, &grant);
        self.map.insert_with_lifecycle(key, grant, &mut evicted);
        for (key, grant) in &evicted {
            index.remove(key, grant);
        }
    }

    pub fn remove(&self, key: &SecretKey) {
        let mut index = self.index();
        if let Some((key, grant)) = self.map.remove(key) {
            index.remove(&key, &grant);
        }
    }

    /// Forgets every entry of a token or of an owner's tokens. Returns how many entries it
    /// looked at: the holder's own, whatever the cache's size.
    pub fn forget(&self, holder: Holder) -> usize {
        let mut index = self.index();
        let keys = match holder {
            Holder::Token(id) => index.tokens.remove(&id),
            Holder::Owner(id) => index.owners.remove(&id),
        };
        let keys = keys.map(Keys::into_vec).unwrap_or_default();
        for key in &keys {
            if let Some((key, grant)) = self.map.remove(key) {
                // The entry's other holder (the owner of a token, or the token of an owner's entry).
                match holder {
                    Holder::Token(_) => {
                        if let Some(owner) = grant.owner_id {
                            remove(&mut index.owners, owner, &key);
                        }
                    }
                    Holder::Owner(_) => remove(&mut index.tokens, grant.token_id, &key),
                }
            }
        }
        keys.len()
    }

    pub fn clear(&self) {
        let mut index = self.index();
        self.map.clear();
        *index = Index::default();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Entries the index holds for tokens and for owners (for tests: they follow the cache).
    #[cfg(test)]
    pub fn indexed(&self) -> (usize, usize) {
        let index = self.index();
        let count = |map: &HashMap<Uuid, Keys>| {
            map.values()
                .map(|k| match k {
                    Keys::One(_) => 1,
                    Keys::Many(v) => v.len(),
                })
                .sum()
        };
        (count(&index.tokens), count(&index.owners))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::domain::{AppState, OwnerStatus, Privilege, SecretUse, TokenType};

    /// A Read-Only user token's grant, its owner an Admin: the one the caches' tests hold.
    pub(crate) fn grant(token: Uuid, owner: Option<Uuid>) -> Grant {
        Arc::new(TokenGrant {
            token_id: token,
            account_id: Uuid::from_u64_pair(1, 1),
            token_type: TokenType::User,
            owner_id: owner,
            privilege: Privilege::ReadOnly,
            default_app_state: AppState::Allow,
            retired: false,
            owner: OwnerStatus::Member(Privilege::Admin),
            bound_ranges: Default::default(),
            expires_at: None,
            secret: SecretUse::Current,
        })
    }

    #[test]
    fn keys_are_keyed_per_process_and_follow_the_canonical_secret() {
        let secret = Secret::parse("EC45E8A2-D6D9-624C-C21C-A83F573731C1").unwrap();
        let lower = Secret::parse("ec45e8a2-d6d9-624c-c21c-a83f573731c1").unwrap();
        let (a, b) = (SecretHasher::random(), SecretHasher::random());
        assert_eq!(a.key(&secret), a.key(&lower));
        assert_ne!(
            a.key(&secret),
            b.key(&secret),
            "each process draws its own key"
        );
        assert_ne!(a.key(&secret), a.key(&Secret::generate()));
        assert_eq!(
            format!("{a:?} {:?}", a.key(&secret)),
            "SecretHasher(<redacted>) SecretKey(<redacted>)"
        );
    }

    /// A token's change forgets its own entries by the index: it looks at as many entries as
    /// the token has, however many other tokens are cached.
    #[test]
    fn forgetting_a_token_visits_only_its_own_entries() {
        let hasher = SecretHasher::random();
        let grants = Grants::new(100_000);
        let owner = Uuid::new_v4();
        for _ in 0..10_000 {
            grants.insert(
                hasher.key(&Secret::generate()),
                grant(Uuid::new_v4(), Some(owner)),
            );
        }
        let rotating = Uuid::new_v4();
        let (current, previous) = (Secret::generate(), Secret::generate());
        grants.insert(hasher.key(&current), grant(rotating, None));
        grants.insert(hasher.key(&previous), grant(rotating, None));
        assert_eq!(grants.len(), 10_002);

        assert_eq!(grants.forget(Holder::Token(rotating)), 2);
        assert!(grants.get(&hasher.key(&current)).is_none());
        assert!(grants.get(&hasher.key(&previous)).is_none());
        assert_eq!(grants.len(), 10_000);
        assert_eq!(grants.forget(Holder::Token(rotating)), 0);
        assert_eq!(grants.indexed(), (10_000, 10_000));

        assert_eq!(grants.forget(Holder::Owner(owner)), 10_000);
        assert_eq!(grants.len(), 0);
        assert_eq!(grants.indexed(), (0, 0));
    }

    /// Entries the cache evicts or that are removed leave the index too, so it never outgrows
    /// the cache.
    #[test]
    fn the_index_follows_evictions_and_removals() {
        let hasher = SecretHasher::random();
        let grants = Grants::new(64);
        let owner = Uuid::new_v4();
        let keys: Vec<_> = (0..1_000)
            .map(|_| hasher.key(&Secret::generate()))
            .collect();
        for key in &keys {
            grants.insert(*key, grant(Uuid::new_v4(), Some(owner)));
        }
        assert!(grants.len() < 1_000, "the cache evicted");
        assert_eq!(grants.indexed(), (grants.len(), grants.len()));
        for key in &keys {
            grants.remove(key);
        }
        assert_eq!((grants.len(), grants.indexed()), (0, (0, 0)));
        grants.insert(keys[0], grant(Uuid::new_v4(), None));
        grants.clear();
        assert_eq!((grants.len(), grants.indexed()), (0, (0, 0)));
    }
}
