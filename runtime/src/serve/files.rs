//! What a request path maps to: the site, or a bundle under `/models/<name>/`,
//! with the headers a browser needs to stream and cache it.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::http::{Body, Range, Request, Response, http_date, parse_range, percent_decode};

/// The directories being served, canonical so that containment can be
/// checked on canonical request paths.
#[derive(Debug)]
pub struct Site {
    pub www: PathBuf,
    pub bundles: HashMap<String, PathBuf>,
}

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const NO_CACHE: &str = "no-cache";

/// Headers on every response, errors included: without
/// Access-Control-Allow-Origin a page on another origin cannot even see the
/// status of a failed fetch, and without the expose list it cannot read the
/// range and length of a partial one.
pub fn add_cors(r: &mut Response) {
    r.header("Access-Control-Allow-Origin", "*");
    r.header(
        "Access-Control-Expose-Headers",
        "Content-Range, Content-Length, Accept-Ranges, ETag, Last-Modified",
    );
}

pub fn respond(site: &Site, req: &Request) -> Response {
    let mut r = match req.method.as_str() {
        "GET" | "HEAD" => serve_path(site, req),
        "OPTIONS" => preflight(req),
        _ => {
            let mut r = Response::text(405, "method not allowed\n");
            r.header("Allow", "GET, HEAD, OPTIONS");
            r
        }
    };
    add_cors(&mut r);
    r
}

/// The answer to a CORS preflight, sent by browsers that do not treat a
/// single byte Range as a safelisted header.
fn preflight(req: &Request) -> Response {
    let mut r = Response::new(204);
    r.header("Access-Control-Allow-Methods", "GET, HEAD, OPTIONS");
    let asked = req
        .header("access-control-request-headers")
        .unwrap_or("Range");
    r.header("Access-Control-Allow-Headers", asked);
    r.header("Access-Control-Max-Age", "86400");
    r
}

fn serve_path(site: &Site, req: &Request) -> Response {
    let raw = req.target.split(['?', '#']).next().unwrap_or_default();
    if !raw.starts_with('/') {
        return Response::text(400, "bad request target\n");
    }
    let Some(decoded) = percent_decode(raw) else {
        return Response::text(400, "bad escape in path\n");
    };
    let segments: Vec<&str> = decoded
        .split('/')
        .filter(|s| !s.is_empty() && *s != ".")
        .collect();
    // `..` is refused outright rather than resolved: browsers resolve it
    // before sending, so only probes send it. Backslashes and colons would
    // be separators or drive letters on Windows.
    if segments
        .iter()
        .any(|s| *s == ".." || s.contains('\\') || (cfg!(windows) && s.contains(':')))
    {
        return Response::text(403, "forbidden\n");
    }

    let (root, rest) = match segments.as_slice() {
        ["models", name, rest @ ..] if site.bundles.contains_key(*name) => {
            (&site.bundles[*name], rest)
        }
        _ => (&site.www, segments.as_slice()),
    };
    let mut path = root.clone();
    path.extend(rest);

    let path = match contained(root, &path) {
        Ok(p) => p,
        Err(r) => return r,
    };
    let path = if path.is_dir() {
        if !decoded.ends_with('/') {
            // Relative links in the directory's index.html resolve against
            // the URL, so it must end in a slash.
            let mut r = Response::new(301);
            let query = &req.target[raw.len()..];
            r.header("Location", format!("{raw}/{query}"));
            return r;
        }
        match contained(root, &path.join("index.html")) {
            Ok(p) => p,
            Err(r) => return r,
        }
    } else {
        path
    };
    serve_file(&path, req)
}

/// Canonicalises `path` (following symbolic links) and checks it is still
/// inside `root`; the error is the response to send.
fn contained(root: &Path, path: &Path) -> Result<PathBuf, Response> {
    match fs::canonicalize(path) {
        Ok(p) if p.starts_with(root) => Ok(p),
        Ok(_) => Err(Response::text(403, "forbidden\n")),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            Err(Response::text(403, "forbidden\n"))
        }
        // Not found, or a file used as a directory (ENOTDIR).
        Err(_) => Err(not_found()),
    }
}

fn not_found() -> Response {
    Response::text(404, "not found\n")
}

fn serve_file(path: &Path, req: &Request) -> Response {
    let opened = File::open(path).and_then(|f| {
        let meta = f.metadata()?;
        Ok((f, meta))
    });
    let (file, meta) = match opened {
        Ok((f, m)) if m.is_file() => (f, m),
        Ok(_) => return not_found(),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
            return Response::text(403, "forbidden\n");
        }
        Err(_) => return not_found(),
    };
    let size = meta.len();
    let modified = meta.modified().unwrap_or(UNIX_EPOCH);
    let last_modified = http_date(modified);
    // Strong validator from size and modification time (as nginx does):
    // cheap, and changes whenever the file is rewritten.
    let mtime = modified.duration_since(UNIX_EPOCH).unwrap_or_default();
    let etag = format!(
        "\"{:x}.{:x}-{size:x}\"",
        mtime.as_secs(),
        mtime.subsec_nanos()
    );
    let name = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();

    let mut r = Response::new(200);
    r.header("Content-Type", mime_type(name));
    r.header("Accept-Ranges", "bytes");
    r.header(
        "Cache-Control",
        if is_shard(name) { IMMUTABLE } else { NO_CACHE },
    );
    r.header("Last-Modified", last_modified.clone());
    r.header("ETag", etag.clone());

    // Revalidation of a `no-cache` file: If-None-Match wins over
    // If-Modified-Since (RFC 9110 section 13.2.2). Dates are compared as
    // text: browsers send back the Last-Modified they were given.
    let fresh = match req.header("if-none-match") {
        Some(tags) => tags
            .split(',')
            .map(str::trim)
            .any(|t| t == "*" || t.trim_start_matches("W/") == etag),
        None => req.header("if-modified-since") == Some(last_modified.as_str()),
    };
    if fresh {
        r.status = 304;
        return r;
    }

    // If-Range: the range applies only if the client's copy is current.
    let current = req
        .header("if-range")
        .is_none_or(|v| v == etag || v == last_modified);
    let range = match req.header("range") {
        Some(h) if current => parse_range(h, size),
        _ => None,
    };
    match range {
        Some(Range::Unsatisfiable) => {
            r.status = 416;
            r.header("Content-Range", format!("bytes */{size}"));
        }
        Some(Range::Bytes { start, end }) => {
            r.status = 206;
            r.header("Content-Range", format!("bytes {start}-{end}/{size}"));
            r.body = Body::File {
                file,
                start,
                len: end - start + 1,
            };
        }
        None => {
            r.body = Body::File {
                file,
                start: 0,
                len: size,
            };
        }
    }
    r
}

/// A content-addressed shard: a hex SHA-256 prefix (8 to 64 digits) and
/// `.bin`. Its bytes can never change under that name, so caches keep it.
pub fn is_shard(name: &str) -> bool {
    name.strip_suffix(".bin").is_some_and(|hash| {
        (8..=64).contains(&hash.len()) && hash.bytes().all(|b| b.is_ascii_hexdigit())
    })
}

pub fn mime_type(name: &str) -> &'static str {
    let ext = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "wasm" => "application/wasm",
        "ts" | "txt" => "text/plain; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "ico" => "image/x-icon",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_names() {
        assert!(is_shard("0123456789abcdef.bin"));
        assert!(is_shard(&format!("{}.bin", "a".repeat(64))));
        assert!(!is_shard("0123456.bin"));
        assert!(!is_shard(&format!("{}.bin", "a".repeat(65))));
        assert!(!is_shard("weights.bin"));
        assert!(!is_shard("0123456789abcdef.json"));
        assert!(!is_shard("manifest.json"));
    }

    #[test]
    fn mime_types() {
        assert_eq!(mime_type("m.wasm"), "application/wasm");
        assert_eq!(mime_type("a.MJS"), "text/javascript; charset=utf-8");
        assert_eq!(mime_type("manifest.json"), "application/json");
        assert_eq!(mime_type("x.bin"), "application/octet-stream");
        assert_eq!(mime_type("README"), "application/octet-stream");
    }
}
