//! A guest's stderr: the last [`CAPACITY`] bytes are kept for error messages (a Rust panic
//! message is the last thing a guest writes), anything older is dropped and counted. Writing
//! never fails, so a plugin that logs every step never fails its job for it (wasmtime's
//! `MemoryOutputPipe` refuses writes beyond its capacity, which a Rust guest turns into a
//! panic).

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::Bytes;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamResult};

/// Bytes of a guest's stderr kept (its last ones).
pub const CAPACITY: usize = 16 * 1024;

#[derive(Default)]
struct Tail {
    kept: Vec<u8>,
    dropped: u64,
}

/// The shared tail of one instance's stderr.
#[derive(Clone, Default)]
pub struct GuestStderr(Arc<Mutex<Tail>>);

impl GuestStderr {
    fn push(&self, bytes: &[u8]) {
        let mut t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        t.kept.extend_from_slice(bytes);
        if t.kept.len() > CAPACITY {
            let excess = t.kept.len() - CAPACITY;
            t.kept.drain(..excess);
            if t.dropped == 0 {
                tracing::warn!("a kernel wrote more than {CAPACITY} bytes to stderr: only the last are kept");
            }
            t.dropped += excess as u64;
        }
    }

    /// The kept bytes, and how many earlier ones were dropped.
    pub fn contents(&self) -> (Vec<u8>, u64) {
        let t = self.0.lock().unwrap_or_else(|p| p.into_inner());
        (t.kept.clone(), t.dropped)
    }
}

impl IsTerminal for GuestStderr {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestStderr {
    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }
}

impl OutputStream for GuestStderr {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.push(&bytes);
        Ok(())
    }
    fn flush(&mut self) -> StreamResult<()> {
        Ok(())
    }
    fn check_write(&mut self) -> StreamResult<usize> {
        Ok(CAPACITY)
    }
}

#[async_trait::async_trait]
impl Pollable for GuestStderr {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for GuestStderr {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        self.push(buf);
        Poll::Ready(Ok(buf.len()))
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_bytes_and_counts_the_dropped_ones() {
        let mut s = GuestStderr::default();
        for i in 0..3000 {
            s.write(Bytes::from(format!("step {i:04}\n"))).unwrap();
        }
        let (kept, dropped) = s.contents();
        assert_eq!(kept.len(), CAPACITY);
        assert_eq!(dropped, 10 * 3000 - CAPACITY as u64);
        assert!(kept.ends_with(b"step 2999\n"));
        assert!(s.check_write().unwrap() > 0, "writing never fails");
    }
}
