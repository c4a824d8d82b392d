//! A minimal HTTP/1.1 file server on 127.0.0.1 for loader tests: GET with
//! optional `Range: bytes=N-`, a request log, and a switch that cuts the
//! first transfer of a file short to exercise resume. One connection at a
//! time, `Connection: close` on every answer; the thread ends with the test
//! process.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Default)]
struct State {
    /// `"/file range"` per request, range `-` when none.
    log: Vec<String>,
    /// file -> bytes to send before dropping the connection (once).
    cut: HashMap<String, usize>,
}

pub struct Server {
    port: u16,
    state: Arc<Mutex<State>>,
}

impl Server {
    pub fn start(dir: &Path) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(Mutex::new(State::default()));
        let (dir, st) = (dir.to_path_buf(), state.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = handle(stream, &dir, &st);
            }
        });
        Server { port, state }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn cut_first(&self, file: &str, after: usize) {
        self.state
            .lock()
            .unwrap()
            .cut
            .insert(file.to_string(), after);
    }

    pub fn requests(&self) -> Vec<String> {
        self.state.lock().unwrap().log.clone()
    }

    pub fn clear_requests(&self) {
        self.state.lock().unwrap().log.clear();
    }
}

fn handle(mut stream: TcpStream, dir: &Path, state: &Mutex<State>) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let path = line.split_whitespace().nth(1).unwrap_or("/").to_string();
    let mut from: Option<usize> = None;
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h)? == 0 || h == "\r\n" {
            break;
        }
        let lower = h.to_ascii_lowercase();
        if let Some(v) = lower.strip_prefix("range: bytes=") {
            from = v.trim().trim_end_matches('-').parse().ok();
        }
    }
    let name = path.trim_start_matches('/');
    let cut = {
        let mut s = state.lock().unwrap();
        let range = from.map_or("-".to_string(), |f| format!("bytes={f}-"));
        s.log.push(format!("{path} {range}"));
        s.cut.remove(name)
    };
    // Plain names only: the test serves one folder.
    let body = if name.contains('/') || name.contains("..") {
        None
    } else {
        std::fs::read(dir.join(name)).ok()
    };
    let Some(body) = body else {
        return stream.write_all(
            b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
    };
    let (status, start) = match from {
        Some(f) if f >= body.len() => {
            let head = format!(
                "HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */{}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                body.len()
            );
            return stream.write_all(head.as_bytes());
        }
        Some(f) => (206, f),
        None => (200, 0),
    };
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nContent-Length: {}\r\nConnection: close\r\n",
        if status == 206 {
            "Partial Content"
        } else {
            "OK"
        },
        body.len() - start
    );
    if status == 206 {
        head += &format!(
            "Content-Range: bytes {start}-{}/{}\r\n",
            body.len() - 1,
            body.len()
        );
    }
    head += "\r\n";
    stream.write_all(head.as_bytes())?;
    let end = cut.map_or(body.len(), |c| (start + c).min(body.len()));
    stream.write_all(&body[start..end])?;
    stream.flush()
}
