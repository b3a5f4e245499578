//! The sandbox a kernel runs in: its limits ([`Sandbox`]), the capability-free WASI host state
//! of each store ([`HostState`], frozen clocks, fixed randomness, captured stderr), the epoch
//! ticker behind call deadlines, and how a failure inside the sandbox reads in an error.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::stderr::GuestStderr;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};

/// How kernels are sandboxed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Sandbox {
    /// Maximum linear memory per instance, in bytes (`None`: wasmtime's default of 4 GiB).
    pub memory_limit: Option<usize>,
    /// CPU deadline per call into the kernel (`None`: no deadline, no epoch checks).
    pub call_timeout: Option<Duration>,
}

/// Epoch tick used for call deadlines.
const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Per-store host state: the capability-free WASI context, the memory limiter and the
/// guest's captured stderr.
pub struct HostState {
    wasi: WasiCtx,
    table: ResourceTable,
    limits: StoreLimits,
    limits_memory: Option<usize>,
    stderr: GuestStderr,
}

/// A store for one instance under `sandbox`: the capability-free WASI context, the memory cap
/// and, when a call timeout is set, epoch interruption (no deadline until a call sets one).
pub(super) fn new_store(engine: &Engine, sandbox: &Sandbox) -> Store<HostState> {
    let mut limits = StoreLimitsBuilder::new().trap_on_grow_failure(true);
    if let Some(m) = sandbox.memory_limit {
        limits = limits.memory_size(m);
    }
    let stderr = GuestStderr::default();
    let state = HostState {
        wasi: sandbox_wasi(stderr.clone()),
        table: ResourceTable::new(),
        limits: limits.build(),
        limits_memory: sandbox.memory_limit,
        stderr,
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limits);
    if sandbox.call_timeout.is_some() {
        store.epoch_deadline_trap();
        store.set_epoch_deadline(u64::MAX / 2);
    }
    store
}

/// The deadline of one call, in epoch ticks (`None`: no call timeout).
pub(super) fn call_deadline(sandbox: &Sandbox) -> Option<u64> {
    sandbox.call_timeout.map(|t| (t.as_millis() as u64).div_ceil(EPOCH_TICK.as_millis() as u64).max(1))
}

/// Starts the thread that advances `engine`'s epoch every [`EPOCH_TICK`] while the engine
/// lives; storing `true` in the returned flag stops it.
pub(super) fn start_ticker(engine: &Engine) -> Arc<AtomicBool> {
    let stop = Arc::new(AtomicBool::new(false));
    let (s, e) = (stop.clone(), engine.weak());
    std::thread::spawn(move || {
        while !s.load(Ordering::Relaxed) {
            std::thread::sleep(EPOCH_TICK);
            match e.upgrade() {
                Some(e) => e.increment_epoch(),
                None => break,
            }
        }
    });
    stop
}

/// A wall clock frozen at the Unix epoch.
struct FrozenWallClock;
impl HostWallClock for FrozenWallClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

/// A monotonic clock that never advances.
struct FrozenMonotonicClock;
impl HostMonotonicClock for FrozenMonotonicClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// The WASI context every kernel gets: no capabilities, deterministic clocks and random.
fn sandbox_wasi(stderr: GuestStderr) -> WasiCtx {
    let mut b = WasiCtx::builder();
    b.allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .socket_addr_check(|_, _| Box::pin(async { false }))
        .stderr(stderr)
        .wall_clock(FrozenWallClock)
        .monotonic_clock(FrozenMonotonicClock)
        .secure_random(wasmtime_wasi::Deterministic::new(vec![0x5e, 0xed]))
        .insecure_random(wasmtime_wasi::Deterministic::new(vec![0x5e, 0xed]))
        .insecure_random_seed(0)
        .max_random_size(1 << 16);
    b.build()
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

/// Turns a wasmtime error into one line, naming traps by their kind and quoting the last
/// line the guest wrote to stderr (a Rust panic message, typically).
pub(super) fn describe(e: wasmtime::Error, store: &Store<HostState>) -> String {
    let memory_cap = store.data().limits_memory;
    let base = match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => "exceeded its time limit per call (interrupted)".to_string(),
        Some(Trap::OutOfFuel) => "ran out of fuel".into(),
        // `Trap`'s Display reads "wasm trap: ...".
        Some(t) => format!("trapped: {}", t.to_string().trim_start_matches("wasm trap: ")),
        // `trap_on_grow_failure` reports a refused `memory.grow` as a plain error.
        None if e.chain().any(|c| c.to_string().starts_with("forcing trap when growing memory")) => match memory_cap {
            Some(m) => format!("exceeded its memory limit of {} MiB", m >> 20),
            None => "exceeded its memory limit".to_string(),
        },
        None => {
            let msg = format!("{e:#}");
            msg.lines().next().unwrap_or("unknown error").to_string()
        }
    };
    let (said, _) = store.data().stderr.contents();
    let said = String::from_utf8_lossy(&said);
    // The last line that is not std's "note: run with RUST_BACKTRACE=1" hint.
    match said.lines().rev().map(str::trim).find(|l| !l.is_empty() && !l.starts_with("note: ")) {
        Some(last) => format!("{base} (guest stderr: {last})"),
        None => base,
    }
}
