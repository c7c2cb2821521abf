//! The catalogs on disk: turning URL paths into source files, and making sure no request
//! reaches a file outside its catalog (`..`, absolute paths, encoded slashes, backslashes,
//! NUL, symbolic links pointing elsewhere).
//!
//! A lookup resolves and stats up to a dozen paths. On a slow or network disk that would stall
//! every connection an I/O thread serves, so lookups run on tokio's blocking pool.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use crate::http::percent;

/// Source extensions tried, in this order, for an image id without one.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "gif", "tif", "tiff", "svg"];

/// Why a path was refused: 400 for a malformed one, 404 for one naming nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathError {
    Invalid(String),
    NotFound(String),
}

impl fmt::Display for PathError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PathError::Invalid(m) | PathError::NotFound(m) => f.write_str(m),
        }
    }
}

/// Which renderer a source needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceKind {
    Raster,
    Vector,
}

/// A source file found in a catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Source {
    /// `catalog/dir/name.ext`, the form passed to the renderers.
    pub relative: String,
    pub path: PathBuf,
    pub kind: SourceKind,
    pub modified: SystemTime,
    pub len: u64,
}

/// Splits a raw (percent-encoded) URL path into checked, decoded segments.
pub fn segments(raw: &str) -> Result<Vec<String>, PathError> {
    if raw.contains('\\') {
        return Err(PathError::Invalid(
            "backslashes are not allowed in paths".into(),
        ));
    }
    raw.split('/').map(segment).collect()
}

fn segment(raw: &str) -> Result<String, PathError> {
    let decoded = percent::decode(raw).map_err(PathError::Invalid)?;
    let bad = |why: &str| {
        Err(PathError::Invalid(format!(
            "invalid path segment {raw:?}: {why}"
        )))
    };
    if decoded.is_empty() {
        return bad("empty");
    }
    if decoded == "." || decoded == ".." {
        return bad("relative segments are not allowed");
    }
    if decoded.starts_with('.') {
        return bad("hidden names are not served");
    }
    if decoded.contains(['/', '\\']) {
        return bad("encoded separators are not allowed");
    }
    if decoded.chars().any(char::is_control) {
        return bad("control characters are not allowed");
    }
    Ok(decoded)
}

/// The folder of catalogs.
#[derive(Debug, Clone)]
pub struct Catalogs {
    root: Arc<Path>,
}

impl Catalogs {
    pub fn new(root: impl AsRef<Path>) -> Self {
        Catalogs {
            root: root.as_ref().into(),
        }
    }

    /// Finds the source of `/is/image/{catalog}/{image...}`: the id has no extension, the
    /// first existing file among [`IMAGE_EXTENSIONS`] is it.
    pub async fn image(&self, segments: Vec<String>) -> Result<Source, PathError> {
        let catalogs = self.clone();
        off_the_io_threads(move || catalogs.find_image(&segments)).await
    }

    /// Finds the file of `/is/content/{catalog}/{path...}`, or the source a renderer was
    /// asked for (`relative` as in [`Source::relative`]), from the raw (percent-encoded) URL
    /// path: the name is used as it is.
    pub async fn file_at(&self, raw: &str) -> Result<Source, PathError> {
        let segments = segments(raw)?;
        let catalogs = self.clone();
        off_the_io_threads(move || catalogs.find_file(&segments)).await
    }

    fn find_image(&self, segments: &[String]) -> Result<Source, PathError> {
        let (dir, id) = self.split(segments)?;
        let base = id.join("/");
        for ext in IMAGE_EXTENSIONS {
            let name = format!("{base}.{ext}");
            match self.file(&dir, &segments[0], &name) {
                Err(PathError::NotFound(_)) => continue,
                found => return found,
            }
        }
        Err(PathError::NotFound(format!(
            "no image {base:?} in catalog {:?}",
            segments[0]
        )))
    }

    fn find_file(&self, segments: &[String]) -> Result<Source, PathError> {
        let (dir, rest) = self.split(segments)?;
        let name = rest.join("/");
        self.file(&dir, &segments[0], &name).map_err(|e| match e {
            PathError::NotFound(_) => {
                PathError::NotFound(format!("no file {name:?} in catalog {:?}", segments[0]))
            }
            other => other,
        })
    }

    /// The catalog folder (which must exist) and the remaining segments.
    fn split<'a>(&self, segments: &'a [String]) -> Result<(PathBuf, &'a [String]), PathError> {
        let (catalog, rest) = segments
            .split_first()
            .ok_or_else(|| PathError::NotFound("no catalog given".into()))?;
        if rest.is_empty() {
            return Err(PathError::NotFound(format!(
                "no image or file named in catalog {catalog:?}"
            )));
        }
        let dir = self.root.join(catalog);
        match dir.canonicalize() {
            Ok(dir) if dir.is_dir() => Ok((dir, rest)),
            _ => Err(PathError::NotFound(format!("unknown catalog {catalog:?}"))),
        }
    }

    /// A regular file `name` inside the (canonical) catalog folder `dir`, followed through
    /// links only as long as it stays inside that folder.
    fn file(&self, dir: &Path, catalog: &str, name: &str) -> Result<Source, PathError> {
        let not_found = || PathError::NotFound(format!("no file {name:?} in catalog {catalog:?}"));
        let path = dir.join(name).canonicalize().map_err(|_| not_found())?;
        if !path.starts_with(dir) {
            return Err(not_found());
        }
        let meta = std::fs::metadata(&path).map_err(|_| not_found())?;
        if !meta.is_file() {
            return Err(not_found());
        }
        let kind = match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("svg") => SourceKind::Vector,
            _ => SourceKind::Raster,
        };
        Ok(Source {
            relative: format!("{catalog}/{name}"),
            path,
            kind,
            modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
            len: meta.len(),
        })
    }
}

/// Runs a file-system lookup on the blocking pool.
async fn off_the_io_threads(
    lookup: impl FnOnce() -> Result<Source, PathError> + Send + 'static,
) -> Result<Source, PathError> {
    tokio::task::spawn_blocking(lookup)
        .await
        .unwrap_or_else(|e| Err(PathError::NotFound(format!("the lookup failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(s: &str) -> Result<Vec<String>, PathError> {
        segments(s)
    }

    #[test]
    fn accepts_plain_and_encoded_names() {
        assert_eq!(seg("cat/a%20b").unwrap(), ["cat", "a b"]);
        assert_eq!(seg("cat/dir/img").unwrap(), ["cat", "dir", "img"]);
    }

    #[test]
    fn refuses_traversal_in_every_spelling() {
        for bad in [
            "cat/../etc",
            "cat/%2e%2e/etc",
            "cat/%2E%2E",
            "cat/a%2f..%2fb",
            "cat/a%5cb",
            "cat\\..\\x",
            "cat/a%00b",
            "cat//x",
            "/cat",
            "cat/.",
            "cat/.hidden",
            "cat/%zz",
            "cat/%c0%ae%c0%ae",
        ] {
            assert!(matches!(seg(bad), Err(PathError::Invalid(_))), "{bad}");
        }
    }
}
