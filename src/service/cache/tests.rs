//! The caches' unit tests: the memory per entry, and loads that straddle a change.
use super::*;

/// The process's resident memory in bytes (Linux).
fn rss() -> i64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<i64>().ok())
        .unwrap_or(0)
        * 1024
}

fn grant(cache: &AuthCache, i: u64) -> (SecretKey, Arc<TokenGrant>) {
    let grant = crate::service::grants::tests::grant(
        Uuid::from_u64_pair(i, i),
        Some(Uuid::from_u64_pair(2, 2)),
    );
    (cache.key(&Secret::generate()), grant)
}

/// Bytes per entry of what a replica holds for each token in use, as RSS grows, here and
/// with moka for comparison (docs/BENCHMARKS.md, "100,000 cached tokens"). Prints; run alone:
/// `cargo test --release --lib memory_per_entry -- --ignored --nocapture --test-threads 1`
#[test]
#[ignore = "prints a measurement"]
fn memory_per_entry() {
    const N: u64 = 100_000;
    let per = |before: i64| (rss() - before) as f64 / N as f64;
    let name = "bench";

    let cache = AuthCache::new(&CacheSettings::default());
    let before = rss();
    let grants: Vec<_> = (0..N).map(|i| grant(&cache, i)).collect();
    println!("TokenGrant in an Arc, alone: {:.0} B", per(before));

    let before = rss();
    for (key, grant) in &grants {
        cache.grants.insert(*key, Arc::clone(grant));
    }
    println!(
        "grants, quick_cache (secret key -> Arc) and their index: {:.0} B",
        per(before)
    );
    let before = rss();
    for i in 0..N {
        cache.apps.insert(
            AppKey::new(Uuid::from_u64_pair(i, i), name),
            AppStanding::plain(crate::domain::AppState::Allow),
        );
    }
    println!(
        "applications, quick_cache ((id, Box<str>) -> standing): {:.0} B",
        per(before)
    );

    let used = super::super::last_used::LastUsed::default();
    let before = rss();
    let allow = crate::domain::Decision::Allow {
        effective: crate::domain::Privilege::ReadOnly,
    };
    let now = chrono::Utc::now();
    for i in 0..N {
        used.record(Uuid::from_u64_pair(i, i), name, &allow, None, now);
    }
    println!("last used, flat maps: {:.0} B", per(before));
    // The shape it had before: a map of names per token (AppSeen's fields as a tuple).
    type Seen = (
        chrono::DateTime<chrono::Utc>,
        u64,
        u64,
        Option<std::net::IpAddr>,
    );
    type Token = (Option<chrono::DateTime<chrono::Utc>>, HashMap<String, Seen>);
    let mut nested: HashMap<Uuid, Token> = HashMap::new();
    let before = rss();
    for i in 0..N {
        let entry = nested.entry(Uuid::from_u64_pair(i, i)).or_default();
        entry.0 = Some(now);
        entry.1.insert(name.to_owned(), (now, 0, 1, None));
    }
    println!("last used, map of maps (before): {:.0} B", per(before));

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let moka_grants: moka::future::Cache<SecretKey, CachedGrant> =
            moka::future::Cache::builder().max_capacity(N * 2).build();
        let before = rss();
        for (key, grant) in &grants {
            moka_grants
                .insert(*key, CachedGrant::Known(Arc::clone(grant)))
                .await;
        }
        moka_grants.run_pending_tasks().await;
        println!("grants, moka (before): {:.0} B", per(before));
        let moka_apps: moka::future::Cache<(Uuid, String), AppStanding> =
            moka::future::Cache::builder().max_capacity(N * 2).build();
        let before = rss();
        for i in 0..N {
            moka_apps
                .insert(
                    (Uuid::from_u64_pair(i, i), name.to_owned()),
                    AppStanding::plain(crate::domain::AppState::Allow),
                )
                .await;
        }
        moka_apps.run_pending_tasks().await;
        println!("applications, moka (before): {:.0} B", per(before));
    });
    // quick_cache's capacity is approximate (split over shards): most, not all, stay.
    assert!(cache.grants.len() as u64 > N / 2);
}

#[test]
fn a_load_that_straddles_a_change_is_stale_and_one_after_it_is_not() {
    let mut recent = Recent::default();
    let token = StaleKey::Token(Uuid::new_v4());
    recent.note(token.clone(), 10);
    assert!(recent.changed_since(&token, 9));
    assert!(!recent.changed_since(&token, 10));
    assert!(!recent.changed_since(&StaleKey::Owner(Uuid::new_v4()), 0));
}

#[test]
fn past_capacity_old_loads_count_as_stale() {
    let mut recent = Recent::default();
    for i in 0..(RECENT_CAPACITY as i64 + 10) {
        recent.note(StaleKey::Token(Uuid::new_v4()), i + 1);
    }
    assert!(recent.changed_since(&StaleKey::Owner(Uuid::new_v4()), 5));
    assert!(!recent.changed_since(
        &StaleKey::Owner(Uuid::new_v4()),
        RECENT_CAPACITY as i64 + 10
    ));
}
