//! Objects in S3 (or an S3-compatible server): `s3://bucket/key` addresses, ranged reads that
//! stream a byte range through several concurrent GETs, and uploads (multipart when large);
//! also the reader of kernel components in S3 ([`RemoteKernels`]).
//!
//! The rest of the host is synchronous (threads); this module owns a small tokio runtime and
//! blocks on it at its boundary. Credentials and region come from the standard `aws-config`
//! chain (environment, profiles, instance roles); an S3-compatible endpoint is given with
//! [`S3Store::connect`]'s `endpoint` or `AWS_ENDPOINT_URL_S3`, and is then addressed path-style.
//!
//! Memory is bounded: every [`RangeReader`] of one store shares [`INFLIGHT_PARTS`] permits of
//! [`PART_BYTES`] each, held from the start of a part's GET until the reader has consumed the
//! part, so a whole process buffers at most `INFLIGHT_PARTS * PART_BYTES` of downloads.
//! Throttling and transient errors are retried by the SDK (standard mode, [`MAX_ATTEMPTS`]
//! attempts, exponential backoff with jitter from [`INITIAL_BACKOFF`] up to 20 s); a body that
//! breaks off mid-download is fetched again up to [`MAX_ATTEMPTS`] times.

use std::collections::VecDeque;
use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use aws_config::meta::region::RegionProviderChain;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::BehaviorVersion;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use aws_sdk_s3::Client;
use bytes::Bytes;
use tokio::runtime::Runtime;
use tokio::sync::Semaphore;

use crate::kernel::{LoadError, RemoteKernels, MAX_REMOTE_KERNEL_BYTES};

use super::ranged::{fetch, parse_content_range};
pub use super::ranged::{RangeRead, RangeReader};

/// Bytes per ranged GET (and per uploaded part). `IFP_S3_PART_BYTES` overrides it for
/// downloads (tests use small parts to exercise many GETs per part on small objects).
pub const PART_BYTES: u64 = 8 << 20;
/// Parts downloading or buffered at once per store (all readers together).
pub const INFLIGHT_PARTS: usize = 6;
/// Parts one reader keeps in flight ahead of what it consumes.
pub const READ_AHEAD: usize = 4;
/// GETs in flight (and bodies held) in [`S3Store::for_each_range`].
pub const RANGES_IN_FLIGHT: usize = 16;
/// Concurrent part uploads.
pub const UPLOAD_CONCURRENCY: usize = 4;
/// Attempts per request (the SDK's retry of throttling and transient errors; our retry of a
/// body that breaks off).
pub const MAX_ATTEMPTS: u32 = 8;
pub const INITIAL_BACKOFF: Duration = Duration::from_millis(200);

/// An `s3://bucket/key` address.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct S3Url {
    pub bucket: String,
    pub key: String,
}

impl S3Url {
    /// Whether `s` names an S3 object (starts with `s3://`).
    pub fn is_s3(s: &str) -> bool {
        s.starts_with("s3://")
    }

    /// Parses `s3://bucket/key`.
    pub fn parse(s: &str) -> Result<Self, ObjectError> {
        let bad = |reason: &str| ObjectError::Url { url: s.to_string(), reason: reason.to_string() };
        let rest = s.strip_prefix("s3://").ok_or_else(|| bad("it does not start with s3://"))?;
        let (bucket, key) = rest.split_once('/').ok_or_else(|| bad("expected s3://bucket/key"))?;
        if bucket.is_empty() {
            return Err(bad("the bucket name is empty"));
        }
        if key.is_empty() {
            return Err(bad("the key is empty"));
        }
        Ok(Self { bucket: bucket.to_string(), key: key.to_string() })
    }

    /// The key's extension, lowercase (`npy`, `csv`), if any.
    pub fn extension(&self) -> Option<String> {
        Path::new(&self.key).extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase())
    }
}

impl fmt::Display for S3Url {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

/// What a job knows of the object it reads: every ranged GET asks for this ETag
/// (`If-Match`) and checks the size in the answer's `Content-Range`, so a change between two
/// reads (of one function or of two) is refused instead of mixing two versions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pin {
    pub size: u64,
    /// `None` when the server gives no ETag (then only the size is checked).
    pub etag: Option<String>,
}

/// An object-store error: one line naming the object.
#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error("invalid S3 address '{url}': {reason}")]
    Url { url: String, reason: String },
    #[error("{url}: bucket '{bucket}' does not exist")]
    NoBucket { url: S3Url, bucket: String },
    #[error("{url}: no such key '{key}' in bucket '{bucket}'")]
    NoKey { url: S3Url, bucket: String, key: String },
    #[error("{url}: access denied ({code}); check the AWS credentials")]
    AccessDenied { url: S3Url, code: String },
    #[error("{url} is truncated: {reason}")]
    Truncated { url: S3Url, reason: String },
    /// A ranged GET answered without the `Content-Range` of the range asked for.
    #[error("{url}: the server (or a proxy) ignored the byte range {range}: {answer}; ifp reads every object by byte ranges and needs a server that honours them")]
    RangeIgnored { url: S3Url, range: String, answer: String },
    /// The object is not the one the job started with.
    #[error("{url} changed while the job was reading it ({what}): rerun the job on an object that stays the same")]
    Changed { url: S3Url, what: String },
    #[error("{url}: {message}")]
    Request { url: S3Url, message: String },
    #[error("cannot read {path} for upload: {error}")]
    LocalFile { path: String, error: std::io::Error },
    #[error("cannot set up the S3 client: {0}")]
    Setup(String),
}

/// Maps an SDK error to one line naming the object.
pub(super) fn classify<E>(url: &S3Url, e: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> ObjectError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().unwrap_or_default().to_string();
    let message = e.message().unwrap_or_default().to_string();
    match (code.as_str(), status) {
        ("PreconditionFailed", _) | (_, Some(412)) => {
            ObjectError::Changed { url: url.clone(), what: "its ETag is not the one the job started with".into() }
        }
        ("NoSuchBucket", _) => ObjectError::NoBucket { url: url.clone(), bucket: url.bucket.clone() },
        ("NoSuchKey", _) | ("NotFound", _) | ("", Some(404)) => {
            ObjectError::NoKey { url: url.clone(), bucket: url.bucket.clone(), key: url.key.clone() }
        }
        ("AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" | "InvalidToken" | "ExpiredToken", _)
        | (_, Some(403)) => {
            let code = match (code.is_empty(), message.is_empty()) {
                (true, _) => "HTTP 403".to_string(),
                (false, true) => code,
                (false, false) => format!("{code}: {message}"),
            };
            ObjectError::AccessDenied { url: url.clone(), code }
        }
        _ => ObjectError::Request { url: url.clone(), message: crate::aws_error::describe(&e) },
    }
}

/// Connects to S3 on first use only (a job without S3 data needs no credentials).
#[derive(Debug, Default)]
pub struct S3Connector {
    endpoint: Option<String>,
    store: std::sync::OnceLock<Arc<S3Store>>,
}

impl S3Connector {
    /// `endpoint`: an S3-compatible server (see [`S3Store::connect`]).
    pub fn new(endpoint: Option<String>) -> Self {
        Self { endpoint, store: std::sync::OnceLock::new() }
    }

    /// The endpoint it connects to (`None`: AWS, or `AWS_ENDPOINT_URL_S3`).
    pub fn endpoint(&self) -> Option<&str> {
        self.endpoint.as_deref()
    }

    /// The store, connecting the first time.
    pub fn store(&self) -> Result<Arc<S3Store>, ObjectError> {
        if let Some(s) = self.store.get() {
            return Ok(s.clone());
        }
        let s = S3Store::connect(self.endpoint.as_deref())?;
        Ok(self.store.get_or_init(|| s).clone())
    }
}

impl RemoteKernels for S3Connector {
    /// The whole object, in one GET; refuses anything but `s3://` and objects over
    /// [`MAX_REMOTE_KERNEL_BYTES`].
    fn fetch(&self, uri: &str) -> Result<Vec<u8>, LoadError> {
        let read = |message: String| LoadError::Read { kernel: uri.to_string(), message };
        // The object store's errors start with the URI already.
        let object = |e: ObjectError| {
            let message = e.to_string();
            read(message.strip_prefix(&format!("{uri}: ")).unwrap_or(&message).to_string())
        };
        let url = S3Url::parse(uri).map_err(object)?;
        let (bytes, pin) =
            self.store().map_err(object)?.head_bytes(&url, MAX_REMOTE_KERNEL_BYTES + 1, None).map_err(object)?;
        let size = pin.size;
        if size > MAX_REMOTE_KERNEL_BYTES {
            return Err(read(format!("{size} bytes is more than a kernel may have ({MAX_REMOTE_KERNEL_BYTES} bytes)")));
        }
        if (bytes.len() as u64) < size {
            return Err(read(format!("got {} of its {size} bytes", bytes.len())));
        }
        Ok(bytes.to_vec())
    }
}

/// A connection to S3: the client, the runtime it runs on, and the download budget.
pub struct S3Store {
    pub(super) rt: Runtime,
    pub(super) client: Client,
    pub(super) permits: Arc<Semaphore>,
    pub(super) fetched: AtomicU64,
    pub(super) part_bytes: u64,
}

impl fmt::Debug for S3Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Store").field("fetched", &self.fetched).finish_non_exhaustive()
    }
}

impl S3Store {
    /// A client from the standard AWS configuration chain. `endpoint` (or, without it,
    /// `AWS_ENDPOINT_URL_S3`) points at an S3-compatible server, addressed path-style. The
    /// region defaults to `us-east-1` when none is configured.
    pub fn connect(endpoint: Option<&str>) -> Result<Arc<Self>, ObjectError> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ifp-s3")
            .enable_all()
            .build()
            .map_err(|e| ObjectError::Setup(e.to_string()))?;
        let env_endpoint = std::env::var("AWS_ENDPOINT_URL_S3").ok().filter(|s| !s.is_empty());
        let endpoint = endpoint.map(str::to_string).or(env_endpoint);
        let retry = RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS).with_initial_backoff(INITIAL_BACKOFF);
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build();
        let conf = rt.block_on(
            aws_config::defaults(BehaviorVersion::latest())
                .region(RegionProviderChain::default_provider().or_else("us-east-1"))
                .retry_config(retry)
                .timeout_config(timeouts)
                .load(),
        );
        let mut b = aws_sdk_s3::config::Builder::from(&conf);
        if let Some(ep) = &endpoint {
            b = b.endpoint_url(ep).force_path_style(true);
        }
        let client = Client::from_conf(b.build());
        let part_bytes = match std::env::var("IFP_S3_PART_BYTES") {
            Ok(v) => v.parse::<u64>().ok().filter(|&b| b > 0).ok_or_else(|| {
                ObjectError::Setup(format!("IFP_S3_PART_BYTES must be a positive number of bytes, got '{v}'"))
            })?,
            Err(_) => PART_BYTES,
        };
        Ok(Arc::new(Self {
            rt,
            client,
            permits: Arc::new(Semaphore::new(INFLIGHT_PARTS)),
            fetched: AtomicU64::new(0),
            part_bytes,
        }))
    }

    /// Bytes downloaded through this store so far.
    pub fn bytes_fetched(&self) -> u64 {
        self.fetched.load(Ordering::Relaxed)
    }

    /// The first `want` bytes of the object (fewer if it is shorter), and its size and ETag.
    /// `if_match`: the ETag the object must still have (a job's functions pass the one the
    /// driver saw). An answer without a `Content-Range` is refused: it comes from a server
    /// or proxy that ignores byte ranges.
    pub fn head_bytes(&self, url: &S3Url, want: u64, if_match: Option<&str>) -> Result<(Bytes, Pin), ObjectError> {
        let client = self.client.clone();
        let range = format!("bytes=0-{}", want.max(1) - 1);
        let r = self.rt.block_on(async {
            let out = client
                .get_object()
                .bucket(&url.bucket)
                .key(&url.key)
                .range(&range)
                .set_if_match(if_match.map(str::to_string))
                .send()
                .await;
            match out {
                Ok(o) => {
                    let Some((start, _, total)) = o.content_range().and_then(parse_content_range) else {
                        let answer = match o.content_range() {
                            Some(r) => format!("it answered with Content-Range '{r}'"),
                            None => "it answered without a Content-Range".to_string(),
                        };
                        return Err(ObjectError::RangeIgnored { url: url.clone(), range: range.clone(), answer });
                    };
                    let etag = o.e_tag().map(str::to_string);
                    let body = o
                        .body
                        .collect()
                        .await
                        .map_err(|e| ObjectError::Request { url: url.clone(), message: e.to_string() })?;
                    let bytes = body.into_bytes();
                    if start != 0 || bytes.len() as u64 != want.min(total) {
                        return Err(ObjectError::Truncated {
                            url: url.clone(),
                            reason: format!("bytes 0..{} were asked for but {} arrived", want.min(total), bytes.len()),
                        });
                    }
                    Ok((bytes, Pin { size: total, etag }))
                }
                // An empty object has no byte 0: S3 answers 416.
                Err(e)
                    if e.raw_response().map(|r| r.status().as_u16()) == Some(416)
                        || e.code() == Some("InvalidRange") =>
                {
                    Ok((Bytes::new(), Pin { size: 0, etag: None }))
                }
                Err(e) => Err(self.missing_bucket_or(url, classify(url, e)).await),
            }
        })?;
        self.fetched.fetch_add(r.0.len() as u64, Ordering::Relaxed);
        Ok(r)
    }

    /// `e`, or [`ObjectError::NoBucket`] when `e` is a missing key and the bucket is missing
    /// too (some servers answer a GET in a missing bucket with `NoSuchKey`).
    async fn missing_bucket_or(&self, url: &S3Url, e: ObjectError) -> ObjectError {
        if !matches!(e, ObjectError::NoKey { .. }) {
            return e;
        }
        match self.client.head_bucket().bucket(&url.bucket).send().await {
            Err(b)
                if b.raw_response().map(|r| r.status().as_u16()) == Some(404) || b.code() == Some("NoSuchBucket") =>
            {
                ObjectError::NoBucket { url: url.clone(), bucket: url.bucket.clone() }
            }
            _ => e,
        }
    }

    /// Fails with [`ObjectError::NoBucket`] (or access denied) unless `url`'s bucket exists.
    pub fn check_bucket(&self, url: &S3Url) -> Result<(), ObjectError> {
        self.rt.block_on(async {
            match self.client.head_bucket().bucket(&url.bucket).send().await {
                Ok(_) => Ok(()),
                Err(b)
                    if b.raw_response().map(|r| r.status().as_u16()) == Some(404)
                        || b.code() == Some("NoSuchBucket") =>
                {
                    Err(ObjectError::NoBucket { url: url.clone(), bucket: url.bucket.clone() })
                }
                Err(b) => Err(classify(url, b)),
            }
        })
    }

    /// Bytes `range` of the object, in one GET (of the version `pin` names, if given).
    pub fn get_range(&self, url: &S3Url, range: Range<u64>, pin: Option<&Pin>) -> Result<Bytes, ObjectError> {
        if range.is_empty() {
            return Ok(Bytes::new());
        }
        let b = self.rt.block_on(fetch(self.client.clone(), url.clone(), range, pin.cloned()))?;
        self.fetched.fetch_add(b.len() as u64, Ordering::Relaxed);
        Ok(b)
    }

    /// Fetches `ranges` with up to [`RANGES_IN_FLIGHT`] GETs at a time and hands each body
    /// to `each` in the order given. A body is dropped once `each` returns, and no more than
    /// [`RANGES_IN_FLIGHT`] are ever held (done or not), so memory stays bounded however many
    /// ranges there are.
    pub fn for_each_range<E: From<ObjectError>>(
        &self,
        url: &S3Url,
        pin: Option<&Pin>,
        ranges: &[Range<u64>],
        mut each: impl FnMut(usize, &[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.rt.block_on(async {
            let mut queue = VecDeque::with_capacity(RANGES_IN_FLIGHT);
            let mut next = 0;
            for i in 0..ranges.len() {
                while next < ranges.len() && queue.len() < RANGES_IN_FLIGHT {
                    let (client, url, r) = (self.client.clone(), url.clone(), ranges[next].clone());
                    queue.push_back(tokio::spawn(fetch(client, url, r, pin.cloned())));
                    next += 1;
                }
                let h = queue.pop_front().expect("a range is queued");
                let body = h.await.map_err(|e| ObjectError::Request { url: url.clone(), message: e.to_string() })??;
                self.fetched.fetch_add(body.len() as u64, Ordering::Relaxed);
                if let Err(e) = each(i, &body) {
                    queue.drain(..).for_each(|h| h.abort());
                    return Err(e);
                }
            }
            Ok(())
        })
    }

    /// A reader over bytes `range` of the object that keeps up to [`READ_AHEAD`] ranged GETs
    /// of [`PART_BYTES`] in flight ahead of the consumer.
    pub fn reader(self: &Arc<Self>, url: &S3Url, range: Range<u64>, pin: Option<&Pin>) -> RangeReader {
        RangeReader::new(self.clone(), url.clone(), range, pin.cloned())
    }

    /// Uploads `bytes` as the object in one PUT.
    pub fn put_bytes(&self, url: &S3Url, bytes: Vec<u8>) -> Result<(), ObjectError> {
        let client = self.client.clone();
        self.rt.block_on(async {
            client
                .put_object()
                .bucket(&url.bucket)
                .key(&url.key)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| classify(url, e))?;
            Ok(())
        })
    }

    /// Uploads a local file as the object: one PUT when small, otherwise a multipart upload
    /// of [`PART_BYTES`] parts ([`UPLOAD_CONCURRENCY`] at a time), aborted on failure so that
    /// no partial object appears.
    pub fn put_file(&self, url: &S3Url, path: &Path) -> Result<(), ObjectError> {
        // Some S3-compatible servers create a missing bucket on upload; S3 does not.
        self.check_bucket(url)?;
        let local = |error| ObjectError::LocalFile { path: path.display().to_string(), error };
        let len = std::fs::metadata(path).map_err(local)?.len();
        if len <= PART_BYTES {
            return self.put_bytes(url, std::fs::read(path).map_err(local)?);
        }
        let client = self.client.clone();
        self.rt.block_on(async {
            let up = client
                .create_multipart_upload()
                .bucket(&url.bucket)
                .key(&url.key)
                .send()
                .await
                .map_err(|e| classify(url, e))?;
            let id = up.upload_id().unwrap_or_default().to_string();
            let r = upload_parts(&client, url, &id, path, len).await;
            match r {
                Ok(parts) => {
                    let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
                    let c = client
                        .complete_multipart_upload()
                        .bucket(&url.bucket)
                        .key(&url.key)
                        .upload_id(&id)
                        .multipart_upload(done)
                        .send()
                        .await;
                    c.map(|_| ()).map_err(|e| classify(url, e))
                }
                Err(e) => {
                    let _ =
                        client.abort_multipart_upload().bucket(&url.bucket).key(&url.key).upload_id(&id).send().await;
                    Err(e)
                }
            }
        })
    }
}

async fn upload_parts(
    client: &Client,
    url: &S3Url,
    id: &str,
    path: &Path,
    len: u64,
) -> Result<Vec<CompletedPart>, ObjectError> {
    let n = len.div_ceil(PART_BYTES);
    let sem = Arc::new(Semaphore::new(UPLOAD_CONCURRENCY));
    let mut handles = Vec::with_capacity(n as usize);
    for i in 0..n {
        let permit = sem.clone().acquire_owned().await.expect("semaphore open");
        let (client, url, id, path) = (client.clone(), url.clone(), id.to_string(), path.to_path_buf());
        handles.push(tokio::spawn(async move {
            let _permit = permit;
            let start = i * PART_BYTES;
            let size = PART_BYTES.min(len - start) as usize;
            let bytes = tokio::task::spawn_blocking(move || -> std::io::Result<Vec<u8>> {
                use std::io::{Seek, SeekFrom};
                let mut f = std::fs::File::open(&path)?;
                f.seek(SeekFrom::Start(start))?;
                let mut buf = vec![0u8; size];
                f.read_exact(&mut buf)?;
                Ok(buf)
            })
            .await
            .map_err(|e| ObjectError::Request { url: url.clone(), message: e.to_string() })?
            .map_err(|error| ObjectError::LocalFile { path: "the upload's temporary file".into(), error })?;
            let number = i as i32 + 1;
            let r = client
                .upload_part()
                .bucket(&url.bucket)
                .key(&url.key)
                .upload_id(&id)
                .part_number(number)
                .body(ByteStream::from(bytes))
                .send()
                .await
                .map_err(|e| classify(&url, e))?;
            Ok::<_, ObjectError>(
                CompletedPart::builder().part_number(number).set_e_tag(r.e_tag().map(str::to_string)).build(),
            )
        }));
    }
    let mut parts = Vec::with_capacity(handles.len());
    for h in handles {
        parts.push(h.await.map_err(|e| ObjectError::Request { url: url.clone(), message: e.to_string() })??);
    }
    Ok(parts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_s3_urls() {
        let u = S3Url::parse("s3://b/dir/x.CSV").unwrap();
        assert_eq!((u.bucket.as_str(), u.key.as_str()), ("b", "dir/x.CSV"));
        assert_eq!(u.extension().as_deref(), Some("csv"));
        assert_eq!(u.to_string(), "s3://b/dir/x.CSV");
        assert!(S3Url::parse("s3://b").unwrap_err().to_string().contains("expected s3://bucket/key"));
        assert!(S3Url::parse("s3:///k").unwrap_err().to_string().contains("bucket name is empty"));
        assert!(S3Url::parse("s3://b/").unwrap_err().to_string().contains("key is empty"));
    }
}
