//! Kernels that misbehave on purpose, for the sandbox tests. Each is a trivial row-counting
//! algorithm (model `[0]`, partial `[rows]`) whose `shard.step` does one hostile thing:
//! [`Spin`] never returns, [`Hog`] allocates without bound, [`Panic`] panics (a trap),
//! [`Snoop`] tries to read a host file and fails the step with the error it got (were the
//! file readable, the step would succeed and the job with it).

use std::marker::PhantomData;

use ifp_kernel_math::{Algorithm, DataShape, ModelField, Param, SamplePlan, Shard, Sizes, UpdateResult};

pub use ifp_kernel_guest;

/// What a hostile step does.
pub trait Behaviour: 'static {
    const NAME: &'static str;
    /// Values of the model and of every partial (the step's result).
    const VALUES: usize = 1;
    fn step(rows: u64) -> Result<Vec<f64>, String>;
}

/// A row-counting algorithm whose step is `B::step`.
pub struct Hostile<B>(PhantomData<B>);

/// The rows a shard holds.
pub struct Rows<B>(u64, u32, PhantomData<B>);

impl<B: Behaviour> Algorithm for Hostile<B> {
    type Shard = Rows<B>;
    const NAME: &'static str = B::NAME;
    fn validate(_: &[Param], _: DataShape) -> Result<(), String> {
        Ok(())
    }
    fn plan_sample(_: &[Param], _: DataShape) -> Result<SamplePlan, String> {
        Ok(SamplePlan::Head(0))
    }
    fn init(_: &[Param], _: DataShape, _: &[f32], _: &[f32], _: &[f64]) -> Result<Vec<f64>, String> {
        Ok(vec![0.0; B::VALUES])
    }
    fn sizes(_: &[Param], _: DataShape) -> Result<Sizes, String> {
        Sizes::of(B::VALUES, B::VALUES)
    }
    fn update(_: &[Param], _: DataShape, _: &[f64], total: &[f64]) -> Result<UpdateResult, String> {
        Ok(UpdateResult { model: total.to_vec(), loss: 0.0, converged: true })
    }
    fn describe(_: &[Param], _: DataShape, model: &[f64]) -> Result<Vec<ModelField>, String> {
        let shape = if model.len() == 1 { vec![] } else { vec![model.len() as u32] };
        Ok(vec![ModelField { name: "rows".into(), shape, values: model.to_vec() }])
    }
    fn new_shard(shape: DataShape) -> Self::Shard {
        Rows(0, shape.cols, PhantomData)
    }
}

impl<B: Behaviour> Shard for Rows<B> {
    fn append(&mut self, features: &[f32], _: &[f32]) -> Result<(), String> {
        self.0 += (features.len() / self.1.max(1) as usize) as u64;
        Ok(())
    }
    fn rows(&self) -> u64 {
        self.0
    }
    fn step(&mut self, _: &[f64]) -> Result<Vec<f64>, String> {
        B::step(self.0)
    }
    fn assignments(&self) -> Vec<u32> {
        Vec::new()
    }
}

/// Loops forever.
pub struct Spin;
impl Behaviour for Spin {
    const NAME: &'static str = "spin";
    fn step(rows: u64) -> Result<Vec<f64>, String> {
        let mut x = rows;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
    }
}

/// Allocates (and touches) 1 MiB after 1 MiB, forever.
pub struct Hog;
impl Behaviour for Hog {
    const NAME: &'static str = "hog";
    fn step(_: u64) -> Result<Vec<f64>, String> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            hoard.push(std::hint::black_box(vec![1u8; 1 << 20]));
        }
    }
}

/// Panics, which traps (`panic = "abort"`, or an `unreachable` after unwinding is unavailable).
pub struct Panic;
impl Behaviour for Panic {
    const NAME: &'static str = "panic";
    fn step(rows: u64) -> Result<Vec<f64>, String> {
        if std::hint::black_box(rows) < u64::MAX {
            panic!("hostile kernel panics on purpose");
        }
        Ok(vec![rows as f64])
    }
}

/// The file [`Snoop`] tries to read: present on every Linux host.
pub const SNOOP_PATH: &str = "/etc/passwd";

/// Tries to read a host file.
pub struct Snoop;
impl Behaviour for Snoop {
    const NAME: &'static str = "snoop";
    fn step(rows: u64) -> Result<Vec<f64>, String> {
        match std::fs::read(SNOOP_PATH) {
            Ok(bytes) => Ok(vec![rows as f64 + bytes.len() as f64 * 0.0]),
            Err(e) => Err(format!("cannot read {SNOOP_PATH}: {e}")),
        }
    }
}

/// Writes 64 KiB to stderr in every step (a plugin that logs a lot), then counts its rows.
pub struct Chatty;
impl Behaviour for Chatty {
    const NAME: &'static str = "chatty";
    fn step(rows: u64) -> Result<Vec<f64>, String> {
        for line in 0..1024 {
            eprintln!("chatty step over {rows} rows, line {line:04}: {}", "x".repeat(20));
        }
        Ok(vec![rows as f64])
    }
}

/// Reads the wall clock, the monotonic clock and 8 random bytes twice each and returns
/// `[rows, wall 1 (ns since the epoch), wall 2, monotonic 2 - 1 (ns), random 1, random 2]`.
pub struct Clocks;
impl Behaviour for Clocks {
    const NAME: &'static str = "clocks";
    const VALUES: usize = 6;
    fn step(rows: u64) -> Result<Vec<f64>, String> {
        let wall =
            || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(-1.0, |d| d.as_nanos() as f64);
        let random = || -> Result<f64, String> {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(|e| e.to_string())?;
            Ok(u64::from_le_bytes(b) as f64)
        };
        let (w1, m1, r1) = (wall(), std::time::Instant::now(), random()?);
        let (w2, m2, r2) = (wall(), std::time::Instant::now(), random()?);
        Ok(vec![rows as f64, w1, w2, (m2 - m1).as_nanos() as f64, r1, r2])
    }
}
