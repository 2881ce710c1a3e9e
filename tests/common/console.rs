//! The real binary as a browser meets it: started from a config file (its log kept), and one
//! request at a time on a fresh connection, from any loopback address (`127.0.0.x`: the API sees
//! another peer) and over TLS or not, with the answer's headers (cookies) kept.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use serde_json::Value;

/// The real `facecv serve`, its log in a file of its folder.
pub struct Appliance {
    pub child: std::process::Child,
    pub port: u16,
    pub tls_port: Option<u16>,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Appliance {
    /// Writes `[api]` (listen, then `api`'s lines) and `[storage]`, then `rest`, and starts.
    pub async fn start(api: &str, tls: bool, rest: &str) -> Appliance {
        let dir = tempfile::tempdir().unwrap();
        let port = super::free_port();
        let tls_port = tls.then(super::free_port);
        let tls_line = tls_port
            .map(|p| format!("tls_listen = \"127.0.0.1:{p}\"\n"))
            .unwrap_or_default();
        let config = dir.path().join("facecv.toml");
        std::fs::write(
            &config,
            format!(
                "[api]\nlisten = \"127.0.0.1:{port}\"\n{tls_line}{api}\n\n[storage]\ndir = \"{}\"\n\n{rest}",
                dir.path().join("store").display()
            ),
        )
        .unwrap();
        let child = spawn(&config, &dir.path().join("facecv.log"));
        let a = Appliance {
            child,
            port,
            tls_port,
            dir,
            config,
        };
        a.wait_up().await;
        a
    }

    pub async fn wait_up(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let r = tokio::time::timeout(
                Duration::from_secs(1),
                try_send(
                    self.addr(),
                    None,
                    false,
                    req("GET", "/api/v1/session", &[("host", "localhost")], None),
                ),
            )
            .await;
            if matches!(r, Ok(Ok(ref a)) if a.status == StatusCode::OK) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "facecv did not answer within 20 s; its log: {}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("facecv.log")).unwrap_or_default()
    }

    pub fn token_file(&self) -> PathBuf {
        self.dir.path().join("store/api-token")
    }

    /// One request over plain HTTP from 127.0.0.1.
    pub async fn send(&self, r: Request<Full<Bytes>>) -> Answer {
        send(self.addr(), None, false, r).await
    }

    /// SIGTERM, and waits for a clean stop.
    pub fn stop(&mut self) {
        // SAFETY: the child is ours and still running.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        assert!(self.child.wait().unwrap().success(), "stops cleanly");
    }

    /// Starts the binary again on the same config and store.
    pub async fn restart(&mut self) {
        self.child = spawn(&self.config, &self.dir.path().join("facecv.log"));
        self.wait_up().await;
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(config: &Path, log: &Path) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_facecv"))
        .args(["serve", "--config"])
        .arg(config)
        .env("LOG_LEVEL", "INFO")
        .env("RUST_LOG", "")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .expect("start the facecv binary")
}

/// What one request got.
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    /// `Set-Cookie`, which must be there.
    pub fn set_cookie(&self) -> String {
        self.headers
            .get("set-cookie")
            .unwrap_or_else(|| panic!("no Set-Cookie: {:?}", self.headers))
            .to_str()
            .unwrap()
            .to_owned()
    }

    /// `facecv_session=<value>` for a `Cookie` header, from `Set-Cookie`.
    pub fn cookie(&self) -> String {
        self.set_cookie().split(';').next().unwrap().to_owned()
    }

    pub fn csrf(&self) -> String {
        self.body["csrf_token"]
            .as_str()
            .expect("a csrf_token")
            .to_owned()
    }
}

pub fn req(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Request<Full<Bytes>> {
    let mut r = Request::builder().method(method).uri(path);
    if !headers.iter().any(|(k, _)| *k == "host") {
        r = r.header("host", "facecv.local:7000");
    }
    for (k, v) in headers {
        r = r.header(*k, *v);
    }
    let body = match body {
        Some(b) => {
            r = r.header("content-type", "application/json");
            Bytes::from(b.to_string())
        }
        None => Bytes::new(),
    };
    r.body(Full::new(body)).unwrap()
}

/// Accepts any server certificate: these tests are about cookies, `api_tls` about certificates.
#[derive(Debug)]
struct AnyCert(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        m: &[u8],
        c: &CertificateDer<'_>,
        d: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(m, c, d, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

pub async fn send(
    addr: SocketAddr,
    from: Option<IpAddr>,
    tls: bool,
    r: Request<Full<Bytes>>,
) -> Answer {
    try_send(addr, from, tls, r).await.expect("the API answers")
}

/// One request on a fresh connection from `from` (a loopback address: 127.0.0.x), over TLS or not.
pub async fn try_send(
    addr: SocketAddr,
    from: Option<IpAddr>,
    tls: bool,
    r: Request<Full<Bytes>>,
) -> Result<Answer, String> {
    let socket = tokio::net::TcpSocket::new_v4().map_err(|e| e.to_string())?;
    if let Some(ip) = from {
        socket
            .bind(SocketAddr::new(ip, 0))
            .map_err(|e| e.to_string())?;
    }
    let tcp = socket.connect(addr).await.map_err(|e| e.to_string())?;
    let resp = if tls {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert(provider)))
            .with_no_client_auth();
        let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .map_err(|e| e.to_string())?;
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        tx.send_request(r).await.map_err(|e| e.to_string())?
    } else {
        let (mut tx, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        tx.send_request(r).await.map_err(|e| e.to_string())?
    };
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    Ok(Answer {
        status,
        headers,
        body,
    })
}
