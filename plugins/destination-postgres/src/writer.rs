//! `writer`: one `write` run into PostgreSQL. Prepares each stream's table at
//! open (creating it, adding new columns, refusing incompatible types), streams
//! the records with `COPY … FROM STDIN` inside one transaction per STATE, and
//! applies the sync modes: `append` copies into the table, `overwrite` into a
//! staging table swapped in at a clean close once the stream is COMPLETE,
//! `append_dedup` into a session-local table merged into the table at each
//! commit.
//!
//! The SDK echoes a state only after [`RecordWriter::flush`] returns, and
//! `flush` returns only once the server has committed every row before it.
//! States that arrive within `commit_interval_ms` of the last commit are held
//! back and committed with a later one (or when the input runs dry), so one
//! transaction may cover many states; none is echoed before its rows commit.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use airlock_plugin_sdk::{
    ConfiguredCatalog, DestinationError, DestinationSyncMode, Emitter, LogLevel, Record,
    RecordWriter, host_log,
};

use crate::client::{Connection, PgError, quote_ident, quote_literal};
use crate::encode::RowEncoder;
use crate::schema::{META_COLUMNS, TableLayout, staging_name};
use crate::settings::Settings;

/// How a stream's rows reach its table.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Target {
    /// Straight into the final table.
    Final,
    /// Into a staging table in the same schema (overwrite).
    Staging(String),
    /// Into a temporary table, merged into the final table at each commit
    /// with the two statements given (delete the superseded rows, insert the
    /// winners).
    Dedup {
        temp: String,
        delete: String,
        insert: String,
    },
}

/// One stream of the run.
#[derive(Debug)]
struct Loader {
    descriptor: String,
    layout: TableLayout,
    target: Target,
    encoder: RowEncoder,
    copy_sql: String,
    buffer: String,
    /// Rows sent in the open transaction.
    rows_in_transaction: u64,
    complete: bool,
    nulled_values: u64,
}

/// The [`RecordWriter`] of a run.
pub struct PgWriter {
    conn: Option<Connection>,
    loaders: Vec<Loader>,
    in_transaction: bool,
    /// The loader whose COPY is open.
    open_copy: Option<usize>,
    batch_bytes: usize,
    rng: fastrand::Rng,
    commit_interval: Duration,
    last_commit: Instant,
}

/// A database error as a [`DestinationError`], with the fix where one is known.
pub fn classify(error: &PgError, doing: &str) -> DestinationError {
    let message = format!("{doing}: {error}");
    match error {
        PgError::Connect { .. } => DestinationError::transient(message),
        PgError::Io(_) => DestinationError::transient(format!(
            "{message}. Every state echoed before this is committed; a rerun resumes from the last one"
        )),
        PgError::Server(e) => match e.code.as_str() {
            "28P01" | "28000" => DestinationError::config(format!(
                "{message}. Fix: check username and password in the config"
            )),
            "3D000" => DestinationError::config(format!(
                "{message}. Fix: create the database, or set database to one that exists"
            )),
            "42501" => DestinationError::config(format!(
                "{message}. Fix: grant the user CREATE on the database and USAGE, CREATE on the schema"
            )),
            code if code.starts_with("08") || code.starts_with("53") || code.starts_with("57") => {
                DestinationError::transient(message)
            }
            _ => DestinationError::system(message),
        },
        PgError::Protocol(_) => DestinationError::system(message),
    }
}

impl PgWriter {
    /// Connects and prepares every stream of `catalog`.
    ///
    /// # Errors
    ///
    /// A config error for an unusable config, stream or type change; a
    /// transient error when the server cannot be reached.
    pub fn open(
        settings: &Settings,
        catalog: &ConfiguredCatalog,
    ) -> Result<Self, DestinationError> {
        let mut layouts = Vec::new();
        let mut tables = HashSet::new();
        for stream in &catalog.streams {
            let descriptor = stream.stream.descriptor().to_string();
            match stream.destination_sync_mode {
                DestinationSyncMode::Append
                | DestinationSyncMode::Overwrite
                | DestinationSyncMode::AppendDedup => {}
                other => {
                    return Err(DestinationError::config(format!(
                        "stream {descriptor}: destination sync mode {other:?} is not supported. \
                         Fix: use append, overwrite or append_dedup"
                    )));
                }
            }
            let layout = TableLayout::of(stream, &settings.schema)?;
            if !tables.insert((layout.schema.clone(), layout.table.clone())) {
                return Err(DestinationError::config(format!(
                    "stream {descriptor}: another stream of the catalog also maps to table {}. \
                     Fix: give the streams different names or namespaces",
                    layout.qualified()
                )));
            }
            layouts.push((stream, descriptor, layout));
        }
        let mut conn =
            Connection::connect(&settings.connect).map_err(|e| classify(&e, "connecting"))?;
        if settings.tls_preferred_but_absent {
            host_log(
                LogLevel::Warn,
                "ssl_mode asks for TLS if available; this destination-postgres build has no TLS, \
                 so the connection is not encrypted",
            );
        }
        let mut schemas = HashSet::new();
        let mut loaders = Vec::new();
        for (index, (stream, descriptor, layout)) in layouts.into_iter().enumerate() {
            if schemas.insert(layout.schema.clone()) {
                ensure_schema(&mut conn, &layout.schema)?;
            }
            ensure_table(&mut conn, &descriptor, &layout)?;
            recover_staging(&mut conn, &descriptor, &layout)?;
            let target = match stream.destination_sync_mode {
                DestinationSyncMode::Overwrite => {
                    let staging = format!(
                        "{}.{}",
                        quote_ident(&layout.schema),
                        quote_ident(&layout.staging_table())
                    );
                    run(
                        &mut conn,
                        &format!("CREATE TABLE {staging} ({})", layout.column_definitions()),
                        &format!("creating the staging table of stream {descriptor}"),
                    )?;
                    Target::Staging(staging)
                }
                DestinationSyncMode::AppendDedup => {
                    dedup_target(&mut conn, index, &descriptor, &layout)?
                }
                _ => Target::Final,
            };
            let into = match &target {
                Target::Final => layout.qualified(),
                Target::Staging(staging) => staging.clone(),
                Target::Dedup { temp, .. } => temp.clone(),
            };
            let copy_sql = format!("COPY {into} ({}) FROM STDIN", layout.column_list());
            let encoder = RowEncoder::new(&layout, stream.generation_id(), stream.sync_id());
            loaders.push(Loader {
                descriptor,
                layout,
                target,
                encoder,
                copy_sql,
                buffer: String::new(),
                rows_in_transaction: 0,
                complete: false,
                nulled_values: 0,
            });
        }
        Ok(Self {
            conn: Some(conn),
            loaders,
            in_transaction: false,
            open_copy: None,
            batch_bytes: settings.batch_bytes,
            rng: fastrand::Rng::new(),
            commit_interval: settings.commit_interval,
            last_commit: Instant::now(),
        })
    }

    fn conn(&mut self) -> Result<&mut Connection, DestinationError> {
        self.conn.as_mut().ok_or_else(|| {
            DestinationError::transient("the connection to PostgreSQL was lost earlier in this run")
        })
    }

    /// Runs `sql`; a broken connection is dropped so that nothing else is tried on it.
    fn run(&mut self, sql: &str, doing: &str) -> Result<(), DestinationError> {
        let result = self.conn()?.execute(sql);
        self.settle(result, doing)
    }

    fn settle<T>(
        &mut self,
        result: Result<T, PgError>,
        doing: &str,
    ) -> Result<T, DestinationError> {
        result.map_err(|e| {
            if matches!(e, PgError::Io(_) | PgError::Protocol(_)) {
                self.conn = None;
            }
            classify(&e, doing)
        })
    }

    /// Sends loader `index`'s buffered rows into the open transaction.
    fn ship(&mut self, index: usize) -> Result<(), DestinationError> {
        if !self.in_transaction {
            self.run("BEGIN", "starting a transaction")?;
            self.in_transaction = true;
        }
        if self.open_copy != Some(index) {
            self.end_copy()?;
            let sql = self.loaders[index].copy_sql.clone();
            let doing = format!(
                "starting the COPY of stream {}",
                self.loaders[index].descriptor
            );
            let result = self.conn()?.copy_in(&sql);
            self.settle(result, &doing)?;
            self.open_copy = Some(index);
        }
        let buffer = std::mem::take(&mut self.loaders[index].buffer);
        let result = self.conn()?.copy_data(buffer.as_bytes());
        let doing = format!("sending rows of stream {}", self.loaders[index].descriptor);
        self.settle(result, &doing)?;
        let mut buffer = buffer;
        buffer.clear();
        self.loaders[index].buffer = buffer;
        Ok(())
    }

    fn end_copy(&mut self) -> Result<(), DestinationError> {
        let Some(index) = self.open_copy.take() else {
            return Ok(());
        };
        let result = self.conn()?.copy_done();
        let doing = format!("loading rows of stream {}", self.loaders[index].descriptor);
        let rows = self.settle(result, &doing)?;
        self.loaders[index].rows_in_transaction += rows;
        Ok(())
    }

    /// Sends everything buffered, merges the dedup streams and commits.
    fn commit(&mut self) -> Result<(), DestinationError> {
        for index in 0..self.loaders.len() {
            if !self.loaders[index].buffer.is_empty() {
                self.ship(index)?;
            }
        }
        self.end_copy()?;
        for index in 0..self.loaders.len() {
            let loader = &self.loaders[index];
            if loader.rows_in_transaction == 0 {
                continue;
            }
            if let Target::Dedup { delete, insert, .. } = &loader.target {
                let (delete, insert) = (delete.clone(), insert.clone());
                let doing = format!("deduplicating stream {}", loader.descriptor);
                self.run(&delete, &doing)?;
                self.run(&insert, &doing)?;
            }
        }
        if self.in_transaction {
            self.run("COMMIT", "committing")?;
            self.in_transaction = false;
        }
        for loader in &mut self.loaders {
            loader.rows_in_transaction = 0;
        }
        self.last_commit = Instant::now();
        Ok(())
    }

    /// Drops what the open transaction holds (best effort).
    fn roll_back(&mut self) {
        let Some(conn) = self.conn.as_mut() else {
            return;
        };
        if self.open_copy.take().is_some()
            && conn.copy_fail("the run is ending on an error").is_err()
        {
            self.conn = None;
            return;
        }
        if self.in_transaction {
            if conn.execute("ROLLBACK").is_err() {
                self.conn = None;
            }
            self.in_transaction = false;
        }
    }

    /// Moves each overwrite's staging table into place: swapped in for a
    /// stream that completed in a clean run, else appended to the final
    /// table (the prior rows stay, and so does every row already confirmed).
    fn place_staging(&mut self, clean: bool) -> Result<(), DestinationError> {
        let mut first_error = None;
        for index in 0..self.loaders.len() {
            let loader = &self.loaders[index];
            let Target::Staging(staging) = &loader.target else {
                continue;
            };
            let final_table = loader.layout.qualified();
            let sql = if clean && loader.complete {
                format!(
                    "BEGIN; DROP TABLE IF EXISTS {final_table}; ALTER TABLE {staging} RENAME TO {}; COMMIT",
                    quote_ident(&loader.layout.table)
                )
            } else {
                let columns = loader.layout.column_list();
                format!(
                    "BEGIN; INSERT INTO {final_table} ({columns}) SELECT {columns} FROM {staging}; \
                     DROP TABLE {staging}; COMMIT"
                )
            };
            let doing = if clean && loader.complete {
                format!("replacing the table of stream {}", loader.descriptor)
            } else {
                format!(
                    "keeping the rows of stream {}'s unfinished overwrite",
                    loader.descriptor
                )
            };
            if let Err(e) = self.run(&sql, &doing) {
                let _ = self.conn.as_mut().map(|c| c.execute("ROLLBACK"));
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

impl RecordWriter for PgWriter {
    fn write(
        &mut self,
        record: &Record<'_>,
        _out: &mut Emitter<'_>,
    ) -> Result<(), DestinationError> {
        let index = record.stream_index();
        let id = uuid::Builder::from_random_bytes(self.rng.u128(..).to_le_bytes()).into_uuid();
        let mut id_text = [0; uuid::fmt::Hyphenated::LENGTH];
        let id = id.hyphenated().encode_lower(&mut id_text);
        let loader = &mut self.loaders[index];
        let nulled = loader.encoder.encode(
            id,
            record.emitted_at,
            record.data.get(),
            record.meta.map(|m| m.get()),
            &mut loader.buffer,
        );
        loader.nulled_values += nulled as u64;
        if loader.buffer.len() >= self.batch_bytes {
            self.ship(index)?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), DestinationError> {
        self.commit()
    }

    /// States within `commit_interval` of the last commit wait for a later
    /// one: a commit (and its fsync) per state would cost more than the rows.
    fn may_defer_state(&mut self) -> bool {
        self.last_commit.elapsed() < self.commit_interval
    }

    fn stream_complete(&mut self, stream_index: usize) -> Result<(), DestinationError> {
        if let Some(loader) = self.loaders.get_mut(stream_index) {
            loader.complete = true;
        }
        Ok(())
    }

    fn close(mut self: Box<Self>, clean: bool) -> Result<(), DestinationError> {
        let committed = if clean {
            self.commit()
        } else {
            self.roll_back();
            Ok(())
        };
        if committed.is_err() {
            self.roll_back();
        }
        let placed = self.place_staging(clean && committed.is_ok());
        for loader in &self.loaders {
            if loader.nulled_values > 0 {
                host_log(
                    LogLevel::Warn,
                    &format!(
                        "stream {}: {} values did not fit their column and were written as NULL \
                         (listed in _airbyte_meta.changes)",
                        loader.descriptor, loader.nulled_values
                    ),
                );
            }
        }
        if let Some(conn) = self.conn.take() {
            conn.close();
        }
        committed.and(placed)
    }
}

fn run(
    conn: &mut Connection,
    sql: &str,
    doing: &str,
) -> Result<Vec<Vec<Option<String>>>, DestinationError> {
    conn.simple_query(sql).map_err(|e| classify(&e, doing))
}

fn ensure_schema(conn: &mut Connection, schema: &str) -> Result<(), DestinationError> {
    let found = run(
        conn,
        &format!(
            "SELECT 1 FROM pg_namespace WHERE nspname = {}",
            quote_literal(schema)
        ),
        &format!("looking up schema {schema:?}"),
    )?;
    if found.is_empty() {
        serialized_ddl(
            conn,
            schema,
            &format!("CREATE SCHEMA IF NOT EXISTS {}", quote_ident(schema)),
            &format!("creating schema {schema:?}"),
        )?;
    }
    Ok(())
}

/// Runs `ddl` in a transaction that first takes an advisory lock on `schema`:
/// PostgreSQL's `IF NOT EXISTS` does not hold against a concurrent creation (two
/// writers at once, e.g. syncs fanned out by stream, collide on a unique index),
/// so writers into one schema make its objects one at a time.
fn serialized_ddl(
    conn: &mut Connection,
    schema: &str,
    ddl: &str,
    doing: &str,
) -> Result<(), DestinationError> {
    let lock = quote_literal(&format!("airbyte-ddl:{schema}"));
    let done = run(
        conn,
        &format!("BEGIN; SELECT pg_advisory_xact_lock(hashtext({lock})); {ddl}; COMMIT"),
        doing,
    );
    if done.is_err() {
        let _ = run(conn, "ROLLBACK", "rolling back");
    }
    done.map(|_| ())
}

/// The columns of `schema.table` and their `data_type`, in order (none when it does not exist).
fn table_columns(
    conn: &mut Connection,
    schema: &str,
    table: &str,
) -> Result<Vec<(String, String)>, DestinationError> {
    let rows = run(
        conn,
        &format!(
            "SELECT column_name, data_type FROM information_schema.columns \
             WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position",
            quote_literal(schema),
            quote_literal(table)
        ),
        &format!("reading the columns of {schema}.{table}"),
    )?;
    Ok(rows
        .into_iter()
        .filter_map(|row| match row.as_slice() {
            [Some(name), Some(kind)] => Some((name.clone(), kind.clone())),
            _ => None,
        })
        .collect())
}

/// Creates the stream's table, or adds the columns a newer catalog declares;
/// refuses a column whose type changed.
fn ensure_table(
    conn: &mut Connection,
    descriptor: &str,
    layout: &TableLayout,
) -> Result<(), DestinationError> {
    let existing = table_columns(conn, &layout.schema, &layout.table)?;
    let qualified = layout.qualified();
    if existing.is_empty() {
        serialized_ddl(
            conn,
            &layout.schema,
            &format!(
                "CREATE TABLE IF NOT EXISTS {qualified} ({})",
                layout.column_definitions()
            ),
            &format!("creating the table of stream {descriptor}"),
        )?;
        return Ok(());
    }
    let types: HashMap<&str, &str> = existing
        .iter()
        .map(|(n, t)| (n.as_str(), t.as_str()))
        .collect();
    if let Some((missing, _)) = META_COLUMNS.iter().find(|(n, _)| !types.contains_key(n)) {
        return Err(DestinationError::config(format!(
            "stream {descriptor}: table {qualified} exists but has no {missing} column, so it was \
             not made by an Airbyte destination. Fix: drop or rename the table, or write the stream \
             into another schema (the schema field, or the stream's namespace)"
        )));
    }
    for column in &layout.columns {
        match types.get(column.name.as_str()) {
            None => run(
                conn,
                &format!(
                    "ALTER TABLE {qualified} ADD COLUMN IF NOT EXISTS {} {}",
                    quote_ident(&column.name),
                    column.kind.sql()
                ),
                &format!(
                    "adding column {:?} to the table of stream {descriptor}",
                    column.name
                ),
            )
            .map(drop)?,
            Some(&kind) if kind == column.kind.sql() => {}
            Some(&kind) => {
                return Err(DestinationError::config(format!(
                    "stream {descriptor}: column {:?} of {qualified} is {kind}, but the catalog now \
                     declares {} for field {:?}. Fix: convert it (ALTER TABLE {qualified} ALTER \
                     COLUMN {} TYPE {} USING …), or drop the column or the table so that the next \
                     sync creates it anew",
                    column.name,
                    column.kind.sql(),
                    column.field,
                    quote_ident(&column.name),
                    column.kind.sql(),
                )));
            }
        }
    }
    Ok(())
}

/// A staging table left by a killed overwrite holds rows whose states were
/// echoed: they are appended to the final table, as a clean unfinished
/// overwrite would have done, and the staging table is dropped.
fn recover_staging(
    conn: &mut Connection,
    descriptor: &str,
    layout: &TableLayout,
) -> Result<(), DestinationError> {
    let staging = staging_name(&layout.table);
    let staged = table_columns(conn, &layout.schema, &staging)?;
    if staged.is_empty() {
        return Ok(());
    }
    let wanted: HashSet<String> = META_COLUMNS
        .iter()
        .map(|(n, _)| (*n).to_owned())
        .chain(layout.columns.iter().map(|c| c.name.clone()))
        .collect();
    let common: Vec<String> = staged
        .iter()
        .filter(|(n, _)| wanted.contains(n))
        .map(|(n, _)| quote_ident(n))
        .collect();
    let staging = format!("{}.{}", quote_ident(&layout.schema), quote_ident(&staging));
    let columns = common.join(", ");
    host_log(
        LogLevel::Info,
        &format!("stream {descriptor}: keeping the rows of an earlier run's unfinished overwrite"),
    );
    run(
        conn,
        &format!(
            "BEGIN; INSERT INTO {} ({columns}) SELECT {columns} FROM {staging}; DROP TABLE {staging}; COMMIT",
            layout.qualified()
        ),
        &format!("recovering the staging table of stream {descriptor}"),
    )
    .inspect_err(|_| {
        let _ = conn.execute("ROLLBACK");
    })?;
    Ok(())
}

/// The temporary table and merge statements of an `append_dedup` stream, and
/// an index on the final table's primary key so that each merge is cheap.
fn dedup_target(
    conn: &mut Connection,
    index: usize,
    descriptor: &str,
    layout: &TableLayout,
) -> Result<Target, DestinationError> {
    let final_table = layout.qualified();
    let temp = format!(
        "pg_temp.{}",
        quote_ident(&format!("_airlock_dedup_{index}"))
    );
    let key: Vec<String> = layout
        .primary_key
        .iter()
        .map(|&i| quote_ident(&layout.columns[i].name))
        .collect();
    let index_name =
        staging_name(&format!("pk {}", layout.table)).replacen("_airbyte_tmp_", "_airbyte_pk_", 1);
    run(
        conn,
        &format!(
            "CREATE TEMP TABLE {temp} ({}, \"_airlock_seq\" bigserial) ON COMMIT DELETE ROWS; \
             CREATE INDEX IF NOT EXISTS {} ON {final_table} ({})",
            layout.column_definitions(),
            quote_ident(&index_name),
            key.join(", ")
        ),
        &format!("preparing the dedup of stream {descriptor}"),
    )?;
    let cursor = layout.cursor.map(|i| quote_ident(&layout.columns[i].name));
    let order = key
        .iter()
        .cloned()
        .chain(cursor.iter().map(|c| format!("{c} DESC NULLS LAST")))
        .chain([
            "\"_airbyte_extracted_at\" DESC".to_owned(),
            "\"_airlock_seq\" DESC".to_owned(),
        ])
        .collect::<Vec<_>>()
        .join(", ");
    let latest = format!(
        "(SELECT DISTINCT ON ({}) * FROM {temp} ORDER BY {order})",
        key.join(", ")
    );
    let same_key = |a: &str, b: &str| {
        key.iter()
            .map(|k| format!("{a}.{k} = {b}.{k}"))
            .collect::<Vec<_>>()
            .join(" AND ")
    };
    // The incoming row wins unless the stored one has a later cursor (a NULL
    // cursor loses to any value, as Airbyte orders them).
    let wins = match &cursor {
        Some(c) => format!(
            " AND ((l.{c} IS NOT NULL AND (f.{c} IS NULL OR l.{c} >= f.{c})) OR (l.{c} IS NULL AND f.{c} IS NULL))"
        ),
        None => String::new(),
    };
    let delete = format!(
        "DELETE FROM {final_table} AS f USING {latest} AS l WHERE {}{wins}",
        same_key("f", "l")
    );
    let columns = layout.column_list();
    let from_latest = META_COLUMNS
        .iter()
        .map(|(n, _)| format!("l.{}", quote_ident(n)))
        .chain(
            layout
                .columns
                .iter()
                .map(|c| format!("l.{}", quote_ident(&c.name))),
        )
        .collect::<Vec<_>>()
        .join(", ");
    let not_deleted = match layout.cdc_deleted_at {
        Some(i) => format!("l.{} IS NULL AND ", quote_ident(&layout.columns[i].name)),
        None => String::new(),
    };
    let insert = format!(
        "INSERT INTO {final_table} ({columns}) SELECT {from_latest} FROM {latest} AS l \
         WHERE {not_deleted}NOT EXISTS (SELECT 1 FROM {final_table} AS f WHERE {})",
        same_key("f", "l")
    );
    Ok(Target::Dedup {
        temp,
        delete,
        insert,
    })
}
