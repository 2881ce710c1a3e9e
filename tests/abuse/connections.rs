//! Idle and slow clients cannot take the API away, live streams are capped and end cleanly, and
//! requests hyper cannot parse still get the API's JSON error. Against the real binary, over raw
//! sockets, because the abuse is in the bytes a well-behaved client library would never send.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{self, Binary};

/// The binary's [`facecv::api`] bounds these tests lean on (src/api/server.rs, limits.rs).
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
const BODY_IDLE: Duration = Duration::from_secs(10);
const MAX_CONNECTIONS: usize = 512;

const STREAM: &str = "/api/v1/face_recognition_insightface/recognize/webcam/stream";

/// The test opens hundreds of sockets; a shell's soft limit of 1024 would be the first to give.
fn raise_fd_limit(wanted: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write one rlimit through valid pointers to a local.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        if lim.rlim_cur < wanted {
            lim.rlim_cur = wanted.min(lim.rlim_max);
            assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
        }
    }
    assert!(
        lim.rlim_cur >= wanted,
        "the test needs {wanted} descriptors, the hard limit allows {}",
        lim.rlim_max
    );
}

/// The binary with `api` keys added to its `[api]` table and `rest` after the config.
async fn start(dir: &tempfile::TempDir, api: &str, rest: &str) -> Binary {
    let port = common::free_port();
    let config = common::write_config(dir.path(), port, rest);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replacen("[api]\n", &format!("[api]\n{api}"), 1),
    )
    .unwrap();
    Binary::start(&config, port).await
}

async fn connect(port: u16) -> TcpStream {
    TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect to the API")
}

/// Sends `request` and reads until the server closes or `wait` passes; the text read.
async fn exchange(port: u16, request: &[u8], wait: Duration) -> String {
    let mut s = connect(port).await;
    s.write_all(request).await.unwrap();
    read_for(&mut s, wait).await
}

async fn read_for(s: &mut TcpStream, wait: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Reads until `needle` has come; the text so far, or what came when the time was up.
async fn read_until(s: &mut TcpStream, needle: &str, wait: Duration) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut text = String::new();
    let mut buf = vec![0u8; 16 * 1024];
    while !text.contains(needle) {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return Err(text),
        }
    }
    Ok(text)
}

/// One whole response with a `content-length` (whole JSON answers have one), and nothing after it.
async fn read_response(s: &mut TcpStream, wait: Duration) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + wait;
    let mut text = read_until(s, "\r\n\r\n", wait).await?;
    let head_end = text.find("\r\n\r\n").unwrap() + 4;
    let length: usize = text[..head_end]
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or_else(|| format!("no content-length: {text}"))?;
    let mut buf = vec![0u8; 16 * 1024];
    while text.len() < head_end + length {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => text.push_str(&String::from_utf8_lossy(&buf[..n])),
            _ => return Err(text),
        }
    }
    Ok(text)
}

fn status(response: &str) -> u16 {
    response
        .get(9..12)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP response: {response:?}"))
}

/// The JSON document in a response, chunked or not.
fn json(response: &str) -> Value {
    let body = &response[response.find("\r\n\r\n").expect("a whole head")..];
    let (start, end) = (body.find('{'), body.rfind('}'));
    match (start, end) {
        (Some(s), Some(e)) => serde_json::from_str(&body[s..=e])
            .unwrap_or_else(|e| panic!("not JSON ({e}): {response:?}")),
        _ => panic!("no JSON body: {response:?}"),
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n").into_bytes()
}

/// Opens a live stream and reads its head; the socket stays open for the caller.
async fn open_stream(port: u16, query: &str) -> (TcpStream, String) {
    let mut s = connect(port).await;
    let request = format!("GET {STREAM}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let head = read_until(&mut s, "\r\n\r\n", Duration::from_secs(60))
        .await
        .expect("the stream's head");
    (s, head)
}

async fn health_time(port: u16) -> Duration {
    let t = Instant::now();
    let response = exchange(port, &get("/health"), Duration::from_secs(30)).await;
    let took = t.elapsed();
    assert_eq!(status(&response), 200, "{response}");
    took
}

/// The requirement's siege: 300 idle connections, 64 clients that declared a body and sent one
/// byte, and every stream place taken. `/health` still answers at once (1 s in the benchmark,
/// `benches/connections.rs`; 5 s here, for a loaded CI machine), and one stream more is refused
/// with 503, `Retry-After` and the JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_answers_beside_idle_and_slow_clients_and_full_streams() {
    if !common::netns::loopback_only(
        "connections::health_answers_beside_idle_and_slow_clients_and_full_streams",
    ) {
        return;
    }
    raise_fd_limit(2048);
    let dir = tempfile::tempdir().unwrap();
    let bin = start(&dir, "max_streams = 2\n", "").await;
    let port = bin.port;

    let mut streams = Vec::new();
    for i in 0..2 {
        let (mut s, head) =
            open_stream(port, &format!("camera_id=siege{i}&source=synthetic&fps=5")).await;
        assert_eq!(status(&head), 200, "{head}");
        read_until(&mut s, "data: ", Duration::from_secs(60))
            .await
            .expect("the stream sends frames");
        streams.push(s);
    }
    let mut idle = Vec::new();
    for _ in 0..300 {
        idle.push(connect(port).await);
    }
    let mut slow = Vec::new();
    for _ in 0..64 {
        let mut s = connect(port).await;
        s.write_all(
            b"POST /api/v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )
        .await
        .unwrap();
        slow.push(s);
    }
    // Let the server take them all in before it is asked.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let took = health_time(port).await;
    assert!(took < Duration::from_secs(5), "/health took {took:?}");

    let (_third, refused) = open_stream(port, "camera_id=siege9&source=synthetic").await;
    let mut s = _third;
    let refused = refused + &read_for(&mut s, Duration::from_secs(2)).await;
    assert_eq!(status(&refused), 503, "{refused}");
    assert!(
        refused.to_ascii_lowercase().contains("retry-after: "),
        "{refused}"
    );
    assert_eq!(json(&refused)["error"]["code"], "too_many_streams");
    assert_eq!(metric(port, "facecv_api_streams_refused_total").await, 1.0);
    assert_eq!(metric(port, "facecv_api_streams").await, 2.0);
    let (_, cameras) = bin.api.get("/api/v1/cameras").await;
    assert!(
        !cameras.to_string().contains("siege9"),
        "a refused stream made no camera: {cameras}"
    );
    drop(streams);
}

/// More idle connections than the limit: each new client takes the place of the one idle the
/// longest, so nobody waits behind them and `/health` still answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_connections_past_the_limit_make_room_for_new_ones() {
    raise_fd_limit(4096);
    let dir = tempfile::tempdir().unwrap();
    let bin = start(&dir, "", "").await;
    let port = bin.port;
    let mut idle = Vec::new();
    for _ in 0..MAX_CONNECTIONS + 200 {
        idle.push(connect(port).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let took = health_time(port).await;
    assert!(took < Duration::from_secs(5), "/health took {took:?}");
    // The oldest ones were closed to make room: their reads end at once.
    let mut closed = 0;
    for s in idle.iter_mut().take(100) {
        let mut b = [0u8; 1];
        if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(50), s.read(&mut b)).await {
            closed += 1;
        }
    }
    assert!(
        closed >= 90,
        "only {closed} of the 100 oldest idle connections were shed"
    );
    let shed = metric(port, "facecv_api_connections_shed_total").await;
    assert!(
        shed >= 190.0,
        "the metrics count the shed connections: {shed}"
    );
}

/// One value of `/metrics`.
async fn metric(port: u16, name: &str) -> f64 {
    let text = exchange(port, &get("/metrics"), Duration::from_secs(10)).await;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
        .unwrap_or_else(|| panic!("{name} is not in /metrics: {text}"))
}

/// A client that sends no head, and one that keeps a connection after its answer, are both closed
/// after the header timeout; neither holds a place for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_and_idle_keep_alive_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let bin = start(&dir, "", "").await;
    let mut silent = connect(bin.port).await;
    let mut kept = connect(bin.port).await;
    kept.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let answer = read_response(&mut kept, Duration::from_secs(10))
        .await
        .expect("the keep-alive answer");
    assert_eq!(status(&answer), 200);
    let t = Instant::now();
    let limit = HEADER_TIMEOUT + Duration::from_secs(5);
    assert_eq!(read_for(&mut kept, limit).await, "", "nothing more comes");
    assert!(
        t.elapsed() < limit,
        "the idle keep-alive connection stayed open"
    );
    assert_eq!(read_for(&mut silent, Duration::from_secs(5)).await, "");
    assert!(t.elapsed() < limit, "the silent connection stayed open");
}

/// A body that stops coming gets 408 with the JSON error, and the connection closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_body_gets_408_in_json() {
    let dir = tempfile::tempdir().unwrap();
    let bin = start(&dir, "", "").await;
    let t = Instant::now();
    let response = exchange(
        bin.port,
        b"POST /api/v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"url\":",
        BODY_IDLE + Duration::from_secs(10),
    )
    .await;
    assert_eq!(status(&response), 408, "{response}");
    assert_eq!(json(&response)["error"]["code"], "request_timeout");
    assert!(t.elapsed() >= BODY_IDLE - Duration::from_secs(1));
    // The multipart readers go through the same deadline.
    let response = exchange(
        bin.port,
        b"POST /api/v1/faces/recognize HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: multipart/form-data; boundary=xx\r\nContent-Length: 5000\r\n\r\n--xx\r\n",
        BODY_IDLE + Duration::from_secs(10),
    )
    .await;
    assert_eq!(status(&response), 408, "{response}");
    let (code, _) = bin.api.get("/health").await;
    assert_eq!(code, 200);
}

/// Requests hyper cannot parse, and those that reach the router broken, all get the JSON error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_errors_answer_the_json_error() {
    let dir = tempfile::tempdir().unwrap();
    let bin = start(&dir, "", "").await;
    let long_header = format!(
        "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(40_000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("a malformed request line", b"GARBAGE\r\n\r\n".to_vec(), 400),
        ("an unknown HTTP version", b"GET /health HTTP/7.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), 400),
        ("a header without a colon", b"GET /health HTTP/1.1\r\nBad Header\r\n\r\n".to_vec(), 400),
        (
            "two different lengths",
            b"POST /api/v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n".to_vec(),
            400,
        ),
        ("a URI with a space", b"GET /he alth HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".to_vec(), 400),
        ("headers past the limit", long_header.into_bytes(), 431),
        (
            "bad chunked encoding",
            b"POST /api/v1/webhooks HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nZZ\r\nxx\r\n".to_vec(),
            400,
        ),
        ("a broken percent escape", get("/api/v1/cameras/%ZZ%"), 404),
        ("percent-encoded garbage in a query", get("/api/v1/events?limit=%FF%00"), 422),
    ];
    for (what, request, expected) in cases {
        let response = exchange(bin.port, &request, Duration::from_secs(5)).await;
        assert_eq!(status(&response), expected, "{what}: {response}");
        let error = &json(&response)["error"];
        assert!(
            error["code"].is_string() && error["message"].is_string(),
            "{what}: {response}"
        );
        assert!(
            response
                .to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: {response}"
        );
    }
    let (code, _) = bin.api.get("/health").await;
    assert_eq!(code, 200);
}

/// Wrong stream parameters are refused with 422 naming them, on a camera that exists too, and an
/// ad-hoc stream may not make more than eight webhooks; nothing is created by a refused request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_parameters_and_webhooks_are_checked_before_anything_is_made() {
    if !common::netns::loopback_only(
        "connections::stream_parameters_and_webhooks_are_checked_before_anything_is_made",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = start(
        &dir,
        "",
        "[[cameras]]\ncamera_id = \"door\"\nsource = \"synthetic\"\nautostart = false\n",
    )
    .await;
    let hook = |i: usize| format!("http://127.0.0.1:9/h{i}");
    let nine: Vec<String> = (0..9).map(hook).collect();
    let cases = [
        ("camera_id=door&fps=-5&threshold=0.5".to_owned(), "fps"),
        ("camera_id=door&threshold=9".to_owned(), "threshold"),
        (
            "camera_id=adhoc&source=synthetic&fps=1000".to_owned(),
            "fps",
        ),
        (
            format!(
                "camera_id=adhoc&source=synthetic&webhook_urls={}",
                nine.join(",")
            ),
            "webhook_urls",
        ),
        (
            format!(
                "camera_id=adhoc&source=synthetic&webhook_urls={},ftp://x/y",
                hook(0)
            ),
            "webhook_urls",
        ),
        (
            format!(
                "camera_id=adhoc&source=synthetic&webhook_urls={}&webhook_timeout=0",
                hook(0)
            ),
            "webhook_timeout",
        ),
    ];
    for (query, field) in cases {
        let (mut s, head) = open_stream(bin.port, &query).await;
        let response = head + &read_for(&mut s, Duration::from_secs(2)).await;
        assert_eq!(status(&response), 422, "{query}: {response}");
        assert_eq!(
            json(&response)["error"]["field"],
            field,
            "{query}: {response}"
        );
    }
    let (_, hooks) = bin.api.get("/api/v1/webhooks").await;
    assert!(
        !hooks.to_string().contains("stream_"),
        "no webhook was made: {hooks}"
    );
    let (_, cameras) = bin.api.get("/api/v1/cameras").await;
    assert!(
        !cameras.to_string().contains("adhoc"),
        "no camera was made: {cameras}"
    );
    let (_, door) = bin.api.get("/api/v1/cameras/door").await;
    assert_eq!(
        door["running"], false,
        "the refused stream did not start it: {door}"
    );
}

/// A client that comes back to its ad-hoc stream right after leaving gets a stream that runs, and
/// a stream whose camera stops is told so with `event: end` and a reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_stream_runs_and_every_end_is_announced() {
    if !common::netns::loopback_only(
        "connections::a_reopened_stream_runs_and_every_end_is_announced",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = start(&dir, "", "").await;
    let query = "camera_id=again&source=synthetic&fps=10";
    let (mut first, head) = open_stream(bin.port, query).await;
    assert_eq!(status(&head), 200, "{head}");
    read_until(&mut first, "data: ", Duration::from_secs(60))
        .await
        .expect("frames");
    drop(first);

    let (mut second, head) = open_stream(bin.port, query).await;
    assert_eq!(status(&head), 200, "{head}");
    let t = Instant::now();
    let seen = read_for(&mut second, Duration::from_secs(4)).await;
    assert!(
        !seen.contains("event: end"),
        "the reopened stream ended after {:?}: {seen}",
        t.elapsed()
    );
    assert!(
        seen.matches("data: ").count() >= 5,
        "the reopened stream sends frames: {seen}"
    );

    // The camera stops under the stream: the client hears why.
    let (code, body) = bin
        .api
        .post("/api/v1/cameras/again/stop", Value::Null)
        .await;
    if code != 200 {
        // Seen once in CI (404) and not reproduced since: say what the appliance and the stream
        // saw, so that a recurrence can be understood.
        let (_, cameras) = bin.api.get("/api/v1/cameras").await;
        let more = read_for(&mut second, Duration::from_secs(1)).await;
        panic!("stop answered {code} {body}; cameras: {cameras}; the stream then: {more}");
    }
    let text = read_until(&mut second, "event: end", Duration::from_secs(10))
        .await
        .expect("event: end after the camera stopped");
    assert!(text.contains("camera_stopped"), "{text}");
}

/// Opening and closing streams in a loop, each with eight webhooks to a receiver that is down,
/// cannot pile up webhooks: those still delivering count, and past twice what open streams may
/// hold a new stream with webhooks gets 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_of_ended_streams_count_until_they_are_gone() {
    if !common::netns::loopback_only(
        "connections::webhooks_of_ended_streams_count_until_they_are_gone",
    ) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let bin = start(&dir, "max_streams = 1\n", "").await;
    let down = common::free_port();
    let hooks: Vec<String> = (0..8)
        .map(|i| format!("http://127.0.0.1:{down}/h{i}"))
        .collect();
    let query = format!(
        "camera_id=loop&source=synthetic&webhook_retry_count=10&webhook_urls={}",
        hooks.join(",")
    );
    for round in 0..2 {
        // The stream's place comes free a moment after its camera has gone.
        let deadline = Instant::now() + Duration::from_secs(10);
        let (mut s, head) = loop {
            let (s, head) = open_stream(bin.port, &query).await;
            if status(&head) != 503 || Instant::now() > deadline {
                break (s, head);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        assert_eq!(status(&head), 200, "round {round}: {head}");
        read_until(&mut s, "data: ", Duration::from_secs(60))
            .await
            .expect("frames");
        drop(s);
        // The camera goes and its place under max_streams comes free; the webhooks stay to retry.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let (_, cameras) = bin.api.get("/api/v1/cameras").await;
            if !cameras.to_string().contains("\"loop\"") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "the ad-hoc camera stayed: {cameras}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    // The last stream's place under max_streams comes free only once its camera has settled (the
    // manager has forgotten it, then its memory is given back): until then the answer may be
    // `too_many_streams`. What must follow is the refusal for the webhooks still retrying.
    let deadline = Instant::now() + Duration::from_secs(10);
    let refused = loop {
        let (mut s, head) = open_stream(bin.port, &query).await;
        let refused = head + &read_for(&mut s, Duration::from_secs(2)).await;
        let code = json(&refused)["error"]["code"].clone();
        if code != "too_many_streams" || Instant::now() > deadline {
            break refused;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status(&refused), 503, "{refused}");
    assert_eq!(json(&refused)["error"]["code"], "too_many_stream_webhooks");
    // A stream without webhooks is still welcome.
    let (mut s, head) = open_stream(bin.port, "camera_id=plain&source=synthetic").await;
    assert_eq!(status(&head), 200, "{head}");
    read_until(&mut s, "data: ", Duration::from_secs(60))
        .await
        .expect("frames");
}
