//! The API never runs a program or opens a file the operator did not allow, and a browser cannot
//! be made to change anything (issue 9, sections 1 and 7). Against the real binary, as the probes
//! that found these ran: every refusal is checked to have left nothing behind (no camera, no
//! webhook, no marker file a command would have made), also after a restart.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{self, free_port, Api, Binary};

const TOKEN: &str = "a-long-enough-test-token";

/// A config for the binary: the API on `port`, the store in `dir/store`, the shipped models, and
/// `api` lines added to `[api]`.
fn config(dir: &Path, port: u16, api: &str) -> PathBuf {
    let path = dir.join("facecv.toml");
    let models = Path::new(env!("CARGO_MANIFEST_DIR")).join("models");
    let text = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n{api}\n\n[storage]\ndir = \"{}\"\n\n[vision]\nmodels_dir = \"{}\"\n",
        dir.join("store").display(),
        models.display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the binary with extra environment (a `PATH` with a fake `ffmpeg`, say).
async fn start(config: &Path, port: u16, env: &[(&str, String)]) -> Binary {
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["serve", "--config"])
        .arg(config)
        .env("LOG_LEVEL", "WARNING")
        .envs(env.iter().map(|(k, v)| (*k, v)))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the facecv binary");
    // Made first, so that the child is killed (on drop) if it never answers.
    let facecv = Binary {
        child,
        api: Api::new(([127, 0, 0, 1], port).into()),
        config: config.to_owned(),
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    // Any answer will do: with a token, an unauthenticated /health is a 401.
    while send(port, "GET", "/health", &[], "").await.status == 0 {
        assert!(
            Instant::now() < deadline,
            "facecv did not answer within 20 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    facecv
}

/// An answer to [`send`]; status 0 when the connection failed.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// One request with exactly the headers given (a `Host` of 127.0.0.1 unless one is given), as a
/// browser or a hostile client would send it.
async fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return Answer {
            status: 0,
            body: Value::Null,
        };
    };
    let mut req = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        req += &format!("Host: 127.0.0.1:{port}\r\n");
    }
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += &format!("Content-Length: {}\r\n\r\n{body}", body.len());
    s.write_all(req.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut out))
        .await
        .expect("an answer within 20 s")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let body = serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.into()));
    Answer { status, body }
}

const JSON: (&str, &str) = ("Content-Type", "application/json");

async fn post_json(port: u16, path: &str, body: &Value) -> Answer {
    send(port, "POST", path, &[JSON], &body.to_string()).await
}

const SSE: &str = "/api/v1/face_recognition_insightface/recognize/webcam/stream";

fn enc(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn camera_ids(port: u16) -> Vec<String> {
    let list = send(port, "GET", "/api/v1/cameras", &[], "").await.body;
    list.as_array()
        .expect("a list of cameras")
        .iter()
        .map(|c| c["camera_id"].as_str().unwrap().to_owned())
        .collect()
}

/// `pipe` specs are the config file's: refused over the API by POST, PUT and the SSE stream,
/// and a pipe camera an earlier version stored is kept, listed as refused, and never run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_never_runs_from_the_api_nor_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let touch = json!(["/bin/sh", "-c", format!("touch {}", marker.display())]);
    let pipe =
        json!({"kind": "pipe", "command": touch, "width": 64, "height": 48, "format": "rgb24"});
    let port = free_port();
    let cfg = config(dir.path(), port, "");
    let mut facecv = start(&cfg, port, &[]).await;

    let a = post_json(
        port,
        "/api/v1/cameras",
        &json!({"camera_id": "p", "spec": pipe}),
    )
    .await;
    assert_eq!((a.status, a.code()), (403, "pipe_needs_config"), "{a:?}");
    assert!(a.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("config file"));
    let a = post_json(port, "/api/v1/cameras/p/start", &json!({})).await;
    assert_eq!(a.status, 404, "{a:?}");
    let ok = json!({"camera_id": "q", "source": "synthetic", "fps": 1, "autostart": false});
    assert_eq!(post_json(port, "/api/v1/cameras", &ok).await.status, 200);
    let put = json!({"spec": pipe, "autostart": true});
    let a = send(port, "PUT", "/api/v1/cameras/q", &[JSON], &put.to_string()).await;
    assert_eq!((a.status, a.code()), (403, "pipe_needs_config"), "{a:?}");
    for source in [
        "pipe:0".to_owned(),
        format!("/bin/sh -c 'touch {}'", marker.display()),
        format!("|touch {}", marker.display()),
    ] {
        let path = format!("{SSE}?camera_id=s&source={}", enc(&source));
        let a = send(port, "GET", &path, &[], "").await;
        assert!(matches!(a.status, 403 | 422), "{source}: {a:?}");
    }
    assert_eq!(camera_ids(port).await, ["q"]);

    // An earlier version stored a pipe camera and a camera on /etc/passwd, both to be started.
    assert!(facecv.sigterm().success());
    let db = rusqlite::Connection::open(dir.path().join("store/facecv.db")).unwrap();
    for (id, camera) in [
        ("p", json!({"camera_id": "p", "spec": pipe})),
        ("f", json!({"camera_id": "f", "source": "/etc/passwd"})),
    ] {
        db.execute(
            "INSERT INTO cameras (id, config, running, created_at, updated_at)
             VALUES (?1, ?2, 1, '2026-01-01T00:00:00Z', '2026-01-01T00:00:00Z')",
            rusqlite::params![id, camera.to_string()],
        )
        .unwrap();
    }
    drop(db);
    let _facecv = start(&cfg, port, &[]).await;
    let p = send(port, "GET", "/api/v1/cameras/p", &[], "").await.body;
    assert_eq!(
        (&p["state"], &p["running"]),
        (&json!("refused"), &json!(false)),
        "{p}"
    );
    assert!(p["reason"].as_str().unwrap().contains("config file"), "{p}");
    let f = send(port, "GET", "/api/v1/cameras/f", &[], "").await.body;
    assert_eq!(f["state"], "refused", "{f}");
    assert!(
        f["reason"].as_str().unwrap().contains("api.media_dir"),
        "{f}"
    );
    let a = post_json(port, "/api/v1/cameras/p/start", &json!({})).await;
    assert_eq!((a.status, a.code()), (403, "pipe_needs_config"), "{a:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!marker.exists(), "the command ran");
    let a = send(port, "DELETE", "/api/v1/cameras/p", &[], "").await;
    assert_eq!(a.status, 200, "a refused camera can be deleted: {a:?}");
}

/// File sources only below `api.media_dir`: absolute paths, `..` and links out are refused the
/// same whether the target exists, and no answer shows where the media folder is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_read_only_below_the_media_folder() {
    let dir = tempfile::tempdir().unwrap();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    common::video::write_y4m(&media.join("door.y4m"), &[common::video::frame_with(None)]);
    std::os::unix::fs::symlink("/etc/passwd", media.join("passwd")).unwrap();
    std::os::unix::fs::symlink("/etc", media.join("etc")).unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        &format!("media_dir = \"{}\"", media.display()),
    );
    let _facecv = start(&cfg, port, &[]).await;

    let outside = [
        "/etc/passwd",
        "/etc/no-such-file",
        "../../../../etc/shadow",
        "../../../../etc/no-such-file",
        "passwd",
        "etc/shadow",
        "etc/no-such-file",
    ];
    for (i, path) in outside.iter().enumerate() {
        let id = format!("c{i}");
        let a = post_json(
            port,
            "/api/v1/cameras",
            &json!({"camera_id": id, "source": path}),
        )
        .await;
        assert_eq!(
            (a.status, a.code()),
            (403, "outside_media_dir"),
            "{path}: {a:?}"
        );
        let spec = json!({"kind": "file", "path": path});
        let a = post_json(
            port,
            "/api/v1/cameras",
            &json!({"camera_id": id, "spec": spec}),
        )
        .await;
        assert_eq!(
            (a.status, a.code()),
            (403, "outside_media_dir"),
            "{path}: {a:?}"
        );
        let sse = format!("{SSE}?camera_id={id}&source={}", enc(path));
        let a = send(port, "GET", &sse, &[], "").await;
        assert_eq!(
            (a.status, a.code()),
            (403, "outside_media_dir"),
            "{path}: {a:?}"
        );
    }
    for device in ["/dev/sda", "/dev/video0/../sda", "/dev/mem"] {
        let a = post_json(
            port,
            "/api/v1/cameras",
            &json!({"camera_id": "d", "source": device}),
        )
        .await;
        assert_eq!(a.status, 403, "{device}: {a:?}");
    }
    let a = post_json(
        port,
        "/api/v1/cameras",
        &json!({"camera_id": "m", "source": "gone.y4m"}),
    )
    .await;
    assert_eq!((a.status, a.code()), (422, "no_such_media"), "{a:?}");
    let shown = a.body.to_string();
    assert!(!shown.contains(dir.path().to_str().unwrap()), "{shown}");
    assert!(camera_ids(port).await.is_empty(), "refusals create nothing");

    let door = json!({"camera_id": "door", "source": "door.y4m", "fps": 1, "autostart": false});
    let a = post_json(port, "/api/v1/cameras", &door).await;
    assert_eq!(a.status, 200, "a file in the media folder: {a:?}");

    // Without the setting, no file at all.
    let dir2 = tempfile::tempdir().unwrap();
    let port2 = free_port();
    let _off = start(&config(dir2.path(), port2, ""), port2, &[]).await;
    let clip = media.join("door.y4m");
    let a = post_json(
        port2,
        "/api/v1/cameras",
        &json!({"camera_id": "door", "source": clip}),
    )
    .await;
    assert_eq!((a.status, a.code()), (403, "media_dir_unset"), "{a:?}");
}

/// A network camera becomes an argv the appliance builds: the URL once, right after `-i`, with a
/// protocol whitelist; URLs that smuggle options, spaces or other protocols are refused. A fake
/// `ffmpeg` on the binary's PATH records the argv it was given.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_camera_url_is_an_argv_the_appliance_builds() {
    if !common::netns::loopback_only("api_guard::a_camera_url_is_an_argv_the_appliance_builds") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = dir.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let argv = dir.path().join("argv");
    let fake = bin.join("ffmpeg");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\nprintf '%s\\0' \"$@\" > {}.$$\nexec sleep 30\n",
            argv.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let port = free_port();
    let media = dir.path().join("media");
    std::fs::create_dir(&media).unwrap();
    let cfg = config(
        dir.path(),
        port,
        &format!("media_dir = \"{}\"", media.display()),
    );
    let _facecv = start(&cfg, port, &[("PATH", path)]).await;

    for url in [
        "rtsp://127.0.0.1:1/cam -f lavfi",
        "rtsp://127.0.0.1:1/cam\n-y",
        "-i rtsp://127.0.0.1:1/cam",
        "file:/etc/passwd",
        "concat:/etc/passwd|/etc/shadow",
        "subfile,,start,0,end,0,,:/etc/passwd",
        "ftp://127.0.0.1/x",
        "rtsp:///etc/passwd",
    ] {
        let a = post_json(
            port,
            "/api/v1/cameras",
            &json!({"camera_id": "n", "source": url}),
        )
        .await;
        assert_eq!(a.status, 422, "{url:?}: {a:?}");
        let sse = format!("{SSE}?camera_id=n&source={}", enc(url));
        assert_eq!(
            send(port, "GET", &sse, &[], "").await.status,
            422,
            "{url:?}"
        );
    }

    let url = "rtsp://user:pw@127.0.0.1:8554/live/cam-1?profile=2";
    let a = post_json(
        port,
        "/api/v1/cameras",
        &json!({"camera_id": "net", "source": url, "fps": 5}),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    let calls = loop {
        let calls: Vec<PathBuf> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.to_string_lossy().contains("argv."))
            .collect();
        if !calls.is_empty() {
            break calls;
        }
        assert!(Instant::now() < deadline, "ffmpeg was never started");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let raw = std::fs::read(&calls[0]).unwrap();
    let args: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let at = args.iter().position(|a| a == "-i").expect("-i");
    assert_eq!(args[at + 1], url, "{args:?}");
    assert_eq!(
        args.iter().filter(|a| a.contains("127.0.0.1")).count(),
        1,
        "{args:?}"
    );
    let wl = args
        .iter()
        .position(|a| a == "-protocol_whitelist")
        .expect("a whitelist");
    assert!(wl < at, "{args:?}");
    for p in args[wl + 1].split(',') {
        assert!(["rtsp", "rtp", "tcp", "udp"].contains(&p), "{args:?}");
    }
    let a = post_json(port, "/api/v1/cameras/net/stop", &json!({})).await;
    assert_eq!(a.status, 200, "{a:?}");
}

/// A web page cannot use a browser on the device: foreign `Origin`, `Sec-Fetch-Site` other than
/// same-origin or none, a `Host` that is not loopback (DNS rebinding) and non-JSON bodies are all
/// refused, and nothing is created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_browser_cannot_be_made_to_change_anything() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _facecv = start(&config(dir.path(), port, ""), port, &[]).await;
    let hook = json!({"webhook_id": "evil", "url": "http://127.0.0.1:9/hook"}).to_string();
    let host = format!("127.0.0.1:{port}");
    let local = format!("http://{host}");
    let refused = [
        (
            vec![JSON, ("Origin", "http://evil.example")],
            403,
            "foreign_origin",
        ),
        (vec![JSON, ("Origin", "null")], 403, "foreign_origin"),
        (
            vec![JSON, ("Origin", "http://127.0.0.1:1")],
            403,
            "foreign_origin",
        ),
        (
            vec![JSON, ("Sec-Fetch-Site", "cross-site")],
            403,
            "cross_site_request",
        ),
        (
            vec![JSON, ("Sec-Fetch-Site", "same-site")],
            403,
            "cross_site_request",
        ),
        (
            vec![JSON, ("Host", "evil.example")],
            403,
            "host_not_allowed",
        ),
        (
            vec![JSON, ("Host", "evil.example:7000")],
            403,
            "host_not_allowed",
        ),
        (
            vec![("Content-Type", "text/plain")],
            415,
            "unsupported_media_type",
        ),
        (
            vec![("Content-Type", "application/x-www-form-urlencoded")],
            415,
            "unsupported_media_type",
        ),
        (vec![], 415, "unsupported_media_type"),
    ];
    for (headers, status, code) in &refused {
        let a = send(port, "POST", "/api/v1/webhooks", headers, &hook).await;
        assert_eq!((a.status, a.code()), (*status, *code), "{headers:?}: {a:?}");
        let sse =
            format!("{SSE}?camera_id=evil&source=synthetic&webhook_urls=http://127.0.0.1:9/x");
        let get: Vec<_> = headers
            .iter()
            .filter(|(k, _)| *k != "Content-Type")
            .cloned()
            .collect();
        if !get.is_empty() {
            let a = send(port, "GET", &sse, &get, "").await;
            assert_eq!((a.status, a.code()), (*status, *code), "SSE {get:?}: {a:?}");
        }
    }
    let a = send(port, "GET", "/health", &[("Host", "evil.example")], "").await;
    assert_eq!(
        (a.status, a.code()),
        (403, "host_not_allowed"),
        "rebinding reads too: {a:?}"
    );
    let list = send(port, "GET", "/api/v1/webhooks", &[], "").await;
    assert_eq!(list.body, json!([]), "nothing was created");
    assert!(camera_ids(port).await.is_empty());

    // The same request from the API's own origin, or from no browser, goes through.
    let a = send(
        port,
        "POST",
        "/api/v1/webhooks",
        &[JSON, ("Origin", &local), ("Sec-Fetch-Site", "same-origin")],
        &hook,
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    let plus_json = ("Content-Type", "application/vnd.facecv+json; charset=utf-8");
    let body = json!({"event_type": "face_detected"}).to_string();
    let a = send(
        port,
        "POST",
        "/api/v1/events/trigger",
        &[("Host", "localhost"), plus_json],
        &body,
    )
    .await;
    assert_eq!(a.status, 200, "any +json type, a loopback name: {a:?}");
    let a = send(
        port,
        "GET",
        "/api/v1/webhooks",
        &[("Origin", "http://evil.example")],
        "",
    )
    .await;
    assert_eq!(a.status, 200, "a read is not refused: {a:?}");
}

/// With a token: `Bearer` in any case, the exact token only, and any `Host` (boards have names),
/// but still no foreign `Origin`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_is_matched_exactly_and_bearer_in_any_case() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _facecv = start(
        &config(dir.path(), port, &format!("token = \"{TOKEN}\"")),
        port,
        &[],
    )
    .await;
    let upper = TOKEN.to_uppercase();
    let short = &TOKEN[..TOKEN.len() - 1];
    let long = format!("{TOKEN}x");
    for (auth, status) in [
        (format!("Bearer {TOKEN}"), 200),
        (format!("bearer {TOKEN}"), 200),
        (format!("BEARER {TOKEN}"), 200),
        (format!("Bearer {upper}"), 401),
        (format!("Bearer {short}"), 401),
        (format!("Bearer {long}"), 401),
        (format!("Basic {TOKEN}"), 401),
        (TOKEN.to_owned(), 401),
    ] {
        let a = send(
            port,
            "GET",
            "/api/v1/webhooks",
            &[("Authorization", &auth), ("Host", "board.local:7000")],
            "",
        )
        .await;
        assert_eq!(a.status, status, "{auth}: {a:?}");
    }
    let auth = format!("bearer {TOKEN}");
    let body = json!({"event_type": "face_recognized"}).to_string();
    let a = send(
        port,
        "POST",
        "/api/v1/events/trigger",
        &[
            ("Authorization", &auth),
            JSON,
            ("Origin", "http://evil.example"),
        ],
        &body,
    )
    .await;
    assert_eq!((a.status, a.code()), (403, "foreign_origin"), "{a:?}");
    let a = send(
        port,
        "POST",
        "/api/v1/events/trigger",
        &[("Authorization", &auth), JSON],
        &body,
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
}

/// `+` in a path is a plus; names and ids from the path are percent-decoded as paths are.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plus_in_a_path_is_a_plus() {
    let dir = tempfile::tempdir().unwrap();
    let storage = facecv::store::StorageConfig {
        dir: dir.path().join("store"),
        ..Default::default()
    };
    let store = facecv::store::Store::open(&storage, Default::default()).unwrap();
    for name in ["A B", "A+B"] {
        store
            .add_faces(
                name,
                "test:model",
                &[facecv::store::NewFace::bare(vec![0.5; 8])],
                &Default::default(),
            )
            .unwrap();
    }
    drop(store);
    let port = free_port();
    let _facecv = start(&config(dir.path(), port, ""), port, &[]).await;
    let count = |name: &'static str| async move {
        let a = send(
            port,
            "GET",
            &format!("/api/v1/faces?name={}", enc(name)),
            &[],
            "",
        )
        .await;
        a.body["total"].as_u64().unwrap()
    };
    let a = send(port, "DELETE", "/api/v1/faces/by-name/A+B", &[], "").await;
    assert_eq!(
        (a.status, &a.body["name"], &a.body["deleted"]),
        (200, &json!("A+B"), &json!(1)),
        "{a:?}"
    );
    assert_eq!((count("A B").await, count("A+B").await), (1, 0));
    let a = send(
        port,
        "DELETE",
        "/api/v1/insightface/faces/by-name/A%20B",
        &[],
        "",
    )
    .await;
    assert_eq!(
        (a.status, &a.body["message"]),
        (200, &json!("Successfully deleted all faces for A B")),
        "{a:?}"
    );
    assert_eq!(count("A B").await, 0);
    let a = send(port, "DELETE", "/api/v1/cameras/a%2F..%2Fb", &[], "").await;
    assert_eq!(a.status, 404, "{a:?}");
}

/// Unknown webhook fields are accepted, as FaceCV did, but named in the answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_with_a_typo_says_what_it_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _facecv = start(&config(dir.path(), port, ""), port, &[]).await;
    let typo = json!({"webhook_id": "w", "url": "http://127.0.0.1:9/h", "event_type": ["stranger_alert"], "timeout": 5});
    let a = post_json(port, "/api/v1/webhooks", &typo).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["ignored_fields"], json!(["event_type"]), "{a:?}");
    assert_eq!(
        a.body["event_types"],
        Value::Null,
        "the typo did not filter"
    );
    assert_eq!(a.body["timeout"], json!(5.0));
    let fine = json!({"url": "http://127.0.0.1:9/h", "event_types": ["stranger_alert"]});
    let a = send(
        port,
        "PUT",
        "/api/v1/webhooks/w",
        &[JSON],
        &fine.to_string(),
    )
    .await;
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.body.get("ignored_fields").is_none(), "{a:?}");
    let again = json!({"url": "http://127.0.0.1:9/h", "retries": 3, "secret_key": "x"});
    let a = send(
        port,
        "PUT",
        "/api/v1/webhooks/w",
        &[JSON],
        &again.to_string(),
    )
    .await;
    assert_eq!(
        a.body["ignored_fields"],
        json!(["retries", "secret_key"]),
        "{a:?}"
    );
}

/// A trigger's `camera_id` follows the cameras' rule.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trigger_camera_id_is_a_camera_id() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _facecv = start(&config(dir.path(), port, ""), port, &[]).await;
    let long = "c".repeat(65);
    for bad in [
        "a\u{0}b",
        "../x",
        "..",
        "a/b",
        "line\nbreak",
        "tab\t",
        "",
        long.as_str(),
    ] {
        let body = json!({"event_type": "face_detected", "camera_id": bad});
        let a = post_json(port, "/api/v1/events/trigger", &body).await;
        assert_eq!(
            (a.status, &a.body["error"]["field"]),
            (422, &json!("camera_id")),
            "{bad:?}: {a:?}"
        );
    }
    let body = json!({"event_type": "face_detected", "camera_id": "gate-2.north_side"});
    assert_eq!(
        post_json(port, "/api/v1/events/trigger", &body)
            .await
            .status,
        200
    );
    let events = send(port, "GET", "/api/v1/events", &[], "").await.body;
    assert_eq!(
        events["events"].as_array().unwrap().len(),
        1,
        "only the good one: {events}"
    );
}

/// Offline enrolment: a folder outside the enrolment folder gets the same answer whether it
/// exists or not, and no answer names a path the client did not write.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_enrolment_tells_nothing_about_folders_outside() {
    let dir = tempfile::tempdir().unwrap();
    let enrol = dir.path().join("enrol");
    std::fs::create_dir_all(enrol.join("empty")).unwrap();
    std::fs::create_dir_all(dir.path().join("secret")).unwrap();
    std::os::unix::fs::symlink(dir.path(), enrol.join("up")).unwrap();
    let port = free_port();
    let cfg = config(
        dir.path(),
        port,
        &format!("offline_enrol_dir = \"{}\"", enrol.display()),
    );
    let _facecv = start(&cfg, port, &[]).await;
    let pairs = [
        ("/etc", "/etc-no-such-folder"),
        ("../secret", "../no-such-folder"),
        ("up/secret", "up/no-such-folder"),
    ];
    let ask = |p: &str| {
        let body = json!({"directory_path": p});
        async move { post_json(port, "/api/v1/faces/offline", &body).await }
    };
    let root = dir.path().to_str().unwrap();
    for (exists, missing) in pairs {
        let (a, b) = (ask(exists).await, ask(missing).await);
        assert_eq!(
            (a.status, a.code()),
            (403, "outside_enrol_dir"),
            "{exists}: {a:?}"
        );
        assert_eq!(
            (b.status, b.code()),
            (a.status, a.code()),
            "{missing}: {b:?}"
        );
        for x in [&a, &b] {
            assert!(!x.body.to_string().contains(root), "{x:?}");
        }
    }
    for inside in ["nowhere", "empty"] {
        let a = ask(inside).await;
        assert_eq!(a.status, 422, "{inside}: {a:?}");
        assert!(!a.body.to_string().contains(root), "{a:?}");
    }
}
