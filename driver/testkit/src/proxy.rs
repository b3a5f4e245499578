//! An HTTP/1.1 proxy in front of a test server (the S3 server) that counts what passes
//! through it: every request, and every byte of every response, headers included. It can
//! also misbehave like a proxy that ignores `Range`: a `206 Partial Content` answer reaches
//! the client as `200 OK` without its `Content-Range`, which is what a client sees from a
//! server or proxy that serves the whole object instead of the range asked for.
//!
//! Requests and responses are parsed only as far as framing needs (the head, then
//! `Content-Length` bytes of body); a chunked message switches the connection to plain
//! copying until it closes, still counted.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;

/// What the proxy does to responses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyMode {
    /// Passes everything through unchanged.
    Count,
    /// Answers ranged GETs as if `Range` had been ignored (`200`, no `Content-Range`).
    IgnoreRange,
}

#[derive(Default)]
struct Counters {
    requests: AtomicU64,
    gets: AtomicU64,
    response_bytes: AtomicU64,
    stop: AtomicBool,
}

/// A counting proxy on 127.0.0.1 and a free port; it stops accepting when dropped.
pub struct ByteProxy {
    pub endpoint: String,
    counters: Arc<Counters>,
    port: u16,
}

impl ByteProxy {
    /// Starts a proxy to `upstream` (`host:port`).
    pub fn start(upstream: &str, mode: ProxyMode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let port = listener.local_addr().unwrap().port();
        let counters = Arc::new(Counters::default());
        let (c, upstream) = (counters.clone(), upstream.to_string());
        thread::spawn(move || {
            for client in listener.incoming() {
                if c.stop.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = client else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let c = c.clone();
                thread::spawn(move || serve(client, server, mode, c));
            }
        });
        Self { endpoint: format!("http://127.0.0.1:{port}"), counters, port }
    }

    /// Requests sent through the proxy so far.
    pub fn requests(&self) -> u64 {
        self.counters.requests.load(Ordering::Relaxed)
    }

    /// GET requests so far.
    pub fn gets(&self) -> u64 {
        self.counters.gets.load(Ordering::Relaxed)
    }

    /// Bytes of responses (heads and bodies) so far.
    pub fn response_bytes(&self) -> u64 {
        self.counters.response_bytes.load(Ordering::Relaxed)
    }
}

impl Drop for ByteProxy {
    fn drop(&mut self) {
        self.counters.stop.store(true, Ordering::Relaxed);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
    }
}

/// Reads one message head (up to the blank line); `None` at the end of the stream.
fn read_head(r: &mut BufReader<TcpStream>) -> Option<Vec<String>> {
    let mut lines = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line).ok()? == 0 {
            return None;
        }
        if line == "\r\n" || line == "\n" {
            return Some(lines);
        }
        lines.push(line.trim_end().to_string());
    }
}

fn header<'a>(head: &'a [String], name: &str) -> Option<&'a str> {
    head.iter().skip(1).find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Copies the rest of `r` to `w`, counting the bytes in `count` (if any).
fn copy_rest(r: &mut BufReader<TcpStream>, w: &mut TcpStream, count: Option<&AtomicU64>) {
    let mut buf = [0u8; 64 << 10];
    while let Ok(n) = r.read(&mut buf) {
        if n == 0 || w.write_all(&buf[..n]).is_err() {
            break;
        }
        if let Some(c) = count {
            c.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    let _ = w.shutdown(Shutdown::Write);
}

/// Copies exactly `n` body bytes; false if either side closed.
fn copy_body(r: &mut BufReader<TcpStream>, w: &mut TcpStream, n: u64, count: Option<&AtomicU64>) -> bool {
    let mut left = n;
    let mut buf = [0u8; 64 << 10];
    while left > 0 {
        let want = left.min(buf.len() as u64) as usize;
        match r.read(&mut buf[..want]) {
            Ok(0) | Err(_) => return false,
            Ok(k) => {
                if w.write_all(&buf[..k]).is_err() {
                    return false;
                }
                if let Some(c) = count {
                    c.fetch_add(k as u64, Ordering::Relaxed);
                }
                left -= k as u64;
            }
        }
    }
    true
}

fn serve(client: TcpStream, server: TcpStream, mode: ProxyMode, c: Arc<Counters>) {
    // The methods of requests sent and not yet answered (a HEAD's answer has no body).
    let methods = Arc::new(Mutex::new(std::collections::VecDeque::<String>::new()));
    let (mut to_server, mut to_client) = (server.try_clone().unwrap(), client.try_clone().unwrap());
    let (up, m) = (c.clone(), methods.clone());
    let requests = thread::spawn(move || {
        let mut r = BufReader::new(client);
        while let Some(head) = read_head(&mut r) {
            let Some(method) = head.first().and_then(|l| l.split(' ').next()).map(str::to_string) else { break };
            up.requests.fetch_add(1, Ordering::Relaxed);
            if method == "GET" {
                up.gets.fetch_add(1, Ordering::Relaxed);
            }
            m.lock().unwrap().push_back(method);
            let text: String = head.iter().map(|l| format!("{l}\r\n")).collect::<String>() + "\r\n";
            if to_server.write_all(text.as_bytes()).is_err() {
                break;
            }
            if header(&head, "transfer-encoding").is_some() {
                copy_rest(&mut r, &mut to_server, None);
                return;
            }
            let len = header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
            if !copy_body(&mut r, &mut to_server, len, None) {
                break;
            }
        }
        let _ = to_server.shutdown(Shutdown::Write);
    });
    let mut r = BufReader::new(server);
    while let Some(mut head) = read_head(&mut r) {
        let method = methods.lock().unwrap().pop_front().unwrap_or_default();
        if mode == ProxyMode::IgnoreRange && head.first().is_some_and(|l| l.contains(" 206 ")) {
            head[0] = "HTTP/1.1 200 OK".to_string();
            head.retain(|l| !l.to_ascii_lowercase().starts_with("content-range:"));
        }
        let text: String = head.iter().map(|l| format!("{l}\r\n")).collect::<String>() + "\r\n";
        c.response_bytes.fetch_add(text.len() as u64, Ordering::Relaxed);
        if to_client.write_all(text.as_bytes()).is_err() {
            break;
        }
        if header(&head, "transfer-encoding").is_some() {
            copy_rest(&mut r, &mut to_client, Some(&c.response_bytes));
            break;
        }
        let status = head.first().and_then(|l| l.split(' ').nth(1)).unwrap_or("");
        let len = if method == "HEAD" || status == "204" || status == "304" {
            0
        } else {
            header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0)
        };
        if !copy_body(&mut r, &mut to_client, len, Some(&c.response_bytes)) {
            break;
        }
    }
    let _ = to_client.shutdown(Shutdown::Write);
    let _ = requests.join();
}
