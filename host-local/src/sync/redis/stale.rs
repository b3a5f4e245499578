//! Stale-synchronous rounds on Redis ([`crate::sync::stale`]): the same rule as the
//! in-process store, decided by one small script so that a delivery and the decision are one
//! atomic step. Keys (besides `cur`, `r:{t}`, `s:{t}`, `abort` and `x` of the synchronous
//! protocol, with the same meaning):
//!
//! | key | what |
//! | --- | --- |
//! | `sv` | hash `function → version` of its newest partial |
//! | `sd` | hash `function → round it is due in` (absent: 0) |
//! | `sp` | hash `function → newest partial` (raw little-endian `f64`) |
//! | `in` | the copy of `sp` the reducer of the current round sums (made by the script, `COPY`) |
//! | `red` | the function reducing the current round |
//! | `sh` | hash `round → record` (loss, oldest partial's age, stale functions' mask) |
//! | `stop` | set by the release that says stop: no round is reduced after it |
//!
//! A delivery is one `MULTI` (`HSET sp`, then the script, which records the version and, if
//! the round can be reduced, claims it and copies `sp` to `in`, or answers `hold` when it waits
//! for functions due in it); partials never pass through Lua. The reducer fetches `in` (one
//! more round trip), a late function the newest release and the records of the rounds it
//! missed (one more). Waiting is `XREAD BLOCK` on `s:{v}` and `x`, as in the synchronous
//! protocol (for a grace period: at most that long, then the delivery again, forced); the
//! stream entry carries the release and its record. The release script makes the functions
//! that delivered on the round's model, and the reducer, due in the next round (`sd`).

use std::sync::OnceLock;
use std::time::Duration;

use redis::{Script, Value};

use super::rounds::stream_fields;
use super::{bytes, decode_release, encode_release, text, RedisStore};
use crate::sync::codec::{decode_partial, encode_partial};
use crate::sync::stale::{holding_up, Delivered, ReduceRound, RoundRecord, StaleStore, Staleness, Took};
use crate::sync::{Release, SyncError};

/// The decision of a delivery (small arguments and results only).
pub(super) const DELIVER: &str = r#"
local p, w, v, bound, n, ttl, force = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7]
local s = redis.call('MGET', p .. 'meta', p .. 'abort', p .. 'cur', p .. 'red', p .. 'stop')
if not s[1] then return {'lost'} end
if s[2] then return {'abort', s[2]} end
local cur = tonumber(s[3] or '0')
redis.call('HSET', p .. 'sv', w, v)
redis.call('EXPIRE', p .. 'sv', ttl)
redis.call('EXPIRE', p .. 'sp', ttl)
if s[4] or s[5] then return {'no', cur} end
local fields = {}
for i = 0, n - 1 do fields[#fields + 1] = i end
local vs = redis.call('HMGET', p .. 'sv', unpack(fields))
local due = redis.call('HMGET', p .. 'sd', unpack(fields))
local fresh, busy, oldest, mask = false, false, 0, 0
for i = 1, n do
  local x = tonumber(vs[i])
  if not x then return {'no', cur} end
  local lag = cur - x
  if lag < 0 or lag > bound then return {'no', cur} end
  if lag == 0 then
    fresh = true
  else
    mask = mask + 2 ^ (i - 1)
    if lag > oldest then oldest = lag end
    if (tonumber(due[i]) or 0) >= cur then busy = true end
  end
end
if not fresh then return {'no', cur} end
if busy and force ~= '1' then return {'hold', cur} end
redis.call('SET', p .. 'red', w, 'EX', ttl)
redis.call('COPY', p .. 'sp', p .. 'in', 'REPLACE')
redis.call('EXPIRE', p .. 'in', ttl)
return {'reduce', cur, oldest, mask}
"#;

/// The release of a round: `r:{t}` if absent, its record, the stream entry that wakes the
/// waiting functions, `cur`, and the end of the claim.
pub(super) const RELEASE_ROUND: &str = r#"
local p, t, ttl, stop, prev = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[6], ARGV[7]
if redis.call('EXISTS', p .. 'meta') == 0 then return 'lost' end
if not redis.call('SET', p .. 'r:' .. t, ARGV[4], 'NX', 'EX', ttl) then return 'again' end
redis.call('HSET', p .. 'sh', t, ARGV[5])
local due, vs, red = {}, redis.call('HGETALL', p .. 'sv'), redis.call('GET', p .. 'red')
for i = 1, #vs, 2 do
  if vs[i + 1] == t or vs[i] == red then due[#due + 1] = vs[i]; due[#due + 1] = tonumber(t) + 1 end
end
if #due > 0 then redis.call('HSET', p .. 'sd', unpack(due)) end
local s = p .. 's:' .. t
redis.call('XADD', s, '1-1', 'r', ARGV[4], 'h', ARGV[5])
for _, k in ipairs({s, p .. 'sh', p .. 'sd', p .. 'meta', p .. 'run', p .. 'sv', p .. 'sp'}) do redis.call('EXPIRE', k, ttl) end
redis.call('SET', p .. 'cur', tonumber(t) + 1, 'EX', ttl)
redis.call('DEL', p .. 'red', p .. 'in')
if stop == '1' then redis.call('SET', p .. 'stop', '1', 'EX', ttl) end
if prev ~= '' then redis.call('DEL', p .. 's:' .. prev) end
return 'ok'
"#;

/// [`DELIVER`] and [`RELEASE_ROUND`], loaded on a connection's first delivery (synchronous
/// jobs never load them).
fn scripts() -> &'static [Script; 2] {
    static SCRIPTS: OnceLock<[Script; 2]> = OnceLock::new();
    SCRIPTS.get_or_init(|| [Script::new(DELIVER), Script::new(RELEASE_ROUND)])
}

fn int(v: &Value) -> Option<u32> {
    match v {
        Value::Int(i) => u32::try_from(*i).ok(),
        other => text(other)?.parse().ok(),
    }
}

impl RedisStore {
    /// The newest release (model version `cur`) and the records of rounds `v..cur`.
    fn take_since(&mut self, v: u32, cur: u32, at: &str) -> Result<Took, SyncError> {
        let p = &self.prefix;
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(format!("{p}r:{}", cur - 1));
        pipe.cmd("HMGET").arg(format!("{p}sh")).arg((v..cur).collect::<Vec<_>>());
        self.request();
        let (rel, recs): (Value, Vec<Value>) = pipe.query(&mut self.con).map_err(|e| self.store_err(at, e))?;
        let release = match &rel {
            Value::Nil => return Err(self.lost(at)),
            r => bytes(r).and_then(decode_release).ok_or_else(|| self.bad_reply(at, r))?,
        };
        let records = recs
            .iter()
            .map(|r| bytes(r).and_then(RoundRecord::decode).ok_or_else(|| self.lost(at)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Took { version: cur, release, records })
    }

    /// `cur`, the functions' newest versions and the function reducing round `cur`, to name
    /// the ones holding the round up (one more round trip, only after a timeout).
    fn versions(&mut self) -> (u32, Vec<Option<u32>>, Option<u32>) {
        self.request();
        let p = &self.prefix;
        let mut pipe = redis::pipe();
        pipe.cmd("GET").arg(format!("{p}cur"));
        pipe.cmd("HMGET").arg(format!("{p}sv")).arg((0..self.workers).collect::<Vec<_>>());
        pipe.cmd("GET").arg(format!("{p}red"));
        match pipe.query::<(Value, Vec<Value>, Value)>(&mut self.con) {
            Ok((cur, vs, red)) => (int(&cur).unwrap_or(0), vs.iter().map(int).collect(), int(&red)),
            Err(_) => (0, Vec::new(), None),
        }
    }
}

impl StaleStore for RedisStore {
    fn deliver(&mut self, w: u32, v: u32, partial: &[f64], bound: u32, force: bool) -> Result<Delivered, SyncError> {
        let at = format!("function {w} delivering its partial on model {v}");
        if !self.stale_loaded {
            self.request();
            let mut load = redis::pipe();
            for s in [DELIVER, RELEASE_ROUND] {
                load.cmd("SCRIPT").arg("LOAD").arg(s);
            }
            load.query::<Value>(&mut self.con).map_err(|e| self.store_err(&at, e))?;
            self.stale_loaded = true;
        }
        let sha = scripts()[0].get_hash().to_string();
        let mut pipe = redis::pipe();
        pipe.atomic();
        let encoded = encode_partial(partial);
        self.stats.partial_bytes += encoded.len() as u64;
        pipe.cmd("HSET").arg(format!("{}sp", self.prefix)).arg(w).arg(encoded).ignore();
        pipe.cmd("EVALSHA")
            .arg(&sha)
            .arg(0)
            .arg(&self.prefix)
            .arg(w)
            .arg(v)
            .arg(bound)
            .arg(self.workers)
            .arg(self.ttl)
            .arg(u8::from(force));
        self.request();
        // A server that lost the script (it restarted) lost the job's keys too.
        let (decision,): (Value,) = pipe.query(&mut self.con).map_err(|e| match e.kind() {
            redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => self.lost(&at),
            _ => self.store_err(&at, e),
        })?;
        let Value::Array(items) = &decision else { return Err(self.bad_reply(&at, &decision)) };
        let (kind, cur) = (items.first().and_then(text), items.get(1).and_then(int));
        match (kind.as_deref(), cur) {
            (Some("lost"), _) => Err(self.lost(&at)),
            (Some("abort"), _) if items.len() == 2 => Err(self.aborted(&items[1])),
            (Some("no" | "hold"), Some(cur)) if v < cur => {
                Ok(Delivered { took: Some(self.take_since(v, cur, &at)?), ..Default::default() })
            }
            (Some("no"), Some(_)) => Ok(Delivered::default()),
            (Some("hold"), Some(_)) => Ok(Delivered { hold: true, ..Default::default() }),
            (Some("reduce"), Some(t)) if items.len() == 4 => {
                let (oldest, mask) = (int(&items[2]), int(&items[3]));
                let staleness = Staleness::from_mask(oldest.unwrap_or(0), mask.unwrap_or(0));
                self.request();
                let parts: Vec<Value> = redis::cmd("HMGET")
                    .arg(format!("{}in", self.prefix))
                    .arg((0..self.workers).collect::<Vec<_>>())
                    .query(&mut self.con)
                    .map_err(|e| self.store_err(&at, e))?;
                let parts = parts
                    .iter()
                    .map(|x| bytes(x).and_then(decode_partial))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| self.lost(&at))?;
                let took = if v < t { Some(self.take_since(v, t, &at)?) } else { None };
                Ok(Delivered { took, reduce: Some(ReduceRound { t, parts, staleness }), hold: false })
            }
            _ => Err(self.bad_reply(&at, &decision)),
        }
    }

    fn release_round(&mut self, t: u32, release: &Release, staleness: &Staleness, bound: u32) -> Result<(), SyncError> {
        let at = format!("releasing iteration {t}");
        let record = RoundRecord { loss: release.loss, staleness: staleness.clone() }.encode();
        let (ttl, rel, stop) = (self.ttl, encode_release(release), if release.stop { "1" } else { "0" }.to_string());
        // A function waiting on round `u` holds a partial of version `u`, so no round after
        // `u + bound` is released before it wakes: the stream of round `t − bound − 1` is read
        // no more.
        let prev = t.checked_sub(bound + 1).map(|u| u.to_string()).unwrap_or_default();
        self.request();
        let v: Value = scripts()[1]
            .prepare_invoke()
            .arg(&self.prefix)
            .arg(t)
            .arg(ttl)
            .arg(rel)
            .arg(record)
            .arg(stop)
            .arg(prev)
            .invoke(&mut self.con)
            .map_err(|e| self.store_err(&at, e))?;
        match text(&v).as_deref() {
            Some("ok") | Some("again") => Ok(()),
            Some("lost") => Err(self.lost(&at)),
            _ => Err(self.bad_reply(&at, &v)),
        }
    }

    fn await_newer(&mut self, w: u32, v: u32, bound: u32) -> Result<Took, SyncError> {
        let at = format!("function {w} waiting for iteration {v}");
        let Some(took) = self.read_release(v, self.timeout, &at)? else {
            let (cur, versions, reducer) = self.versions();
            return Err(SyncError::Timeout {
                job: self.job.clone(),
                worker: w,
                iteration: cur,
                timeout: self.timeout,
                missing: holding_up(cur, bound, &versions),
                merger: None,
                reducer,
            });
        };
        Ok(took)
    }

    fn await_within(&mut self, w: u32, v: u32, grace: Duration) -> Result<Option<Took>, SyncError> {
        let at = format!("function {w} waiting a grace period for iteration {v}");
        self.read_release(v, grace, &at)
    }
}

impl RedisStore {
    /// The release of round `v` from its stream, waiting up to `block` (`None`: none came).
    fn read_release(&mut self, v: u32, block: Duration, at: &str) -> Result<Option<Took>, SyncError> {
        let s = format!("{}s:{v}", self.prefix);
        let Some(reply) = self.read_stream(&s, block, at)? else { return Ok(None) };
        if let Some(fv) = stream_fields(&reply, &s) {
            let field =
                |k: &str| fv.chunks(2).find(|c| c.len() == 2 && text(&c[0]).as_deref() == Some(k)).map(|c| &c[1]);
            let release = field("r").and_then(bytes).and_then(decode_release);
            let record = field("h").and_then(bytes).and_then(RoundRecord::decode);
            return match (release, record) {
                (Some(release), Some(record)) => Ok(Some(Took { version: v + 1, release, records: vec![record] })),
                _ => Err(self.bad_reply(at, &reply)),
            };
        }
        match stream_fields(&reply, &format!("{}x", self.prefix)).and_then(|fv| fv.get(1).cloned()) {
            Some(a) => Err(self.aborted(&a)),
            None => Err(self.bad_reply(at, &reply)),
        }
    }
}
