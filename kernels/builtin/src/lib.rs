//! The builtin kernels as embedded WebAssembly components.
//!
//! `build.rs` compiles `kernels/kmeans` and `kernels/logreg` for `wasm32-wasip2`; this crate
//! embeds the results so that every host binary carries them.

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

/// The builtin kernels by name.
pub const BUILTIN: &[(&str, &[u8])] = &[("kmeans", KMEANS), ("logreg", LOGREG)];

/// The component bytes of the builtin kernel `name`, if there is one.
pub fn builtin(name: &str) -> Option<&'static [u8]> {
    BUILTIN.iter().find(|(n, _)| *n == name).map(|(_, b)| *b)
}

#[cfg(test)]
mod tests {
    #[test]
    fn builtins_are_components() {
        for (name, bytes) in super::BUILTIN {
            // A component's preamble: magic, then version 0x0d and layer 1.
            assert_eq!(&bytes[..8], b"\0asm\x0d\0\x01\0", "{name} is not a component");
        }
    }
}
