//! `framecast serve`: a static HTTP server for the demo site and model
//! bundles. The site is served at `/`, each bundle at `/models/<name>/`,
//! with single-range Range requests (shards are streamed by range), MIME
//! types browsers insist on (`application/wasm`), caching that suits
//! content-addressed shards, and CORS so pages on other origins can fetch
//! bundles.
//!
//! std::net and a thread per connection: the clients are a few browser tabs
//! and tests, so an async runtime would buy nothing.

mod files;
mod http;

use std::collections::HashMap;
use std::io::{self, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use thiserror::Error;

pub use files::{is_shard, mime_type};

/// How long an idle keep-alive connection is kept open.
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// A client that reads nothing for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections beyond this many are answered 503 and closed, so a runaway
/// client cannot exhaust threads.
const MAX_CONNECTIONS: usize = 512;

#[derive(Debug, Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind { addr: String, source: io::Error },
    #[error("cannot serve {path}: {source}")]
    Dir { path: PathBuf, source: io::Error },
    #[error("{0} is not a directory")]
    NotDir(PathBuf),
    #[error("bundle name {0:?}: use letters, digits, '.', '-' and '_' (not '.' or '..')")]
    BundleName(String),
    #[error("bundle {0:?} is given twice")]
    DuplicateBundle(String),
    #[error("cannot start the server thread: {0}")]
    Thread(io::Error),
}

/// What to serve, and where.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    /// Served at `/`.
    pub www: PathBuf,
    /// `(name, dir)`: each served at `/models/<name>/`.
    pub bundles: Vec<(String, PathBuf)>,
    /// `host:port`; port 0 picks a free one.
    pub addr: String,
}

/// A running server. Dropping it stops it.
pub struct Server {
    addr: SocketAddr,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

struct Shared {
    site: files::Site,
    stopping: AtomicBool,
    next_id: AtomicU64,
    /// Open connections, so that stopping can close them.
    connections: Mutex<HashMap<u64, TcpStream>>,
}

impl Server {
    /// Checks the directories, binds `config.addr` and starts serving on a
    /// background thread.
    pub fn bind(config: &ServeConfig) -> Result<Server, ServeError> {
        let site = site(config)?;
        let listener = TcpListener::bind(&config.addr).map_err(|source| ServeError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.addr.clone(),
            source,
        })?;
        let shared = Arc::new(Shared {
            site,
            stopping: AtomicBool::new(false),
            next_id: AtomicU64::new(0),
            connections: Mutex::new(HashMap::new()),
        });
        let accept = {
            let shared = shared.clone();
            thread::Builder::new()
                .name("framecast-serve".into())
                .spawn(move || accept_loop(&listener, &shared))
                .map_err(ServeError::Thread)?
        };
        Ok(Server {
            addr,
            shared,
            accept: Some(accept),
        })
    }

    /// The bound address (with the real port when 0 was asked for).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The site's URL, e.g. `http://127.0.0.1:8080/`. A wildcard bind
    /// address is shown as the loopback one, which a browser can open.
    pub fn url(&self) -> String {
        format!("http://{}/", reachable(self.addr))
    }

    /// Blocks for as long as the server runs (until [`Server::stop`] is
    /// called from elsewhere, or forever).
    pub fn wait(mut self) {
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }

    /// Stops accepting, closes open connections and waits for the accept
    /// thread to end.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        let Some(accept) = self.accept.take() else {
            return;
        };
        self.shared.stopping.store(true, Ordering::SeqCst);
        // accept() has no timeout: wake it with a connection of our own. If
        // that fails the listener is already broken and the loop has ended.
        let _ = TcpStream::connect_timeout(&reachable(self.addr), Duration::from_secs(1));
        let _ = accept.join();
        // Every connection is registered by the accept thread, now ended.
        let open = std::mem::take(&mut *lock(&self.shared.connections));
        for stream in open.values() {
            let _ = stream.shutdown(Shutdown::Both);
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic elsewhere cannot leave a map of sockets inconsistent.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn reachable(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => (Ipv4Addr::LOCALHOST, addr.port()).into(),
        IpAddr::V6(ip) if ip.is_unspecified() => (Ipv6Addr::LOCALHOST, addr.port()).into(),
        _ => addr,
    }
}

/// Canonical directories of the site and bundles, checked up front so that
/// a typo fails at start rather than as a 404 later.
fn site(config: &ServeConfig) -> Result<files::Site, ServeError> {
    let www = canonical_dir(&config.www)?;
    let mut bundles = HashMap::new();
    for (name, dir) in &config.bundles {
        let valid = !name.is_empty()
            && name != "."
            && name != ".."
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
        if !valid {
            return Err(ServeError::BundleName(name.clone()));
        }
        if bundles.insert(name.clone(), canonical_dir(dir)?).is_some() {
            return Err(ServeError::DuplicateBundle(name.clone()));
        }
    }
    Ok(files::Site { www, bundles })
}

fn canonical_dir(path: &Path) -> Result<PathBuf, ServeError> {
    let dir = std::fs::canonicalize(path).map_err(|source| ServeError::Dir {
        path: path.to_path_buf(),
        source,
    })?;
    if !dir.is_dir() {
        return Err(ServeError::NotDir(path.to_path_buf()));
    }
    Ok(dir)
}

fn accept_loop(listener: &TcpListener, shared: &Arc<Shared>) {
    for stream in listener.incoming() {
        if shared.stopping.load(Ordering::SeqCst) {
            return;
        }
        let stream = match stream {
            Ok(s) => s,
            // Out of file descriptors and the like: pause rather than spin.
            Err(_) => {
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let registered = {
            let mut open = lock(&shared.connections);
            if open.len() >= MAX_CONNECTIONS {
                false
            } else if let Ok(clone) = stream.try_clone() {
                open.insert(id, clone);
                true
            } else {
                false
            }
        };
        if !registered {
            let mut r = http::Response::text(503, "too many connections\n");
            files::add_cors(&mut r);
            let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
            let _ = r.write_to(&mut &stream, false, false);
            continue;
        }
        let conn_shared = shared.clone();
        let spawned = thread::Builder::new()
            .name("framecast-serve-conn".into())
            .spawn(move || {
                // Unregisters the connection however the thread ends.
                struct Registered(Arc<Shared>, u64);
                impl Drop for Registered {
                    fn drop(&mut self) {
                        lock(&self.0.connections).remove(&self.1);
                    }
                }
                let registered = Registered(conn_shared, id);
                // Errors here are a client gone away or a file changed
                // under us; either way the connection just ends.
                let _ = serve_connection(&registered.0.site, stream);
            });
        if spawned.is_err()
            && let Some(s) = lock(&shared.connections).remove(&id)
        {
            let _ = s.shutdown(Shutdown::Both);
        }
    }
}

/// Answers requests on one connection until the client closes it, asks to,
/// goes idle, or sends something unreadable.
fn serve_connection(site: &files::Site, stream: TcpStream) -> io::Result<()> {
    stream.set_read_timeout(Some(IDLE_TIMEOUT))?;
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    // Responses are written as a head then a body: do not hold the head
    // back waiting for an ACK (Nagle), it costs 40 ms per request.
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = &stream;
    loop {
        let req = match http::read_request(&mut reader) {
            Ok(req) => req,
            Err(http::ReadError::Closed) => return Ok(()),
            Err(http::ReadError::Io(e)) => return Err(e),
            Err(http::ReadError::Bad(status)) => {
                let mut r = http::Response::text(status, "bad request\n");
                files::add_cors(&mut r);
                return r.write_to(&mut writer, false, false);
            }
        };
        let keep_alive = req.keep_alive();
        let response = files::respond(site, &req);
        response.write_to(&mut writer, req.method == "HEAD", keep_alive)?;
        if !keep_alive {
            return Ok(());
        }
    }
}

/// The site folder to serve when none is given: `www/` of the repository
/// the command runs in (looked for upwards from the current directory), or
/// `www/` next to the binary, or in the repository the binary was built in
/// (`target/<profile>/framecast`). A repository is recognised by its
/// `Cargo.toml` beside `www/`, so an unrelated `/var/www` is never picked.
pub fn default_www() -> Option<PathBuf> {
    let in_repo = |dir: &Path| {
        dir.ancestors()
            .find(|d| d.join("www").is_dir() && d.join("Cargo.toml").is_file())
            .map(|d| d.join("www"))
    };
    if let Some(www) = std::env::current_dir().ok().as_deref().and_then(in_repo) {
        return Some(www);
    }
    let exe_dir = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let beside = exe_dir.join("www");
    if beside.is_dir() {
        return Some(beside);
    }
    in_repo(&exe_dir)
}
