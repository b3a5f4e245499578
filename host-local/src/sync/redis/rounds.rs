//! One round on Redis: arriving with a partial, merging a group, reducing, releasing and
//! waiting, in a constant number of round trips per function however many functions there
//! are, and with no function fetching more than about `√F` partials ([`Tree`]).
//!
//! Bulk data (partials, sums, releases to waiters) never passes through Lua, whose string
//! conversions cost Redis far more than the commands themselves: an arrival is one pipeline
//! of plain commands around a small script,
//!
//! ```text
//! HSETNX p:{t}:{node} {child} {partial}   EXPIRE p:{t}:{node}
//! EVALSHA DECIDE …                         HMGET in:{t}:{node} {children…}
//! ```
//!
//! where `DECIDE` refuses a lost or aborted job, answers a late arrival with the release,
//! and, when the node's set is complete, renames it to `in:{t}:{node}` (O(1)) and records
//! this function as its merger, so that the `HMGET` in the same pipeline returns the set to
//! the merger and nothing to anyone else. Arrivals at a group (beyond [`crate::sync::tree::FLAT`]
//! functions) first send plain commands only (`HSETNX`, `EXPIRE`, `HLEN`, `MGET` of the
//! job's state, `HGET` of the merger): only a function that saw its group complete sends
//! the pipeline above as well. A group's merger sums the group in function order and
//! arrives at the root (`node` = `r`) the same way; the root's merger reduces. The
//! release is one script: `r:{t}` if absent, then `XADD s:{t}`, which wakes every waiter
//! at once (`XREAD BLOCK … STREAMS s:{t} x 0-0 0-0`: a waiter that comes late still finds
//! the entry, and the abort stream `x` is read in the same call).

use std::time::{Duration, Instant};

use redis::Value;

use super::{
    bytes, decode_release, decode_release_from, encode_release, encode_release_from, round_key, text, RedisStore,
};
use crate::function::sum_in_order;
use crate::sync::codec::{decode_partial, encode_partial};
use crate::sync::tree::Tree;
use crate::sync::{round_name, Arrival, Release, StalledMerger, StateStore, SyncError, SyncStats, CENSUS};

/// The decision of an arrival (small arguments and results only).
pub(super) const DECIDE: &str = r#"
local p, t, node, count, w, ttl = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5], tonumber(ARGV[6])
local s = redis.call('MGET', p .. 'meta', p .. 'abort', p .. 'r:' .. t)
if not s[1] then return {'lost'} end
if s[2] then return {'abort', s[2]} end
if s[3] then return {'released', s[3]} end
local h, full = p .. 'p:' .. t .. ':' .. node, p .. 'in:' .. t .. ':' .. node
local m = redis.call('HGET', full, 'm')
if m then
  redis.call('DEL', h)
  if m == w then return {'merge'} end
  return {'wait'}
end
if redis.call('HLEN', h) < count then return {'wait'} end
redis.call('RENAME', h, full)
redis.call('HSET', full, 'm', w)
redis.call('EXPIRE', full, ttl)
return {'merge'}
"#;

pub(super) const RELEASE: &str = r#"
local p, t, ttl, groups, prev = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
if redis.call('EXISTS', p .. 'meta') == 0 then return 'lost' end
if not redis.call('SET', p .. 'r:' .. t, ARGV[6], 'NX', 'EX', ttl) then return 'again' end
local s = p .. 's:' .. t
redis.call('XADD', s, '1-1', 'r', ARGV[7])
redis.call('EXPIRE', s, ttl)
if tonumber(t) then redis.call('SET', p .. 'cur', tonumber(t) + 1, 'EX', ttl) end
redis.call('EXPIRE', p .. 'meta', ttl)
redis.call('EXPIRE', p .. 'run', ttl)
local done = {p .. 'p:' .. t .. ':r', p .. 'in:' .. t .. ':r'}
for g = 0, groups - 1 do
  done[#done + 1] = p .. 'p:' .. t .. ':' .. g
  done[#done + 1] = p .. 'in:' .. t .. ':' .. g
end
if prev ~= '' then done[#done + 1] = p .. 's:' .. prev end
redis.call('DEL', unpack(done))
return 'ok'
"#;

pub(super) const ABORT: &str = r#"
local p, ttl = ARGV[1], tonumber(ARGV[2])
redis.call('SET', p .. 'abort', ARGV[3], 'NX', 'EX', ttl)
if redis.call('EXISTS', p .. 'x') == 0 then
  redis.call('XADD', p .. 'x', '1-1', 'a', redis.call('GET', p .. 'abort'))
  redis.call('EXPIRE', p .. 'x', ttl)
end
return 'ok'
"#;

/// What an arrival at one node of the tree gave.
enum Step {
    Done(Arrival),
    /// This function completed the node: its children's parts, in order.
    Merge(Vec<Vec<f64>>),
}

impl RedisStore {
    /// One arrival at `node` (`r`: the root, else a group number) as its child `child`.
    fn arrive_at(
        &mut self,
        t: &str,
        node: &str,
        child: u32,
        children: std::ops::Range<u32>,
        part: &[f64],
        at: &str,
    ) -> Result<Step, SyncError> {
        let h = format!("{}p:{t}:{node}", self.prefix);
        let full = format!("{}in:{t}:{node}", self.prefix);
        let count = children.len() as u32;
        let sha = self.scripts[DECIDE_AT].get_hash().to_string();
        let mut pipe = redis::pipe();
        let encoded = encode_partial(part);
        self.stats.partial_bytes += encoded.len() as u64;
        pipe.cmd("HSETNX").arg(&h).arg(child).arg(encoded).ignore();
        pipe.cmd("EXPIRE").arg(&h).arg(self.ttl).ignore();
        pipe.cmd("EVALSHA")
            .arg(&sha)
            .arg(0)
            .arg(&self.prefix)
            .arg(t)
            .arg(node)
            .arg(count)
            .arg(self.worker)
            .arg(self.ttl);
        pipe.cmd("HMGET").arg(&full).arg(children.clone().collect::<Vec<_>>());
        self.request();
        let (decision, set): (Value, Value) = match pipe.query(&mut self.con) {
            Err(e) if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript) => {
                // The server lost its scripts (it restarted): load them, and ask once more.
                self.load_scripts().map_err(|e| self.store_err(at, e))?;
                pipe.query(&mut self.con).map_err(|e| self.store_err(at, e))?
            }
            r => r.map_err(|e| self.store_err(at, e))?,
        };
        let Value::Array(items) = &decision else { return Err(self.bad_reply(at, &decision)) };
        match items.first().and_then(text).as_deref() {
            Some("wait") => Ok(Step::Done(Arrival::Wait)),
            Some("lost") => Err(self.lost(at)),
            Some("abort") if items.len() == 2 => Err(self.aborted(&items[1])),
            Some("released") if items.len() == 2 => bytes(&items[1])
                .and_then(decode_release)
                .map(|r| Step::Done(Arrival::Released(r)))
                .ok_or_else(|| self.bad_reply(at, &decision)),
            Some("merge") => match &set {
                Value::Array(parts) if parts.len() == count as usize => parts
                    .iter()
                    .map(|x| bytes(x).and_then(decode_partial))
                    .collect::<Option<Vec<_>>>()
                    .map(Step::Merge)
                    .ok_or_else(|| self.bad_reply(at, &set)),
                _ => Err(self.bad_reply(at, &set)),
            },
            _ => Err(self.bad_reply(at, &decision)),
        }
    }

    /// An arrival at a group without a script (most arrivals of a large job: Redis spends
    /// several times longer on a script than on these commands): the partial, the set's
    /// size, the job's state, and the group's merger if it has one. `None`: this function
    /// may complete the group or be its merger, which [`DECIDE`] settles (one more round trip
    /// for about `√F` functions; two that both saw the set complete are told apart there).
    fn arrive_plain(
        &mut self,
        t: &str,
        node: &str,
        child: u32,
        count: u32,
        part: &[f64],
        at: &str,
    ) -> Result<Option<Arrival>, SyncError> {
        let p = &self.prefix;
        let h = format!("{p}p:{t}:{node}");
        let mut pipe = redis::pipe();
        let encoded = encode_partial(part);
        self.stats.partial_bytes += encoded.len() as u64;
        pipe.cmd("HSETNX").arg(&h).arg(child).arg(encoded).ignore();
        pipe.cmd("EXPIRE").arg(&h).arg(self.ttl).ignore();
        pipe.cmd("HLEN").arg(&h);
        pipe.cmd("MGET").arg(format!("{p}meta")).arg(format!("{p}abort")).arg(format!("{p}r:{t}"));
        pipe.cmd("HGET").arg(format!("{p}in:{t}:{node}")).arg("m");
        self.request();
        let (len, state, merger): (u32, Vec<Value>, Value) =
            pipe.query(&mut self.con).map_err(|e| self.store_err(at, e))?;
        match state.as_slice() {
            [Value::Nil, ..] => Err(self.lost(at)),
            [_, abort, _] if *abort != Value::Nil => Err(self.aborted(abort)),
            [_, _, rel] if *rel != Value::Nil => bytes(rel)
                .and_then(decode_release)
                .map(|r| Some(Arrival::Released(r)))
                .ok_or_else(|| self.bad_reply(at, rel)),
            [_, _, _] => match text(&merger) {
                Some(m) if m != child.to_string() => Ok(Some(Arrival::Wait)),
                Some(_) => Ok(None),
                None if len >= count => Ok(None),
                None => Ok(Some(Arrival::Wait)),
            },
            _ => Err(SyncError::Store {
                job: self.job.clone(),
                message: format!("{at}: unexpected reply from redis: {state:?}"),
            }),
        }
    }

    /// Names the functions whose partial for round `t` is missing; if none is, the group
    /// merger that never passed its sum on, or else the reducer (one more round trip, only
    /// after a timeout).
    fn missing(&mut self, t: u32) -> (Vec<u32>, Option<StalledMerger>, Option<u32>) {
        self.request();
        let tree = self.tree(t);
        let t = round_key(t);
        let nodes: Vec<String> =
            if tree.is_flat() { vec!["r".into()] } else { (0..tree.groups()).map(|g| g.to_string()).collect() };
        let mut pipe = redis::pipe();
        for node in nodes.iter().chain(std::iter::once(&"r".to_string())) {
            pipe.cmd("HKEYS").arg(format!("{}p:{t}:{node}", self.prefix));
            pipe.cmd("HKEYS").arg(format!("{}in:{t}:{node}", self.prefix));
            pipe.cmd("HGET").arg(format!("{}in:{t}:{node}", self.prefix)).arg("m");
        }
        let answers: Vec<(Vec<String>, Vec<String>, Option<u32>)> = pipe
            .query::<Vec<Value>>(&mut self.con)
            .unwrap_or_default()
            .chunks_exact(3)
            .map(|c| {
                let keys = |v: &Value| redis::from_redis_value_ref::<Vec<String>>(v).unwrap_or_default();
                (keys(&c[0]), keys(&c[1]), text(&c[2]).and_then(|m| m.parse().ok()))
            })
            .collect();
        let Some((root, groups)) = answers.split_last() else { return (Vec::new(), None, None) };
        let have = |(p, full, _): &(Vec<String>, Vec<String>, Option<u32>), i: u32| {
            p.iter().chain(full).any(|k| k == &i.to_string())
        };
        let missing: Vec<u32> = (0..self.workers).filter(|&w| !have(&groups[tree.group_of(w) as usize], w)).collect();
        if !missing.is_empty() {
            return (missing, None, None);
        }
        if !tree.is_flat() {
            for (g, group) in groups.iter().enumerate() {
                if let (Some(m), false) = (group.2, have(root, g as u32)) {
                    let members = tree.members(g as u32);
                    let stalled = StalledMerger { function: m, first: members.start, last: members.end - 1 };
                    return (missing, Some(stalled), None);
                }
            }
        }
        (missing, None, root.2)
    }

    /// The summation tree of round `t` (the census gathers every entry: flat).
    fn tree(&self, t: u32) -> Tree {
        if t == CENSUS {
            Tree::flat(self.workers)
        } else {
            Tree::new(self.workers)
        }
    }
}

impl RedisStore {
    /// `XREAD BLOCK` (up to `block`) on stream `s` and the job's abort stream `x`,
    /// from their first entry: the reply, or `None` on timeout.
    pub(super) fn read_stream(&mut self, s: &str, block: Duration, at: &str) -> Result<Option<Value>, SyncError> {
        self.request();
        let started = Instant::now();
        let v: Value = redis::cmd("XREAD")
            .arg("BLOCK")
            .arg(block.as_millis().max(1) as u64)
            .arg("STREAMS")
            .arg(s)
            .arg(format!("{}x", self.prefix))
            .arg("0-0")
            .arg("0-0")
            .query(&mut self.con)
            .map_err(|e| self.store_err(at, e))?;
        self.stats.wait_s += started.elapsed().as_secs_f64();
        match v {
            Value::Nil => Ok(None),
            Value::Array(_) => Ok(Some(v)),
            other => Err(self.bad_reply(at, &other)),
        }
    }
}

/// The fields and values of stream `name`'s first entry in an `XREAD` reply
/// (`[[stream, [[id, [field, value, ...]]]], ...]`).
pub(super) fn stream_fields(reply: &Value, name: &str) -> Option<Vec<Value>> {
    let Value::Array(streams) = reply else { return None };
    streams.iter().find_map(|st| match st {
        Value::Array(kv) if kv.len() == 2 && text(&kv[0]).as_deref() == Some(name) => match &kv[1] {
            Value::Array(es) => match es.first() {
                Some(Value::Array(e)) if e.len() == 2 => match &e[1] {
                    Value::Array(fv) => Some(fv.clone()),
                    _ => None,
                },
                _ => None,
            },
            _ => None,
        },
        _ => None,
    })
}

/// The round whose release's model round `t` steps on.
fn before(t: u32) -> Option<u32> {
    match t {
        CENSUS => None,
        0 => Some(CENSUS),
        t => Some(t - 1),
    }
}

impl RedisStore {
    /// Round `t`'s whole release (`r:`), for a waiter that does not hold the model its
    /// streamed changes apply to (one more round trip; `None`: not there any more).
    fn whole_release(&mut self, t: u32, at: &str) -> Result<Option<Release>, SyncError> {
        self.request();
        let v: Value = redis::cmd("GET")
            .arg(format!("{}r:{}", self.prefix, round_key(t)))
            .query(&mut self.con)
            .map_err(|e| self.store_err(at, e))?;
        match v {
            Value::Nil => Err(self.lost(at)),
            other => Ok(bytes(&other).and_then(decode_release)),
        }
    }
}

/// Where [`DECIDE`] sits in [`RedisStore`]'s scripts.
pub(super) const DECIDE_AT: usize = 1;

impl StateStore for RedisStore {
    fn join(&mut self) -> Result<crate::sync::JoinPoint, SyncError> {
        self.join_job()
    }

    fn arrive(&mut self, t: u32, w: u32, partial: &[f64]) -> Result<Arrival, SyncError> {
        let at = format!("function {w} arriving at {}", round_name(t));
        let tree = self.tree(t);
        let key = round_key(t);
        let group = tree.group_of(w);
        if tree.is_flat() {
            return match self.arrive_at(&key, "r", w, 0..self.workers, partial, &at)? {
                Step::Done(a) => Ok(a),
                Step::Merge(parts) => Ok(Arrival::Reduce(parts)),
            };
        }
        let (node, children) = (group.to_string(), tree.members(group));
        if let Some(done) = self.arrive_plain(&key, &node, w, children.len() as u32, partial, &at)? {
            return Ok(done);
        }
        let parts = match self.arrive_at(&key, &node, w, children, partial, &at)? {
            Step::Done(a) => return Ok(a),
            Step::Merge(parts) => parts,
        };
        let sum = sum_in_order(&parts).map_err(|e| SyncError::Partials { job: self.job.clone(), source: e })?;
        match self.arrive_at(&key, "r", group, 0..tree.groups(), &sum, &at)? {
            Step::Done(a) => Ok(a),
            Step::Merge(parts) => Ok(Arrival::Reduce(parts)),
        }
    }

    fn release(&mut self, t: u32, release: &Release) -> Result<(), SyncError> {
        let at = format!("releasing {}", round_name(t));
        let groups = if self.tree(t).is_flat() { 0 } else { self.tree(t).groups() };
        let prev = match t {
            CENSUS => String::new(),
            0 => round_key(CENSUS),
            t => round_key(t - 1),
        };
        let (ttl, r) = (self.ttl, encode_release(release));
        // Waiters stepped on the release before's model: the stream gives them its changes
        // when that is smaller (`r:` keeps the whole release, for late and rejoining functions).
        let changes = match &self.base {
            Some((b, model)) if Some(*b) == before(t) => Some(encode_release_from(release, model)),
            _ => None,
        };
        let streamed = changes.as_ref().unwrap_or(&r);
        let key = round_key(t);
        let v = self.script(2, &[&key, &ttl, &groups, &prev, &r, streamed]).map_err(|e| self.store_err(&at, e))?;
        self.base = Some((t, release.model.clone()));
        match text(&v).as_deref() {
            Some("ok") | Some("again") => Ok(()),
            Some("lost") => Err(self.lost(&at)),
            _ => Err(self.bad_reply(&at, &v)),
        }
    }

    fn await_release(&mut self, t: u32, w: u32) -> Result<Release, SyncError> {
        let at = format!("function {w} waiting for {}", round_name(t));
        let s = format!("{}s:{}", self.prefix, round_key(t));
        let Some(v) = self.read_stream(&s, self.timeout, &at)? else {
            let (missing, merger, reducer) = self.missing(t);
            return Err(SyncError::Timeout {
                job: self.job.clone(),
                worker: w,
                iteration: t,
                timeout: self.timeout,
                missing,
                merger,
                reducer,
            });
        };
        // The release first, if both are there.
        let entry = |name: &str| stream_fields(&v, name).filter(|fv| fv.len() == 2).map(|fv| fv[1].clone());
        let x = format!("{}x", self.prefix);
        if let Some(r) = entry(&s) {
            let b = bytes(&r).ok_or_else(|| self.bad_reply(&at, &v))?;
            let release = match &self.base {
                Some((round, model)) if Some(*round) == before(t) => decode_release_from(b, model),
                _ if b.len() > 9 && crate::sync::codec::is_changes(&b[9..]) => self.whole_release(t, &at)?,
                _ => decode_release(b),
            }
            .ok_or_else(|| self.bad_reply(&at, &v))?;
            self.base = Some((t, release.model.clone()));
            return Ok(release);
        }
        match entry(&x) {
            Some(a) => Err(self.aborted(&a)),
            None => Err(self.bad_reply(&at, &v)),
        }
    }

    fn abort(&mut self, w: u32, reason: &str) {
        let (ttl, msg) = (self.ttl, format!("{w}\n{reason}"));
        // Best effort: if Redis is gone, the others fail on their own.
        let _ = self.script(3, &[&ttl, &msg]);
    }

    fn stats(&self) -> SyncStats {
        self.stats
    }

    fn stale(&mut self) -> Option<&mut dyn crate::sync::stale::StaleStore> {
        Some(self)
    }
}
