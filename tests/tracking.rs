//! The yardstick of track-aware recognition (issue 13): a composed video where enrolled people
//! enter, stand, cross paths, swap places, are briefly hidden and leave, and a stranger passes,
//! played by a camera of the real binary with the real models. Every person must be named,
//! nobody misnamed (a name on a face that is not that person's, at the frame the event says), the
//! stranger alerted once, attendance only for the enrolled.
//!
//! The video is made of the held-out photos of `tests/data/faces/johns` (photos 0-2 of each
//! person are enrolled, the video shows 3-6) on a grey background, and keeps its ground truth:
//! who is where in every frame. A person's face box is the photo's place plus where the face lies
//! in that photo (found once per photo, alone on the background), so the truth is the photo's
//! placement, not what the camera path says.
//!
//! [`the_video_is_solvable_frame_by_frame`] runs a sample of frames as stills through the engine:
//! it shows the scenario can be solved, so that a failure of
//! [`a_camera_names_everyone_in_the_scenario_and_misnames_nobody`] is the camera path's.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::video::{iou, on_path, photos_of, png, root, scene, write_y4m};
use common::{eventually, free_port, post_form, write_config, Api, Binary, Receiver};
use http::StatusCode;
use image::RgbImage;
use serde_json::{json, Value};

const SIZE: (u32, u32) = (640, 480);
/// Frames of the video: 25 s at 10 fps.
const FRAMES: u32 = 250;
/// Faces are 135-150 px. The held-out photo a person shows changes every this many frames (a turn of the head).
const PHOTO_EVERY: u32 = 10;
/// Which held-out photos (by index among the person's sorted photos) the video cycles through.
const SHOWN: [usize; 4] = [3, 4, 5, 6];

/// One person of the scenario: the path walked, the frames hidden (gone from the picture, as
/// behind a pillar), and the drawing order (higher is in front).
struct Walker {
    person: &'static str,
    enrolled: bool,
    side: u32,
    keys: &'static [(u32, i64, i64)],
    hidden: (u32, u32),
    z: u8,
}

/// The choreography. Top band: Salley enters from the left, Savage from the right; both stand,
/// then cross paths (Savage passes in front of Salley) and swap places, stand, and leave by the
/// side they face. Bottom band: Schneider and Shimkus enter, stand, each is hidden for a few
/// frames, then they trade places between two frames (each box now holds the other person: the
/// tracker follows boxes, so only a look can tell), and leave. Then John Simm, never enrolled, walks in, stands and walks out.
const WALKERS: [Walker; 5] = [
    Walker {
        person: "John_Salley",
        enrolled: true,
        side: 160,
        keys: &[
            (0, -170, 20),
            (40, 40, 20),
            (70, 40, 20),
            (130, 420, 20),
            (140, 420, 20),
            (165, 650, 20),
        ],
        hidden: (0, 0),
        z: 0,
    },
    Walker {
        person: "John_Savage",
        enrolled: true,
        side: 160,
        keys: &[
            (10, 630, 50),
            (50, 420, 50),
            (70, 420, 50),
            (130, 40, 50),
            (140, 40, 50),
            (165, -170, 50),
        ],
        hidden: (0, 0),
        z: 1,
    },
    Walker {
        person: "John_Schneider",
        enrolled: true,
        side: 150,
        keys: &[
            (20, -160, 290),
            (60, 60, 290),
            (129, 60, 290),
            (130, 400, 290),
            (150, 400, 290),
            (180, 630, 290),
        ],
        hidden: (95, 97),
        z: 0,
    },
    Walker {
        person: "John_Shimkus",
        enrolled: true,
        side: 150,
        keys: &[
            (40, 630, 290),
            (80, 400, 290),
            (129, 400, 290),
            (130, 60, 290),
            (140, 60, 290),
            (170, -160, 290),
        ],
        hidden: (110, 113),
        z: 0,
    },
    Walker {
        person: "John_Simm",
        enrolled: false,
        side: 160,
        keys: &[
            (165, -170, 150),
            (205, 230, 150),
            (220, 230, 150),
            (249, -170, 150),
        ],
        hidden: (0, 0),
        z: 0,
    },
];

/// One person in one frame: the photo shown where, and the face's box there.
#[derive(Clone, Debug)]
struct Truth {
    who: usize,
    photo: PathBuf,
    at: (i64, i64),
    face: [f64; 4],
}

impl Truth {
    fn name(&self) -> String {
        WALKERS[self.who].person.replace('_', " ")
    }
}

/// Where a walker is at frame `n`, swaying a pixel or two as a standing person does.
fn place(w: &Walker, n: u32) -> Option<(i64, i64)> {
    if w.hidden.1 > 0 && (w.hidden.0..=w.hidden.1).contains(&n) {
        return None;
    }
    let (x, y) = on_path(w.keys, n)?;
    let sway = [0, 1, 2, 1, 0, -1, -2, -1][n as usize % 8];
    Some((x + sway, y))
}

fn photo_at(w: &Walker, n: u32) -> PathBuf {
    photos_of(w.person)[SHOWN[(n / PHOTO_EVERY) as usize % SHOWN.len()]].clone()
}

/// The video and its truth, per frame (index 0 is `frame_seq` 1). `faces` gives each photo's
/// face box in the photo, as fractions of its side.
fn compose(faces: &BTreeMap<PathBuf, [f64; 4]>) -> (Vec<RgbImage>, Vec<Vec<Truth>>) {
    let truth = truth_of(faces);
    let frames = truth
        .iter()
        .map(|here| {
            let placed: Vec<(&Path, u32, (i64, i64))> = here
                .iter()
                .map(|t| (t.photo.as_path(), WALKERS[t.who].side, t.at))
                .collect();
            scene(SIZE, &placed)
        })
        .collect();
    (frames, truth)
}

/// Who is where in every frame, in drawing order (back to front).
fn truth_of(faces: &BTreeMap<PathBuf, [f64; 4]>) -> Vec<Vec<Truth>> {
    (0..FRAMES)
        .map(|n| {
            let mut here: Vec<Truth> = WALKERS
                .iter()
                .enumerate()
                .filter_map(|(who, w)| {
                    let at = place(w, n)?;
                    let photo = photo_at(w, n);
                    let f = faces[&photo];
                    let s = f64::from(w.side);
                    let (x, y) = (at.0 as f64, at.1 as f64);
                    let face = [x + f[0] * s, y + f[1] * s, x + f[2] * s, y + f[3] * s];
                    Some(Truth {
                        who,
                        photo,
                        at,
                        face,
                    })
                })
                .collect();
            here.sort_by_key(|t| WALKERS[t.who].z);
            here
        })
        .collect()
}

/// Whether `t`'s face is wholly in the frame and nobody drawn over it covers any of it.
fn unoccluded(t: &Truth, all: &[Truth]) -> bool {
    let inside = t.face[0] >= 0.0
        && t.face[1] >= 0.0
        && t.face[2] <= f64::from(SIZE.0)
        && t.face[3] <= f64::from(SIZE.1);
    let covered = all.iter().any(|o| {
        if o.who == t.who || WALKERS[o.who].z <= WALKERS[t.who].z {
            return false;
        }
        let s = f64::from(WALKERS[o.who].side);
        let square = [
            o.at.0 as f64,
            o.at.1 as f64,
            o.at.0 as f64 + s,
            o.at.1 as f64 + s,
        ];
        iou(square, t.face) > 0.0
    });
    inside && !covered
}

/// The binary with the models and a folder it may read videos from, the four Johns enrolled.
async fn start_and_enrol(dir: &Path) -> Binary {
    let port = free_port();
    let config = write_config(
        dir,
        port,
        &format!(
            "[vision]\nmodels_dir = \"{}\"\n",
            root().join("models").display()
        ),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    let media = format!("[api]\nmedia_dir = \"{}\"\n", dir.display());
    std::fs::write(&config, text.replacen("[api]\n", &media, 1)).unwrap();
    let app = Binary::start(&config, port).await;
    for w in WALKERS.iter().filter(|w| w.enrolled) {
        let files: Vec<(&str, Vec<u8>)> = photos_of(w.person)[..3]
            .iter()
            .map(|p| ("file", std::fs::read(p).unwrap()))
            .collect();
        let name = w.person.replace('_', " ");
        let (code, v) = post_form(
            &app.api,
            "/api/v1/insightface/register",
            &[("name", &name)],
            &files,
        )
        .await;
        assert_eq!(code, StatusCode::OK, "enrolling {name}: {v}");
    }
    app
}

/// Where the face lies in each photo the video shows, as fractions of the photo's side: the
/// photo alone on the background at the walker's size, through `/api/v1/faces/detect`.
async fn face_boxes(api: &Api) -> BTreeMap<PathBuf, [f64; 4]> {
    let mut out = BTreeMap::new();
    for w in &WALKERS {
        for i in SHOWN {
            let photo = photos_of(w.person)[i].clone();
            let (x, y) = (200, 120);
            let frame = scene(SIZE, &[(photo.as_path(), w.side, (x, y))]);
            let (code, v) =
                post_form(api, "/api/v1/faces/detect", &[], &[("file", png(&frame))]).await;
            assert_eq!(code, StatusCode::OK, "{v}");
            assert_eq!(v["face_count"], 1, "one face in {}: {v}", photo.display());
            let b = &v["faces"][0]["bbox"];
            let s = f64::from(w.side);
            let at = |i: usize, o: i64| (b[i].as_f64().unwrap() - o as f64) / s;
            out.insert(photo, [at(0, x), at(1, y), at(2, x), at(3, y)]);
        }
    }
    out
}

fn describe(seq: usize, truth: &[Vec<Truth>]) -> String {
    let Some(here) = seq.checked_sub(1).and_then(|i| truth.get(i)) else {
        return format!("frame {seq}: not in the video");
    };
    let people: Vec<String> = here
        .iter()
        .map(|t| {
            let f = t.face.map(|v| v.round() as i64);
            let state = if unoccluded(t, here) {
                ""
            } else {
                " (partly hidden)"
            };
            format!("{} {f:?}{state}", t.name())
        })
        .collect();
    format!("frame {seq}: {}", people.join("; "))
}

/// The person whose face a box lies on: the best overlap, if its IoU is at least 0.5 (when two
/// people overlap, a box may pass 0.5 with both; the one it fits best is the one it shows).
fn on_whom(b: [f64; 4], here: &[Truth]) -> Option<&Truth> {
    here.iter()
        .map(|t| (iou(b, t.face), t))
        .filter(|(o, _)| *o >= 0.5)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, t)| t)
}

fn bbox(v: &Value) -> [f64; 4] {
    let b: Vec<f64> = v
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default();
    b.try_into().unwrap_or([0.0; 4])
}

/// The choreography holds every situation the issue names, so that the camera test cannot pass
/// on an easier video: each person enters from an edge and leaves by one, Savage passes in front
/// of Salley and they swap places, two people are gone for 2-4 frames and come back, two trade
/// places between two frames, and the stranger passes once.
#[test]
fn the_scenario_has_every_situation() {
    let faces: BTreeMap<PathBuf, [f64; 4]> = WALKERS
        .iter()
        .flat_map(|w| SHOWN.map(|i| (photos_of(w.person)[i].clone(), [0.2, 0.2, 0.8, 0.8])))
        .collect();
    let truth = truth_of(&faces);
    assert!((150..=250).contains(&truth.len()), "15-25 s at 10 fps");
    let at = |who: usize, n: usize| truth[n].iter().find(|t| t.who == who);
    for (who, w) in WALKERS.iter().enumerate() {
        let seen: Vec<usize> = (0..truth.len()).filter(|&n| at(who, n).is_some()).collect();
        let on_edge = |n: usize| {
            let x = at(who, n).unwrap().at.0;
            x < 0 || x + i64::from(w.side) > i64::from(SIZE.0)
        };
        assert!(on_edge(seen[0]), "{} enters from an edge", w.person);
        assert!(
            on_edge(*seen.last().unwrap()),
            "{} leaves by an edge",
            w.person
        );
        let gaps: Vec<usize> = seen
            .windows(2)
            .map(|p| p[1] - p[0] - 1)
            .filter(|&g| g > 0)
            .collect();
        let hidden = w.hidden.1 > 0;
        assert_eq!(gaps.len(), usize::from(hidden), "{}: {gaps:?}", w.person);
        assert!(
            gaps.iter().all(|g| (2..=4).contains(g)),
            "{}: {gaps:?}",
            w.person
        );
    }
    let (salley, savage) = (0, 1);
    let x = |who: usize, n: usize| at(who, n).unwrap().at.0;
    assert!(
        x(salley, 60) < x(savage, 60) && x(salley, 135) > x(savage, 135),
        "a swap"
    );
    // The bottom pair trade places from one frame to the next, each into the other's box.
    let (schneider, shimkus) = (2, 3);
    let (a, b) = (
        (x(schneider, 129), x(shimkus, 129)),
        (x(shimkus, 130), x(schneider, 130)),
    );
    assert!(
        a.0.abs_diff(b.0) <= 3 && a.1.abs_diff(b.1) <= 3,
        "an instant swap: {a:?} then {b:?}"
    );
    let behind = (0..truth.len())
        .filter(|&n| at(salley, n).is_some_and(|t| !unoccluded(t, &truth[n])))
        .filter(|&n| at(savage, n).is_some_and(|t| unoccluded(t, &truth[n])))
        .count();
    assert!(
        (3..=30).contains(&behind),
        "Salley briefly behind Savage: {behind} frames"
    );
    assert!(!WALKERS[4].enrolled && (0..truth.len()).any(|n| at(4, n).is_some()));
}

/// Every 5th frame as a still: the people wholly in view are found at their truth and named
/// right (the stranger as `Unknown`), and no still names anyone on another's face.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_video_is_solvable_frame_by_frame() {
    let dir = tempfile::tempdir().unwrap();
    let app = start_and_enrol(dir.path()).await;
    let faces = face_boxes(&app.api).await;
    let (frames, truth) = compose(&faces);
    let (mut expected, mut right, mut problems) = (0, 0, Vec::new());
    for n in (0..FRAMES as usize).step_by(5) {
        let (code, v) = post_form(
            &app.api,
            "/api/v1/faces/recognize",
            &[],
            &[("file", png(&frames[n]))],
        )
        .await;
        assert_eq!(code, StatusCode::OK, "{v}");
        let found = v["faces"].as_array().unwrap();
        for t in truth[n].iter().filter(|t| unoccluded(t, &truth[n])) {
            expected += 1;
            let want = if WALKERS[t.who].enrolled {
                t.name()
            } else {
                "Unknown".into()
            };
            let hit = found
                .iter()
                .filter(|f| iou(bbox(&f["bbox"]), t.face) >= 0.5)
                .max_by(|a, b| {
                    iou(bbox(&a["bbox"]), t.face).total_cmp(&iou(bbox(&b["bbox"]), t.face))
                });
            match hit {
                Some(f) if f["name"] == want.as_str() => right += 1,
                _ => problems.push(format!(
                    "{want} not found or misnamed: {hit:?}\n  {}",
                    describe(n + 1, &truth)
                )),
            }
        }
        for f in found {
            let name = f["name"].as_str().unwrap();
            let on = on_whom(bbox(&f["bbox"]), &truth[n]);
            if name != "Unknown" && on.is_none_or(|t| t.name() != name) {
                problems.push(format!("still misnames {f}\n  {}", describe(n + 1, &truth)));
            }
        }
    }
    println!("stills: {right} of {expected} faces wholly in view found and named right");
    let misnamed = problems
        .iter()
        .filter(|p| p.starts_with("still misnames"))
        .count();
    assert_eq!(misnamed, 0, "{}", problems.join("\n"));
    assert!(
        right * 10 >= expected * 9,
        "only {right} of {expected} right:\n{}",
        problems.join("\n")
    );
}

fn events_of(rx: &Receiver) -> Vec<Value> {
    rx.accepted()
        .iter()
        .flat_map(|r| r.json()["events"].as_array().unwrap().clone())
        .collect()
}

/// The camera plays the video once at 10 fps; the receiver's events are held against the truth.
/// Needs `metadata.frame_seq` and `metadata.tracks` on camera events (issue 13's tracker).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_names_everyone_in_the_scenario_and_misnames_nobody() {
    if !common::netns::loopback_only("a_camera_names_everyone_in_the_scenario_and_misnames_nobody")
    {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let app = start_and_enrol(dir.path()).await;
    let faces = face_boxes(&app.api).await;
    let (frames, truth) = compose(&faces);
    let video = dir.path().join("scenario.y4m");
    write_y4m(&video, &frames);
    let rx = Receiver::start().await;
    app.api
        .create_webhook(json!({"webhook_id": "all", "url": rx.url("/hook"), "batch_size": 20, "batch_timeout": 0.2}))
        .await;
    // Names may repeat every second, more often than a face is re-checked (3 s), so a name said
    // from memory after a swap would show.
    let (code, v) = app
        .api
        .post(
            "/api/v1/cameras",
            json!({"camera_id": "hall", "fps": 10,
                   "spec": {"kind": "file", "path": video, "fps": 10, "looped": false},
                   "policy": {"recognized_interval": 1, "detected_interval": 3,
                              "attendance_min_confidence": 0.6}}),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{v}");
    eventually(
        Duration::from_secs(180),
        "the video to end and be told",
        || {
            let rx = rx.clone();
            async move {
                events_of(&rx)
                    .iter()
                    .any(|e| e["event_type"] == "stream_stopped")
            }
        },
    )
    .await;
    let events = events_of(&rx);
    let problems = judge(&events, &truth);
    let shown: Vec<String> = events
        .iter()
        .filter(|e| !e["event_type"].as_str().unwrap().starts_with("stream_"))
        .map(|e| format!("{} {} {}", e["event_type"], e["metadata"], e["data"]))
        .collect();
    assert!(
        problems.is_empty(),
        "{} problem(s):\n{}\n\nevents:\n{}",
        problems.len(),
        problems.join("\n"),
        shown.join("\n")
    );
}

/// Every problem of the events against the truth, each with the truth of its frame.
fn judge(events: &[Value], truth: &[Vec<Truth>]) -> Vec<String> {
    let mut problems = Vec::new();
    let of = |t: &'static str| events.iter().filter(move |e| e["event_type"] == t);
    let seq_of = |e: &Value| e["metadata"]["frame_seq"].as_u64().map(|s| s as usize);
    let mut named = BTreeSet::new();
    let mut first: BTreeMap<String, Option<u64>> = BTreeMap::new();
    for e in of("face_recognized") {
        let Some(seq) = seq_of(e) else {
            problems.push(format!("face_recognized without metadata.frame_seq: {e}"));
            continue;
        };
        let here = truth.get(seq.wrapping_sub(1)).map_or(&[][..], |t| &t[..]);
        for (i, f) in e["data"]["recognized_faces"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let name = f["name"].as_str().unwrap().to_owned();
            let on = on_whom(bbox(&f["bbox"]), here);
            if on.is_none_or(|t| t.name() != name || !WALKERS[t.who].enrolled) {
                problems.push(format!(
                    "misnamed: {name} at {} in {}\n  {}",
                    f["bbox"],
                    e["id"],
                    describe(seq, truth)
                ));
                continue;
            }
            named.insert(name.clone());
            let frames = e["metadata"]["tracks"][i]["frames"].as_u64();
            first.entry(name).or_insert(frames);
        }
    }
    for w in WALKERS.iter().filter(|w| w.enrolled) {
        let name = w.person.replace('_', " ");
        match first.get(&name) {
            None => problems.push(format!(
                "{name} was never named (in an event that could be checked)"
            )),
            Some(frames) => println!(
                "{name}: first face_recognized on frame {} of the face's track (1: the frame it appeared)",
                frames.map_or("?".into(), |f| f.to_string())
            ),
        }
    }
    judge_alerts(events, truth, &mut problems);
    problems
}

/// The stranger alerted once, on the stranger; attendance only for the enrolled, in view.
fn judge_alerts(events: &[Value], truth: &[Vec<Truth>], problems: &mut Vec<String>) {
    let of = |t: &'static str| events.iter().filter(move |e| e["event_type"] == t);
    let seq_of = |e: &Value| e["metadata"]["frame_seq"].as_u64().map(|s| s as usize);
    let strangers: Vec<&Value> = of("stranger_alert").collect();
    if strangers.len() != 1 {
        problems.push(format!("{} stranger alerts, not 1", strangers.len()));
    }
    for e in strangers {
        let seq = seq_of(e).unwrap_or(0);
        let here = truth.get(seq.wrapping_sub(1)).map_or(&[][..], |t| &t[..]);
        let on = on_whom(bbox(&e["data"]["bbox"]), here);
        if on.is_none_or(|t| WALKERS[t.who].enrolled) {
            problems.push(format!(
                "stranger alert not on the stranger: {} in {} (frame_seq {:?})\n  {}",
                e["data"]["bbox"],
                e["id"],
                seq_of(e),
                describe(seq, truth)
            ));
        }
    }
    for e in of("attendance_recorded") {
        let name = e["data"]["name"].as_str().unwrap_or("?");
        if !WALKERS
            .iter()
            .any(|w| w.enrolled && w.person.replace('_', " ") == name)
        {
            problems.push(format!("attendance for {name}, who is not enrolled: {e}"));
        }
        // Attendance follows a naming: the person is in the picture at its frame.
        if let Some(seq) = seq_of(e) {
            let here = truth.get(seq.wrapping_sub(1)).map_or(&[][..], |t| &t[..]);
            if !here.iter().any(|t| t.name() == name) {
                problems.push(format!(
                    "attendance for {name}, who is not in view: {}\n  {}",
                    e["id"],
                    describe(seq, truth)
                ));
            }
        }
    }
}
