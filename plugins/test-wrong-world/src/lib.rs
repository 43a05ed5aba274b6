//! `test-wrong-world`: a component that exports `airlock:destination@9.0.0` with
//! another shape, so airlock's tests can check it is refused with a clear error.

#[cfg(target_arch = "wasm32")]
mod component {
    #![allow(
        missing_docs,
        unsafe_code,
        reason = "wit-bindgen's generated export glue"
    )]
    wit_bindgen::generate!({ path: "wit", world: "wrong" });

    struct Wrong;

    impl exports::airlock::destination::destination::Guest for Wrong {
        fn spec() -> u32 {
            9
        }
    }

    export!(Wrong);
}
