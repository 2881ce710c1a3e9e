//! A bad day for the storage: the filesystem fills up, and the database file is damaged. The
//! appliance must go on recording, say what is wrong, and find its way back.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use http::StatusCode;
use serde_json::{json, Value};

use crate::common::{self, eventually, wait_until, Binary, Receiver};

/// A real, small tmpfs mounted for one test, unmounted when dropped (declare it before anything
/// that keeps files open in it, so that it is dropped after them).
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// `None` (after saying why) when this process may not mount, i.e. is not root; in CI, which
    /// runs as root, a failed mount fails the test.
    fn mount(path: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(path)
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs {
                path: path.to_owned(),
            }),
            r if std::env::var_os("CI").is_none() => {
                eprintln!("skipped: the full-disk test mounts a real tmpfs and needs root ({r:?})");
                None
            }
            r => panic!("cannot mount a tmpfs at {}: {r:?}", path.display()),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
    }
}

/// Fills the filesystem of `dir` with a file until the kernel says no more.
fn fill(dir: &Path) -> PathBuf {
    let path = dir.join("filler");
    let mut f = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5u8; 16 * 1024];
    while f.write_all(&chunk).is_ok() {}
    let small = [0xA5u8; 512];
    while f.write_all(&small).is_ok() {}
    let _ = f.sync_all();
    path
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

async fn metrics(api: &common::Api) -> String {
    let (status, v) = api.get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    v.as_str().unwrap_or_default().to_owned()
}

async fn health_store(api: &common::Api) -> Value {
    let (status, v) = api.get("/health").await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["store"].clone()
}

const BATCH: usize = 50;

fn webhook_config(receiver: &Receiver) -> String {
    format!(
        r#"
[[webhooks]]
webhook_id = "door"
url = "{}"
batch_size = {BATCH}
batch_timeout = 0.1
retry_count = 10
retry_delay = 1
"#,
        receiver.url("/hook")
    )
}

/// Triggers `calls` calls of `count` events; returns the ids acknowledged and the statuses seen.
async fn trigger_many(api: &common::Api, calls: usize, count: u32) -> (Vec<String>, Vec<u16>) {
    let mut ids = Vec::new();
    let mut statuses = Vec::new();
    for _ in 0..calls {
        let body = json!({"event_type": "face_recognized", "count": count, "camera_id": "door"});
        let Some((status, v)) = api
            .try_raw(
                http::Method::POST,
                "/api/v1/events/trigger",
                body.to_string(),
            )
            .await
        else {
            break; // the appliance is gone (killed)
        };
        statuses.push(status.as_u16());
        if status == StatusCode::OK {
            for e in v["events"].as_array().unwrap() {
                ids.push(e["id"].as_str().unwrap().to_owned());
            }
        }
    }
    (ids, statuses)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_keeps_recording_says_so_recovers_and_causes_no_duplicate_storm() {
    if !common::netns::loopback_only(
        "store::a_full_disk_keeps_recording_says_so_recovers_and_causes_no_duplicate_storm",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let store_dir = dir.path().join("store");
    let Some(_tmpfs) = Tmpfs::mount(&store_dir, "8m") else {
        return;
    };
    let receiver = Receiver::start().await;
    let port = common::free_port();
    // The quota is far larger than the filesystem: the disk fills before the quota is reached.
    let config = common::write_config(
        dir.path(),
        port,
        &format!("quota_mb = 64\n{}", webhook_config(&receiver)),
    );
    let mut facecv = Binary::start(&config, port).await;
    let api = facecv.api.clone();
    assert_eq!(health_store(&api).await["state"], "ok");

    // About 3 MB of events, delivered as they come, then a file takes every byte left. The
    // receiver is away meanwhile, so that the events recorded on the full disk wait undelivered
    // and making room has to drop some of them.
    let (mut acked, _) = trigger_many(&api, 6, 1000).await;
    let first_batch = acked.last().unwrap().clone();
    wait_until(
        Duration::from_secs(60),
        "the first events delivered",
        || receiver.accepted_ids().contains(&first_batch),
    )
    .await;
    receiver.go_down();
    let filler = fill(&store_dir);

    // Recording goes on on the full filesystem: every call is acknowledged. Twice what the
    // filesystem can hold is recorded, so undelivered events must go too, counted.
    let (more, statuses) = trigger_many(&api, 150, 100).await;
    acked.extend(more);
    let refused = statuses.iter().filter(|s| **s != 200).count();
    assert_eq!(
        refused, 0,
        "trigger calls refused on a full disk: {statuses:?}"
    );
    let store = health_store(&api).await;
    assert_eq!(store["state"], "degraded", "{store}");
    assert!(
        store["reason"]
            .as_str()
            .unwrap()
            .contains("filesystem full"),
        "{store}"
    );
    let text = metrics(&api).await;
    assert!(metric(&text, "facecv_events_dropped_total") > 0.0, "{text}");
    assert_eq!(
        metric(&text, "facecv_store_degraded{reason=\"filesystem_full\"}"),
        1.0,
        "{text}"
    );
    let (_, stats) = api.get("/api/v1/webhooks/stats").await;
    assert!(
        stats["webhooks"]["door"]["dropped"].as_u64().unwrap() > 0,
        "the webhook is told what it lost: {stats}"
    );

    // The receiver is back: delivery catches up on the full disk and its cursor moves are
    // recorded, so a kill -9 now repeats at most the batch in flight.
    let receiver = receiver.come_back().await;
    let last = acked.last().unwrap().clone();
    wait_until(
        Duration::from_secs(60),
        "the newest event delivered",
        || receiver.accepted_ids().contains(&last),
    )
    .await;
    let producer = {
        let api = api.clone();
        tokio::spawn(async move { trigger_many(&api, 20, 50).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    facecv.kill9();
    let (late, _) = producer.await.unwrap();
    acked.extend(late);

    // Restarted on the still-full filesystem: it starts, says so, and records.
    let facecv = Binary::start(&config, port).await;
    let api = facecv.api.clone();
    let (again, statuses) = trigger_many(&api, 10, 100).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    acked.extend(again);
    assert_eq!(health_store(&api).await["state"], "degraded");

    // Room comes back: the store makes its reserve again and is healthy, by itself.
    std::fs::remove_file(&filler).unwrap();
    eventually(Duration::from_secs(15), "the store healthy again", || {
        let api = api.clone();
        async move { health_store(&api).await["state"] == "ok" }
    })
    .await;
    let text = metrics(&api).await;
    assert_eq!(
        metric(&text, "facecv_store_degraded{reason=\"filesystem_full\"}"),
        0.0
    );

    let last = acked.last().unwrap().clone();
    wait_until(
        Duration::from_secs(60),
        "the newest event delivered",
        || receiver.accepted_ids().contains(&last),
    )
    .await;
    let delivered = receiver.accepted_ids();
    let unique: HashSet<&String> = delivered.iter().collect();
    let duplicates = delivered.len() - unique.len();
    let (_, stats) = api.get("/api/v1/webhooks/stats").await;
    let dropped = stats["webhooks"]["door"]["dropped"].as_u64().unwrap_or(0) as usize;
    eprintln!(
        "full disk: {} acknowledged, {} delivered once, {duplicates} repeats, {dropped} dropped undelivered",
        acked.len(),
        unique.len()
    );
    assert!(
        duplicates <= 2 * BATCH,
        "{duplicates} events delivered twice; the batch in flight is {BATCH}"
    );
    let missing = acked.iter().filter(|id| !unique.contains(id)).count();
    assert!(
        missing <= dropped,
        "{missing} acknowledged events never delivered, {dropped} counted as dropped"
    );
}

async fn all_event_ids(api: &common::Api) -> Vec<String> {
    let mut ids = Vec::new();
    let mut after = 0;
    loop {
        let (status, v) = api
            .get(&format!("/api/v1/events?after_seq={after}&limit=1000"))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        let events = v["events"].as_array().unwrap();
        if events.is_empty() {
            return ids;
        }
        for e in events {
            after = e["seq"].as_i64().unwrap();
            ids.push(e["event"]["id"].as_str().unwrap_or_default().to_owned());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_store_is_named_skipped_past_and_salvaged() {
    if !common::netns::loopback_only("store::a_damaged_store_is_named_skipped_past_and_salvaged") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start().await;
    let port = common::free_port();
    let config = common::write_config(dir.path(), port, &webhook_config(&receiver));
    let mut facecv = Binary::start(&config, port).await;
    let (acked, _) = trigger_many(&facecv.api, 4, 1000).await;
    let last = acked.last().unwrap().clone();
    wait_until(Duration::from_secs(60), "every event delivered", || {
        receiver.accepted_ids().contains(&last)
    })
    .await;
    assert!(facecv.sigterm().success());
    let db = dir.path().join("store").join("facecv.db");
    assert_eq!(
        common::damage::garbage_into_event_pages(&db, 2),
        2,
        "event pages to damage"
    );

    // It starts, but says the store is damaged and how to get back.
    let facecv = Binary::start(&config, port).await;
    let api = facecv.api.clone();
    let store = health_store(&api).await;
    assert_eq!(store["state"], "degraded", "{store}");
    assert!(
        store["reason"].as_str().unwrap().contains("facecv salvage"),
        "{store}"
    );
    // Readers go past the damage: the log reads, and a webhook replaying everything delivers
    // what is readable and then new events, instead of spinning on the damaged range.
    let readable = all_event_ids(&api).await;
    assert!(
        readable.len() < acked.len() && readable.len() > acked.len() / 2,
        "{} of {} readable",
        readable.len(),
        acked.len()
    );
    let before = receiver.accepted_ids().len();
    let (status, v) = api
        .post("/api/v1/webhooks/door/replay", json!({"from_seq": 1}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    let (fresh, _) = trigger_many(&api, 1, 10).await;
    let newest = fresh.last().unwrap().clone();
    wait_until(
        Duration::from_secs(30),
        "the replay and new events delivered",
        || receiver.accepted_ids().contains(&newest),
    )
    .await;
    let replayed = receiver.accepted_ids().len() - before;
    assert_eq!(replayed, readable.len() + fresh.len());
    let text = metrics(&api).await;
    assert!(
        metric(&text, "facecv_store_unreadable_events_total") > 0.0,
        "{text}"
    );
    assert_eq!(
        metric(&text, "facecv_store_degraded{reason=\"damaged\"}"),
        1.0
    );
    eventually(
        Duration::from_secs(20),
        "the background check's verdict",
        || {
            let api = api.clone();
            async move {
                let text = metrics(&api).await;
                metric(&text, "facecv_store_integrity_ok") == 0.0
            }
        },
    )
    .await;
    drop(facecv);

    // The installer's check names the damage and the way back.
    let out = Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check-config passed a damaged store");
    assert!(
        said.contains("integrity check") && said.contains("facecv salvage --from"),
        "{said}"
    );

    // The way back: salvage into a new folder, keep the old file, run on the new one.
    let dir2 = tempfile::tempdir().unwrap();
    let new_db = dir2.path().join("store").join("facecv.db");
    let out = Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["salvage", "--from"])
        .arg(&db)
        .arg("--to")
        .arg(&new_db)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("could not read rowids"), "{report}");
    assert!(db.exists(), "the damaged file is kept");
    let port2 = common::free_port();
    let config2 = common::write_config(dir2.path(), port2, &webhook_config(&receiver));
    let facecv = Binary::start(&config2, port2).await;
    let api = facecv.api.clone();
    eventually(
        Duration::from_secs(20),
        "the salvaged store checked ok",
        || {
            let api = api.clone();
            async move { health_store(&api).await["integrity"] == "ok" }
        },
    )
    .await;
    assert_eq!(health_store(&api).await["state"], "ok");
    let salvaged: HashSet<String> = all_event_ids(&api).await.into_iter().collect();
    for id in readable.iter().chain(&fresh) {
        assert!(
            salvaged.contains(id),
            "event {id} was readable but not salvaged"
        );
    }
    let (more, statuses) = trigger_many(&api, 1, 5).await;
    assert_eq!(statuses, [200]);
    let newest = more.last().unwrap().clone();
    wait_until(
        Duration::from_secs(30),
        "delivery on the salvaged store",
        || receiver.accepted_ids().contains(&newest),
    )
    .await;
}
