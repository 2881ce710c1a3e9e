//! The Events page's backend against the real runtime, models and photos: a door camera sees an
//! enrolled person and a stranger; each event keeps a snapshot found by its id; a webhook
//! receiver follows the stranger's signed link without the token; a recognition names the
//! enrolled photo that matched; the stranger is named from the snapshot and recognised from
//! then on; the timeline reads newest first, by person and between two times.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::video::{photos_of, root, write_door_frames};
use common::{eventually, post_form, start_app_with, Api};
use http::StatusCode;
use serde_json::{json, Value};

const TOKEN: &str = "a-token-for-the-console-tests";

/// John Salley (enrolled) walks up and leaves, then John Simm (never enrolled) lingers.
fn make_video(dir: &Path) -> PathBuf {
    let (salley, simm) = (photos_of("John_Salley"), photos_of("John_Simm"));
    let mut scenes: Vec<Option<PathBuf>> = Vec::new();
    for i in 0..10 {
        scenes.push(Some(salley[3 + i % 8].clone()));
    }
    scenes.extend(std::iter::repeat_n(None, 8));
    for i in 0..10 {
        scenes.push(Some(simm[1 + i % 8].clone()));
    }
    scenes.extend(std::iter::repeat_n(None, 4));
    write_door_frames(&dir.join("door_video"), &scenes)
}

async fn events(api: &Api, query: &str) -> Value {
    let (code, v) = api.get(&format!("/api/v1/events?{query}")).await;
    assert_eq!(code, StatusCode::OK, "{query}: {v}");
    v
}

fn of_type(page: &Value, t: &str) -> Vec<Value> {
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"].clone())
        .filter(|e| e["event_type"] == t)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strangers_and_recognitions_keep_snapshots_a_stranger_is_named_from_one_and_the_timeline_reads_back(
) {
    let media = tempfile::tempdir().unwrap();
    let media_dir = media.path().to_owned();
    let app = start_app_with(|c| {
        c.vision.models_dir = root().join("models");
        c.api.media_dir = Some(media_dir);
        c.api.token = Some(TOKEN.into());
        c.api.public_url = Some("https://door.example/".into());
    })
    .await;
    let api = app.api.clone().with_token(TOKEN);
    let anyone = app.api.clone();
    let files: Vec<(&str, Vec<u8>)> = photos_of("John_Salley")[..3]
        .iter()
        .map(|p| ("file", std::fs::read(p).unwrap()))
        .collect();
    let (code, v) = post_form(&api, "/api/v1/faces", &[("name", "John Salley")], &files).await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let salley_faces: Vec<Value> = v["face_ids"].as_array().unwrap().clone();
    let started = time::OffsetDateTime::now_utc();

    let video = make_video(media.path());
    let (code, v) = api
        .post(
            "/api/v1/cameras",
            json!({"camera_id": "front_door", "fps": 3,
                   "spec": {"kind": "file", "path": video, "fps": 3, "looped": false},
                   "policy": {"stranger_min_frames": 4, "attendance_min_confidence": 0.6}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let a = api.clone();
    eventually(Duration::from_secs(120), "the video to end", || {
        let api = a.clone();
        async move { api.get("/api/v1/cameras/front_door").await.1["state"] == "ended" }
    })
    .await;

    // The timeline, newest first: the stream's end comes first, its start last.
    let all = events(&api, "order=desc&limit=1000").await;
    let list = all["events"].as_array().unwrap();
    let seqs: Vec<i64> = list.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] > w[1]), "{seqs:?}");
    assert_eq!(list[0]["event"]["event_type"], "stream_stopped");
    assert_eq!(all["next_before_seq"], Value::Null, "all read: {all}");
    assert_eq!(all["next_after_seq"], seqs[0]);
    // Each entry says whether a snapshot is kept: the camera's strangers and recognitions only.
    for e in list {
        let t = e["event"]["event_type"].as_str().unwrap();
        let kept = matches!(t, "stranger_alert" | "face_recognized");
        assert_eq!(e["snapshot"], kept, "{e}");
    }

    // A recognition names the enrolled photo that matched, whose crop is served; and keeps a
    // snapshot of the face.
    let recognized = of_type(&all, "face_recognized");
    assert_eq!(recognized.len(), 1, "{all:#}");
    let face = &recognized[0]["data"]["recognized_faces"][0];
    assert_eq!(face["name"], "John Salley");
    assert!(salley_faces.contains(&face["face_id"]), "{face}");
    let (code, _, _) = api
        .get_bytes(&format!(
            "/api/v1/faces/{}/crop.jpg",
            face["face_id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(code, StatusCode::OK);
    let rid = recognized[0]["id"].as_str().unwrap();
    let (code, ct, _) = api
        .get_bytes(&format!("/api/v1/events/{rid}/snapshot.jpg"))
        .await;
    assert_eq!((code, ct.as_str()), (StatusCode::OK, "image/jpeg"));

    // The stranger's snapshot: by id with the token, by its signed link without it.
    let strangers = of_type(&all, "stranger_alert");
    assert_eq!(strangers.len(), 1, "{all:#}");
    let sid = strangers[0]["id"].as_str().unwrap().to_owned();
    let (code, _, jpeg) = api
        .get_bytes(&format!("/api/v1/events/{sid}/snapshot.jpg"))
        .await;
    assert_eq!(code, StatusCode::OK);
    let img = image::load_from_memory_with_format(&jpeg, image::ImageFormat::Jpeg).unwrap();
    assert!(img.width() >= 100, "{}", img.width());
    let url = strangers[0]["data"]["snapshot_url"]
        .as_str()
        .expect("a link");
    let path = url
        .strip_prefix("https://door.example")
        .expect("built on api.public_url");
    assert!(path.starts_with(&format!("/api/v1/events/{sid}/snapshot.jpg?expires=")));
    let (code, _, signed) = anyone.get_bytes(path).await;
    assert_eq!(code, StatusCode::OK, "the link needs no token");
    assert_eq!(signed, jpeg);
    let expires: u64 = path.split("expires=").nth(1).unwrap()[..10]
        .parse()
        .unwrap();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    assert!(
        (86_000..=86_400).contains(&(expires - now)),
        "a day by default"
    );
    let sig = path.rsplit("sig=").next().unwrap();
    let flipped = format!(
        "{}{}",
        &sig[..63],
        if sig.ends_with('0') { '1' } else { '0' }
    );
    let past = now - 10;
    for refused in [
        format!("/api/v1/events/{sid}/snapshot.jpg"),
        path.replace(
            &format!("expires={expires}"),
            &format!("expires={}", expires + 1),
        ),
        path.replace(sig, &flipped),
        format!("/api/v1/events/{sid}/snapshot.jpg?expires={past}&sig={sig}"),
        // Another event's snapshot under this event's signature.
        path.replace(&sid, rid),
    ] {
        let (code, _, _) = anyone.get_bytes(&refused).await;
        assert_eq!(code, StatusCode::UNAUTHORIZED, "{refused}");
    }
    // The signature opens that one snapshot, nothing else.
    let (code, _) = anyone
        .get(&format!("/api/v1/faces?expires={expires}&sig={sig}"))
        .await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);

    // A sample stranger from the trigger route has no snapshot, and no path of its own counts.
    let ids = api.trigger("stranger_alert", 1).await;
    let (code, v) = api
        .get(&format!("/api/v1/events/{}/snapshot.jpg", ids[0]))
        .await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_snapshot"))
    );
    let newest = events(&api, "order=desc&limit=1").await;
    assert_eq!(newest["events"][0]["event"]["id"], ids[0].as_str());
    assert_eq!(newest["events"][0]["snapshot"], false, "{newest}");
    let (code, v) = api
        .post(
            &format!("/api/v1/events/{}/enrol", ids[0]),
            json!({"name": "X"}),
        )
        .await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("no_snapshot"))
    );
    let (code, v) = api.get("/api/v1/events/evt_nothing/snapshot.jpg").await;
    assert_eq!(
        (code, v["error"]["code"].as_str()),
        (StatusCode::NOT_FOUND, Some("not_found"))
    );

    // "This is John Simm": enrolled from the snapshot, then recognised in a photo never seen.
    let (code, v) = api
        .post(
            &format!("/api/v1/events/{sid}/enrol"),
            json!({"name": "John Simm", "metadata": {"department": "Visitors"}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["name"], "John Simm");
    let simm_face = v["face_ids"][0].as_str().unwrap().to_owned();
    common::assert_pictures(&api, &simm_face).await;
    let (code, v) = post_form(
        &api,
        "/api/v1/faces/recognize",
        &[],
        &[("file", std::fs::read(&photos_of("John_Simm")[10]).unwrap())],
    )
    .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    assert_eq!(v["faces"][0]["name"], "John Simm", "{v}");
    assert_eq!(v["faces"][0]["metadata"]["department"], "Visitors");

    // A person's timeline: their recognitions and attendance, nobody else's.
    let salley = events(&api, "order=desc&person=John%20Salley").await;
    let types: Vec<&str> = salley["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event"]["event_type"].as_str().unwrap())
        .collect();
    // Newest first: the attendance a recognition makes is recorded just after it.
    assert_eq!(
        types,
        ["attendance_recorded", "face_recognized"],
        "{salley:#}"
    );
    // Renamed: recognised by the new name from now on; recorded events keep the name they
    // were recorded with, and are found by it.
    let (code, v) = api
        .put(
            "/api/v1/people/John%20Salley",
            json!({"name": "John R. Salley"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    let recorded = events(&api, "order=desc&person=John%20Salley").await;
    assert_eq!(recorded["events"], salley["events"]);
    let only = events(&api, "person=John%20Salley&event_type=attendance_recorded").await;
    assert_eq!(only["events"].as_array().unwrap().len(), 1);
    assert!(events(&api, "person=Nobody").await["events"]
        .as_array()
        .unwrap()
        .is_empty());

    // Paging back through the timeline, two at a time, finds every event once.
    let mut seen = Vec::new();
    let mut before = String::new();
    loop {
        let page = events(&api, &format!("order=desc&limit=2{before}")).await;
        seen.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["seq"].as_i64().unwrap()),
        );
        match page["next_before_seq"].as_i64() {
            Some(b) => before = format!("&before_seq={b}"),
            None => break,
        }
    }
    let mut want = seqs.clone();
    want.insert(0, want[0] + 1); // the triggered sample
    assert_eq!(seen, want);

    // Between two times.
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap()
            .replace('+', "%2B")
    };
    let since = rfc(started - time::Duration::seconds(1));
    let until = rfc(time::OffsetDateTime::now_utc() + time::Duration::seconds(5));
    let window = events(
        &api,
        &format!("order=desc&since={since}&until={until}&limit=1000"),
    )
    .await;
    assert_eq!(window["events"].as_array().unwrap().len(), seen.len());
    let later = events(&api, &format!("since={until}")).await;
    assert!(later["events"].as_array().unwrap().is_empty(), "{later}");
    let earlier = events(
        &api,
        &format!("until={}", rfc(started - time::Duration::hours(1))),
    )
    .await;
    assert!(
        earlier["events"].as_array().unwrap().is_empty(),
        "{earlier}"
    );

    for (query, field) in [
        ("order=sideways", "order"),
        ("order=desc&before_seq=0", "before_seq"),
        ("order=desc&before_seq=x", "before_seq"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        (&format!("since={until}&until={since}") as &str, "until"),
        ("person=", "person"),
    ] {
        let (code, v) = api.get(&format!("/api/v1/events?{query}")).await;
        assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{query}: {v}");
        assert_eq!(v["error"]["field"], field, "{query}: {v}");
    }
}
