//! The small part of HTTP/1.1 the server speaks: reading a request head,
//! writing a response, byte ranges, percent-decoding and HTTP dates.

use std::fs::File;
use std::io::{self, BufRead, Read, Seek, SeekFrom, Write};
use std::time::{SystemTime, UNIX_EPOCH};

/// Longest request head accepted; browsers send a few hundred bytes.
const MAX_HEAD: u64 = 16 * 1024;
const MAX_HEADERS: usize = 100;

#[derive(Debug)]
pub struct Request {
    pub method: String,
    pub target: String,
    /// HTTP/1.0 rather than 1.1: no keep-alive unless asked for.
    pub http10: bool,
    /// Names lowercased, values trimmed.
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    fn connection_has(&self, token: &str) -> bool {
        self.header("connection")
            .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// Whether the connection may carry another request after this one. A
    /// request with a body ends it: GET and HEAD bodies are never read, so
    /// the next request's start would be unknown.
    pub fn keep_alive(&self) -> bool {
        let has_body = self.header("transfer-encoding").is_some()
            || self
                .header("content-length")
                .is_some_and(|v| v.trim() != "0");
        let wanted = if self.http10 {
            self.connection_has("keep-alive")
        } else {
            !self.connection_has("close")
        };
        wanted && !has_body
    }
}

/// Why no request could be read.
#[derive(Debug)]
pub enum ReadError {
    /// The client closed the connection (or went idle) between requests.
    Closed,
    /// Malformed or too large: answer with this status, then close.
    Bad(u16),
    Io(io::Error),
}

/// Reads one request head. Returns `Closed` on a clean end of stream before
/// any byte of a request.
pub fn read_request(reader: &mut impl BufRead) -> Result<Request, ReadError> {
    let mut limited = reader.take(MAX_HEAD);
    let mut line = Vec::new();
    // RFC 9112 section 2.2: ignore empty lines before the request line.
    let request_line = loop {
        line.clear();
        match limited.read_until(b'\n', &mut line) {
            Ok(0) => return Err(ReadError::Closed),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return Err(ReadError::Closed),
            Err(e) => return Err(ReadError::Io(e)),
        }
        if !line.ends_with(b"\n") {
            return Err(ReadError::Bad(if limited.limit() == 0 { 431 } else { 400 }));
        }
        let text = trim_eol(&line);
        if !text.is_empty() {
            break String::from_utf8(text.to_vec()).map_err(|_| ReadError::Bad(400))?;
        }
    };
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Bad(400));
    };
    let http10 = match version {
        "HTTP/1.1" => false,
        "HTTP/1.0" => true,
        v if v.starts_with("HTTP/") => return Err(ReadError::Bad(505)),
        _ => return Err(ReadError::Bad(400)),
    };
    // No control characters: the target is echoed in redirects.
    if method.is_empty() || target.is_empty() || target.bytes().any(|b| b.is_ascii_control()) {
        return Err(ReadError::Bad(400));
    }

    let mut headers = Vec::new();
    loop {
        line.clear();
        match limited.read_until(b'\n', &mut line) {
            Ok(_) => {}
            Err(e) if is_timeout(&e) => return Err(ReadError::Closed),
            Err(e) => return Err(ReadError::Io(e)),
        }
        if !line.ends_with(b"\n") {
            // Either the limit was reached or the client hung up mid-head.
            return Err(if limited.limit() == 0 {
                ReadError::Bad(431)
            } else {
                ReadError::Closed
            });
        }
        let text = trim_eol(&line);
        if text.is_empty() {
            break;
        }
        // Obsolete line folding (a continuation line) is rejected, as RFC
        // 9112 allows, rather than guessed at.
        if text[0] == b' ' || text[0] == b'\t' || headers.len() == MAX_HEADERS {
            return Err(ReadError::Bad(if headers.len() == MAX_HEADERS {
                431
            } else {
                400
            }));
        }
        let text = std::str::from_utf8(text).map_err(|_| ReadError::Bad(400))?;
        let (name, value) = text.split_once(':').ok_or(ReadError::Bad(400))?;
        if name.is_empty() || name.contains([' ', '\t']) {
            return Err(ReadError::Bad(400));
        }
        // A stray CR inside a value could split an echoed header in two.
        let value = value.trim();
        if value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(ReadError::Bad(400));
        }
        headers.push((name.to_ascii_lowercase(), value.to_string()));
    }
    Ok(Request {
        method: method.to_string(),
        target: target.to_string(),
        http10,
        headers,
    })
}

fn trim_eol(line: &[u8]) -> &[u8] {
    let line = line.strip_suffix(b"\n").unwrap_or(line);
    line.strip_suffix(b"\r").unwrap_or(line)
}

pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

pub enum Body {
    Empty,
    Text(&'static str),
    /// `len` bytes of `file` from `start`.
    File {
        file: File,
        start: u64,
        len: u64,
    },
}

impl Body {
    fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Text(t) => t.len() as u64,
            Body::File { len, .. } => *len,
        }
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Body,
}

impl Response {
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Body::Empty,
        }
    }

    /// A short plain-text answer, for errors.
    pub fn text(status: u16, text: &'static str) -> Self {
        let mut r = Response::new(status);
        r.header("Content-Type", "text/plain; charset=utf-8");
        r.body = Body::Text(text);
        r
    }

    pub fn header(&mut self, name: &'static str, value: impl Into<String>) {
        self.headers.push((name, value.into()));
    }

    /// Writes the response. `head_only` (a HEAD request) sends the headers a
    /// GET would get, Content-Length included, but no body. Fails if the
    /// file ends before its announced length (it changed on disk): the
    /// caller must then close the connection.
    pub fn write_to(
        self,
        out: &mut impl Write,
        head_only: bool,
        keep_alive: bool,
    ) -> io::Result<()> {
        let mut head = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        for (name, value) in &self.headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        // 304 has no body, and its Content-Length would describe the
        // stored file rather than this message; leave it out.
        if self.status != 304 {
            head.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        head.push_str(&format!("Date: {}\r\n", http_date(SystemTime::now())));
        head.push_str(if keep_alive {
            "Connection: keep-alive\r\n\r\n"
        } else {
            "Connection: close\r\n\r\n"
        });
        out.write_all(head.as_bytes())?;
        if head_only {
            return out.flush();
        }
        match self.body {
            Body::Empty => {}
            Body::Text(t) => out.write_all(t.as_bytes())?,
            Body::File {
                mut file,
                start,
                len,
            } => {
                file.seek(SeekFrom::Start(start))?;
                // std's copy uses sendfile/splice for a file into a socket on Linux.
                let sent = io::copy(&mut file.take(len), out)?;
                if sent != len {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "file shorter than its announced length",
                    ));
                }
            }
        }
        out.flush()
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A Range header read against a file of known size.
#[derive(Debug, PartialEq, Eq)]
pub enum Range {
    /// Bytes `start..=end`.
    Bytes {
        start: u64,
        end: u64,
    },
    Unsatisfiable,
}

/// Parses a Range header for a file of `size` bytes, as the Node test server
/// does: one `bytes=` range; anything else (several ranges, other units,
/// `end < start`) is ignored and the file answered in full, which RFC 9110
/// allows. `None` means "no usable range".
pub fn parse_range(header: &str, size: u64) -> Option<Range> {
    let spec = header.trim().strip_prefix("bytes=")?;
    let (first, last) = spec.split_once('-')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if !digits(first) || !digits(last) || (first.is_empty() && last.is_empty()) {
        return None;
    }
    // Numbers too large for u64 are larger than any file: saturate.
    let number = |s: &str| s.parse::<u64>().unwrap_or(u64::MAX);
    let (start, end) = if first.is_empty() {
        // A suffix: the last N bytes.
        let n = number(last);
        if n == 0 || size == 0 {
            return Some(Range::Unsatisfiable);
        }
        (size.saturating_sub(n), size - 1)
    } else {
        let start = number(first);
        if !last.is_empty() && number(last) < start {
            return None;
        }
        if start >= size {
            return Some(Range::Unsatisfiable);
        }
        let end = if last.is_empty() {
            size - 1
        } else {
            number(last).min(size - 1)
        };
        (start, end)
    };
    Some(Range::Bytes { start, end })
}

/// Decodes `%XX` escapes. `None` for a bad escape, a NUL byte or text that
/// is not UTF-8.
pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    if out.contains(&0) {
        return None;
    }
    String::from_utf8(out).ok()
}

/// IMF-fixdate (RFC 9110 section 5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
pub fn http_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    const WEEKDAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} GMT",
        WEEKDAYS[(days % 7) as usize], // 1970-01-01 was a Thursday
        day,
        MONTHS[(month - 1) as usize],
        year,
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// (year, month 1..=12, day 1..=31) of a day count since 1970-01-01, after
/// Howard Hinnant's `civil_from_days` (eras of 400 years starting in March).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn ranges_as_the_node_server_reads_them() {
        let r = |h: &str| parse_range(h, 10);
        let bytes = |start, end| Some(Range::Bytes { start, end });
        assert_eq!(r("bytes=0-0"), bytes(0, 0));
        assert_eq!(r("bytes=5-"), bytes(5, 9));
        assert_eq!(r("bytes=5-100"), bytes(5, 9));
        assert_eq!(r("bytes=-3"), bytes(7, 9));
        assert_eq!(r("bytes=-30"), bytes(0, 9));
        assert_eq!(r(" bytes=2-4 "), bytes(2, 4));
        assert_eq!(r("bytes=0-1,4-5"), None);
        assert_eq!(r("bytes=7-3"), None);
        assert_eq!(r("bytes=-"), None);
        assert_eq!(r("items=0-1"), None);
        assert_eq!(r("bytes=a-1"), None);
        assert_eq!(r("bytes=10-"), Some(Range::Unsatisfiable));
        assert_eq!(r("bytes=-0"), Some(Range::Unsatisfiable));
        assert_eq!(
            r("bytes=99999999999999999999999-"),
            Some(Range::Unsatisfiable)
        );
        assert_eq!(r("bytes=3-99999999999999999999999"), bytes(3, 9));
        assert_eq!(parse_range("bytes=0-", 0), Some(Range::Unsatisfiable));
        assert_eq!(parse_range("bytes=-5", 0), Some(Range::Unsatisfiable));
    }

    #[test]
    fn decoding() {
        assert_eq!(percent_decode("/a%20b/%2e%2E").as_deref(), Some("/a b/.."));
        assert_eq!(percent_decode("/%e2%82%ac").as_deref(), Some("/€"));
        assert_eq!(percent_decode("/%2"), None);
        assert_eq!(percent_decode("/%zz"), None);
        assert_eq!(percent_decode("/a%00"), None);
        assert_eq!(percent_decode("/%ff"), None);
    }

    #[test]
    fn dates() {
        let at = |s| http_date(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(1_709_251_199), "Thu, 29 Feb 2024 23:59:59 GMT");
    }

    #[test]
    fn request_heads() {
        let read = |s: &str| read_request(&mut s.as_bytes());
        let r = read("\r\nGET /a?b HTTP/1.1\r\nHost: x\r\nRange:  bytes=1-2 \r\n\r\n").unwrap();
        assert_eq!((r.method.as_str(), r.target.as_str()), ("GET", "/a?b"));
        assert_eq!(r.header("range"), Some("bytes=1-2"));
        assert!(r.keep_alive());
        let r = read("GET / HTTP/1.0\r\n\r\n").unwrap();
        assert!(!r.keep_alive());
        let r = read("GET / HTTP/1.1\r\nConnection: Close\r\n\r\n").unwrap();
        assert!(!r.keep_alive());
        let r = read("GET / HTTP/1.1\r\nContent-Length: 4\r\n\r\nbody").unwrap();
        assert!(!r.keep_alive());
        assert!(matches!(read(""), Err(ReadError::Closed)));
        assert!(matches!(read("GET /\r\n\r\n"), Err(ReadError::Bad(400))));
        assert!(matches!(
            read("GET /a\rb HTTP/1.1\r\n\r\n"),
            Err(ReadError::Bad(400))
        ));
        assert!(matches!(
            read("GET / HTTP/1.1\r\nA: b\rc\r\n\r\n"),
            Err(ReadError::Bad(400))
        ));
        assert!(matches!(
            read("GET / HTTP/2.0\r\n\r\n"),
            Err(ReadError::Bad(505))
        ));
        assert!(matches!(
            read("GET / HTTP/1.1\r\nNoColon\r\n\r\n"),
            Err(ReadError::Bad(400))
        ));
        assert!(matches!(
            read("GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"),
            Err(ReadError::Bad(400))
        ));
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(20_000));
        assert!(matches!(read(&huge), Err(ReadError::Bad(431))));
    }
}
