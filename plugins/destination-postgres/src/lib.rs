//! `destination-postgres`: Airbyte's destination-postgres (3.x, direct load)
//! as an airlock plugin — one Rust source built as a WASI component (the
//! sandboxed default, carried by the airlock binary), as a native CLI and as a
//! FROM-scratch Docker image.
//!
//! Each stream is one typed table `"<schema>"."<stream>"` with Airbyte's
//! columns (`_airbyte_raw_id`, `_airbyte_extracted_at`, `_airbyte_meta`,
//! `_airbyte_generation_id`) and one column per top-level field of the
//! stream's JSON schema ([`schema`]). Records are loaded with `COPY … FROM
//! STDIN` in one transaction per STATE; a state is echoed only once its rows
//! are committed ([`writer`]). Values that do not fit their column are NULL
//! and listed in `_airbyte_meta.changes` ([`encode`]).
//!
//! The connection is the standard library's blocking TCP, speaking the wire
//! format of `postgres-protocol` ([`client`]): that is what runs inside a
//! `wasm32-wasip2` component, where the host grants exactly the configured
//! host and port.

#![deny(missing_docs)]

pub mod client;
pub mod encode;
pub mod schema;
pub mod settings;
pub mod writer;

use airlock_plugin_sdk::{ConfiguredCatalog, Context, Destination, DestinationError, RecordWriter};
use serde_json::Value;

use crate::client::{Connection, quote_ident};
use crate::settings::Settings;
use crate::writer::{PgWriter, classify};

/// The PostgreSQL destination.
#[derive(Debug, Clone, Copy, Default)]
pub struct Postgres;

airlock_plugin_sdk::export_destination!(Postgres);

impl Destination for Postgres {
    fn spec(&self) -> Value {
        serde_json::from_str(include_str!("spec.json"))
            .expect("spec.json is valid JSON (checked by a test)")
    }

    /// Connects, and in a transaction that is rolled back creates the default
    /// schema (if missing) and a table in it: the rights a write needs.
    fn check(&self, config: &Value, _ctx: &Context) -> Result<(), String> {
        let settings = Settings::read(config).map_err(|e| e.message)?;
        let mut conn = Connection::connect(&settings.connect)
            .map_err(|e| classify(&e, "connecting").message)?;
        let schema = quote_ident(&settings.schema);
        let probe = conn.execute(&format!(
            "BEGIN; CREATE SCHEMA IF NOT EXISTS {schema}; \
             CREATE TABLE {schema}.\"_airbyte_connection_test\" (id bigint); ROLLBACK"
        ));
        if let Err(e) = probe {
            let _ = conn.execute("ROLLBACK");
            conn.close();
            return Err(classify(
                &e,
                &format!("creating a table in schema {:?}", settings.schema),
            )
            .message);
        }
        conn.close();
        Ok(())
    }

    fn open(
        &self,
        config: &Value,
        catalog: &ConfiguredCatalog,
        _ctx: &Context,
    ) -> Result<Box<dyn RecordWriter>, DestinationError> {
        let settings = Settings::read(config)?;
        Ok(Box::new(PgWriter::open(&settings, catalog)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_spec_is_valid_json_and_declares_its_endpoint_and_secret() {
        let spec = Postgres.spec();
        assert_eq!(spec["x-airlock-endpoints"][0]["host"], "/host");
        assert_eq!(
            spec["connectionSpecification"]["properties"]["password"]["airbyte_secret"],
            true
        );
    }
}
