//! Keeps paths that come from the API inside the one folder the operator allowed
//! (`api.offline_enrol_dir`, `api.media_dir`).
//!
//! The API is reachable from the LAN; a path it is given is anyone's text. A path is accepted only
//! if its real location (`..` and symlinks resolved by the kernel) is the folder or below it. The
//! answer for a path outside does not depend on whether it exists: `/etc/shadow` and `/etc/nope`
//! are both just "outside", so the API cannot be used to learn what files the device holds. Only
//! below the folder, which is the client's to fill, does "no such file" get its own answer.

use std::io;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ConfineError {
    /// The asked path leads out of the folder (lexically, or through a symlink).
    #[error("outside the allowed folder")]
    Outside,
    /// The asked path lies in the folder but there is nothing there.
    #[error("no such file or folder")]
    Missing,
}

/// An allowed folder, resolved to its real path once.
#[derive(Debug, Clone)]
pub struct Root(PathBuf);

impl Root {
    /// The folder's real path; an error when it does not exist or cannot be read. The error names
    /// no path: callers log it with the setting's value and tell the client only the setting.
    pub fn open(dir: &Path) -> io::Result<Root> {
        let real = dir.canonicalize()?;
        if !real.is_dir() {
            return Err(io::Error::new(io::ErrorKind::NotADirectory, "not a folder"));
        }
        Ok(Root(real))
    }

    /// The real path of `asked` (relative paths are taken from the folder) if it is the folder or
    /// below it. A path whose words already leave the folder (`../x`, `/etc/x`) is refused before
    /// the filesystem is asked anything.
    pub fn resolve(&self, asked: &Path) -> Result<PathBuf, ConfineError> {
        let joined = self.0.join(asked);
        if !lexically_normal(&joined).starts_with(&self.0) {
            return Err(ConfineError::Outside);
        }
        match joined.canonicalize() {
            Ok(real) if real.starts_with(&self.0) => Ok(real),
            Ok(_) => Err(ConfineError::Outside),
            // Nothing there: say "missing" only if the nearest part that does exist is inside, so
            // that a symlink in the folder cannot tell whether something outside exists.
            Err(_) => {
                let inside = joined
                    .ancestors()
                    .skip(1)
                    .find_map(|a| a.canonicalize().ok())
                    .is_some_and(|real| real.starts_with(&self.0));
                Err(if inside {
                    ConfineError::Missing
                } else {
                    ConfineError::Outside
                })
            }
        }
    }

    /// `path` (the real path of something found in the folder) as the client would name it:
    /// relative to the folder, so that messages never show where the folder is.
    pub fn relative<'a>(&self, path: &'a Path) -> &'a Path {
        path.strip_prefix(&self.0).unwrap_or(Path::new("?"))
    }
}

/// `path` with `.` dropped and `..` taken back, without asking the filesystem.
fn lexically_normal(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_what_really_lies_below_the_folder_is_accepted() {
        let tmp = tempfile::tempdir().unwrap();
        let root_dir = tmp.path().join("media");
        std::fs::create_dir_all(root_dir.join("clips")).unwrap();
        std::fs::write(root_dir.join("clips/a.y4m"), b"x").unwrap();
        std::fs::write(tmp.path().join("secret"), b"x").unwrap();
        std::os::unix::fs::symlink(tmp.path().join("secret"), root_dir.join("out")).unwrap();
        std::os::unix::fs::symlink(tmp.path(), root_dir.join("up")).unwrap();
        std::os::unix::fs::symlink(root_dir.join("clips/a.y4m"), root_dir.join("in")).unwrap();
        let root = Root::open(&root_dir).unwrap();

        let real = root.resolve(Path::new("clips/a.y4m")).unwrap();
        assert_eq!(real, root_dir.canonicalize().unwrap().join("clips/a.y4m"));
        assert_eq!(root.relative(&real), Path::new("clips/a.y4m"));
        assert!(root.resolve(&root_dir.join("clips")).is_ok());
        assert!(
            root.resolve(Path::new("in")).is_ok(),
            "a link inside is fine"
        );
        for outside in [
            "../secret",
            "../nope",
            "clips/../../secret",
            "/etc/passwd",
            "/etc/nope",
            "out",
            "up/secret",
            "up/nope",
        ] {
            assert!(
                matches!(root.resolve(Path::new(outside)), Err(ConfineError::Outside)),
                "{outside}"
            );
        }
        assert!(matches!(
            root.resolve(Path::new("clips/nope.y4m")),
            Err(ConfineError::Missing)
        ));
        assert!(Root::open(&tmp.path().join("absent")).is_err());
    }
}
