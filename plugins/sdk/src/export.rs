//! [`export_destination!`](crate::export_destination): the one line that makes a
//! destination crate a WASI component too. Defined on every target (it expands to
//! nothing off `wasm32`), so a plugin's `lib.rs` builds natively and as a component.

/// Exports a [`Destination`](crate::Destination) as the `airlock:destination@0.1.0` component world.
///
/// Invoke it once in the plugin's `lib.rs` with an expression that builds the
/// destination; it expands to nothing except on `wasm32`, so the same crate builds
/// natively too:
///
/// ```ignore
/// airlock_plugin_sdk::export_destination!(MyDestination);
/// ```
#[macro_export]
macro_rules! export_destination {
    ($destination:expr) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::component::bindings::exports::airlock::destination::destination as __wit;

            struct __AirlockComponent;
            struct __AirlockWriter($crate::component::ComponentWriter);

            impl __wit::Guest for __AirlockComponent {
                type Writer = __AirlockWriter;
                fn spec() -> ::std::string::String {
                    $crate::component::spec(&$destination)
                }
                fn check(config: ::std::string::String) -> __wit::ConnectionStatus {
                    $crate::component::check(&$destination, &config)
                }
            }

            impl __wit::GuestWriter for __AirlockWriter {
                fn open(
                    config: ::std::string::String,
                    catalog: ::std::string::String,
                ) -> ::std::result::Result<__wit::Writer, __wit::DestinationError> {
                    $crate::component::ComponentWriter::open(&$destination, &config, &catalog)
                        .map(|writer| __wit::Writer::new(__AirlockWriter(writer)))
                }
                fn write_batch(
                    &self,
                    messages: ::std::vec::Vec<u8>,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, __wit::DestinationError> {
                    self.0.write_batch(&messages)
                }
                fn close(
                    &self,
                ) -> ::std::result::Result<::std::vec::Vec<u8>, __wit::DestinationError> {
                    self.0.close()
                }
            }

            $crate::component::bindings::export_airlock_component!(__AirlockComponent);
        };
    };
}
