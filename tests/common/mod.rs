//! What the integration tests share: a real HTTP receiver on loopback whose answers a test scripts,
//! the appliance started in-process or as the real binary, and a small JSON client for its API.
#![allow(dead_code)]

pub mod console;
pub mod crash;
pub mod damage;
pub mod mqtt;
pub mod netns;
pub mod procfs;
pub mod tls;
pub mod video;

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use facecv::config::Config;
use http::{HeaderMap, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

/// One request the receiver got.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
    pub status: u16,
}

impl Received {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("the appliance sends JSON")
    }
    pub fn event_ids(&self) -> Vec<String> {
        self.json()["events"]
            .as_array()
            .expect("an events array")
            .iter()
            .map(|e| e["id"].as_str().expect("an id").to_owned())
            .collect()
    }
}

/// How the receiver answers one request.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub delay: Duration,
    pub headers: Vec<(&'static str, String)>,
}

impl Reply {
    pub fn status(status: u16) -> Self {
        Reply {
            status,
            delay: Duration::ZERO,
            headers: Vec::new(),
        }
    }
    pub fn with_header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_owned()));
        self
    }
    pub fn after(mut self, delay: Duration) -> Self {
        self.delay = delay;
        self
    }
}

#[derive(Default)]
struct Log {
    /// When set, every request goes to it and is answered 200 at once, without being kept.
    tap: Option<Tap>,
    script: VecDeque<Reply>,
    /// The answer once the script is used up; 200 at once when unset.
    default: Option<Reply>,
    received: Vec<Received>,
}

/// What a [`Receiver::start_tapped`] hands each request to: its path, headers, body, and when it
/// arrived.
pub type Tap = Arc<dyn Fn(&str, HeaderMap, Bytes, Instant) + Send + Sync>;

/// A webhook receiver on loopback (HTTP, or HTTPS with [`Receiver::start_tls`]). Answers come from
/// a script, then 200.
#[derive(Clone)]
pub struct Receiver {
    pub addr: SocketAddr,
    log: Arc<Mutex<Log>>,
    stop: CancellationToken,
    tls: Option<tokio_rustls::TlsAcceptor>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), Arc::default(), None).await
    }

    /// A receiver that keeps nothing and answers 200 at once, handing every request to `tap`:
    /// for the benchmarks, which count millions of events and must not hold them.
    pub async fn start_tapped(tap: Tap) -> Receiver {
        let log = Log {
            tap: Some(tap),
            ..Log::default()
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], 0));
        Self::start_on(addr, Arc::new(Mutex::new(log)), None).await
    }

    /// An HTTPS receiver presenting `tls`'s certificate.
    pub async fn start_tls(tls: Arc<rustls::ServerConfig>) -> Receiver {
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        Self::start_on(
            SocketAddr::from(([127, 0, 0, 1], 0)),
            Arc::default(),
            Some(acceptor),
        )
        .await
    }

    async fn start_on(
        addr: SocketAddr,
        log: Arc<Mutex<Log>>,
        tls: Option<tokio_rustls::TlsAcceptor>,
    ) -> Receiver {
        let listener = TcpListener::bind(addr).await.expect("bind the receiver");
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let r = Receiver {
            addr,
            log: log.clone(),
            stop: stop.clone(),
            tls: tls.clone(),
        };
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = stop.cancelled() => return,
                    a = listener.accept() => match a { Ok(a) => a, Err(_) => continue },
                };
                // Answers leave at once, as a receiver tuned for webhooks sends them.
                let _ = stream.set_nodelay(true);
                let log = log.clone();
                let stop = stop.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<Incoming>| {
                        let log = log.clone();
                        async move { Ok::<_, Infallible>(answer(&log, req).await) }
                    });
                    let http = hyper::server::conn::http1::Builder::new();
                    match tls {
                        None => {
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            tokio::select! { _ = conn => {} _ = stop.cancelled() => {} }
                        }
                        Some(acceptor) => {
                            let Ok(stream) = acceptor.accept(stream).await else {
                                return;
                            };
                            let conn = http.serve_connection(TokioIo::new(stream), service);
                            tokio::select! { _ = conn => {} _ = stop.cancelled() => {} }
                        }
                    }
                });
            }
        });
        r
    }

    pub fn url(&self, path: &str) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{}", self.addr, path)
    }

    /// Queues answers for the next requests.
    pub fn script(&self, replies: impl IntoIterator<Item = Reply>) {
        self.log.lock().unwrap().script.extend(replies);
    }

    /// Sets the answer given once the script is used up (a slow receiver, say).
    pub fn answer_by_default(&self, reply: Reply) {
        self.log.lock().unwrap().default = Some(reply);
    }

    pub fn received(&self) -> Vec<Received> {
        self.log.lock().unwrap().received.clone()
    }

    /// Requests answered 2xx.
    pub fn accepted(&self) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|r| (200..300).contains(&r.status))
            .collect()
    }

    /// Event ids of every accepted request, in the order they arrived.
    pub fn accepted_ids(&self) -> Vec<String> {
        self.accepted()
            .iter()
            .flat_map(Received::event_ids)
            .collect()
    }

    /// Closes the listener and every open connection: the receiver is down.
    pub fn go_down(&self) {
        self.stop.cancel();
    }

    /// Starts again on the same port, keeping the log.
    pub async fn come_back(&self) -> Receiver {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => {
                    drop(l);
                    return Self::start_on(self.addr, self.log.clone(), self.tls.clone()).await;
                }
                Err(_) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                Err(e) => panic!("cannot rebind {}: {e}", self.addr),
            }
        }
    }
}

async fn answer(log: &Mutex<Log>, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let headers = parts.headers;
    let body = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let at = Instant::now();
    let tap = log.lock().unwrap().tap.clone();
    if let Some(tap) = tap {
        tap(parts.uri.path(), headers, body, at);
        return Response::new(Full::new(Bytes::from_static(b"{\"ok\":true}")));
    }
    let reply = {
        // Logged on arrival: a client that gives up on a slow answer has still sent its request.
        let mut log = log.lock().unwrap();
        let reply = log
            .script
            .pop_front()
            .or_else(|| log.default.clone())
            .unwrap_or(Reply::status(200));
        log.received.push(Received {
            headers,
            body,
            at,
            status: reply.status,
        });
        reply
    };
    if !reply.delay.is_zero() {
        tokio::time::sleep(reply.delay).await;
    }
    let mut response = Response::builder().status(reply.status);
    for (name, value) in &reply.headers {
        response = response.header(*name, value);
    }
    response
        .body(Full::new(Bytes::from_static(b"{\"status\":\"received\"}")))
        .unwrap()
}

/// Polls `cond` every 20 ms until it holds, or panics with `what` after `timeout`.
pub async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Like [`wait_until`], for conditions that need the API (async).
pub async fn eventually<F, Fut>(timeout: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !cond().await {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A small JSON client for the appliance's API.
#[derive(Clone)]
pub struct Api {
    pub base: String,
    client: Client<HttpConnector, Full<Bytes>>,
    token: Option<String>,
}

impl Api {
    pub fn new(addr: SocketAddr) -> Api {
        Api {
            base: format!("http://{addr}"),
            client: Client::builder(TokioExecutor::new()).build_http(),
            token: None,
        }
    }

    pub fn with_token(mut self, token: &str) -> Api {
        self.token = Some(token.into());
        self
    }

    /// Sends raw bytes; returns the status and the body parsed as JSON (or as a string).
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> (StatusCode, Value) {
        self.try_raw(method, path, body)
            .await
            .expect("the API answers")
    }

    /// Sends a body of another content type (a multipart form, say).
    pub async fn raw_with(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> (StatusCode, Value) {
        self.send(method, path, content_type, body)
            .await
            .expect("the API answers")
    }

    /// [`Api::raw`] for a server that may be gone: `None` when the connection fails.
    pub async fn try_raw(
        &self,
        method: Method,
        path: &str,
        body: impl Into<Bytes>,
    ) -> Option<(StatusCode, Value)> {
        self.send(method, path, "application/json", body.into())
            .await
    }

    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Bytes,
    ) -> Option<(StatusCode, Value)> {
        let mut req = Request::builder()
            .method(method)
            .uri(format!("{}{}", self.base, path))
            .header("content-type", content_type);
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .client
            .request(req.body(Full::new(body)).unwrap())
            .await
            .ok()?;
        let status = resp.status();
        let bytes = resp.into_body().collect().await.ok()?.to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Some((status, value))
    }

    /// A GET whose answer is not JSON (a picture): the status, the content type and the bytes.
    pub async fn get_bytes(&self, path: &str) -> (StatusCode, String, Bytes) {
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(format!("{}{}", self.base, path));
        if let Some(t) = &self.token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = self
            .client
            .request(req.body(Full::new(Bytes::new())).unwrap())
            .await
            .expect("the API answers");
        let status = resp.status();
        let ct = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        (status, ct, bytes)
    }

    pub async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.raw(Method::GET, path, Bytes::new()).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.raw(Method::POST, path, body.to_string()).await
    }

    pub async fn put(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.raw(Method::PUT, path, body.to_string()).await
    }

    pub async fn delete(&self, path: &str) -> (StatusCode, Value) {
        self.raw(Method::DELETE, path, Bytes::new()).await
    }

    /// Creates a webhook and returns the create response (with its secret).
    pub async fn create_webhook(&self, body: Value) -> Value {
        let (status, v) = self.post("/api/v1/webhooks", body).await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v
    }

    /// Records `count` sample events of a type from the `entrance` camera; returns their ids.
    pub async fn trigger(&self, event_type: &str, count: u32) -> Vec<String> {
        let events = self.trigger_on(event_type, count, "entrance").await;
        events.into_iter().map(|(_, id)| id).collect()
    }

    /// Records `count` sample events of a type from `camera`; returns their (seq, id).
    pub async fn trigger_on(
        &self,
        event_type: &str,
        count: u32,
        camera: &str,
    ) -> Vec<(i64, String)> {
        let (status, v) = self
            .post(
                "/api/v1/events/trigger",
                serde_json::json!({"event_type": event_type, "count": count, "camera_id": camera}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["seq"].as_i64().unwrap(),
                    e["id"].as_str().unwrap().to_owned(),
                )
            })
            .collect()
    }

    pub async fn stats(&self, webhook: &str) -> Value {
        let (status, v) = self.get("/api/v1/webhooks/stats").await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["webhooks"][webhook].clone()
    }
}

/// A multipart form of text fields and files, as FaceCV's enrolment forms.
pub fn form(fields: &[(&str, &str)], files: &[(&str, Vec<u8>)]) -> (String, Bytes) {
    let b = "facecv-boundary-7";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend(
            format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    for (k, bytes) in files {
        body.extend(format!("--{b}\r\nContent-Disposition: form-data; name=\"{k}\"; filename=\"x\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes());
        body.extend(bytes);
        body.extend(b"\r\n");
    }
    body.extend(format!("--{b}--\r\n").as_bytes());
    (
        format!("multipart/form-data; boundary={b}"),
        Bytes::from(body),
    )
}

/// Posts a multipart [`form`].
pub async fn post_form(
    api: &Api,
    path: &str,
    fields: &[(&str, &str)],
    files: &[(&str, Vec<u8>)],
) -> (StatusCode, Value) {
    let (ct, body) = form(fields, files);
    api.raw_with(Method::POST, path, &ct, body).await
}

/// A config for a test: the API on a free loopback port, the store in `dir`.
pub fn test_config(dir: &Path) -> Config {
    let mut c = Config::embedded_default();
    c.api.listen = "127.0.0.1:0".parse().unwrap();
    c.storage.dir = dir.join("store");
    c
}

/// Writes a config file for [`Binary`]: the API on `port`, the store in `dir/store`, then `rest`.
pub fn write_config(dir: &Path, port: u16, rest: &str) -> PathBuf {
    let path = dir.join("facecv.toml");
    let store = dir.join("store");
    let head = format!(
        "[api]\nlisten = \"127.0.0.1:{port}\"\n\n[storage]\ndir = \"{}\"\n",
        store.display()
    );
    std::fs::write(&path, format!("{head}\n{rest}")).unwrap();
    path
}

/// The appliance running in this process.
pub struct Running {
    pub app: facecv::App,
    pub api: Api,
    pub dir: tempfile::TempDir,
}

pub async fn start_app() -> Running {
    start_app_with(|_| {}).await
}

pub async fn start_app_with(tweak: impl FnOnce(&mut Config)) -> Running {
    init_logging();
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let app = facecv::App::start(config)
        .await
        .expect("the appliance starts");
    let api = Api::new(app.addr());
    Running { app, api, dir }
}

/// Logs go to the test's captured output; `RUST_LOG=debug cargo test` shows them.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_test_writer()
        .try_init();
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The real `facecv` binary, as a child process.
pub struct Binary {
    pub child: std::process::Child,
    pub api: Api,
    pub config: PathBuf,
    /// The API's port, to start the binary again where its clients expect it.
    pub port: u16,
}

impl Binary {
    /// Starts `facecv serve --config <file>` and waits until `/health` answers.
    pub async fn start(config_file: &Path, port: u16) -> Binary {
        let child = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
            .args(["serve", "--config"])
            .arg(config_file)
            .env("LOG_LEVEL", "WARNING")
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("start the facecv binary");
        let api = Api::new(SocketAddr::from(([127, 0, 0, 1], port)));
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let up = tokio::time::timeout(
                Duration::from_secs(1),
                api.client
                    .get(format!("{}/health", api.base).parse().unwrap()),
            )
            .await;
            if matches!(up, Ok(Ok(r)) if r.status() == StatusCode::OK) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "facecv did not answer /health within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Binary {
            child,
            api,
            config: config_file.to_owned(),
            port,
        }
    }

    /// SIGKILL: no shutdown code runs, as in a crash or a power cut of the process.
    pub fn kill9(&mut self) {
        self.child.kill().expect("kill -9");
        self.child.wait().unwrap();
    }

    pub fn sigterm(&mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        self.child.wait().unwrap()
    }
}

/// The binary in a fresh folder with `api.token` set to `token`. [`Binary::start`] waits for a
/// 200 from `/health`, which the token now guards: this waits for any answer instead, and owns
/// the child from the start so that a failure cannot leave it running.
#[allow(dead_code)] // Not every test binary that includes `common` starts one.
pub async fn start_with_token(token: &str) -> (tempfile::TempDir, Binary) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(dir.path(), port, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replacen("[api]\n", &format!("[api]\ntoken = \"{token}\"\n"), 1);
    std::fs::write(&config, text).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("LOG_LEVEL", "WARNING")
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("start the facecv binary");
    let binary = Binary {
        child,
        api: Api::new(SocketAddr::from(([127, 0, 0, 1], port))),
        config,
        port,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while binary
        .api
        .try_raw(Method::GET, "/health", "")
        .await
        .is_none()
    {
        assert!(
            Instant::now() < deadline,
            "facecv did not answer within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    (dir, binary)
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Asserts that `face_id`'s crop and photo are served as JPEGs of the sizes enrolment keeps.
pub async fn assert_pictures(api: &Api, face_id: &str) {
    let (code, ct, crop) = api
        .get_bytes(&format!("/api/v1/faces/{face_id}/crop.jpg"))
        .await;
    assert_eq!((code, ct.as_str()), (StatusCode::OK, "image/jpeg"));
    let crop = image::load_from_memory_with_format(&crop, image::ImageFormat::Jpeg).unwrap();
    assert_eq!(crop.width(), crop.height(), "the aligned crop is square");
    assert!((96..=224).contains(&crop.width()), "{}", crop.width());
    let (code, ct, photo) = api
        .get_bytes(&format!("/api/v1/faces/{face_id}/photo.jpg"))
        .await;
    assert_eq!((code, ct.as_str()), (StatusCode::OK, "image/jpeg"));
    let photo = image::load_from_memory_with_format(&photo, image::ImageFormat::Jpeg).unwrap();
    assert!(photo.width().max(photo.height()) <= 1024);
}
