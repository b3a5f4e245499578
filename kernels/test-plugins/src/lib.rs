//! Paths of the plugin components the tests run: the example plugins (`LINREG`, from
//! `kernels/examples/linreg`, contract 0.1.0; `LINREG_SPARSE`, from
//! `kernels/examples/linreg-sparse`, 0.2.0 with sparse rows) and the hostile sandbox test plugins (`SPIN`: loops forever in
//! `shard.step`; `HOG`: allocates without bound; `PANIC`: panics; `SNOOP`: tries to read
//! `/etc/passwd`; `CHATTY`: writes 64 KiB to stderr per step; `CLOCKS`: reads the clocks and random bytes twice; `WRONG_WORLD`: exports an `ifp:kernel/algorithm` with only `name`).
//! `build.rs` compiles them to `wasm32-wasip2` components.

include!(concat!(env!("OUT_DIR"), "/plugins.rs"));
