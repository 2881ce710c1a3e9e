//! The API over HTTPS (`api.tls_listen`): the self-signed certificate made on the first start and
//! kept, a configured one served instead, the fingerprint people and scripts pin, and the same
//! bounds and rules as the plain listener. Every request here goes through a real rustls client
//! that trusts nothing but the SHA-256 fingerprint it was given.

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use facecv::config::Config;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// SHA-256 of a DER certificate, `AB:CD:...`, computed here rather than taken from the crate.
fn fingerprint(der: &[u8]) -> String {
    Sha256::digest(der)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Accepts the server's certificate only when its end-entity certificate has the pinned
/// fingerprint; signatures are checked as usual, so the server must hold the key.
#[derive(Debug)]
struct Pinned {
    fingerprint: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if fingerprint(end_entity) == self.fingerprint {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General("not the pinned certificate".into()))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// What one HTTPS request got: the status, the body as JSON, and the certificate served.
struct Answer {
    status: StatusCode,
    body: Value,
    cert: Vec<u8>,
}

/// One request over a fresh TLS connection that pins `fp`; `Err` when the handshake or the
/// request fails.
async fn https(addr: SocketAddr, fp: &str, req: Request<Full<Bytes>>) -> Result<Answer, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            fingerprint: fp.to_owned(),
            provider,
        }))
        .with_no_client_auth();
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let cert = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
    let status = resp.status();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Answer { status, body, cert })
}

fn get(path: &str) -> Request<Full<Bytes>> {
    Request::get(path)
        .header("host", "localhost")
        .body(Full::new(Bytes::new()))
        .unwrap()
}

async fn health(addr: SocketAddr, fp: &str) -> Answer {
    let a = https(addr, fp, get("/health"))
        .await
        .expect("HTTPS answers");
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    a
}

fn with_tls(c: &mut Config) {
    c.api.tls_listen = Some("127.0.0.1:0".parse().unwrap());
}

/// Whether a DER certificate carries `name` as a subject alternative name (DNS name, tag 0x82,
/// or IP address, tag 0x87), found as the encoded entry itself.
fn has_san(der: &[u8], tag: u8, value: &[u8]) -> bool {
    let mut entry = vec![tag, value.len() as u8];
    entry.extend_from_slice(value);
    der.windows(entry.len()).any(|w| w == entry.as_slice())
}

#[tokio::test]
async fn the_first_start_makes_a_certificate_that_later_starts_serve_again() {
    let run = common::start_app_with(with_tls).await;
    let tls_dir = run.dir.path().join("store/tls");
    let key_mode = std::fs::metadata(tls_dir.join("key.pem"))
        .expect("key.pem made")
        .permissions()
        .mode();
    assert_eq!(key_mode & 0o777, 0o600, "the key is the service's alone");
    assert!(tls_dir.join("cert.pem").is_file());
    let leftovers: Vec<_> = std::fs::read_dir(run.dir.path().join("store"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tls-"))
        .collect();
    assert!(leftovers.is_empty(), "no temporary folder left behind");

    // The fingerprint reported over plain HTTP is the one the HTTPS port serves.
    let (status, plain) = run.api.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    let fp = plain["https"]["fingerprint_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(plain["https"]["certificate"], "self_signed");
    let https_addr = run.app.https().unwrap().addr;
    assert_eq!(plain["https"]["port"], https_addr.port());
    assert_eq!(run.app.https().unwrap().fingerprint, fp);
    let a = health(https_addr, &fp).await;
    assert_eq!(fingerprint(&a.cert), fp);
    assert_eq!(a.body["status"], "ok");
    assert_eq!(a.body["https"]["fingerprint_sha256"], fp.as_str());
    assert!(has_san(&a.cert, 0x82, b"localhost"), "DNS:localhost");
    assert!(has_san(&a.cert, 0x87, &[127, 0, 0, 1]), "IP:127.0.0.1");

    // A client pinning another certificate refuses this one.
    let wrong = fp.replace(&fp[..2], if &fp[..2] == "00" { "11" } else { "00" });
    let err = https(https_addr, &wrong, get("/health")).await.err();
    assert!(
        err.is_some_and(|e| e.contains("pinned")),
        "a wrong pin fails"
    );

    // Restarted on the same store: the same certificate.
    let common::Running { app, dir, .. } = run;
    app.shutdown().await.unwrap();
    let mut config = common::test_config(dir.path());
    with_tls(&mut config);
    let app = facecv::App::start(config).await.unwrap();
    let again = app.https().unwrap();
    assert_eq!(again.fingerprint, fp, "the certificate is kept");
    health(again.addr, &fp).await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_configured_certificate_is_served_instead_and_a_wrong_key_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["board.example".to_owned()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let (cert_file, key_file) = (dir.path().join("site.pem"), dir.path().join("site.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let fp = fingerprint(cert.der());

    let mut config = common::test_config(dir.path());
    with_tls(&mut config);
    config.api.tls_cert = Some(cert_file.clone());
    config.api.tls_key = Some(key_file.clone());
    let app = facecv::App::start(config.clone()).await.unwrap();
    let a = health(app.https().unwrap().addr, &fp).await;
    assert_eq!(a.body["https"]["certificate"], "configured");
    assert!(
        !dir.path().join("store/tls").exists(),
        "no self-signed pair is made when one is configured"
    );
    app.shutdown().await.unwrap();

    // Another key than the certificate's: refused at start, naming the key.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(&key_file, other.serialize_pem()).unwrap();
    let err = format!("{:#}", facecv::App::start(config).await.err().unwrap());
    assert!(
        err.contains(&key_file.display().to_string()) && err.contains("does not belong"),
        "{err}"
    );
}

#[tokio::test]
async fn a_damaged_or_half_pair_is_an_error_naming_the_file_not_a_new_certificate() {
    let run = common::start_app_with(with_tls).await;
    let common::Running { app, dir, .. } = run;
    app.shutdown().await.unwrap();
    let tls_dir = dir.path().join("store/tls");
    let mut config = common::test_config(dir.path());
    with_tls(&mut config);

    std::fs::write(tls_dir.join("cert.pem"), "not a certificate").unwrap();
    let err = format!(
        "{:#}",
        facecv::App::start(config.clone()).await.err().unwrap()
    );
    assert!(
        err.contains("cert.pem") && err.contains("delete the folder"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(tls_dir.join("cert.pem")).unwrap(),
        "not a certificate",
        "the file is left as it was"
    );

    std::fs::remove_file(tls_dir.join("cert.pem")).unwrap();
    let err = format!(
        "{:#}",
        facecv::App::start(config.clone()).await.err().unwrap()
    );
    assert!(err.contains("cert.pem does not;"), "{err}");

    // The way out the message gives: delete the folder, and a new pair is made.
    std::fs::remove_dir_all(&tls_dir).unwrap();
    let app = facecv::App::start(config).await.unwrap();
    let fp = app.https().unwrap().fingerprint.clone();
    health(app.https().unwrap().addr, &fp).await;
    app.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_stalled_handshake_is_dropped_and_blocks_no_one() {
    let run = common::start_app_with(with_tls).await;
    let https_addr = run.app.https().unwrap().addr;
    let fp = run.app.https().unwrap().fingerprint.clone();
    let before = connections(&run.api).await;
    // One client that sends nothing, one that sends half a ClientHello.
    let mut silent = TcpStream::connect(https_addr).await.unwrap();
    let mut half = TcpStream::connect(https_addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let started = Instant::now();
    let a = tokio::time::timeout(Duration::from_secs(3), health(https_addr, &fp))
        .await
        .expect("a new client is served at once");
    assert_eq!(a.status, StatusCode::OK);
    assert!(
        connections(&run.api).await >= before + 2.0,
        "handshakes in progress hold places in the same table as plain connections"
    );
    for stalled in [&mut silent, &mut half] {
        let mut buf = [0u8; 64];
        let n = tokio::time::timeout(Duration::from_secs(15), stalled.read(&mut buf))
            .await
            .expect("the stalled client is dropped")
            .unwrap_or(0);
        assert_eq!(n, 0, "closed without an answer");
    }
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_secs(9),
        "dropped by the handshake timeout, not at once ({waited:?})"
    );
    health(https_addr, &fp).await;
    assert!(
        connections(&run.api).await <= before,
        "their places are given back"
    );
}

/// The API's connections being served, from `/metrics` over plain HTTP.
async fn connections(api: &common::Api) -> f64 {
    let (_, text) = api.get("/metrics").await;
    let text = text.as_str().unwrap().to_owned();
    text.lines()
        .find_map(|l| {
            l.strip_prefix("facecv_api_connections ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no facecv_api_connections in {text}"))
}

#[tokio::test]
async fn plain_http_on_the_https_port_is_told_to_use_https_and_closed() {
    let run = common::start_app_with(with_tls).await;
    let mut s = TcpStream::connect(run.app.https().unwrap().addr)
        .await
        .unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(3), s.read_to_string(&mut answer))
        .await
        .expect("closed, not left hanging")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(answer.contains("https_required"), "{answer}");
    assert!(
        answer.contains("\"detail\":\"this port speaks HTTPS"),
        "{answer}"
    );
}

#[tokio::test]
async fn the_token_host_and_origin_rules_hold_over_https() {
    const TOKEN: &str = "a-token-of-24-characters";
    let run = common::start_app_with(|c| {
        with_tls(c);
        c.api.token = Some(TOKEN.into());
    })
    .await;
    let h = run.app.https().unwrap();
    let (addr, fp) = (h.addr, h.fingerprint.clone());
    let a = https(addr, &fp, get("/health")).await.unwrap();
    assert_eq!(a.status, StatusCode::UNAUTHORIZED, "{}", a.body);

    let authed = |method: &str, origin: Option<&str>, body: &str| {
        let mut r = Request::builder()
            .method(method)
            .uri("/api/v1/webhooks")
            .header("host", "facecv.local:7443")
            .header("authorization", format!("Bearer {TOKEN}"))
            .header("content-type", "application/json");
        if let Some(o) = origin {
            r = r.header("origin", o);
        }
        r.body(Full::new(Bytes::from(body.to_owned()))).unwrap()
    };
    let a = https(addr, &fp, authed("GET", None, "")).await.unwrap();
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let hook = json!({ "webhook_id": "over-tls", "url": "http://127.0.0.1:9/hook" }).to_string();
    let a = https(
        addr,
        &fp,
        authed("POST", Some("https://evil.example"), &hook),
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::FORBIDDEN, "{}", a.body);
    assert_eq!(a.body["error"]["code"], "foreign_origin");
    // The console's own page: same host and port over https.
    let a = https(
        addr,
        &fp,
        authed("POST", Some("https://facecv.local:7443"), &hook),
    )
    .await
    .unwrap();
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
}

/// `facecv tls-fingerprint --create` makes the certificate `serve` would make (the SD image's
/// first boot shows its fingerprint before the service ever ran), once: later runs, with or
/// without `--create`, print the same fingerprint, and `serve` keeps that certificate.
#[test]
fn the_cli_makes_the_certificate_once_when_asked() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("facecv.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\ntls_listen = \"127.0.0.1:7443\"\n\n[storage]\ndir = \"{}\"\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
            .args(["tls-fingerprint", "--config"])
            .arg(&config)
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let made = run(&["--create"]);
    assert_eq!(made.len(), 32 * 3 - 1, "{made}");
    assert!(dir.path().join("store/tls").is_dir());
    assert_eq!(
        run(&["--create"]),
        made,
        "a second --create keeps the certificate"
    );
    assert_eq!(run(&[]), made);
}

/// The real binary with only HTTPS (`api.http = false`): the fingerprint it logs at start is the
/// one `facecv tls-fingerprint` prints and the one its port serves.
#[tokio::test]
async fn the_binary_logs_the_fingerprint_the_cli_prints_and_the_port_serves() {
    let dir = tempfile::tempdir().unwrap();
    let port = common::free_port();
    let config = dir.path().join("facecv.toml");
    std::fs::write(
        &config,
        format!(
            "[api]\nhttp = false\ntls_listen = \"127.0.0.1:{port}\"\n\n[storage]\ndir = \"{}\"\n",
            dir.path().join("store").display()
        ),
    )
    .unwrap();
    let cli = |config: &Path| {
        std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
            .args(["tls-fingerprint", "--config"])
            .arg(config)
            .output()
            .unwrap()
    };
    let before = cli(&config);
    assert!(
        !before.status.success(),
        "no certificate before the first start"
    );
    assert!(
        String::from_utf8_lossy(&before.stderr).contains("first start"),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );

    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["serve", "--config"])
        .arg(&config)
        .env("LOG_LEVEL", "INFO")
        .env("RUST_LOG", "")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    // Read the log to its end (the child must not write into a closed pipe), handing over the line.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for l in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if l.contains("HTTPS API listening") {
                let _ = tx.send(l);
            }
        }
    });
    let line = tokio::task::spawn_blocking(move || rx.recv_timeout(Duration::from_secs(20)))
        .await
        .unwrap()
        .expect("the start logs the HTTPS line");
    assert!(
        line.contains(&format!("https://127.0.0.1:{port}/")),
        "{line}"
    );
    let logged = line
        .split("fingerprint=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .expect("the line names the fingerprint")
        .to_owned();
    let printed = cli(&config);
    assert!(printed.status.success());
    assert_eq!(String::from_utf8_lossy(&printed.stdout).trim(), logged);

    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let a = health(addr, &logged).await;
    assert_eq!(fingerprint(&a.cert), logged);

    // SAFETY: the child is ours and still running.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(child.wait().unwrap().success(), "stops cleanly on SIGTERM");
}
