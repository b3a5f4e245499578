//! Support for the driver's integration tests (`driver/tests/*.rs`): the real services they
//! start (a `redis-server`, the `s3s-fs` S3-compatible server, AWS's Lambda Runtime Interface
//! Emulator running the real `bootstrap`, a byte-counting HTTP proxy), running the `ifp` binary, fixtures, and comparing
//! numbers with explicit tolerances.
//!
//! Every service listens on 127.0.0.1 and a port picked free, is started again on fresh ports
//! when a parallel test took its port, and is killed when its handle is dropped.
//!
//! Everything is re-exported here, so a test file needs one `use ifp_testkit::*;`. The modules
//! stay private: a glob import of a public `redis` module would shadow the `redis` crate in the
//! tests that use both.

mod bins;
mod json;
mod lambda;
mod ports;
mod procs;
mod proxy;
mod redis;
mod run;
mod s3;

pub use self::redis::RedisServer;
pub use bins::{bootstrap, ifp_bin, worker_bin};
pub use json::{assert_close, fixture, floats, load_json};
pub use lambda::{rie_path, Emulator};
pub use ports::{free_port, start_on_free_port, wait_for_port};
pub use procs::processes_with_arg;
pub use proxy::{ByteProxy, ProxyMode};
pub use run::{failure_line, ifp, ifp_aws, ifp_aws_child, ifp_ok, run_json};
pub use s3::{test_credentials, S3Server, BUCKET, KEY, SECRET};
