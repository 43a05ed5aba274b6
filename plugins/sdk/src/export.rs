//! [`export_destination!`](crate::export_destination): the one line that makes
//! a destination crate a WASI component too ([`export_destination_v0_1!`](crate::export_destination_v0_1)
//! for the older world). It is defined on every target and
//! expands to nothing off `wasm32`, so a plugin's `lib.rs` builds natively and
//! as a component alike.

/// Exports a [`Destination`](crate::Destination) as the component world
/// `airlock:destination@0.2.0` / `destination-plugin`: batches arrive with the
/// host's framing table, so records reach the writer without an envelope
/// parse. (For a host older than 0.2.0, use
/// [`export_destination_v0_1!`](crate::export_destination_v0_1) instead.)
///
/// Invoke it once, at the top level of the plugin's `lib.rs`, with an
/// expression that builds the destination: a unit struct's name, or a
/// constructor call.
///
/// ```
/// # use airlock_plugin_sdk::{ConfiguredCatalog, Context, Destination, DestinationError, RecordWriter};
/// # use serde_json::{Value, json};
/// pub struct MyDestination;
///
/// impl Destination for MyDestination {
///     // …
/// #   fn spec(&self) -> Value { json!({}) }
/// #   fn check(&self, _: &Value, _: &Context) -> Result<(), String> { Ok(()) }
/// #   fn open(&self, _: &Value, _: &ConfiguredCatalog, _: &Context)
/// #       -> Result<Box<dyn RecordWriter>, DestinationError> { Err(DestinationError::system("x")) }
/// }
///
/// airlock_plugin_sdk::export_destination!(MyDestination);
/// // or, for a destination built by a function:
/// // airlock_plugin_sdk::export_destination!(MyDestination::new());
/// # fn main() {}
/// ```
///
/// The expression is evaluated afresh for every `spec`, `check` and
/// `writer.open` call, so it should be cheap; a writer keeps what its
/// [`RecordWriter`](crate::RecordWriter) holds and needs nothing else.
///
/// The crate must be built with `crate-type = ["cdylib", "rlib"]`: building
/// it with `cargo build --target wasm32-wasip2` then yields
/// `<crate_name>.wasm`, a component that exports
/// `airlock:destination/destination@0.2.0` and imports
/// `airlock:destination/host@0.2.0` plus WASI. Off `wasm32` the macro expands
/// to nothing.
///
/// The expansion only glues: each export calls a function of
/// [`component`](crate::component) (`spec`, `check`, `ComponentWriter`),
/// which install the panic hook, route [`host_log`](crate::host_log) to the
/// host and convert errors.
#[cfg(not(feature = "abi-v0-1"))]
#[macro_export]
macro_rules! export_destination {
    ($destination:expr $(,)?) => {
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
                    frames: ::std::vec::Vec<__wit::Frame>,
                ) -> ::std::result::Result<__wit::Framed, __wit::DestinationError> {
                    self.0.write_batch(&messages, frames)
                }
                fn close(&self) -> ::std::result::Result<__wit::Framed, __wit::DestinationError> {
                    self.0.close()
                }
            }

            $crate::component::bindings::export_airlock_component!(
                __AirlockComponent with_types_in $crate::component::bindings
            );
        };
    };
}

/// With the SDK's `abi-v0-1` feature, [`export_destination!`] exports the
/// older world `airlock:destination@0.1.0` instead: a plugin crate built with
/// `--features airlock-plugin-sdk/abi-v0-1` is the same destination as a 0.1.0
/// component (airlock's tests keep such builds to prove old plugins still run).
#[cfg(feature = "abi-v0-1")]
#[macro_export]
macro_rules! export_destination {
    ($destination:expr $(,)?) => {
        $crate::export_destination_v0_1!($destination);
    };
}

/// Exports a [`Destination`](crate::Destination) as the older component world
/// `airlock:destination@0.1.0`, where batches are newline-delimited lines the
/// plugin parses. Use it only to run under a host that predates 0.2.0 (airlock
/// links both versions and prefers 0.2.0); airlock's tests use it to keep 0.1.0
/// plugins working. Same usage as [`export_destination!`](crate::export_destination).
#[macro_export]
macro_rules! export_destination_v0_1 {
    ($destination:expr $(,)?) => {
        #[cfg(target_arch = "wasm32")]
        const _: () = {
            use $crate::component::v0_1::bindings::exports::airlock::destination::destination as __wit;

            struct __AirlockComponent;
            struct __AirlockWriter($crate::component::v0_1::ComponentWriter);

            impl __wit::Guest for __AirlockComponent {
                type Writer = __AirlockWriter;
                fn spec() -> ::std::string::String {
                    $crate::component::v0_1::spec(&$destination)
                }
                fn check(config: ::std::string::String) -> __wit::ConnectionStatus {
                    $crate::component::v0_1::check(&$destination, &config)
                }
            }

            impl __wit::GuestWriter for __AirlockWriter {
                fn open(
                    config: ::std::string::String,
                    catalog: ::std::string::String,
                ) -> ::std::result::Result<__wit::Writer, __wit::DestinationError> {
                    $crate::component::v0_1::ComponentWriter::open(&$destination, &config, &catalog)
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

            $crate::component::v0_1::bindings::export_airlock_component_v0_1!(
                __AirlockComponent with_types_in $crate::component::v0_1::bindings
            );
        };
    };
}
