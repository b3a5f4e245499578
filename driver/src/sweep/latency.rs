//! A TCP proxy in front of Redis that delays every client request by a fixed latency, to
//! emulate the network hop between functions and a managed Redis on one machine
//! (`ifp sweep --latency-ms`).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};

/// A running delay proxy; dropping it stops accepting new connections.
pub struct Proxy {
    addr: std::net::SocketAddr,
    url: url::Url,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to the Redis of `redis_url`.
    pub fn start(redis_url: &str, delay: Duration) -> Result<Self> {
        let mut url = url::Url::parse(redis_url).with_context(|| "invalid --redis URL".to_string())?;
        anyhow::ensure!(
            url.scheme() == "redis",
            "--latency-ms works with redis:// URLs (the proxy does not terminate TLS)"
        );
        let host = url.host_str().context("--redis URL without a host")?.to_string();
        let upstream = format!("{host}:{}", url.port().unwrap_or(6379));
        let listener = TcpListener::bind("127.0.0.1:0").context("starting the latency proxy")?;
        let addr = listener.local_addr()?;
        url.set_host(Some("127.0.0.1")).ok();
        url.set_port(Some(addr.port())).ok();
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.load(Ordering::Relaxed) {
                    break;
                }
                let Ok(client) = conn else { continue };
                let Ok(server) = TcpStream::connect(&upstream) else { continue };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c2, s2) = (client.try_clone(), server.try_clone());
                if let (Ok(c2), Ok(s2)) = (c2, s2) {
                    std::thread::spawn(move || pipe(client, s2, delay));
                    std::thread::spawn(move || pipe(server, c2, Duration::ZERO));
                }
            }
        });
        Ok(Self { addr, url, stop })
    }

    /// The URL clients use instead of the real one (credentials kept).
    pub fn url(&self) -> String {
        self.url.to_string()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

/// Copies `from` to `to`, sleeping `delay` before forwarding each chunk read.
fn pipe(mut from: TcpStream, mut to: TcpStream, delay: Duration) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                if !delay.is_zero() {
                    std::thread::sleep(delay);
                }
                if to.write_all(&buf[..n]).is_err() {
                    break;
                }
            }
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
}
