//! PostgreSQL taken away under load, on a private PostgreSQL server of the bench's own:
//!
//! 1. **One replica cut off.** Replicas A and B share the database; B reaches it through a
//!    proxy the bench cuts. A token warm on B is retired on A meanwhile. When B's connection
//!    comes back, how long until B refuses it (B is asked back to back).
//! 2. **The database stopped** for `--outage-seconds` (`pg_ctl stop -m immediate`) while
//!    `--workers` callers keep asking A: warm tokens (allowed, and one retired), cold tokens
//!    (made but never used on A) and unknown secrets. Warm decisions must stay exact until
//!    `--max-staleness-secs` after A's last read of the log and then be UNAVAILABLE; cold ones
//!    UNAVAILABLE at once; any other answer is wrong.
//!
//! cargo build --release --bin api-tokens --example outage_bench
//! target/release/examples/outage_bench [--outage-seconds 30] [--max-staleness-secs 20] [--workers 8]
mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use api_tokens::domain::Secret;
use api_tokens::grpc::pb::{self, authorize_service_client::AuthorizeServiceClient};
use support::cluster::PrivateCluster;
use support::proxy::{CuttableProxy, address_of};
use support::{Server, bootstrap, create_token, percentile, retire, user_token};
use tonic::Code;
use tonic::transport::Channel;

struct Args {
    outage: Duration,
    max_staleness: Duration,
    workers: usize,
}

fn args() -> Args {
    let mut args = Args {
        outage: Duration::from_secs(30),
        max_staleness: Duration::from_secs(20),
        workers: 8,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value: u64 = it
            .next()
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{flag} needs a number"));
        match flag.as_str() {
            "--outage-seconds" => args.outage = Duration::from_secs(value),
            "--max-staleness-secs" => args.max_staleness = Duration::from_secs(value),
            "--workers" => args.workers = value.max(1) as usize,
            other => panic!("unknown flag {other}"),
        }
    }
    args
}

/// What a call may be, and the only decision it may get besides UNAVAILABLE.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Warm,
    Retired,
    Cold,
    Unknown,
}

impl Kind {
    fn exact(self) -> pb::Decision {
        match self {
            Kind::Warm | Kind::Cold => pb::Decision::Allow,
            Kind::Retired => pb::Decision::Retired,
            Kind::Unknown => pb::Decision::UnknownToken,
        }
    }
}

/// One call: when it was sent (since the outage began; negative before), its kind, whether it
/// was answered exactly (`Some(true)`), UNAVAILABLE (`Some(false)`) or wrongly (`None`), and
/// how long it took.
struct Seen {
    at: f64,
    kind: Kind,
    exact: Option<bool>,
    took: Duration,
    /// What a wrong answer was, to say it in the report.
    wrong: Option<String>,
}

async fn create(channel: &Channel, admin: &str) -> (String, String) {
    let allowed = user_token(pb::Privilege::Unspecified, pb::AppState::Allow);
    create_token(channel, admin, allowed).await
}

async fn decide(
    client: &mut AuthorizeServiceClient<Channel>,
    secret: &str,
) -> Result<pb::Decision, Code> {
    let mut request = tonic::Request::new(pb::AuthorizeRequest {
        token: secret.into(),
        app_name: "outage-bench".into(),
        required_privilege: pb::Privilege::ReadOnly.into(),
        ..Default::default()
    });
    // A caller's own deadline, as the callers have: a slow answer shows as an error.
    request.set_timeout(Duration::from_secs(2));
    client
        .authorize(request)
        .await
        .map(|r| r.into_inner().decision())
        .map_err(|s| s.code())
}

/// Phase 1: B cut off while A retires a token warm on B; time from reconnecting to refusing.
async fn cut_off_replica(cluster: &PrivateCluster, dir: &std::path::Path, admin: &str) {
    let url = cluster.admin_url();
    let proxy = CuttableProxy::start(address_of(&url)).await;
    let a = Server::start(dir, &url, &[]).await;
    let b = Server::start(dir, &proxy.route(&url), &["--db-connect-timeout-secs", "1"]).await;
    let mut on_b = AuthorizeServiceClient::new(b.channel.clone());
    let (id, secret) = create(&a.channel, admin).await;
    let (_, other) = create(&a.channel, admin).await;
    // Twice: the first use records the name, and B may forget that first load when its
    // follower applies the record (the load began before it); the second is from memory.
    for s in [&secret, &other, &secret, &other] {
        assert_eq!(decide(&mut on_b, s).await, Ok(pb::Decision::Allow));
    }
    proxy.cut();
    retire(&a.channel, admin, &id).await;
    // Long enough for B to find its log unreadable (its poll is 250 ms).
    tokio::time::sleep(Duration::from_secs(2)).await;
    let during = decide(&mut on_b, &secret).await;
    let other_during = decide(&mut on_b, &other).await;
    proxy.restore();
    let restored = Instant::now();
    let mut asks = 0u64;
    let refused_after = loop {
        asks += 1;
        if decide(&mut on_b, &secret).await == Ok(pb::Decision::Retired) {
            break restored.elapsed();
        }
        assert!(
            restored.elapsed() < Duration::from_secs(30),
            "B never refused it"
        );
    };
    println!("B cut off from the database, the token retired on A meanwhile:");
    println!(
        "  on B while cut off: the retired token {during:?}, another warm token {other_during:?} (memory, within the maximum staleness)"
    );
    println!(
        "  refused on B {refused_after:.1?} after its connection came back ({asks} checks); target <= 1 s"
    );
    println!(
        "  the other warm token on B afterwards: {:?}",
        decide(&mut on_b, &other).await
    );
}

#[tokio::main]
async fn main() {
    let args = args();
    let cluster = PrivateCluster::start();
    let dir = tempfile::tempdir().expect("dir");
    let url = cluster.admin_url();
    let admin = bootstrap(dir.path(), &url);
    cut_off_replica(&cluster, dir.path(), &admin).await;

    let staleness = args.max_staleness.as_secs().to_string();
    let a = Server::start(
        dir.path(),
        &url,
        &[
            "--max-staleness-secs",
            &staleness,
            "--db-connect-timeout-secs",
            "1",
        ],
    )
    .await;
    let mut client = AuthorizeServiceClient::new(a.channel.clone());
    let mut warm = Vec::new();
    for _ in 0..20 {
        warm.push(create(&a.channel, &admin).await.1);
    }
    let (retired_id, retired) = create(&a.channel, &admin).await;
    retire(&a.channel, &admin, &retired_id).await;
    let mut cold = Vec::new();
    for _ in 0..200 {
        cold.push(create(&a.channel, &admin).await.1);
    }
    for s in warm.iter().chain(&warm) {
        assert_eq!(decide(&mut client, s).await, Ok(pb::Decision::Allow));
    }
    assert_eq!(
        decide(&mut client, &retired).await,
        Ok(pb::Decision::Retired)
    );

    let stop = Arc::new(AtomicBool::new(false));
    let outage_began = Arc::new(std::sync::OnceLock::<Instant>::new());
    let started = Instant::now();
    let mut workers = tokio::task::JoinSet::new();
    let (warm, cold) = (Arc::new(warm), Arc::new(cold));
    for w in 0..args.workers {
        let (stop, began, warm, cold, retired) = (
            stop.clone(),
            outage_began.clone(),
            warm.clone(),
            cold.clone(),
            retired.clone(),
        );
        let mut client = client.clone();
        workers.spawn(async move {
            let mut seen = Vec::new();
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                let (kind, secret) = match i % 4 {
                    // Cold tokens are asked only once the outage began: a lookup that fails
                    // keeps nothing, so they stay cold until the database is back.
                    2 if began.get().is_some() => (Kind::Cold, cold[(i / 4) % cold.len()].clone()),
                    1 => (Kind::Retired, retired.clone()),
                    3 => (Kind::Unknown, Secret::generate().expose().to_owned()),
                    _ => (Kind::Warm, warm[i % warm.len()].clone()),
                };
                let sent = Instant::now();
                let answer = decide(&mut client, &secret).await;
                let took = sent.elapsed();
                let at = match began.get() {
                    Some(t) if sent >= *t => (sent - *t).as_secs_f64(),
                    Some(t) => -(*t - sent).as_secs_f64(),
                    None => -1e9,
                };
                let (exact, wrong) = match answer {
                    Ok(d) if d == kind.exact() => (Some(true), None),
                    Err(Code::Unavailable) => (Some(false), None),
                    other => (None, Some(format!("{other:?}"))),
                };
                seen.push(Seen {
                    at,
                    kind,
                    exact,
                    took,
                    wrong,
                });
            }
            seen
        });
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = outage_began.set(Instant::now());
    cluster.crash();
    tokio::time::sleep(args.outage).await;
    cluster.start_again();
    let back = outage_began.get().expect("set").elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(5)).await;
    stop.store(true, Ordering::Relaxed);
    let mut seen = Vec::new();
    while let Some(w) = workers.join_next().await {
        seen.extend(w.expect("worker"));
    }
    report(&seen, &args, back, started.elapsed());
}

fn report(seen: &[Seen], args: &Args, back: f64, total: Duration) {
    let outage = |s: &&Seen| s.at >= 0.0 && s.at < back;
    let wrong = seen.iter().filter(|s| s.exact.is_none()).count();
    println!(
        "\nPostgreSQL stopped for {:?} under load ({} workers, max staleness {:?}): {} calls in {:.1?}, {wrong} wrong",
        args.outage,
        args.workers,
        args.max_staleness,
        seen.len(),
        total
    );
    for s in seen.iter().filter(|s| s.exact.is_none()).take(10) {
        println!(
            "  wrong: {:?} at {:.3} s (outage over at {back:.1} s) answered {} in {:.2?}",
            s.kind,
            s.at,
            s.wrong.as_deref().unwrap_or("?"),
            s.took
        );
    }
    for kind in [Kind::Warm, Kind::Retired, Kind::Cold, Kind::Unknown] {
        let during: Vec<&Seen> = seen
            .iter()
            .filter(outage)
            .filter(|s| s.kind == kind)
            .collect();
        let exact = during.iter().filter(|s| s.exact == Some(true)).count();
        let unavailable: Vec<&&Seen> = during.iter().filter(|s| s.exact == Some(false)).collect();
        let last_exact = during
            .iter()
            .filter(|s| s.exact == Some(true))
            .map(|s| s.at)
            .fold(f64::NAN, f64::max);
        let first_unavailable = unavailable.iter().map(|s| s.at).fold(f64::NAN, f64::min);
        let mut took: Vec<Duration> = unavailable.iter().map(|s| s.took).collect();
        took.sort();
        let over_50ms = took
            .iter()
            .filter(|t| **t > Duration::from_millis(50))
            .count();
        println!(
            "  {kind:?} during the outage: {exact} exact {:?} (last at {last_exact:.2} s), {} UNAVAILABLE (first at {first_unavailable:.2} s; took p50 {:.2?}, p99 {:.2?}, max {:.2?}; {over_50ms} over 50 ms)",
            kind.exact(),
            unavailable.len(),
            percentile(&took, 0.5),
            percentile(&took, 0.99),
            took.last().copied().unwrap_or_default(),
        );
    }
    let after: Vec<&Seen> = seen.iter().filter(|s| s.at >= back).collect();
    let first_cold_after = after
        .iter()
        .filter(|s| s.kind == Kind::Cold && s.exact == Some(true))
        .map(|s| s.at - back)
        .fold(f64::NAN, f64::min);
    println!(
        "  after the restart ({:.1} s in): {} calls, first cold token allowed {first_cold_after:.2} s after it, {} UNAVAILABLE",
        back,
        after.len(),
        after.iter().filter(|s| s.exact == Some(false)).count()
    );
}
