//! The API over HTTPS: which certificate it serves, and the handshake that must not hold a
//! connection's place for ever.
//!
//! A board on a LAN has no name a public CA would certify, so by default it serves a self-signed
//! certificate it makes on its first start (rcgen, ECDSA P-256) for its host name,
//! `<hostname>.local`, `localhost` and its addresses, and keeps it in `<storage.dir>/tls/`.
//! People check it once by its SHA-256 fingerprint (logged at start, in `/health`, printed by
//! `facecv tls-fingerprint`), the same colon-separated hex browsers show, and scripts pin it.
//!
//! Because clients pin it, the certificate is never replaced behind the operator's back: a pair
//! that cannot be read, or half a pair, is an error that names the file and says what to do,
//! rather than a new certificate whose fingerprint every client would have to accept again (and
//! a file the operator may have put there overwritten). The pair is written as a whole: both
//! files go into a fresh folder that is then renamed to `tls/`, so a power cut leaves either no
//! pair (made again on the next start) or a complete one.
//!
//! The addresses are those of the first start; a board that later gets another address still
//! serves the same certificate (its fingerprint is what people trust, not its names).

use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use sha2::{Digest, Sha256};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

use super::ApiConfig;

/// Time for a client to finish the TLS handshake: a stalled or silent client is dropped after it,
/// as a silent plain client is after `server::HEADER_TIMEOUT`. A handshake on a LAN takes
/// milliseconds, on a Raspberry Pi too (ECDSA P-256).
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The folder below `storage.dir` that holds the self-signed pair.
const DIR: &str = "tls";
const CERT_FILE: &str = "cert.pem";
const KEY_FILE: &str = "key.pem";

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}; {hint}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
        hint: String,
    },
    #[error("{path}: {problem}; {hint}")]
    Bad {
        path: PathBuf,
        problem: String,
        hint: String,
    },
    #[error("the private key {key} does not belong to the certificate {cert}; {hint}")]
    KeyMismatch {
        key: PathBuf,
        cert: PathBuf,
        hint: String,
    },
    #[error("{present} exists but {missing} does not; {hint}")]
    HalfPair {
        present: PathBuf,
        missing: PathBuf,
        hint: String,
    },
    #[error("cannot write the new certificate into {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot make a self-signed certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("cannot set up TLS: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Whence the served certificate comes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSource {
    /// Made by the appliance on its first start, in `<storage.dir>/tls/`.
    SelfSigned,
    /// `api.tls_cert` and `api.tls_key`.
    Configured,
}

impl CertSource {
    pub fn as_str(self) -> &'static str {
        match self {
            CertSource::SelfSigned => "self_signed",
            CertSource::Configured => "configured",
        }
    }
}

/// The certificate the HTTPS listener serves, ready for connections.
pub struct Identity {
    pub acceptor: TlsAcceptor,
    /// SHA-256 of the end-entity certificate's DER, `AB:CD:...`.
    pub fingerprint: String,
    pub source: CertSource,
    /// The certificate file.
    pub cert: PathBuf,
}

/// Where the certificate and key are: the configured pair, or the self-signed one's place.
fn paths(config: &ApiConfig, storage_dir: &Path) -> (PathBuf, PathBuf, CertSource) {
    match (&config.tls_cert, &config.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), CertSource::Configured),
        _ => {
            let dir = storage_dir.join(DIR);
            (
                dir.join(CERT_FILE),
                dir.join(KEY_FILE),
                CertSource::SelfSigned,
            )
        }
    }
}

/// What to do about a certificate file that is wrong.
fn hint(source: CertSource, storage_dir: &Path) -> String {
    match source {
        CertSource::Configured => {
            "check api.tls_cert and api.tls_key (PEM files the service may read), or remove both \
             to serve the self-signed certificate"
                .into()
        }
        CertSource::SelfSigned => format!(
            "to make a new self-signed certificate, stop the service and delete the folder {} \
             (clients that pinned the old fingerprint must then accept the new one), or set \
             api.tls_cert and api.tls_key",
            storage_dir.join(DIR).display()
        ),
    }
}

impl Identity {
    /// The configured pair, or the self-signed one (made now when `storage_dir` has none yet).
    pub fn load(config: &ApiConfig, storage_dir: &Path) -> Result<Identity, TlsError> {
        let (cert, key, source) = paths(config, storage_dir);
        let hint = hint(source, storage_dir);
        if source == CertSource::SelfSigned {
            match (cert.exists(), key.exists()) {
                (false, false) => {
                    make_self_signed(storage_dir)?;
                    tracing::info!(cert = %cert.display(), "made a self-signed certificate");
                }
                (true, false) => return Err(half(&cert, &key, hint)),
                (false, true) => return Err(half(&key, &cert, hint)),
                (true, true) => {}
            }
        }
        let chain = read_chain(&cert, &hint)?;
        let key_der = read_key(&key, &hint)?;
        let fingerprint = fingerprint(&chain[0]);
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let certified = certified_key(chain, key_der, &provider, &cert, &key, &hint)?;
        let mut tls = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
        tls.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Identity {
            acceptor: TlsAcceptor::from(Arc::new(tls)),
            fingerprint,
            source,
            cert,
        })
    }
}

fn half(present: &Path, missing: &Path, hint: String) -> TlsError {
    TlsError::HalfPair {
        present: present.to_owned(),
        missing: missing.to_owned(),
        hint,
    }
}

fn read(path: &Path, hint: &str) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_owned(),
        source,
        hint: hint.to_owned(),
    })
}

fn bad(path: &Path, problem: impl Into<String>, hint: &str) -> TlsError {
    TlsError::Bad {
        path: path.to_owned(),
        problem: problem.into(),
        hint: hint.to_owned(),
    }
}

/// The certificates of a PEM file, the server's first; at least one.
fn read_chain(path: &Path, hint: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let text = read(path, hint)?;
    let chain = CertificateDer::pem_slice_iter(&text)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(path, format!("not a PEM certificate file ({e})"), hint))?;
    if chain.is_empty() {
        return Err(bad(path, "holds no PEM certificate", hint));
    }
    Ok(chain)
}

fn read_key(path: &Path, hint: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    let text = read(path, hint)?;
    PrivateKeyDer::from_pem_slice(&text)
        .map_err(|e| bad(path, format!("holds no usable PEM private key ({e})"), hint))
}

/// The pair as rustls serves it, once the key is known to be the certificate's.
fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key_der: PrivateKeyDer<'static>,
    provider: &CryptoProvider,
    cert: &Path,
    key: &Path,
    hint: &str,
) -> Result<CertifiedKey, TlsError> {
    let signer = provider
        .key_provider
        .load_private_key(key_der)
        .map_err(|e| bad(key, format!("a private key rustls cannot use ({e})"), hint))?;
    let certified = CertifiedKey::new(chain, signer);
    match certified.keys_match() {
        Ok(()) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(TlsError::KeyMismatch {
                key: key.to_owned(),
                cert: cert.to_owned(),
                hint: hint.to_owned(),
            })
        }
        // rustls cannot derive the public key of every kind of key; it serves such pairs too.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => Ok(certified),
        Err(e) => Err(bad(cert, format!("not a usable certificate ({e})"), hint)),
    }
}

/// SHA-256 of a certificate's DER as browsers show it: `AB:CD:...`.
pub fn fingerprint(cert: &[u8]) -> String {
    Sha256::digest(cert)
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// The fingerprint of the certificate the API serves (or would serve), read from its file without
/// making one: for `facecv tls-fingerprint`.
pub fn fingerprint_of(
    config: &ApiConfig,
    storage_dir: &Path,
) -> Result<(String, PathBuf), TlsError> {
    let (cert, _, source) = paths(config, storage_dir);
    let mut hint = hint(source, storage_dir);
    if source == CertSource::SelfSigned {
        hint = "the self-signed certificate is made on the first start of `facecv serve` with \
                api.tls_listen set, or now with `facecv tls-fingerprint --create`"
            .into();
    }
    let chain = read_chain(&cert, &hint)?;
    Ok((fingerprint(&chain[0]), cert))
}

/// Makes the self-signed pair in a fresh folder beside `tls/` and renames it into place.
fn make_self_signed(storage_dir: &Path) -> Result<(), TlsError> {
    let names = own_names();
    let mut params = rcgen::CertificateParams::new(names)?;
    params.distinguished_name = rcgen::DistinguishedName::new();
    params.distinguished_name.push(
        rcgen::DnType::CommonName,
        format!("FaceCV Edge {}", hostname().unwrap_or_default()).trim_end(),
    );
    let key = rcgen::KeyPair::generate()?;
    let cert = params.self_signed(&key)?;
    let write_err = |path: &Path| {
        let path = path.to_owned();
        move |source| TlsError::Write { path, source }
    };
    std::fs::create_dir_all(storage_dir).map_err(write_err(storage_dir))?;
    // A private folder (0700) in the same filesystem, so that the rename is atomic.
    let tmp = tempfile::Builder::new()
        .prefix(".tls-")
        .tempdir_in(storage_dir)
        .map_err(write_err(storage_dir))?;
    let key_pem = pem("PRIVATE KEY", &key.serialize_der());
    write_file(&tmp.path().join(KEY_FILE), key_pem.as_bytes())?;
    write_file(
        &tmp.path().join(CERT_FILE),
        pem("CERTIFICATE", cert.der()).as_bytes(),
    )?;
    let dest = storage_dir.join(DIR);
    std::fs::rename(tmp.path(), &dest).map_err(write_err(&dest))?;
    std::fs::File::open(storage_dir)
        .and_then(|d| d.sync_all())
        .map_err(write_err(storage_dir))?;
    Ok(())
}

/// RFC 7468 text: the DER in base64, 64 characters a line, between BEGIN and END lines.
fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Writes a file only its owner may read (0600), and syncs it.
fn write_file(path: &Path, bytes: &[u8]) -> Result<(), TlsError> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes).map(|()| f))
        .map_err(|source| TlsError::Write {
            path: path.to_owned(),
            source,
        })?;
    f.flush()
        .and_then(|()| f.sync_all())
        .map_err(|source| TlsError::Write {
            path: path.to_owned(),
            source,
        })
}

/// The names a client may use for this machine: `localhost`, its loopback and interface
/// addresses, and its host name with `.local` (mDNS, how boards are usually reached).
fn own_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned()];
    if let Some(host) = hostname().filter(|h| !h.eq_ignore_ascii_case("localhost")) {
        if !host.ends_with(".local") {
            let first = host.split('.').next().unwrap_or(&host);
            names.push(format!("{first}.local"));
        }
        names.push(host);
    }
    let mut ips: Vec<IpAddr> = vec![
        IpAddr::from([127, 0, 0, 1]),
        IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
    ];
    ips.extend(interface_addresses());
    for ip in ips {
        let name = ip.to_string();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    names
}

/// The name to print in a URL for a listener on every address: `<hostname>.local`, as boards are
/// reached, or `localhost` without a usable host name.
pub fn url_host() -> String {
    match hostname() {
        Some(h) if !h.eq_ignore_ascii_case("localhost") => {
            let first = h.split('.').next().unwrap_or(&h).to_owned();
            format!("{first}.local")
        }
        _ => "localhost".into(),
    }
}

pub(super) fn hostname() -> Option<String> {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `buf.len()` bytes into a valid local buffer.
    if unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } != 0 {
        return None;
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    let name = std::str::from_utf8(&buf[..end]).ok()?.trim().to_owned();
    // A name a certificate can carry (RFC 1123 labels), or none.
    let valid = !name.is_empty()
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    valid.then_some(name)
}

/// The IPv4 and IPv6 addresses of this machine's interfaces (IPv6 link-local ones left out: a
/// browser cannot reach them without a zone, which an address in a URL does not carry).
fn interface_addresses() -> Vec<IpAddr> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `head` with a list it allocates; freed below with freeifaddrs.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: `cur` is a node of the list getifaddrs returned, not yet freed; `ifa_addr`
        // points to a sockaddr of the family it says (sockaddr_in or sockaddr_in6) or is null.
        unsafe {
            let ifa = &*cur;
            if let Some(addr) = ifa.ifa_addr.as_ref() {
                match i32::from(addr.sa_family) {
                    libc::AF_INET => {
                        let sin = &*(ifa.ifa_addr as *const libc::sockaddr_in);
                        let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
                        out.push(IpAddr::V4(ip));
                    }
                    libc::AF_INET6 => {
                        let sin6 = &*(ifa.ifa_addr as *const libc::sockaddr_in6);
                        let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
                        if ip.segments()[0] & 0xffc0 != 0xfe80 {
                            out.push(IpAddr::V6(ip));
                        }
                    }
                    _ => {}
                }
            }
            cur = ifa.ifa_next;
        }
    }
    // SAFETY: `head` came from getifaddrs and is freed once, after the last use of its nodes.
    unsafe { libc::freeifaddrs(head) };
    out
}

/// The TLS handshake of an accepted connection, within [`HANDSHAKE_TIMEOUT`]; `None` (and the
/// socket closed) when the client stalls, speaks something else (plain HTTP) or fails it.
pub(super) async fn handshake(
    acceptor: &TlsAcceptor,
    stream: TcpStream,
    peer: std::net::SocketAddr,
    timeout: Duration,
) -> Option<TlsStream<TcpStream>> {
    let deadline = tokio::time::Instant::now() + timeout;
    let stream = tokio::time::timeout_at(deadline, refuse_plain_http(stream, peer))
        .await
        .ok()??;
    match tokio::time::timeout_at(deadline, acceptor.accept(stream)).await {
        Ok(Ok(tls)) => Some(tls),
        Ok(Err(e)) => {
            tracing::debug!(%peer, error = %e, "TLS handshake failed");
            None
        }
        Err(_) => {
            tracing::debug!(%peer, "TLS handshake did not finish in time; connection closed");
            None
        }
    }
}

/// A TLS client starts with a handshake record (0x16); a request line starts with a letter. A
/// plain HTTP client (`curl http://board:7443`) is told in one line to use `https://`, instead of
/// the bare close a failed handshake would give it. `None` when the client is gone or was told.
async fn refuse_plain_http(mut stream: TcpStream, peer: std::net::SocketAddr) -> Option<TcpStream> {
    use tokio::io::AsyncWriteExt;
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await.ok()? == 0 {
        return None;
    }
    if !first[0].is_ascii_alphabetic() {
        return Some(stream);
    }
    tracing::debug!(%peer, "plain HTTP on the HTTPS port; told to use https://");
    let message = "this port speaks HTTPS: use https:// (plain HTTP is on api.listen)";
    let body = serde_json::json!({
        "error": { "code": "https_required", "message": message },
        "detail": message,
    })
    .to_string();
    let answer = format!(
        "HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
         connection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(answer.as_bytes()).await;
    let _ = stream.shutdown().await;
    // Read (and drop) what the client sent, briefly, so that closing with unread bytes does not
    // reset the connection before the client has read the answer.
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        use tokio::io::AsyncReadExt;
        while stream.read(&mut sink).await.is_ok_and(|n| n > 0) {}
    })
    .await;
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_read_as_browsers_show_them() {
        let f = fingerprint(b"abc");
        assert_eq!(f.len(), 32 * 3 - 1);
        assert!(f.starts_with("BA:78:16:BF:"), "{f}");
    }

    #[test]
    fn the_names_include_loopback() {
        let names = own_names();
        for n in ["localhost", "127.0.0.1", "::1"] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
    }
}
