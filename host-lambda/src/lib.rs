//! `ifp-host-lambda`: the AWS Lambda host, a thin adapter over `ifp-host`.
//!
//! One invocation is one function of a job: the event is its [`ifp_host::FunctionTask`], the
//! response its [`ifp_host::FunctionReport`] (with the invocation's cold start and billing
//! inputs), and a failure is the typed [`ifp_host::FunctionFailure`] as Lambda's error
//! (`errorType` `ifp.<Kind>`). [`handler::handle`] translates; the lifecycle is
//! [`ifp_host::run_task::run_task`].

pub mod handler;
