//! The `ifp` driver as a library: what `ifp run`, `ifp sweep`, `ifp bench` and `ifp gen` do,
//! for the `ifp` binary (`main.rs`, which only parses the command line and reports errors)
//! and for programs that embed the same job code (the Python package, `python/`), so both
//! produce the same result JSON for the same arguments.

pub mod backend;
pub mod bench;
pub mod gen;
pub mod interrupt;
pub mod model;
pub mod output;
pub mod pricing;
pub mod result;
pub mod run;
pub mod sweep;
