//! SQLite on a full disk: the database on a 3 MiB tmpfs, two server processes on it, six
//! clients writing until the database's own write-ahead log and a filler file have filled
//! the disk and writes have gone on being tried on it for a while; then the filler and a
//! ballast file are removed and two clients write again. Every write acknowledged at any
//! point is there after SIGTERM and a restart; writes that could not be stored were
//! UNAVAILABLE with STORAGE_UNWRITABLE, never INTERNAL; reads and warm Authorize went on;
//! health showed the write side NOT_SERVING and recovered by itself once space came back.
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic_health::pb::health_check_response::ServingStatus;

use super::{
    Ledger, Tmpfs, missing_after_restart, print_counts, reads_still_work, start_writers,
    stop_writers, wait_for, wait_health,
};
use crate::common::As;
use crate::common::process::{BOOTSTRAP_ACME, ServerProcess, json_of, run};

const TOKENS: &str = "apitokens.v1.TokenService";
const AUTHORIZE: &str = "apitokens.v1.AuthorizeService";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_a_full_disk() {
    let disk = Tmpfs::mount("3m", "");
    // Space an operator frees later.
    let ballast = disk.ballast(1024 * 1024);
    // The servers' logs and working folder are not on the small disk.
    let work = tempfile::tempdir().expect("work dir");
    let url = format!(
        "sqlite://{}?mode=rwc",
        disk.path().join("api-tokens.db").display()
    );
    let made = json_of(&run(
        work.path(),
        &[&BOOTSTRAP_ACME[..], &["--database-url", &url]].concat(),
    ));
    let admin = As::new(made["secret"].as_str().expect("secret"), "full-disk-test");
    let admin_token_id = made["token_id"].as_str().expect("token id").to_owned();
    let flags = [
        "--database-url",
        url.as_str(),
        "--database-check-interval-secs",
        "1",
    ];
    let servers = [
        ServerProcess::start(work.path(), &flags, "warn").await,
        ServerProcess::start(work.path(), &flags, "warn").await,
    ];
    let channels: Vec<_> = servers.iter().map(|s| s.channel.clone()).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));

    // Writes until the disk is full, and on: the write-ahead log is folded back into the
    // database only after a commit that succeeds, so on a disk this small it fills the
    // disk by itself; the filler takes whatever is left.
    let writers = start_writers(&channels, 3, u64::MAX, "full", &admin, &ledger, &stop);
    wait_for(
        &ledger,
        Duration::from_secs(120),
        "writes on a disk with room",
        |l| l.created.len() >= 10 || l.refusals() > 0,
    )
    .await;
    let filler = disk.fill();
    wait_for(
        &ledger,
        Duration::from_secs(120),
        "the disk filled but no write was refused",
        |l| l.refusals() > 0,
    )
    .await;
    let acknowledged_at_first_refusal = ledger.lock().unwrap().acknowledged();
    // Writes go on being tried on the full disk, over several of the servers' health
    // checks: where acknowledged writes went missing.
    wait_for(
        &ledger,
        Duration::from_secs(60),
        "writes kept being tried on the full disk",
        |l| l.refusals() >= 200,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    for channel in &channels {
        reads_still_work(channel, &admin, &admin_token_id).await;
        wait_health(channel, TOKENS, ServingStatus::NotServing).await;
        assert_eq!(
            super::health(channel, AUTHORIZE).await,
            ServingStatus::Serving,
            "Authorize decides from what it can read: it stays SERVING"
        );
    }
    stop_writers(writers, &stop).await;
    let full = std::mem::take(&mut *ledger.lock().unwrap());
    let acknowledged_while_full = full.acknowledged() - acknowledged_at_first_refusal;
    print_counts("SQLite, filling and full disk", &full);

    // Space comes back: the servers find out by themselves, and every write is stored.
    std::fs::remove_file(filler).expect("free the disk");
    std::fs::remove_file(ballast).expect("free the disk");
    for channel in &channels {
        wait_health(channel, TOKENS, ServingStatus::Serving).await;
    }
    for writer in start_writers(&channels, 1, 5, "freed", &admin, &ledger, &stop) {
        writer.await.expect("writer");
    }
    let freed = std::mem::take(&mut *ledger.lock().unwrap());
    print_counts("SQLite, disk freed", &freed);
    assert_eq!(
        (freed.created.len(), freed.refusals()),
        (10, 0),
        "once space is back every write is stored"
    );

    for server in servers {
        let (status, log) = server.terminate();
        assert!(status.success(), "SIGTERM exits 0: {status}\n{log}");
    }
    let server = ServerProcess::start(work.path(), &flags, "warn").await;
    let mut missing = 0;
    for ledger in [&full, &freed] {
        missing += missing_after_restart(&server.channel, &admin, ledger).await;
    }
    println!(
        "{} writes acknowledged in all, {acknowledged_while_full} of them after the first refusal; {missing} missing after the restart",
        full.acknowledged() + freed.acknowledged()
    );
    assert_eq!(
        missing, 0,
        "every acknowledged write is there after a restart"
    );
    for ledger in [&full, &freed] {
        assert!(
            ledger.exceptions.is_empty(),
            "every refusal was UNAVAILABLE: {:?}",
            &ledger.exceptions[..ledger.exceptions.len().min(10)]
        );
    }
    assert!(
        full.refused.contains_key("Unavailable STORAGE_UNWRITABLE"),
        "a write the full disk refused says so: {:?}",
        full.refused
    );
    let (status, _) = server.terminate();
    assert!(status.success());
}
