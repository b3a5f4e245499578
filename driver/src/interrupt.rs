//! SIGINT, SIGTERM and SIGHUP while `ifp` runs: recorded, not fatal, so that the driver can
//! stop every function it started (local processes are killed; with Redis the job is marked
//! aborted, so functions elsewhere, such as Lambda invocations, leave at their next
//! synchronisation) and exit with one line naming the signal.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

static RECEIVED: OnceLock<Arc<AtomicUsize>> = OnceLock::new();

/// Records the signals from now on (idempotent). A second signal while the driver is
/// already stopping ends the process at once (exit status 130).
pub fn install() {
    RECEIVED.get_or_init(|| {
        let number = Arc::new(AtomicUsize::new(0));
        let again = Arc::new(AtomicBool::new(false));
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            // Actions run in registration order: the exit checks the flag the first signal set.
            let _ = signal_hook::flag::register_conditional_shutdown(sig, 130, again.clone());
            let _ = signal_hook::flag::register(sig, again.clone());
            let _ = signal_hook::flag::register_usize(sig, number.clone(), sig as usize);
        }
        number
    });
}

/// The signal received, by name, if any.
pub fn received() -> Option<&'static str> {
    let sig = RECEIVED.get()?.load(Ordering::SeqCst);
    match sig as i32 {
        0 => None,
        SIGINT => Some("SIGINT"),
        SIGTERM => Some("SIGTERM"),
        SIGHUP => Some("SIGHUP"),
        _ => Some("a signal"),
    }
}
