//! One object made of several (the per-function parts of a per-row output), and the removal
//! of temporary objects.
//!
//! [`S3Store::concat`] writes the concatenation of source objects, in order, to one key with
//! a multipart upload. S3 requires every part but the last to hold at least
//! [`MIN_PART_BYTES`] (5 MiB), so a source that large (or its remainder) becomes a part by
//! `UploadPartCopy`, copied inside S3 without passing through this process; smaller sources
//! are downloaded and gathered into parts of at least that size. The process therefore moves
//! only the small sources (and at most one part's worth around each large one). A total under
//! the part minimum is a single PUT. The key shows nothing until the upload completes: any
//! failure aborts the upload and leaves the key as it was.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};

use super::object::{classify, ObjectError, S3Store, S3Url};

/// The smallest part S3 accepts in a multipart upload, the last part excepted.
pub const MIN_PART_BYTES: u64 = 5 << 20;
/// The largest part `UploadPartCopy` copies.
pub const MAX_COPY_PART_BYTES: u64 = 5 << 30;

/// A multipart upload being built: its id once created, and its parts so far.
#[derive(Default)]
struct Upload {
    id: Option<String>,
    parts: Vec<CompletedPart>,
}

impl S3Store {
    /// The objects under `prefix` in `bucket`, as `(key, size)` in key order.
    pub fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<(String, u64)>, ObjectError> {
        let at = S3Url { bucket: bucket.to_string(), key: prefix.to_string() };
        self.rt.block_on(async {
            let mut out = Vec::new();
            let mut pages = self.client.list_objects_v2().bucket(bucket).prefix(prefix).into_paginator().send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| classify(&at, e))?;
                for o in page.contents() {
                    out.push((o.key().unwrap_or_default().to_string(), o.size().unwrap_or(0).max(0) as u64));
                }
            }
            out.sort();
            Ok(out)
        })
    }

    /// Deletes every object under `prefix` in `bucket`; returns how many there were.
    pub fn delete_prefix(&self, bucket: &str, prefix: &str) -> Result<usize, ObjectError> {
        let keys = self.list(bucket, prefix)?;
        let at = S3Url { bucket: bucket.to_string(), key: prefix.to_string() };
        self.rt.block_on(async {
            // DeleteObjects takes at most 1000 keys.
            for chunk in keys.chunks(1000) {
                let ids: Result<Vec<_>, _> =
                    chunk.iter().map(|(k, _)| ObjectIdentifier::builder().key(k).build()).collect();
                let ids = ids.map_err(|e| ObjectError::Request { url: at.clone(), message: e.to_string() })?;
                let delete = Delete::builder()
                    .set_objects(Some(ids))
                    .quiet(true)
                    .build()
                    .map_err(|e| ObjectError::Request { url: at.clone(), message: e.to_string() })?;
                self.client
                    .delete_objects()
                    .bucket(bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(|e| classify(&at, e))?;
            }
            Ok(keys.len())
        })
    }

    /// Deletes one object.
    pub fn delete(&self, url: &S3Url) -> Result<(), ObjectError> {
        self.rt.block_on(async {
            self.client.delete_object().bucket(&url.bucket).key(&url.key).send().await.map_err(|e| classify(url, e))?;
            Ok(())
        })
    }

    /// Writes the concatenation of `sources` (objects with their sizes, in order) to `dest`,
    /// with parts of at least [`MIN_PART_BYTES`] but the last. Nothing appears at `dest`
    /// unless it all succeeds.
    pub fn concat(&self, dest: &S3Url, sources: &[(S3Url, u64)]) -> Result<(), ObjectError> {
        let mut up = Upload::default();
        let r = self.concat_into(dest, sources, MIN_PART_BYTES, &mut up);
        let Some(id) = up.id.clone() else {
            // Everything fits in one part: one PUT.
            return r.and_then(|rest| self.put_bytes(dest, rest));
        };
        let r = r.and_then(|rest| {
            if !rest.is_empty() {
                self.upload_part(dest, &mut up, rest)?;
            }
            self.complete(dest, &id, std::mem::take(&mut up.parts))
        });
        if r.is_err() {
            self.abort(dest, &id);
        }
        r
    }

    /// Uploads every full part; returns the bytes left for the last part.
    fn concat_into(
        &self,
        dest: &S3Url,
        sources: &[(S3Url, u64)],
        min_part: u64,
        up: &mut Upload,
    ) -> Result<Vec<u8>, ObjectError> {
        let mut buf: Vec<u8> = Vec::new();
        for (src, size) in sources {
            let (src, size) = (src, *size);
            let mut pos = 0;
            // Fill a started part first, from the head of this source.
            if !buf.is_empty() {
                let take = size.min(min_part - buf.len() as u64);
                buf.extend_from_slice(&self.get_range(src, 0..take, None)?);
                pos = take;
                if buf.len() as u64 >= min_part {
                    self.upload_part(dest, up, std::mem::take(&mut buf))?;
                }
            }
            if !buf.is_empty() || pos == size {
                continue;
            }
            if size - pos >= min_part {
                // Large enough to stand as parts of its own: copied inside S3.
                while pos < size {
                    let mut end = (pos + MAX_COPY_PART_BYTES).min(size);
                    if size - end < min_part && end < size {
                        // Never leave a remainder too small to be a part.
                        end = pos + (size - pos) / 2;
                    }
                    self.copy_part(dest, up, src, pos..end)?;
                    pos = end;
                }
            } else {
                buf.extend_from_slice(&self.get_range(src, pos..size, None)?);
            }
        }
        Ok(buf)
    }

    /// The upload's id, creating the upload the first time.
    fn upload_id(&self, dest: &S3Url, up: &mut Upload) -> Result<String, ObjectError> {
        if let Some(id) = &up.id {
            return Ok(id.clone());
        }
        let id = self.rt.block_on(async {
            let r = self
                .client
                .create_multipart_upload()
                .bucket(&dest.bucket)
                .key(&dest.key)
                .send()
                .await
                .map_err(|e| classify(dest, e))?;
            Ok::<_, ObjectError>(r.upload_id().unwrap_or_default().to_string())
        })?;
        up.id = Some(id.clone());
        Ok(id)
    }

    /// Uploads `bytes` as the next part (creating the upload the first time).
    fn upload_part(&self, dest: &S3Url, up: &mut Upload, bytes: Vec<u8>) -> Result<(), ObjectError> {
        let id = self.upload_id(dest, up)?;
        let number = up.parts.len() as i32 + 1;
        let r = self.rt.block_on(
            self.client
                .upload_part()
                .bucket(&dest.bucket)
                .key(&dest.key)
                .upload_id(&id)
                .part_number(number)
                .body(ByteStream::from(bytes))
                .send(),
        );
        let r = r.map_err(|e| classify(dest, e))?;
        up.parts.push(CompletedPart::builder().part_number(number).set_e_tag(r.e_tag().map(str::to_string)).build());
        Ok(())
    }

    /// Copies bytes `range` of `src` as the next part, inside S3.
    fn copy_part(
        &self,
        dest: &S3Url,
        up: &mut Upload,
        src: &S3Url,
        range: std::ops::Range<u64>,
    ) -> Result<(), ObjectError> {
        let id = self.upload_id(dest, up)?;
        let number = up.parts.len() as i32 + 1;
        let source = format!("{}/{}", src.bucket, urlencoding_key(&src.key));
        let r = self.rt.block_on(
            self.client
                .upload_part_copy()
                .bucket(&dest.bucket)
                .key(&dest.key)
                .upload_id(&id)
                .part_number(number)
                .copy_source(source)
                .copy_source_range(format!("bytes={}-{}", range.start, range.end - 1))
                .send(),
        );
        let r = r.map_err(|e| classify(src, e))?;
        let etag = r.copy_part_result().and_then(|c| c.e_tag()).map(str::to_string);
        up.parts.push(CompletedPart::builder().part_number(number).set_e_tag(etag).build());
        Ok(())
    }

    fn complete(&self, dest: &S3Url, id: &str, parts: Vec<CompletedPart>) -> Result<(), ObjectError> {
        let done = CompletedMultipartUpload::builder().set_parts(Some(parts)).build();
        self.rt
            .block_on(
                self.client
                    .complete_multipart_upload()
                    .bucket(&dest.bucket)
                    .key(&dest.key)
                    .upload_id(id)
                    .multipart_upload(done)
                    .send(),
            )
            .map(|_| ())
            .map_err(|e| classify(dest, e))
    }

    fn abort(&self, dest: &S3Url, id: &str) {
        let r = self
            .rt
            .block_on(self.client.abort_multipart_upload().bucket(&dest.bucket).key(&dest.key).upload_id(id).send());
        if let Err(e) = r {
            tracing::warn!("aborting the upload of {dest}: {}", classify(dest, e));
        }
    }
}

/// A key as `x-amz-copy-source` wants it: URL-encoded, `/` kept.
fn urlencoding_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
