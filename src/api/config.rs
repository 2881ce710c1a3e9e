//! How the LAN API listens and what it accepts: the `[api]` section.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::check::{check_range, ConfigError};

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ApiConfig {
    /// The plain HTTP listener: FaceCV's clients and the scripts' health checks.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// `false` switches the plain listener off (`listen` is then unused); HTTPS must be on.
    #[serde(default = "default_http")]
    pub http: bool,
    /// The HTTPS listener (same routes, token and limits), for people and the console; absent:
    /// no HTTPS. Without `tls_cert`/`tls_key` it serves a self-signed certificate made on first
    /// start and kept in `<storage.dir>/tls/`.
    #[serde(default)]
    pub tls_listen: Option<SocketAddr>,
    /// A certificate chain (PEM, the server's first) to serve instead of the self-signed one.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM) of `tls_cert`; both or neither.
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
    /// Without a token the API answers loopback peers only; with one, every request must carry it.
    #[serde(default)]
    pub token: Option<String>,
    /// Largest request body accepted, in KiB; larger bodies get 413 before they are read whole.
    #[serde(default = "default_max_body_kb")]
    pub max_body_kb: u32,
    /// Largest image upload (enrolment, recognition), in MiB.
    #[serde(default = "default_max_upload_mb")]
    pub max_upload_mb: u32,
    /// The one folder `POST /faces/offline` may enrol from (and below it); absent turns that route
    /// off. The API is reachable from the LAN: without this bound, a client could make the
    /// appliance read any file its service account can, and learn from the answers what exists.
    #[serde(default)]
    pub offline_enrol_dir: Option<PathBuf>,
    /// The one folder whose files and folders cameras added over the API (and SSE streams) may
    /// read as video; absent, the API refuses file sources. Cameras of the config file may read
    /// any path: the file is the operator's word, a request is anyone's on the LAN.
    #[serde(default)]
    pub media_dir: Option<PathBuf>,
    /// Live streams (SSE, later the console's live views) served at once; past it a new one gets
    /// 503 with `Retry-After`. A stream on a camera of its own (`source=`) runs a camera with its
    /// own vision engine (~25 MB and a share of the CPU each), so this bounds memory too.
    #[serde(default = "default_max_streams")]
    pub max_streams: u32,
    /// Largest uploaded image accepted, in pixels (width x height from its header, read before
    /// anything is decoded). Images above ~2 Mpx are decoded at a reduced scale, so memory does not
    /// grow with this; what it bounds is decoding time, during which the API's engine is busy.
    /// The default, 64 Mi px, lets 48-64 MP phone photos (8000x6000, 9248x6936) through.
    #[serde(default = "default_max_image_pixels")]
    pub max_image_pixels: u64,
    /// How long a console sign-in lasts, in minutes (1 to 43200, 30 days); the session ends then
    /// whatever its use, and the browser is asked for the token again.
    #[serde(default = "default_session_ttl_minutes")]
    pub session_ttl_minutes: u32,
    /// The address webhook receivers reach this API on (`https://door.example.com`, or behind a
    /// proxy); with it, `stranger_alert` events carry `data.snapshot_url`, a signed link to the
    /// snapshot that needs no token. Absent: no link in events.
    #[serde(default)]
    pub public_url: Option<String>,
    /// How long such a link stays valid, in seconds (60 s to 30 days).
    #[serde(default = "default_snapshot_url_ttl_s")]
    pub snapshot_url_ttl_s: u64,
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:7000".parse().expect("a literal address")
}
fn default_http() -> bool {
    true
}
fn default_max_body_kb() -> u32 {
    1024
}
fn default_max_upload_mb() -> u32 {
    16
}
/// Four: a Raspberry Pi 4 analyses about four 10 fps cameras before its CPU is full, and four ad-hoc
/// engines (~100 MB) fit beside the rest on a 1 GB board.
fn default_max_streams() -> u32 {
    4
}
/// A day: a receiver that queues alerts overnight can still fetch the picture in the morning.
fn default_snapshot_url_ttl_s() -> u64 {
    86_400
}
fn default_max_image_pixels() -> u64 {
    crate::vision::ImageLimits::DEFAULT_MAX_PIXELS
}
/// Twelve hours: a working day at the door without signing in again, and a laptop left signed in
/// overnight is not for long.
fn default_session_ttl_minutes() -> u32 {
    720
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            listen: default_listen(),
            http: default_http(),
            tls_listen: None,
            tls_cert: None,
            tls_key: None,
            token: None,
            max_body_kb: default_max_body_kb(),
            max_upload_mb: default_max_upload_mb(),
            offline_enrol_dir: None,
            media_dir: None,
            max_streams: default_max_streams(),
            max_image_pixels: default_max_image_pixels(),
            session_ttl_minutes: default_session_ttl_minutes(),
            public_url: None,
            snapshot_url_ttl_s: default_snapshot_url_ttl_s(),
        }
    }
}

impl ApiConfig {
    /// The checks of `[api]`, with keys relative to it (`max_body_kb`).
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.token {
            check_token(token).map_err(|problem| ConfigError::invalid("token", problem))?;
        }
        self.validate_listeners()?;
        check_range("max_body_kb", self.max_body_kb.into(), 1.0, 65536.0, " KiB")?;
        check_range(
            "max_upload_mb",
            self.max_upload_mb.into(),
            1.0,
            256.0,
            " MiB",
        )?;
        check_range("max_streams", self.max_streams.into(), 1.0, 64.0, "")?;
        check_range(
            "session_ttl_minutes",
            self.session_ttl_minutes.into(),
            1.0,
            43200.0,
            " minutes",
        )?;
        // Below 1 Mpx ordinary photos are refused; above 256 Mpx one upload keeps the engine for
        // tens of seconds on a Pi.
        let max_image_pixels = self.max_image_pixels as f64;
        check_range(
            "max_image_pixels",
            max_image_pixels,
            1e6,
            268_435_456.0,
            " pixels",
        )?;
        if let Some(media) = &self.media_dir {
            check_media_dir(media)?;
        }
        if let Some(url) = &self.public_url {
            check_public_url(url)?;
        }
        check_range(
            "snapshot_url_ttl_s",
            self.snapshot_url_ttl_s as f64,
            60.0,
            2_592_000.0,
            " s",
        )?;
        Ok(())
    }
}

/// What makes a usable API token, in the config file (`api.token`) and in the state folder's
/// `api-token` alike: long enough not to be guessed, and nothing a header would mangle.
pub(crate) fn check_token(token: &str) -> Result<(), &'static str> {
    if token.len() < 16 || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must be at least 16 printable characters without spaces");
    }
    Ok(())
}

impl ApiConfig {
    /// At least one listener; a certificate only with the listener that serves it, and whole.
    /// The files themselves are read (and the key matched to the certificate) when the API
    /// starts, by `tls::Identity::load`, which names the file that is wrong.
    fn validate_listeners(&self) -> Result<(), ConfigError> {
        if !self.http && self.tls_listen.is_none() {
            return Err(ConfigError::invalid(
                "http",
                "false switches plain HTTP off, and without tls_listen the API would not listen \
                 at all; set tls_listen or http = true",
            ));
        }
        if let Some(tls) = self.tls_listen {
            if self.http && tls.port() != 0 && tls == self.listen {
                return Err(ConfigError::invalid(
                    "tls_listen",
                    format!("{tls} is also `listen`; HTTPS needs a port of its own"),
                ));
            }
        }
        match (&self.tls_cert, &self.tls_key) {
            (Some(_), None) => Err(ConfigError::invalid(
                "tls_key",
                "tls_cert is set: set tls_key to its private key too (or neither, for the \
                 self-signed certificate)",
            )),
            (None, Some(_)) => Err(ConfigError::invalid(
                "tls_cert",
                "tls_key is set: set tls_cert to its certificate too (or neither, for the \
                 self-signed certificate)",
            )),
            (Some(_), Some(_)) if self.tls_listen.is_none() => Err(ConfigError::invalid(
                "tls_cert",
                "is set but tls_listen is not: nothing would serve it; set tls_listen",
            )),
            _ => Ok(()),
        }
    }
}

/// `api.public_url` is an http(s) base with a host and nothing after its path: links are made by
/// appending the API's path and a query to it.
fn check_public_url(text: &str) -> Result<(), ConfigError> {
    let key = "public_url";
    let url = url::Url::parse(text)
        .map_err(|e| ConfigError::invalid(key, format!("{text:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(ConfigError::invalid(
            key,
            "must be an http:// or https:// URL",
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(ConfigError::invalid(key, "must name a host"));
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() {
        return Err(ConfigError::invalid(
            key,
            "must be a base URL without a query, a fragment or credentials",
        ));
    }
    Ok(())
}

/// `api.media_dir` may be created after the service starts (cameras added before then are refused
/// with a clear code), but it must not be a file, nor `/`, which would open every file to the API.
fn check_media_dir(dir: &Path) -> Result<(), ConfigError> {
    let key = "media_dir";
    if dir.as_os_str().is_empty() {
        return Err(ConfigError::invalid(key, "must not be empty"));
    }
    if let Ok(real) = dir.canonicalize() {
        if real.parent().is_none() {
            return Err(ConfigError::invalid(
                key,
                "must not be the root folder: the API could read every file",
            ));
        }
        if !real.is_dir() {
            return Err(ConfigError::invalid(
                key,
                format!("{} is not a folder", dir.display()),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_url(url: &str) -> Result<(), ConfigError> {
        ApiConfig {
            public_url: Some(url.into()),
            ..Default::default()
        }
        .validate()
    }

    #[test]
    fn a_public_url_is_an_http_base_and_the_link_lifetime_is_bounded() {
        assert!(with_url("https://door.example.com").is_ok());
        assert!(with_url("http://192.168.1.20:7000/facecv/").is_ok());
        for bad in [
            "door.example.com",
            "ftp://door.example.com",
            "https://door.example.com/?a=1",
            "https://user:pw@door.example.com",
            "https://door.example.com/#x",
        ] {
            let err = with_url(bad).unwrap_err();
            assert!(err.to_string().contains("public_url"), "{bad}: {err}");
        }
        for (ttl, ok) in [(59, false), (60, true), (86_400, true), (2_592_001, false)] {
            let c = ApiConfig {
                snapshot_url_ttl_s: ttl,
                ..Default::default()
            };
            assert_eq!(c.validate().is_ok(), ok, "{ttl}");
        }
    }
}
