//! Models too large to travel in a task or a report (a Lambda event and response are each
//! capped at 6 MB; centroids of 20,000 × 64 are 1.28 million values, about 25 MB as JSON) go
//! through the job's Redis keys instead, and the task or report carries only their length and
//! SHA-256 ([`ModelRef`]):
//! - the first model: the driver stores it once before the functions start; each function
//!   fetches it when it starts and checks it;
//! - the final model: function 0 stores it (every function holds the same one) and every
//!   function reports the reference; the driver fetches it once before removing the keys.
//!
//! The key is `ifp:{JOB}:m:{sha256}` (raw little-endian `f64`), with the job's TTL; the hash
//! in the name means two plans under one job id never read each other's model. The driver
//! removes it with the job's other keys.

use std::time::Duration;

use redis::Value;
use serde::{Deserialize, Serialize};

use super::redis::{connect, key_ttl, prefix, redact, RedisSetupError, CONNECT_TIMEOUT};
use crate::function::Classify;
use crate::task::FailureKind;

/// Models larger than this (as raw `f64`) go through Redis instead of tasks and reports.
pub const MODEL_IN_TASK_MAX_BYTES: u64 = 256 << 10;

/// What a task carries of a model stored in Redis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelRef {
    /// Number of values.
    pub values: u64,
    /// SHA-256 (hex) of the values as raw little-endian `f64`.
    pub sha256: String,
}

fn raw(model: &[f64]) -> Vec<u8> {
    model.iter().flat_map(|v| v.to_le_bytes()).collect()
}

impl ModelRef {
    pub fn of(model: &[f64]) -> Self {
        Self { values: model.len() as u64, sha256: crate::kernel::sha256_hex(&raw(model)) }
    }

    /// Whether `model` is too large to travel in a task or a report.
    pub fn needed_for(model: &[f64]) -> bool {
        model.len() as u64 * 8 > MODEL_IN_TASK_MAX_BYTES
    }

    fn key(&self, job: &str) -> String {
        format!("{}m:{}", prefix(job), self.sha256)
    }
}

/// The first model could not be had from the store.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Setup(#[from] RedisSetupError),
    #[error("job {job}: the state store at {url} holds no model {sha256} (its keys expired or were removed)")]
    Missing { job: String, url: String, sha256: String },
    #[error("job {job}: the model in the state store has {got} values and SHA-256 {got_sha}, the task expects {want} values and {want_sha}")]
    Corrupt { job: String, got: u64, got_sha: String, want: u64, want_sha: String },
}

impl Classify for ModelError {
    fn kind(&self) -> FailureKind {
        FailureKind::StoreUnreachable
    }
}

/// Stores `model` under `job`'s keys.
pub fn store(url: &str, job: &str, model: &[f64], sync_timeout: Duration) -> Result<ModelRef, RedisSetupError> {
    let r = ModelRef::of(model);
    let mut con = connect(url, CONNECT_TIMEOUT)?;
    redis::cmd("SET")
        .arg(r.key(job))
        .arg(raw(model))
        .arg("EX")
        .arg(key_ttl(sync_timeout))
        .query::<Value>(&mut con)
        .map_err(|e| RedisSetupError::Command { url: redact(url), message: e.to_string() })?;
    Ok(r)
}

/// Fetches and checks the model `r` names.
pub fn fetch(url: &str, job: &str, r: &ModelRef, io_timeout: Duration) -> Result<Vec<f64>, ModelError> {
    let mut con = connect(url, io_timeout)?;
    let bytes: Option<Vec<u8>> = redis::cmd("GET")
        .arg(r.key(job))
        .query(&mut con)
        .map_err(|e| RedisSetupError::Command { url: redact(url), message: e.to_string() })?;
    let missing = || ModelError::Missing { job: job.into(), url: redact(url), sha256: r.sha256.clone() };
    let bytes = bytes.ok_or_else(missing)?;
    let model: Vec<f64> = bytes.chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes"))).collect();
    let got = ModelRef::of(&model);
    if got != *r || bytes.len() % 8 != 0 {
        return Err(ModelError::Corrupt {
            job: job.into(),
            got: got.values,
            got_sha: got.sha256,
            want: r.values,
            want_sha: r.sha256.clone(),
        });
    }
    Ok(model)
}

/// The tasks with the model replaced by its reference.
pub fn by_reference(tasks: &mut [crate::task::FunctionTask], r: &ModelRef) {
    for t in tasks {
        t.model = None;
        t.model_ref = Some(r.clone());
    }
}

/// A report's model, when too large to travel in it, stored under the job's keys (by
/// function 0 only: every function holds the same model) and replaced by its reference.
pub fn report_by_reference(
    report: &mut crate::task::FunctionReport,
    url: &str,
    job: &str,
    sync_timeout: Duration,
) -> Result<(), RedisSetupError> {
    if !ModelRef::needed_for(&report.model) {
        return Ok(());
    }
    let r = match report.function {
        0 => store(url, job, &report.model, sync_timeout)?,
        _ => ModelRef::of(&report.model),
    };
    report.model = Vec::new();
    report.model_ref = Some(r);
    Ok(())
}

/// Puts back the models of `reports` that travelled by reference (fetched once per model).
pub fn resolve_reports<'a>(
    reports: impl Iterator<Item = &'a mut crate::task::FunctionReport>,
    url: &str,
    job: &str,
    io_timeout: Duration,
) -> Result<(), ModelError> {
    let mut fetched: Option<(ModelRef, Vec<f64>)> = None;
    for r in reports {
        let Some(want) = r.model_ref.take() else { continue };
        match &fetched {
            Some((have, model)) if *have == want => r.model = model.clone(),
            _ => {
                let model = fetch(url, job, &want, io_timeout)?;
                r.model = model.clone();
                fetched = Some((want, model));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_models_over_the_threshold_travel_by_reference_and_the_hash_covers_every_bit() {
        let limit = (MODEL_IN_TASK_MAX_BYTES / 8) as usize;
        assert!(!ModelRef::needed_for(&vec![0.0; limit]));
        assert!(ModelRef::needed_for(&vec![0.0; limit + 1]));
        let a = ModelRef::of(&[1.0, 0.0]);
        assert_eq!(a.values, 2);
        assert_ne!(a, ModelRef::of(&[1.0, -0.0]), "-0.0 is another model");
        assert_ne!(a, ModelRef::of(&[1.0]));
    }
}
