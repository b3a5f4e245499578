//! The `ifp` driver as a library: what `ifp run`, `ifp sweep`, `ifp bench` and `ifp gen` do,
//! for the `ifp` binary (`main.rs`, which only parses the command line and reports errors)
//! and for programs that embed the same job code (the Python package, `python/`), so both
//! produce the same result JSON for the same arguments.

pub mod backend;
pub mod bench;
pub mod gen;
pub mod gen_sparse;
pub mod interrupt;
pub mod model;
pub mod model_check;
pub mod output;
pub mod predict;
pub mod pricing;
pub mod progress;
pub mod result;
pub mod run;
pub mod sweep;

/// A whole number (0 included: where 0 is wrong, the check that knows why says so).
pub fn whole_number(s: &str) -> Result<u64, String> {
    match s.trim().parse::<i128>() {
        Ok(n) if n >= 0 && n <= u64::MAX as i128 => Ok(n as u64),
        Ok(_) => Err("expected a whole number (0 or more)".into()),
        Err(_) => Err("not a whole number".into()),
    }
}
