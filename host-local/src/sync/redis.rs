//! The Redis state store: functions that are separate processes (or Lambda invocations)
//! synchronise through one Redis connection each, with a constant number of round trips
//! per iteration.
//!
//! Keys live under `ifp:{JOB}:` (the braces are a Redis Cluster hash tag: all keys of a job
//! share a slot) and carry a TTL ([`key_ttl`]), so nothing is left behind:
//!
//! | key | what |
//! | --- | --- |
//! | `meta` | `"{functions}:{plan}"`: the function count and the job plan's fingerprint; created by the driver (or the first function); a function of another plan is refused |
//! | `cur` | iterations released so far: where a restarted worker rejoins |
//! | `abort` | `"{worker}\n{reason}"` of the first worker that failed |
//! | `x` | stream: the same abort notice, which wakes every waiting function at once |
//! | `p:{t}:{node}` | hash `child → partial` of round `t` at one node of the summation tree ([`super::tree`]): `r` (the root: every function's partial, or every group's sum) or a group number (its functions' partials); `t` is `c` for the [`CENSUS`] before iteration 0, which leaves `cur` alone |
//! | `in:{t}:{node}` | the same hash once complete (renamed), plus `m`: the function that completed it and so merges it (at the root: reduces) |
//! | `r:{t}` | the release of iteration `t` (model `t + 1`, loss, flags) |
//! | `s:{t}` | stream: the release of `t` once more, read by every waiting function |
//! | `m:{sha256}` | a model too large for a task or report, stored once ([`super::model_ref`]) |
//!
//! Per iteration `t`, function `w` spends one round trip in [`StateStore::arrive`] (a
//! pipeline: its partial, then a small script that decides; see [`rounds`]); a group's
//! merger one more (its group's sum, at the root); the reducer one in
//! [`StateStore::release`] (store `r:{t}` if absent, add it to `s:{t}`, advance `cur`),
//! every other function one in [`StateStore::await_release`] (`XREAD BLOCK` on `s:{t}` and
//! `x` with the sync timeout), which returns the release itself. Partials and models
//! travel as raw little-endian `f64`.

use std::sync::Once;
use std::time::Duration;

use redis::{Connection, Script, Value};

use super::codec::{apply_changes, decode_partial, encode_changes, encode_partial, is_changes};
use super::{JoinPoint, Release, SyncError, SyncStats, CENSUS};

mod rounds;
mod stale;

use rounds::{ABORT, DECIDE, RELEASE};

/// Connection and per-command I/O limit while connecting.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a job's keys outlive their last write: long enough for a restarted worker to
/// find the models it needs, short enough that a crashed job's keys go away by themselves.
pub fn key_ttl(sync_timeout: Duration) -> u64 {
    (sync_timeout.as_secs() * 10).max(3600)
}

/// Errors setting up a connection or a job.
#[derive(Debug, thiserror::Error)]
pub enum RedisSetupError {
    #[error("invalid redis URL {url}: {message}")]
    Url { url: String, message: String },
    #[error("cannot connect to redis at {url}: {message}")]
    Connect { url: String, message: String },
    #[error("invalid job id '{0}': use 1 to 64 characters among letters, digits, '.', '_' and '-'")]
    JobId(String),
    #[error("job {job} already exists on redis at {url}: choose another --job, or pass --resume to continue it")]
    JobExists { job: String, url: String },
    #[error("cannot resume job {job} on redis at {url}: it was started with another plan (data, kernel, parameters, function count, iterations or first model differ)")]
    OtherPlan { job: String, url: String },
    #[error("nothing to resume: job {job} does not exist on redis at {url} (or its keys expired)")]
    NothingToResume { job: String, url: String },
    #[error("redis at {url}: {message}")]
    Command { url: String, message: String },
}

/// `url` with its password (if any) replaced by `***`, for logs, errors and result files.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) => {
            if u.password().is_some() {
                let _ = u.set_password(Some("***"));
            }
            u.to_string()
        }
        // Unparseable: keep the scheme at most, never the rest (it may hold a secret).
        Err(_) => match url.split_once("://") {
            Some((scheme, _)) if scheme.chars().all(|c| c.is_ascii_alphanumeric()) => format!("{scheme}://…"),
            _ => "(unparseable URL)".to_string(),
        },
    }
}

/// The job ids ifp accepts (they become part of Redis keys).
pub fn check_job_id(job: &str) -> Result<(), RedisSetupError> {
    let ok =
        (1..=64).contains(&job.len()) && job.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(RedisSetupError::JobId(job.to_string()))
    }
}

/// The key prefix of a job.
pub fn prefix(job: &str) -> String {
    format!("ifp:{{{job}}}:")
}

/// A redis error as text with any password removed (defence in depth: redis errors do not
/// normally echo the URL).
fn scrub(e: &redis::RedisError, url: &str) -> String {
    let mut s = e.to_string();
    if let Some(p) = url::Url::parse(url).ok().and_then(|u| u.password().map(str::to_string)) {
        if !p.is_empty() {
            s = s.replace(&p, "***");
        }
    }
    s
}

/// The environment variable naming a PEM file of CA certificates to trust for `rediss://`.
pub const REDIS_CA_ENV: &str = "IFP_REDIS_CA";

/// Opens one connection and checks it with `PING` (which also proves the credentials).
pub fn connect(url: &str, io_timeout: Duration) -> Result<Connection, RedisSetupError> {
    static TLS: Once = Once::new();
    TLS.call_once(|| {
        // rediss:// uses rustls' process-wide provider; another crate may have set one first.
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
    let shown = redact(url);
    let bad_url = |e: redis::RedisError| RedisSetupError::Url { url: shown.clone(), message: scrub(&e, url) };
    // A private CA for rediss:// (a self-hosted server): its PEM file in IFP_REDIS_CA,
    // trusted besides the system's roots. Workers inherit the variable.
    let client = match std::env::var_os(REDIS_CA_ENV).filter(|p| !p.is_empty()) {
        Some(ca) => {
            let pem = std::fs::read(&ca).map_err(|e| RedisSetupError::Url {
                url: shown.clone(),
                message: format!("cannot read the CA certificate {} ({REDIS_CA_ENV}): {e}", ca.to_string_lossy()),
            })?;
            let certs = redis::TlsCertificates { client_tls: None, root_cert: Some(pem) };
            redis::Client::build_with_tls(url, certs).map_err(bad_url)?
        }
        None => redis::Client::open(url).map_err(bad_url)?,
    };
    let connect_err = |e: redis::RedisError| RedisSetupError::Connect { url: shown.clone(), message: scrub(&e, url) };
    let mut con = client.get_connection_with_timeout(CONNECT_TIMEOUT).map_err(connect_err)?;
    con.set_write_timeout(Some(CONNECT_TIMEOUT)).map_err(connect_err)?;
    con.set_read_timeout(Some(io_timeout)).map_err(connect_err)?;
    redis::cmd("PING").query::<Value>(&mut con).map_err(connect_err)?;
    Ok(con)
}

/// The driver's side of a job on Redis: claims the job id, and removes its keys at the end.
pub struct JobKeys {
    con: Connection,
    url: String,
    job: String,
}

/// The driver's claim of a job id: a new job, or (`resume`) a job of the same plan that
/// another run started, taken over.
const CLAIM: &str = r#"
local p, meta, run, resume, ttl, count = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5]), tonumber(ARGV[6])
local have = redis.call('GET', p .. 'meta')
if not have then
  if resume == '1' then return {'absent', 0} end
  redis.call('SET', p .. 'meta', meta, 'EX', ttl)
  redis.call('SET', p .. 'run', run, 'EX', ttl)
  return {'new', 0}
end
if resume ~= '1' then return {'exists', 0} end
if have ~= meta then return {'other', 0} end
redis.call('SET', p .. 'run', run, 'EX', ttl)
redis.call('DEL', p .. 'abort')
redis.call('DEL', p .. 'x')
return {'resumed', tonumber(redis.call('GET', p .. 'cur') or '0')}
"#;

impl JobKeys {
    /// Connects (failing clearly on a wrong address or password) and claims `job` for run
    /// `run` of a plan with `functions` functions and fingerprint `plan`: a new job id, or
    /// with `resume` a job id another run of the same plan started (it goes on where it is).
    /// Returns the keys and the iteration the job is at.
    pub fn create(
        url: &str,
        job: &str,
        functions: u32,
        plan: Option<&str>,
        run: &str,
        resume: bool,
        sync_timeout: Duration,
    ) -> Result<(Self, u32), RedisSetupError> {
        check_job_id(job)?;
        let mut con = connect(url, CONNECT_TIMEOUT)?;
        // EVAL, not EVALSHA: once per job, one round trip (no NOSCRIPT retry).
        let v: Value = redis::cmd("EVAL")
            .arg(CLAIM)
            .arg(0)
            .arg(prefix(job))
            .arg(meta_value(functions, plan))
            .arg(run)
            .arg(if resume { "1" } else { "0" })
            .arg(key_ttl(sync_timeout))
            .arg(functions)
            .query(&mut con)
            .map_err(|e| RedisSetupError::Command { url: redact(url), message: scrub(&e, url) })?;
        let (job_s, url_r) = (job.to_string(), redact(url));
        let at = match &v {
            Value::Array(items) if items.len() == 2 => match (text(&items[0]).as_deref(), &items[1]) {
                (Some("new" | "resumed"), Value::Int(t)) => *t as u32,
                (Some("exists"), _) => return Err(RedisSetupError::JobExists { job: job_s, url: url_r }),
                (Some("other"), _) => return Err(RedisSetupError::OtherPlan { job: job_s, url: url_r }),
                (Some("absent"), _) => return Err(RedisSetupError::NothingToResume { job: job_s, url: url_r }),
                _ => return Err(RedisSetupError::Command { url: url_r, message: format!("unexpected reply {v:?}") }),
            },
            _ => return Err(RedisSetupError::Command { url: url_r, message: format!("unexpected reply {v:?}") }),
        };
        Ok((Self { con, url: url.into(), job: job.into() }, at))
    }

    /// Connects to `job`'s keys without claiming it (to stop a job another process claimed).
    pub fn open(url: &str, job: &str) -> Result<Self, RedisSetupError> {
        check_job_id(job)?;
        let con = connect(url, CONNECT_TIMEOUT)?;
        Ok(Self { con, url: url.into(), job: job.into() })
    }

    /// Marks the job aborted by the driver (`reason`), so every function stops at its next
    /// synchronisation, wherever it runs.
    pub fn abort(&mut self, reason: &str) -> Result<(), RedisSetupError> {
        let msg = format!("{}\n{reason}", super::DRIVER);
        redis::cmd("EVAL")
            .arg(ABORT)
            .arg(0)
            .arg(prefix(&self.job))
            .arg(key_ttl(Duration::ZERO))
            .arg(msg)
            .query::<Value>(&mut self.con)
            .map(|_| ())
            .map_err(|e| RedisSetupError::Command { url: redact(&self.url), message: scrub(&e, &self.url) })
    }

    /// Deletes every key of the job.
    pub fn remove(mut self) -> Result<(), RedisSetupError> {
        let pattern = format!("{}*", prefix(&self.job).replace('{', "\\{").replace('}', "\\}"));
        let err =
            |e: redis::RedisError, url: &str| RedisSetupError::Command { url: redact(url), message: scrub(&e, url) };
        let keys: Vec<Vec<u8>> = {
            let it = redis::cmd("SCAN").cursor_arg(0).arg("MATCH").arg(&pattern).arg("COUNT").arg(1000).clone();
            let iter = it.iter::<Vec<u8>>(&mut self.con).map_err(|e| err(e, &self.url))?;
            iter.collect::<Result<Vec<_>, _>>().map_err(|e| err(e, &self.url))?
        };
        for chunk in keys.chunks(512) {
            redis::cmd("DEL").arg(chunk).query::<Value>(&mut self.con).map_err(|e| err(e, &self.url))?;
        }
        Ok(())
    }
}

const JOIN: &str = r#"
local p, n, ttl, run, resume, count = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4], ARGV[5], tonumber(ARGV[6])
local meta = redis.call('GET', p .. 'meta')
if not meta then
  redis.call('SET', p .. 'meta', n, 'EX', ttl)
elseif meta ~= n then
  return {'workers', meta}
end
if run ~= '' then
  local owner = redis.call('GET', p .. 'run')
  if not owner then
    redis.call('SET', p .. 'run', run, 'EX', ttl)
  elseif owner ~= run then
    if resume ~= '1' then return {'taken', owner} end
    redis.call('SET', p .. 'run', run, 'EX', ttl)
    redis.call('DEL', p .. 'abort')
    redis.call('DEL', p .. 'x')
  end
end
local ab = redis.call('GET', p .. 'abort')
if ab then return {'abort', ab} end
local cur = tonumber(redis.call('GET', p .. 'cur') or '0')
local last, before = false, false
if cur >= 1 then last = redis.call('GET', p .. 'r:' .. (cur - 1)) end
if cur >= 2 then before = redis.call('GET', p .. 'r:' .. (cur - 2)) end
return {'ok', cur, last, before}
"#;

/// The scripts of a function's connection, in the order [`RedisStore::script`] names them.
const SCRIPTS: [&str; 4] = [JOIN, DECIDE, RELEASE, ABORT];

/// Loads [`SCRIPTS`] in one round trip.
fn load_scripts(con: &mut Connection) -> Result<(), redis::RedisError> {
    let mut pipe = redis::pipe();
    for s in SCRIPTS {
        pipe.cmd("SCRIPT").arg("LOAD").arg(s);
    }
    pipe.query::<Value>(con).map(|_| ())
}

/// One function's connection to the job's state on Redis.
pub struct RedisStore {
    con: Connection,
    url: String,
    job: String,
    prefix: String,
    worker: u32,
    workers: u32,
    timeout: Duration,
    ttl: u64,
    scripts: [Script; SCRIPTS.len()],
    stats: SyncStats,
    /// The job plan's fingerprint (empty: none given).
    plan: String,
    /// The run this function belongs to (empty: any), and whether it takes the job over.
    run: String,
    resume: bool,
    /// Slept before every request ([`RedisStore::with_added_latency`]).
    latency: Duration,
    /// The round and model of the last release this function released or waited for: the
    /// base the next release's changes apply to ([`encode_release_from`]).
    base: Option<(u32, Vec<f64>)>,
    /// The stale-synchronous scripts are loaded ([`stale`]: only jobs that use them).
    stale_loaded: bool,
}

/// What a job's `meta` key holds: the function count and the plan's fingerprint.
pub fn meta_value(functions: u32, plan: Option<&str>) -> String {
    match plan {
        Some(p) if !p.is_empty() => format!("{functions}:{p}"),
        _ => functions.to_string(),
    }
}

/// Encodes a release: `[flags u8 | loss f64 | model]`, little-endian, the model as a partial
/// is ([`encode_partial`]: sparse while most of a large model is still zero).
pub fn encode_release(r: &Release) -> Vec<u8> {
    let model = encode_partial(&r.model);
    let mut out = Vec::with_capacity(9 + model.len());
    out.push(r.converged as u8 | (r.stop as u8) << 1);
    out.extend_from_slice(&r.loss.to_le_bytes());
    out.extend_from_slice(&model);
    out
}

/// A release whose model is given as its changes from `base` (the model of the release
/// before, which every waiter stepped on) when that is smaller ([`encode_changes`]), else as
/// [`encode_release`] gives it.
pub fn encode_release_from(r: &Release, base: &[f64]) -> Vec<u8> {
    let Some(model) = encode_changes(base, &r.model) else { return encode_release(r) };
    let mut out = Vec::with_capacity(9 + model.len());
    out.push(r.converged as u8 | (r.stop as u8) << 1);
    out.extend_from_slice(&r.loss.to_le_bytes());
    out.extend_from_slice(&model);
    out
}

/// Decodes [`encode_release_from`]'s bytes with the base they were made from (`None`: not
/// such bytes; a release made by [`encode_release`] needs no base).
pub fn decode_release_from(b: &[u8], base: &[f64]) -> Option<Release> {
    if b.len() < 10 || !is_changes(&b[9..]) {
        return decode_release(b);
    }
    let loss = f64::from_le_bytes(b[1..9].try_into().ok()?);
    Some(Release { model: apply_changes(base, &b[9..])?, loss, converged: b[0] & 1 != 0, stop: b[0] & 2 != 0 })
}

/// Decodes [`encode_release`]'s bytes.
pub fn decode_release(b: &[u8]) -> Option<Release> {
    if b.len() < 10 {
        return None;
    }
    let loss = f64::from_le_bytes(b[1..9].try_into().ok()?);
    Some(Release { model: decode_partial(&b[9..])?, loss, converged: b[0] & 1 != 0, stop: b[0] & 2 != 0 })
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Okay => Some("OK".into()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<&[u8]> {
    match v {
        Value::BulkString(b) => Some(b),
        _ => None,
    }
}

impl RedisStore {
    /// Connects worker `worker`: one connection, scripts loaded in one round trip.
    pub fn connect(
        url: &str,
        job: &str,
        worker: u32,
        workers: u32,
        timeout: Duration,
    ) -> Result<Self, RedisSetupError> {
        check_job_id(job)?;
        // XREAD waits up to `timeout` on the server; the socket allows a little more.
        let mut con = connect(url, timeout + Duration::from_secs(5))?;
        load_scripts(&mut con).map_err(|e| RedisSetupError::Command { url: redact(url), message: scrub(&e, url) })?;
        let scripts = SCRIPTS.map(Script::new);
        Ok(Self {
            con,
            url: url.into(),
            job: job.into(),
            prefix: prefix(job),
            worker,
            workers,
            timeout,
            ttl: key_ttl(timeout),
            scripts,
            stats: SyncStats { round_trips: 2, ..SyncStats::default() },
            plan: String::new(),
            run: String::new(),
            resume: false,
            latency: Duration::ZERO,
            stale_loaded: false,
            base: None,
        })
    }

    /// Joins only a job of this plan (its fingerprint; `None`: any plan with as many
    /// functions).
    pub fn for_plan(mut self, plan: Option<&str>) -> Self {
        self.plan = plan.unwrap_or_default().to_string();
        self
    }

    /// Joins only as part of run `run` (the job id belongs to the run that claimed it
    /// first), or, with `resume`, takes the job over from another run of the same plan.
    pub fn for_run(mut self, run: Option<&str>, resume: bool) -> Self {
        self.run = run.unwrap_or_default().to_string();
        self.resume = resume;
        self
    }

    /// Sleeps `latency` before every request this store sends: a network hop to a remote
    /// Redis, simulated ([`super::simulate`]).
    pub fn with_added_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }

    /// Counts one request and waits out the simulated latency, if any.
    fn request(&mut self) {
        self.stats.round_trips += 1;
        if !self.latency.is_zero() {
            std::thread::sleep(self.latency);
        }
    }

    fn store_err(&self, at: &str, e: redis::RedisError) -> SyncError {
        let why = if e.is_connection_dropped() || e.is_io_error() {
            " (the connection to redis was lost: did the server restart or go away?)"
        } else {
            ""
        };
        SyncError::Store {
            job: self.job.clone(),
            message: format!("{at}: redis at {}: {}{why}", redact(&self.url), scrub(&e, &self.url)),
        }
    }

    fn bad_reply(&self, at: &str, v: &Value) -> SyncError {
        SyncError::Store { job: self.job.clone(), message: format!("{at}: unexpected reply from redis: {v:?}") }
    }

    fn lost(&self, at: &str) -> SyncError {
        SyncError::Store {
            job: self.job.clone(),
            message: format!(
                "{at}: the job's state is gone from redis at {} (the server restarted or the keys expired)",
                redact(&self.url)
            ),
        }
    }

    fn aborted(&self, v: &Value) -> SyncError {
        let s = text(v).unwrap_or_default();
        let (w, reason) = s.split_once('\n').unwrap_or(("?", &s));
        SyncError::Aborted {
            job: self.job.clone(),
            worker: w.parse().unwrap_or(super::DRIVER),
            reason: reason.to_string(),
        }
    }

    fn script(&mut self, which: usize, args: &[&dyn ToArg]) -> Result<Value, redis::RedisError> {
        self.request();
        let mut inv = self.scripts[which].prepare_invoke();
        inv.arg(&self.prefix);
        for a in args {
            a.add_to(&mut inv);
        }
        inv.invoke(&mut self.con)
    }

    /// Finds where this worker enters the job (iteration 0 for a fresh job), registering the
    /// job's worker count if the driver did not; refuses an aborted job or a mismatched count.
    fn join_job(&mut self) -> Result<JoinPoint, SyncError> {
        let at = "joining the job";
        let n = self.workers;
        let (meta, ttl) = (meta_value(n, Some(&self.plan)), self.ttl);
        let (run, resume) = (self.run.clone(), if self.resume { "1" } else { "0" }.to_string());
        let v = self.script(0, &[&meta, &ttl, &run, &resume, &n]).map_err(|e| self.store_err(at, e))?;
        let Value::Array(items) = &v else { return Err(self.bad_reply(at, &v)) };
        match (items.first().and_then(text).as_deref(), items.len()) {
            (Some("workers"), 2) => {
                let theirs = text(&items[1]).unwrap_or_default();
                let count = theirs.split_once(':').map_or(theirs.as_str(), |(c, _)| c);
                let message = if count != n.to_string() {
                    format!("{at}: the job has {count} functions, this function was started for {n}")
                } else {
                    format!(
                        "{at}: the job id is in use by a job with another plan (other data, kernel, parameters or first model): choose another job id"
                    )
                };
                Err(SyncError::Mismatch { job: self.job.clone(), message })
            }
            (Some("taken"), 2) => Err(SyncError::Mismatch {
                job: self.job.clone(),
                message: format!(
                    "{at}: the job id is in use by another run ({}): choose another job id, or resume that job (ifp run --resume)",
                    text(&items[1]).unwrap_or_default()
                ),
            }),
            (Some("abort"), 2) => Err(self.aborted(&items[1])),
            (Some("ok"), 4) => {
                let iteration = match items[1] {
                    Value::Int(i) if i >= 0 => i as u32,
                    _ => return Err(self.bad_reply(at, &v)),
                };
                let release = |x: &Value| -> Result<Option<Release>, SyncError> {
                    match x {
                        Value::Nil => Ok(None),
                        other => {
                            bytes(other).and_then(decode_release).map(Some).ok_or_else(|| self.bad_reply(at, other))
                        }
                    }
                };
                let (last, before) = (release(&items[2])?, release(&items[3])?);
                if (iteration >= 1 && last.is_none()) || (iteration >= 2 && before.is_none()) {
                    return Err(self.lost(at));
                }
                Ok(JoinPoint { iteration, last, before })
            }
            _ => Err(self.bad_reply(at, &v)),
        }
    }

    /// Loads the scripts again (a server that restarted lost them).
    fn load_scripts(&mut self) -> Result<(), redis::RedisError> {
        self.request();
        load_scripts(&mut self.con)
    }
}

/// Script arguments of mixed types.
trait ToArg {
    fn add_to(&self, inv: &mut redis::ScriptInvocation<'_>);
}
impl ToArg for u32 {
    fn add_to(&self, inv: &mut redis::ScriptInvocation<'_>) {
        inv.arg(*self);
    }
}
impl ToArg for u64 {
    fn add_to(&self, inv: &mut redis::ScriptInvocation<'_>) {
        inv.arg(*self);
    }
}
impl ToArg for Vec<u8> {
    fn add_to(&self, inv: &mut redis::ScriptInvocation<'_>) {
        inv.arg(self.as_slice());
    }
}
impl ToArg for String {
    fn add_to(&self, inv: &mut redis::ScriptInvocation<'_>) {
        inv.arg(self.as_str());
    }
}

/// A round's part of the keys: the iteration number, or `c` for the [`CENSUS`] (which
/// does not advance `cur`).
fn round_key(t: u32) -> String {
    if t == CENSUS {
        "c".to_string()
    } else {
        t.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_hides_the_password_and_keeps_the_rest() {
        assert_eq!(redact("redis://:pw@127.0.0.1:6379"), "redis://:***@127.0.0.1:6379");
        assert_eq!(redact("rediss://user:p%40ss@host.example:6380/2"), "rediss://user:***@host.example:6380/2");
        assert_eq!(redact("redis://127.0.0.1:6379"), "redis://127.0.0.1:6379");
        assert_eq!(redact("redis://user@h:1"), "redis://user@h:1");
        assert!(!redact("redis//:secret@").contains("secret"));
    }

    #[test]
    fn releases_round_trip_bit_for_bit() {
        let r = Release { model: vec![1.5, -0.0, f64::NAN, 1e-300], loss: 0.25, converged: true, stop: false };
        let d = decode_release(&encode_release(&r)).unwrap();
        assert_eq!(
            d.model.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
            r.model.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        assert_eq!((d.loss, d.converged, d.stop), (0.25, true, false));
        assert!(decode_release(&[0; 10]).is_none(), "a truncated model is refused");
        // A model that is mostly zeros travels sparse, and comes back the same.
        let mut model = vec![0.0; 4096];
        model[7] = 2.0;
        let r = Release { model, loss: 1.0, converged: false, stop: true };
        let b = encode_release(&r);
        assert_eq!(b.len(), 9 + 5 + 12);
        assert_eq!(decode_release(&b).unwrap(), r);
    }

    #[test]
    fn job_ids_are_checked() {
        for ok in ["a", "job-1.x_2", &"x".repeat(64)] {
            assert!(check_job_id(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a b", "a}b", "a:b", &"x".repeat(65)] {
            assert!(matches!(check_job_id(bad), Err(RedisSetupError::JobId(_))), "{bad}");
        }
        assert_eq!(prefix("j"), "ifp:{j}:");
    }
}
