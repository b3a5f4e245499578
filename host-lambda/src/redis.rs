//! The production [`Connect`]: one Redis connection per function ([`RedisStore`]), joined at
//! the iteration the job has reached, with setup failures sorted into what a retry can and
//! cannot fix.

use std::time::Duration;

use ifp_host::redis_store::{RedisSetupError, RedisStore};
use ifp_host::sync::{StateStore, SyncError};

use crate::event::{ErrorKind, FunctionError, JobEvent};
use crate::handler::{Connect, Entry};

/// Connects functions to their job on Redis.
pub struct RedisConnect;

impl Connect for RedisConnect {
    fn connect(
        &self,
        ev: &JobEvent,
        url: Option<&str>,
        timeout: Duration,
    ) -> Result<(Box<dyn StateStore>, Entry), FunctionError> {
        let err = |kind, message: String| FunctionError::new(kind, ev.worker, message);
        let url = url.ok_or_else(|| {
            err(
                ErrorKind::BadEvent,
                "no Redis URL: set \"redis\" in the event or IFP_REDIS_URL in the function's environment".into(),
            )
        })?;
        let mut store = RedisStore::connect(url, &ev.job, ev.worker, ev.workers, timeout).map_err(|e| {
            let kind = match e {
                RedisSetupError::Url { .. } | RedisSetupError::JobId(_) => ErrorKind::BadEvent,
                RedisSetupError::JobExists { .. } => ErrorKind::Failed,
                RedisSetupError::Connect { .. } | RedisSetupError::Command { .. } => ErrorKind::Transient,
            };
            err(kind, e.to_string())
        })?;
        let join = store.join().map_err(|e| {
            let kind = if matches!(e, SyncError::Store { .. }) { ErrorKind::Transient } else { ErrorKind::Failed };
            err(kind, e.to_string())
        })?;
        Ok((Box::new(store), Entry { iteration: join.iteration, last: join.last, before: join.before }))
    }
}
