//! The API token in force, which the console may rotate while the appliance runs.
//!
//! Two places may hold it. `api.token` in the config file is the operator's, and the hardened unit
//! cannot write it (`/etc/facecv` is read-only to the service). `<storage.dir>/api-token` is the
//! service's own: a rotation writes it (mode 0600), and **when it exists it wins** over
//! `api.token`, at once and at every later start. Deleting it (service stopped) goes back to the
//! config file's token. The start logs which of the two is in force.
//!
//! The file is checked as `api.token` is (16+ printable characters, no spaces; one trailing
//! newline allowed, for `echo token > api-token`), and must be the service's alone (no group or
//! other permission bits): a file that is unreadable, damaged or open to others stops the start
//! with its name, never a silent fall back to the config's token, which the operator may believe
//! retired.
//!
//! Only the SHA-256 of the token is kept in memory; a guess is hashed and the digests compared in
//! constant time, so the time a comparison takes says nothing about the token, its length
//! included.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::store::private_file::write_private;

/// The file below `storage.dir` that holds a rotated token.
pub const FILE: &str = "api-token";

#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    #[error(
        "cannot read the API token file {path}: {source}; it wins over api.token when present: \
         make it readable by the service, or delete it to use api.token from the config file"
    )]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the API token file {path} {problem}; it wins over api.token when present: mend it, or \
         delete it to use api.token from the config file"
    )]
    Bad { path: PathBuf, problem: String },
    #[error("cannot write the new API token to {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// Where the token in force comes from (`token_source` in `GET /api/v1/system`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// No token: the API answers loopback clients only.
    None,
    /// `api.token` of the config file.
    Config,
    /// `<storage.dir>/api-token`, written by a rotation.
    State,
}

struct Current {
    digest: Option<[u8; 32]>,
    source: TokenSource,
}

/// The token the API checks, changeable at run time.
pub struct ApiToken {
    current: RwLock<Current>,
    file: PathBuf,
    /// One rotation at a time, so that the file and the token in memory agree.
    rotating: Mutex<()>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl ApiToken {
    /// The token in force at start: `<storage_dir>/api-token` when it exists, else `config_token`.
    pub fn load(config_token: Option<&str>, storage_dir: &Path) -> Result<ApiToken, TokenError> {
        let file = storage_dir.join(FILE);
        let (digest, source) = match read_file(&file)? {
            Some(token) => (Some(digest(&token)), TokenSource::State),
            None => match config_token {
                Some(t) => (Some(digest(t)), TokenSource::Config),
                None => (None, TokenSource::None),
            },
        };
        Ok(ApiToken {
            current: RwLock::new(Current { digest, source }),
            file,
            rotating: Mutex::new(()),
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Current> {
        self.current.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn source(&self) -> TokenSource {
        self.read().source
    }

    pub fn is_set(&self) -> bool {
        self.read().digest.is_some()
    }

    /// Whether `given` is the token in force (false when there is none), in constant time.
    pub fn matches(&self, given: &str) -> bool {
        let given = digest(given);
        match self.read().digest {
            Some(d) => d.ct_eq(&given).into(),
            None => false,
        }
    }

    /// Where a rotation writes the token.
    pub fn file(&self) -> &Path {
        &self.file
    }

    /// Makes a new token (32 random bytes, hex, as `deploy.sh` makes them), writes it to the state
    /// folder's file (0600, whole or not at all) and puts it in force; returns it. Blocking file
    /// I/O: call it off the async threads.
    pub fn rotate(&self) -> Result<String, TokenError> {
        let _one = self.rotating.lock().unwrap_or_else(|p| p.into_inner());
        let bytes: [u8; 32] = rand::random();
        let token: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        write_file(&self.file, &token)?;
        let mut current = self.current.write().unwrap_or_else(|p| p.into_inner());
        *current = Current {
            digest: Some(digest(&token)),
            source: TokenSource::State,
        };
        Ok(token)
    }
}

/// The token of the state folder's file; `None` when there is no file.
fn read_file(path: &Path) -> Result<Option<String>, TokenError> {
    let bad = |problem: String| TokenError::Bad {
        path: path.to_owned(),
        problem,
    };
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => {
            return Err(TokenError::Read {
                path: path.to_owned(),
                source,
            })
        }
    };
    if !meta.is_file() {
        return Err(bad("is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(bad(format!(
            "may be read by others (mode {mode:04o}); `chmod 600` it"
        )));
    }
    let bytes = std::fs::read(path).map_err(|source| TokenError::Read {
        path: path.to_owned(),
        source,
    })?;
    let text = String::from_utf8(bytes).map_err(|_| bad("is not UTF-8 text".into()))?;
    let token = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(&text);
    super::config::check_token(token)
        .map_err(|problem| bad(format!("holds no usable token: it {problem}")))?;
    Ok(Some(token.to_owned()))
}

/// Writes `token` and a newline to `path`, whole and 0600 (`store::private_file`).
fn write_file(path: &Path, token: &str) -> Result<(), TokenError> {
    write_private(path, format!("{token}\n").as_bytes()).map_err(|source| TokenError::Write {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: &str = "config-token-of-24-chars";

    #[test]
    fn the_file_wins_over_the_config_and_rotation_writes_it() {
        let dir = tempfile::tempdir().unwrap();
        let t = ApiToken::load(Some(CONFIG), dir.path()).unwrap();
        assert_eq!(t.source(), TokenSource::Config);
        assert!(t.matches(CONFIG) && !t.matches("another-token-entirely"));
        let new = t.rotate().unwrap();
        assert_eq!(t.source(), TokenSource::State);
        assert!(t.matches(&new) && !t.matches(CONFIG));
        let mode = std::fs::metadata(dir.path().join(FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let again = ApiToken::load(Some(CONFIG), dir.path()).unwrap();
        assert!(again.matches(&new) && again.source() == TokenSource::State);
        let none = ApiToken::load(None, tempfile::tempdir().unwrap().path()).unwrap();
        assert!(!none.is_set() && !none.matches("") && none.source() == TokenSource::None);
    }

    #[test]
    fn a_damaged_or_open_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(FILE);
        let write = |text: &str, mode: u32| {
            std::fs::write(&file, text).unwrap();
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        let err = |text: &str, mode: u32| {
            write(text, mode);
            let e = ApiToken::load(Some(CONFIG), dir.path()).err().unwrap();
            let e = e.to_string();
            assert!(e.contains(&file.display().to_string()), "{e}");
            e
        };
        assert!(err("short\n", 0o600).contains("16 printable"));
        assert!(err("has a space in the middle!", 0o600).contains("without spaces"));
        assert!(err("", 0o600).contains("no usable token"));
        assert!(err("a-good-token-of-24-chars", 0o644).contains("chmod 600"));
        write("a-good-token-of-24-chars\r\n", 0o600);
        let t = ApiToken::load(Some(CONFIG), dir.path()).unwrap();
        assert!(t.matches("a-good-token-of-24-chars"));
    }
}
