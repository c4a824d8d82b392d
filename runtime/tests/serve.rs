//! `framecast serve` over real sockets: a server on 127.0.0.1, port 0, in
//! this process, and requests written by hand so that exactly what goes over
//! the wire is checked (including requests a browser would never send).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use framecast::serve::{ServeConfig, ServeError, Server};

const SHARD: &str = "0123456789abcdef0123.bin";

/// A temporary tree, removed on drop:
/// `secret.txt` (must never be served), `www/` (the site) and `tiny/` (a bundle).
struct Fixture {
    dir: PathBuf,
    server: Option<Server>,
}

impl Fixture {
    fn new() -> Fixture {
        static COUNT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "framecast-serve-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let write = |rel: &str, bytes: &[u8]| {
            let path = dir.join(rel);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        };
        write("secret.txt", b"SECRET outside the roots");
        write("www/index.html", b"<!doctype html><title>site</title>");
        write("www/m.wasm", &pattern());
        write("www/app.js", b"export {};");
        write("www/lib.mjs", b"export {};");
        write("www/style.css", b"body{}");
        write("www/data.json", b"{}");
        write("www/pic.png", b"\x89PNG");
        write("www/clip.mp4", b"mp4");
        write("www/empty.txt", b"");
        write("www/sub/index.html", b"<!doctype html><title>sub</title>");
        write("tiny/manifest.json", b"{\"format\":1}");
        write(&format!("tiny/{SHARD}"), &pattern());
        write("tiny/notes.bin", b"not content-addressed");
        #[cfg(unix)]
        std::os::unix::fs::symlink(dir.join("secret.txt"), dir.join("www/link.txt")).unwrap();

        let config = ServeConfig {
            www: dir.join("www"),
            bundles: vec![("tiny".into(), dir.join("tiny"))],
            addr: "127.0.0.1:0".into(),
        };
        let server = Server::bind(&config).unwrap();
        Fixture {
            dir,
            server: Some(server),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.server.as_ref().unwrap().addr()
    }

    /// One request on a fresh connection.
    fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers)
    }

    fn request(&self, method: &str, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut conn = Conn::open(self.addr());
        conn.send(method, path, headers, true);
        conn.read(method == "HEAD")
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.stop();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// 1000 bytes that differ from their neighbours, so a wrong offset shows.
fn pattern() -> Vec<u8> {
    (0..1000u32).map(|i| (i % 251) as u8).collect()
}

struct Conn {
    reader: BufReader<TcpStream>,
    stream: TcpStream,
}

impl Conn {
    fn open(addr: SocketAddr) -> Conn {
        assert!(addr.ip().is_loopback(), "tests talk to 127.0.0.1 only");
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            stream,
        }
    }

    fn send(&mut self, method: &str, path: &str, headers: &[(&str, &str)], close: bool) {
        let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in headers {
            req.push_str(&format!("{name}: {value}\r\n"));
        }
        if close {
            req.push_str("Connection: close\r\n");
        }
        req.push_str("\r\n");
        self.stream.write_all(req.as_bytes()).unwrap();
    }

    /// Reads one response, its body by Content-Length (none for HEAD).
    fn read(&mut self, head: bool) -> Response {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        let status = line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("bad status line {line:?}"));
        let mut headers = Vec::new();
        loop {
            line.clear();
            self.reader.read_line(&mut line).unwrap();
            let text = line.trim_end();
            if text.is_empty() {
                break;
            }
            let (name, value) = text.split_once(':').unwrap();
            headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
        }
        let mut r = Response {
            status,
            headers,
            body: Vec::new(),
        };
        let len: usize = r.header("content-length").map_or(0, |v| v.parse().unwrap());
        if !head && status != 304 {
            r.body = vec![0; len];
            self.reader.read_exact(&mut r.body).unwrap();
        }
        r
    }

    /// Whether the server has closed the connection.
    fn closed(&mut self) -> bool {
        let mut byte = [0u8];
        matches!(self.reader.read(&mut byte), Ok(0) | Err(_))
    }
}

#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

#[test]
fn full_get() {
    let f = Fixture::new();
    let r = f.get("/m.wasm", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, pattern());
    assert_eq!(r.header("content-length"), Some("1000"));
    assert_eq!(r.header("accept-ranges"), Some("bytes"));
    assert_eq!(r.header("content-range"), None);
    assert!(
        r.header("last-modified")
            .is_some_and(|d| d.ends_with(" GMT"))
    );
    assert!(r.header("etag").is_some());

    let r = f.get("/empty.txt", &[]);
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
}

#[test]
fn range_requests() {
    let f = Fixture::new();
    let bytes = pattern();
    // (Range header, expected Content-Range, expected slice)
    let cases: &[(&str, &str, std::ops::Range<usize>)] = &[
        ("bytes=0-9", "bytes 0-9/1000", 0..10),
        ("bytes=100-199", "bytes 100-199/1000", 100..200),
        ("bytes=-10", "bytes 990-999/1000", 990..1000),
        ("bytes=990-", "bytes 990-999/1000", 990..1000),
        ("bytes=500-5000", "bytes 500-999/1000", 500..1000),
        ("bytes=-5000", "bytes 0-999/1000", 0..1000),
        ("bytes=999-999", "bytes 999-999/1000", 999..1000),
    ];
    for path in ["/m.wasm", &format!("/models/tiny/{SHARD}")] {
        for (range, content_range, slice) in cases {
            let r = f.get(path, &[("Range", range)]);
            assert_eq!(r.status, 206, "{path} {range}");
            assert_eq!(r.header("content-range"), Some(*content_range), "{range}");
            let len = slice.len().to_string();
            assert_eq!(r.header("content-length"), Some(len.as_str()), "{range}");
            assert_eq!(r.body, bytes[slice.clone()], "{path} {range}");
        }
    }
    // Several ranges, or a reversed one, are ignored: the whole file.
    for range in ["bytes=0-1,4-5", "bytes=7-3", "items=0-1"] {
        let r = f.get("/m.wasm", &[("Range", range)]);
        assert_eq!((r.status, r.body.len()), (200, 1000), "{range}");
    }
}

#[test]
fn unsatisfiable_ranges() {
    let f = Fixture::new();
    for (path, range, size) in [
        ("/m.wasm", "bytes=1000-", 1000),
        ("/m.wasm", "bytes=5000-6000", 1000),
        ("/m.wasm", "bytes=-0", 1000),
        ("/empty.txt", "bytes=0-", 0),
    ] {
        let r = f.get(path, &[("Range", range)]);
        assert_eq!(r.status, 416, "{path} {range}");
        let want = format!("bytes */{size}");
        assert_eq!(r.header("content-range"), Some(want.as_str()));
        assert!(r.body.is_empty());
    }
}

#[test]
fn head_matches_get_without_a_body() {
    let f = Fixture::new();
    // One keep-alive connection: if HEAD sent a body, the GET after it would
    // read that body as its status line.
    let mut conn = Conn::open(f.addr());
    conn.send("HEAD", "/m.wasm", &[], false);
    let head = conn.read(true);
    conn.send("HEAD", "/m.wasm", &[("Range", "bytes=10-19")], false);
    let head_range = conn.read(true);
    conn.send("GET", "/m.wasm", &[], true);
    let get = conn.read(false);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("1000"));
    assert_eq!(head.header("content-type"), get.header("content-type"));
    assert_eq!(head.header("etag"), get.header("etag"));
    assert_eq!(head_range.status, 206);
    assert_eq!(head_range.header("content-range"), Some("bytes 10-19/1000"));
    assert_eq!(get.body, pattern());
    assert!(conn.closed(), "Connection: close must close");
}

#[test]
fn keep_alive_serves_several_requests() {
    let f = Fixture::new();
    let mut conn = Conn::open(f.addr());
    for (i, range) in ["bytes=0-99", "bytes=100-199", "bytes=-1"]
        .iter()
        .enumerate()
    {
        conn.send(
            "GET",
            &format!("/models/tiny/{SHARD}"),
            &[("Range", range)],
            false,
        );
        let r = conn.read(false);
        assert_eq!(r.status, 206, "request {i}");
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn mime_types() {
    let f = Fixture::new();
    for (path, mime) in [
        ("/m.wasm", "application/wasm"),
        ("/app.js", "text/javascript; charset=utf-8"),
        ("/lib.mjs", "text/javascript; charset=utf-8"),
        ("/data.json", "application/json"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/", "text/html; charset=utf-8"),
        ("/style.css", "text/css; charset=utf-8"),
        ("/pic.png", "image/png"),
        ("/clip.mp4", "video/mp4"),
        ("/models/tiny/manifest.json", "application/json"),
        (&format!("/models/tiny/{SHARD}"), "application/octet-stream"),
    ] {
        let r = f.get(path, &[]);
        assert_eq!(r.status, 200, "{path}");
        assert_eq!(r.header("content-type"), Some(mime), "{path}");
    }
}

#[test]
fn cache_headers() {
    let f = Fixture::new();
    let immutable = "public, max-age=31536000, immutable";
    for (path, cache) in [
        (format!("/models/tiny/{SHARD}"), immutable),
        ("/models/tiny/manifest.json".into(), "no-cache"),
        ("/models/tiny/notes.bin".into(), "no-cache"),
        ("/index.html".into(), "no-cache"),
        ("/m.wasm".into(), "no-cache"),
    ] {
        let r = f.get(&path, &[]);
        assert_eq!(r.header("cache-control"), Some(cache), "{path}");
    }
    // Revalidating a no-cache file costs no body when it has not changed.
    let r = f.get("/models/tiny/manifest.json", &[]);
    let etag = r.header("etag").unwrap().to_string();
    let modified = r.header("last-modified").unwrap().to_string();
    let again = f.get("/models/tiny/manifest.json", &[("If-None-Match", &etag)]);
    assert_eq!((again.status, again.body.len()), (304, 0));
    let again = f.get(
        "/models/tiny/manifest.json",
        &[("If-Modified-Since", &modified)],
    );
    assert_eq!(again.status, 304);
    let changed = f.get(
        "/models/tiny/manifest.json",
        &[("If-None-Match", "\"other\"")],
    );
    assert_eq!(changed.status, 200);
    // A range is honoured under If-Range only while the validator matches.
    let r = f.get(
        "/m.wasm",
        &[("Range", "bytes=0-9"), ("If-Range", "\"old\"")],
    );
    assert_eq!((r.status, r.body.len()), (200, 1000));
}

#[test]
fn cors_headers() {
    let f = Fixture::new();
    let origin = [("Origin", "https://example.org")];
    for path in [format!("/models/tiny/{SHARD}"), "/missing".into()] {
        let r = f.get(&path, &origin);
        assert_eq!(r.header("access-control-allow-origin"), Some("*"), "{path}");
        let exposed = r
            .header("access-control-expose-headers")
            .unwrap_or_default();
        for name in ["Content-Range", "Content-Length", "Accept-Ranges"] {
            assert!(exposed.contains(name), "{path}: {name} not in {exposed:?}");
        }
    }
    let r = f.request(
        "OPTIONS",
        "/models/tiny/manifest.json",
        &[
            ("Origin", "https://example.org"),
            ("Access-Control-Request-Method", "GET"),
            ("Access-Control-Request-Headers", "range"),
        ],
    );
    assert_eq!(r.status, 204);
    assert_eq!(r.header("access-control-allow-origin"), Some("*"));
    assert_eq!(r.header("access-control-allow-headers"), Some("range"));
    assert!(
        r.header("access-control-allow-methods")
            .is_some_and(|m| m.contains("GET"))
    );
}

#[test]
fn no_path_escapes_the_roots() {
    let f = Fixture::new();
    let mut attempts = vec![
        "/../Cargo.toml",
        "/../secret.txt",
        "/%2e%2e/secret.txt",
        "/%2E%2E/secret.txt",
        "/..%2fsecret.txt",
        "/..%2f..%2fetc%2fpasswd",
        "/sub/../../secret.txt",
        "/models/tiny/../../secret.txt",
        "/models/tiny/%2e%2e/secret.txt",
        "/models/tiny/..%5csecret.txt",
        "/models/%2e%2e/secret.txt",
        "/models/../../secret.txt",
    ];
    if cfg!(unix) {
        attempts.push("/link.txt"); // a symbolic link out of www
    }
    for path in attempts {
        let r = f.get(path, &[]);
        assert!(
            [400, 403, 404].contains(&r.status),
            "{path}: status {}",
            r.status
        );
        assert!(
            !String::from_utf8_lossy(&r.body).contains("SECRET"),
            "{path} leaked"
        );
    }
    assert_eq!(f.get("/../secret.txt", &[]).status, 403);
    assert_eq!(f.get("/%2e%2e/secret.txt", &[]).status, 403);
    // Not a path at all.
    assert_eq!(f.get("http://127.0.0.1/", &[]).status, 400);
    assert_eq!(f.get("/bad%zzescape", &[]).status, 400);
}

#[test]
fn unknown_paths_and_directories() {
    let f = Fixture::new();
    for path in [
        "/missing.js",
        "/models/nope/manifest.json",
        "/models/tiny/missing.bin",
        "/models/tiny/",
        "/app.js/more",
    ] {
        assert_eq!(f.get(path, &[]).status, 404, "{path}");
    }
    assert!(
        f.get("/", &[])
            .body
            .starts_with(b"<!doctype html><title>site")
    );
    assert!(
        f.get("/?v=1", &[])
            .body
            .starts_with(b"<!doctype html><title>site")
    );
    assert!(
        f.get("/sub/", &[])
            .body
            .starts_with(b"<!doctype html><title>sub")
    );
    // A directory without its slash is redirected, so relative links work.
    let r = f.get("/sub?x=1", &[]);
    assert_eq!((r.status, r.header("location")), (301, Some("/sub/?x=1")));
    let r = f.request("DELETE", "/index.html", &[]);
    assert_eq!(
        (r.status, r.header("allow")),
        (405, Some("GET, HEAD, OPTIONS"))
    );
}

#[test]
fn stop_closes_listener_and_connections() {
    let mut f = Fixture::new();
    let addr = f.addr();
    let mut idle = Conn::open(addr);
    idle.send("GET", "/app.js", &[], false);
    assert_eq!(idle.read(false).status, 200);
    f.server.take().unwrap().stop();
    assert!(
        idle.closed(),
        "an idle keep-alive connection must be closed"
    );
    assert!(TcpStream::connect(addr).is_err(), "still listening");
}

#[test]
fn bad_configurations_fail_at_start() {
    let f = Fixture::new();
    let config = |www: &Path, bundles: &[(&str, &Path)]| ServeConfig {
        www: www.to_path_buf(),
        bundles: bundles
            .iter()
            .map(|(n, d)| (n.to_string(), d.to_path_buf()))
            .collect(),
        addr: "127.0.0.1:0".into(),
    };
    let www = f.dir.join("www");
    let tiny = f.dir.join("tiny");
    let err = |c: ServeConfig| Server::bind(&c).err().expect("should fail");
    assert!(matches!(
        err(config(&f.dir.join("nope"), &[])),
        ServeError::Dir { .. }
    ));
    assert!(matches!(
        err(config(&f.dir.join("secret.txt"), &[])),
        ServeError::NotDir(_)
    ));
    for name in ["..", ".", "", "a/b", "a b"] {
        let e = err(config(&www, &[(name, &tiny)]));
        assert!(matches!(e, ServeError::BundleName(_)), "{name:?}: {e}");
    }
    let e = err(config(&www, &[("t", &tiny), ("t", &tiny)]));
    assert!(matches!(e, ServeError::DuplicateBundle(_)));
    let taken = ServeConfig {
        addr: f.addr().to_string(),
        ..config(&www, &[])
    };
    assert!(matches!(err(taken), ServeError::Bind { .. }));
}

#[test]
fn default_site_is_the_repository_www() {
    // Tests run in runtime/; the repository root above it holds www/.
    let want = Path::new(env!("CARGO_MANIFEST_DIR")).join("../www");
    let found = framecast::serve::default_www().expect("www/ not found");
    assert_eq!(found.canonicalize().unwrap(), want.canonicalize().unwrap());
}
