//! Sandbox test plugin of the wrong world: it exports an interface named
//! `ifp:kernel/algorithm@0.1.0` that holds only `name` (no `validate`, `init`, `update`,
//! `describe`, `plan-sample` nor the `shard` resource). The host must refuse it before
//! running anything and list what it lacks.

wit_bindgen::generate!({
    inline: r#"
        package ifp:kernel@0.1.0;
        interface algorithm {
            name: func() -> string;
        }
        world kernel {
            export algorithm;
        }
    "#,
});

struct Impostor;

impl exports::ifp::kernel::algorithm::Guest for Impostor {
    fn name() -> String {
        "impostor".into()
    }
}

export!(Impostor);
