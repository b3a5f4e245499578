//! Ranged reads of an S3 object: one checked ranged GET ([`fetch`]: the answer must carry the
//! `Content-Range` asked for and exactly that many bytes, under the job's ETag), and a reader
//! that streams a byte range with GETs running ahead of the consumer ([`RangeReader`]), within
//! the store's download budget (see [`super::object`]).

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use aws_sdk_s3::Client;
use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinHandle;

use aws_sdk_s3::error::ProvideErrorMetadata as _;

use super::object::{classify, ObjectError, Pin, S3Store, S3Url, INITIAL_BACKOFF, MAX_ATTEMPTS, READ_AHEAD};

/// `bytes START-END/TOTAL` as `(start, end inclusive, total)`.
pub(super) fn parse_content_range(v: &str) -> Option<(u64, u64, u64)> {
    let (span, total) = v.trim().strip_prefix("bytes ")?.split_once('/')?;
    let (a, b) = span.split_once('-')?;
    Some((a.parse().ok()?, b.parse().ok()?, total.parse().ok()?))
}

/// One ranged GET, its body collected; a body that breaks off is fetched again. The answer
/// must carry the `Content-Range` of exactly this range (of an object of `pin`'s size, if
/// given) and exactly that many bytes: a server or proxy that ignores `Range`, or an object
/// that changed, is refused.
pub(super) async fn fetch(
    client: Client,
    url: S3Url,
    range: Range<u64>,
    pin: Option<Pin>,
) -> Result<Bytes, ObjectError> {
    let want = range.end - range.start;
    let asked = format!("bytes={}-{}", range.start, range.end - 1);
    let mut attempt = 1;
    loop {
        let o = client
            .get_object()
            .bucket(&url.bucket)
            .key(&url.key)
            .range(&asked)
            .set_if_match(pin.as_ref().and_then(|p| p.etag.clone()))
            .send()
            .await;
        let o = match o {
            Ok(o) => o,
            // A range past the end of the object (it shrank, or a bad offset).
            Err(e)
                if e.raw_response().map(|r| r.status().as_u16()) == Some(416) || e.code() == Some("InvalidRange") =>
            {
                let what = match &pin {
                    Some(p) => {
                        format!("bytes {}..{} are past its end; it had {} bytes", range.start, range.end, p.size)
                    }
                    None => format!("bytes {}..{} are past its end", range.start, range.end),
                };
                return Err(ObjectError::Changed { url, what });
            }
            Err(e) => return Err(classify(&url, e)),
        };
        match o.content_range().and_then(parse_content_range) {
            Some((a, b, total)) if a == range.start && b + 1 == range.end => {
                if let Some(p) = pin.as_ref().filter(|p| p.size != total) {
                    let what = format!("it had {} bytes and now has {total}", p.size);
                    return Err(ObjectError::Changed { url, what });
                }
            }
            _ => {
                let answer = match o.content_range() {
                    Some(r) => format!("it answered with Content-Range '{r}'"),
                    None => "it answered without a Content-Range".to_string(),
                };
                return Err(ObjectError::RangeIgnored { url, range: asked, answer });
            }
        }
        match o.body.collect().await {
            Ok(b) => {
                let b = b.into_bytes();
                if b.len() as u64 != want {
                    return Err(ObjectError::Truncated {
                        url,
                        reason: format!("bytes {}..{} were asked for but {} arrived", range.start, range.end, b.len()),
                    });
                }
                return Ok(b);
            }
            Err(e) if attempt < MAX_ATTEMPTS => {
                tracing::warn!(%url, attempt, "download of bytes {}..{} broke off ({e}); retrying", range.start, range.end);
                tokio::time::sleep(INITIAL_BACKOFF * 2u32.pow(attempt.min(6))).await;
                attempt += 1;
            }
            Err(e) => return Err(ObjectError::Request { url, message: format!("download broke off: {e}") }),
        }
    }
}

struct Part {
    bytes: Bytes,
    _permit: OwnedSemaphorePermit,
}

/// Streams a byte range of an object, in order, with ranged GETs running ahead of the
/// consumer (see the module doc for the memory bound). Returned by [`S3Store::reader`].
pub struct RangeReader {
    store: Arc<S3Store>,
    url: S3Url,
    pin: Option<Pin>,
    /// Start of the next part to request.
    next: u64,
    end: u64,
    queue: VecDeque<JoinHandle<Result<Part, ObjectError>>>,
    current: Option<Part>,
    fetched: u64,
}

impl RangeReader {
    pub(super) fn new(store: Arc<S3Store>, url: S3Url, range: Range<u64>, pin: Option<Pin>) -> Self {
        Self { store, url, pin, next: range.start, end: range.end, queue: VecDeque::new(), current: None, fetched: 0 }
    }

    /// Bytes this reader has downloaded so far.
    pub fn fetched(&self) -> u64 {
        self.fetched
    }

    fn spawn(&mut self, permit: OwnedSemaphorePermit) {
        let r = self.next..(self.next + self.store.part_bytes).min(self.end);
        self.next = r.end;
        let (client, url, pin) = (self.store.client.clone(), self.url.clone(), self.pin.clone());
        self.queue.push_back(self.store.rt.spawn(async move {
            let bytes = fetch(client, url, r, pin).await?;
            Ok(Part { bytes, _permit: permit })
        }));
    }

    /// The next downloaded piece of the range, or `None` at its end.
    pub fn next_chunk(&mut self) -> Result<Option<Bytes>, ObjectError> {
        self.current = None; // gives its permit back before asking for more
                             // Permits are taken in part order, and a reader that blocks for one holds none, so
                             // readers sharing the budget cannot deadlock.
        while self.next < self.end && self.queue.len() < READ_AHEAD {
            match self.store.permits.clone().try_acquire_owned() {
                Ok(p) => self.spawn(p),
                Err(_) => break,
            }
        }
        if self.queue.is_empty() {
            if self.next >= self.end {
                return Ok(None);
            }
            let p = self.store.rt.block_on(self.store.permits.clone().acquire_owned()).expect("semaphore open");
            self.spawn(p);
        }
        let h = self.queue.pop_front().expect("a part is queued");
        let part = self
            .store
            .rt
            .block_on(h)
            .map_err(|e| ObjectError::Request { url: self.url.clone(), message: e.to_string() })??;
        let bytes = part.bytes.clone();
        self.fetched += bytes.len() as u64;
        self.store.fetched.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        self.current = Some(part);
        Ok(Some(bytes))
    }
}

impl Drop for RangeReader {
    fn drop(&mut self) {
        for h in self.queue.drain(..) {
            h.abort();
        }
    }
}

/// A [`RangeReader`] as [`std::io::Read`] (errors become `io::Error`s wrapping the
/// [`ObjectError`]).
pub struct RangeRead {
    pub inner: RangeReader,
    buf: Bytes,
}

impl RangeRead {
    pub fn new(inner: RangeReader) -> Self {
        Self { inner, buf: Bytes::new() }
    }
}

impl Read for RangeRead {
    fn read(&mut self, out: &mut [u8]) -> std::io::Result<usize> {
        while self.buf.is_empty() {
            match self.inner.next_chunk().map_err(std::io::Error::other)? {
                Some(b) => self.buf = b,
                None => return Ok(0),
            }
        }
        let n = out.len().min(self.buf.len());
        out[..n].copy_from_slice(&self.buf[..n]);
        let _ = self.buf.split_to(n);
        Ok(n)
    }
}
