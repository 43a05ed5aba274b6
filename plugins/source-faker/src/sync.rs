//! `sync`: the `read` command: streams in catalog order, each framed by
//! TRACE STREAM_STATUS STARTED / RUNNING / COMPLETE, with its records and
//! the STREAM states the Python connector (faker 7.2.1 on airbyte-cdk
//! 6.61) emits, in the same places and with the same `recordCount`s.
//!
//! # How the Python connector checkpoints, and how this maps it
//!
//! Each faker stream is an `IncrementalMixin` stream with one CDK slice and
//! `state_checkpoint_interval = records_per_slice`. Inside that, users and
//! purchases loop over *user* slices of `records_per_slice` users, and set
//! `self.state = {"seed", "updated_at", "loop_offset"}` after each one;
//! products set `{"seed", "updated_at"}` once, after the last product.
//! The CDK, after every record, observes `self.state` (when non-empty) and,
//! every `records_per_slice`-th record, emits the observed state if
//! non-empty. Because the stream's generator is suspended at the record
//! being yielded, a state set "after slice k" is only observed from the
//! first record of slice k+1 on. At the end it emits the observed state
//! once more, always. `recordCount` is the number of records of the stream
//! since its previous STATE.
//!
//! So, with no incoming state, `records_per_slice = 100` and 1000 users:
//! no state at record 100 (nothing observed yet), then states at records
//! 200..1000 carrying `loop_offset` 100..900 (the count of the first is
//! 200), then a final one with `loop_offset` 1000 and `recordCount` 0.
//! [`Checkpointer`] reproduces exactly this: `set_state` marks the stream's
//! state, `record` observes it and checkpoints, `finish` emits the last
//! state.
//!
//! # Incremental behaviour
//!
//! - The incoming state of a stream (see `state`) becomes its `state`.
//! - `always_updated: false` and the incoming state has `updated_at`: the
//!   stream emits no records, no ESTIMATE and no RUNNING, and its one STATE
//!   is the incoming state unchanged, with `recordCount` 0. So a second
//!   sync with the first one's state emits nothing.
//! - Otherwise (`always_updated: true`, the default, or no `updated_at` in
//!   the state) the stream is generated again from the start
//!   (`loop_offset` is not used to resume, just as in Python): the same
//!   records (same seed) with a new `updated_at`. Until the stream sets a
//!   state of its own, checkpoints repeat the incoming state.
//!
//! `updated_at` in a state is the `updated_at` of the stream's last record
//! (`""` when it had none); `seed` is the configured seed or `null`.

use std::io::{self, Write};

use serde_json::Value;

use crate::calendar;
use crate::catalog::FakerStream;
use crate::clock::Clock;
use crate::config::FakerConfig;
use crate::messages::{self, LogLevel, RecordLine};
use crate::products::Product;
use crate::purchases;
use crate::state::IncomingState;
use crate::users;
use crate::vocabulary::Vocabulary;

/// Median record sizes the Python connector uses for its ESTIMATE traces.
const PRODUCT_BYTES: u64 = 180;
/// See [`PRODUCT_BYTES`].
const USER_BYTES: u64 = 450;
/// See [`PRODUCT_BYTES`].
const PURCHASE_BYTES: f64 = 230.0;

/// A stream's `state`: what it was given, or one it set.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamState {
    /// The incoming state, as given.
    Incoming(Value),
    /// A state the faker set.
    Faker {
        /// The configured seed (`null` when absent).
        seed: Option<i64>,
        /// The `updated_at` of the last record, `""` if none.
        updated_at: String,
        /// Users done so far (users and purchases only).
        loop_offset: Option<u64>,
    },
}

impl StreamState {
    /// Python truthiness: an empty dict (or `null`, `0`, `""`, `[]`) is
    /// not a state worth emitting.
    fn is_truthy(&self) -> bool {
        match self {
            Self::Faker { .. } => true,
            Self::Incoming(v) => match v {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
                Value::String(s) => !s.is_empty(),
                Value::Array(a) => !a.is_empty(),
                Value::Object(o) => !o.is_empty(),
            },
        }
    }

    /// Whether the state has an `updated_at` key (Python
    /// `"updated_at" in self.state`).
    fn has_updated_at(&self) -> bool {
        match self {
            Self::Faker { .. } => true,
            Self::Incoming(v) => v.get("updated_at").is_some(),
        }
    }

    /// The state as JSON.
    pub fn to_json(&self) -> Vec<u8> {
        match self {
            Self::Incoming(v) => serde_json::to_vec(v).unwrap_or_else(|_| b"{}".to_vec()),
            Self::Faker {
                seed,
                updated_at,
                loop_offset,
            } => {
                let mut b = Vec::with_capacity(80);
                b.extend_from_slice(b"{\"seed\":");
                match seed {
                    Some(s) => messages::push_int(&mut b, *s),
                    None => b.extend_from_slice(b"null"),
                }
                b.extend_from_slice(b",\"updated_at\":");
                b.extend_from_slice(Value::String(updated_at.clone()).to_string().as_bytes());
                if let Some(lo) = loop_offset {
                    b.extend_from_slice(b",\"loop_offset\":");
                    messages::push_uint(&mut b, *lo);
                }
                b.push(b'}');
                b
            }
        }
    }
}

/// Emits one stream's records and states with the CDK's checkpoint rules
/// (see the module doc).
pub struct Checkpointer<'a, W: Write> {
    out: &'a mut W,
    clock: &'a mut Clock,
    name: &'static str,
    stream_json: String,
    interval: u64,
    /// Records emitted so far.
    records: u64,
    /// Records since the last STATE.
    since_state: u64,
    /// The stream's `state` attribute.
    stream_state: StreamState,
    /// Set when `stream_state` changed since the last observation.
    dirty: bool,
    /// The state the checkpoint reader holds.
    observed: StreamState,
    line: RecordLine,
    /// The second of the last record's `updated_at`.
    last_record_sec: Option<i64>,
}

impl<'a, W: Write> Checkpointer<'a, W> {
    /// Starts reading `stream` with its incoming state.
    pub fn new(
        out: &'a mut W,
        clock: &'a mut Clock,
        stream: FakerStream,
        incoming: Value,
        interval: u64,
    ) -> Self {
        let name = stream.name();
        let stream_json = Value::String(name.into()).to_string();
        let line = RecordLine::new(&stream_json);
        let state = StreamState::Incoming(incoming);
        Self {
            out,
            clock,
            name,
            stream_json,
            interval: interval.max(1),
            records: 0,
            since_state: 0,
            stream_state: state.clone(),
            dirty: false,
            observed: state,
            line,
            last_record_sec: None,
        }
    }

    /// The stream's current `state`.
    pub fn state(&self) -> &StreamState {
        &self.stream_state
    }

    /// Records emitted so far.
    pub fn records(&self) -> u64 {
        self.records
    }

    /// Sets the stream's `state` (observed from the next record on).
    pub fn set_state(&mut self, state: StreamState) {
        self.stream_state = state;
        self.dirty = true;
    }

    /// The `updated_at` of the last record, `""` if none yet.
    pub fn last_updated_at(&self) -> String {
        self.last_record_sec
            .map(calendar::airbyte_time)
            .unwrap_or_default()
    }

    /// Emits an ESTIMATE trace.
    pub fn estimate(&mut self, rows: u64, bytes: u64) -> io::Result<()> {
        let now = self.clock.now_ms();
        messages::estimate(self.out, now, self.name, rows, bytes)
    }

    /// Emits one RECORD whose `data` `write` appends (it gets the buffer and
    /// the current `updated_at` text), then observes the state and
    /// checkpoints like the CDK.
    #[inline]
    pub fn record(&mut self, write: impl FnOnce(&mut Vec<u8>, &[u8])) -> io::Result<()> {
        if self.records == 0 {
            messages::log(
                self.out,
                LogLevel::Info,
                &format!("Marking stream {} as RUNNING", self.name),
            )?;
            let now = self.clock.now_ms_f64();
            messages::stream_status(self.out, now, self.name, "RUNNING")?;
        }
        let ms = self.clock.tick();
        write(self.line.begin(), self.clock.airbyte_time());
        self.line.finish(self.out, ms)?;
        self.last_record_sec = Some(ms.div_euclid(1000));
        self.records += 1;
        self.since_state += 1;
        self.observe();
        if self.records.is_multiple_of(self.interval) && self.observed.is_truthy() {
            self.emit_state()?;
        }
        Ok(())
    }

    /// The CDK's `_observe_state`: take the stream's state if non-empty.
    fn observe(&mut self) {
        if self.dirty {
            if self.stream_state.is_truthy() {
                self.observed = self.stream_state.clone();
            }
            self.dirty = false;
        }
    }

    fn emit_state(&mut self) -> io::Result<()> {
        let json = self.observed.to_json();
        messages::stream_state(self.out, &self.stream_json, &json, self.since_state)?;
        self.since_state = 0;
        Ok(())
    }

    /// Ends the stream: observes and emits the final state (always, like
    /// the CDK at the end of its slice). Returns the number of records.
    pub fn finish(mut self) -> io::Result<u64> {
        self.observe();
        self.emit_state()?;
        Ok(self.records)
    }
}

/// Everything `read` needs besides the output.
pub struct Reader<'a> {
    /// The validated configuration.
    pub config: &'a FakerConfig,
    /// The generators' seed (the configured one, or a random one).
    pub seed_bits: u64,
    /// The word lists.
    pub vocab: &'a Vocabulary,
    /// The product list.
    pub products: &'a [Product],
    /// The clock.
    pub clock: Clock,
}

/// Python's `round()` (half to even) of a non-negative float, as `u64`.
fn round_half_even(v: f64) -> u64 {
    v.round_ties_even().max(0.0) as u64
}

impl Reader<'_> {
    /// Reads `streams` (catalog order) with the incoming `state`.
    pub fn read(
        &mut self,
        out: &mut impl Write,
        streams: &[FakerStream],
        state: &IncomingState,
    ) -> io::Result<()> {
        messages::log(out, LogLevel::Info, "Starting syncing SourceFaker")?;
        for &stream in streams {
            self.read_stream(out, stream, state.get(stream.name()))?;
        }
        messages::log(out, LogLevel::Info, "Finished syncing SourceFaker")
    }

    /// Reads one stream, STARTED to COMPLETE.
    pub fn read_stream(
        &mut self,
        out: &mut impl Write,
        stream: FakerStream,
        incoming: Value,
    ) -> io::Result<u64> {
        let name = stream.name();
        messages::log(
            out,
            LogLevel::Info,
            &format!("Marking stream {name} as STARTED"),
        )?;
        messages::stream_status(out, self.clock.now_ms_f64(), name, "STARTED")?;
        messages::log(out, LogLevel::Info, &format!("Syncing stream: {name} "))?;
        let config = self.config;
        let (seed_bits, vocab, products) = (self.seed_bits, self.vocab, self.products);
        let mut cp = Checkpointer::new(
            out,
            &mut self.clock,
            stream,
            incoming,
            config.records_per_slice,
        );
        let skip = !config.always_updated && cp.state().has_updated_at();
        if !skip {
            match stream {
                FakerStream::Products => read_products(&mut cp, config, products)?,
                FakerStream::Users => read_users(&mut cp, config, seed_bits, vocab)?,
                FakerStream::Purchases => read_purchases(&mut cp, config, seed_bits)?,
            }
        }
        let records = cp.finish()?;
        messages::log(
            out,
            LogLevel::Info,
            &format!("Read {records} records from {name} stream"),
        )?;
        messages::log(
            out,
            LogLevel::Info,
            &format!("Marking stream {name} as STOPPED"),
        )?;
        messages::stream_status(out, self.clock.now_ms_f64(), name, "COMPLETE")?;
        messages::log(out, LogLevel::Info, &format!("Finished syncing {name}"))?;
        Ok(records)
    }
}

/// The Python `Products.read_records`.
fn read_products<W: Write>(
    cp: &mut Checkpointer<'_, W>,
    config: &FakerConfig,
    products: &[Product],
) -> io::Result<()> {
    let rows = products.len() as u64;
    cp.estimate(rows, rows * PRODUCT_BYTES)?;
    for p in products.iter().filter(|p| p.id <= config.count) {
        cp.record(|buf, updated_at| p.write(buf, updated_at))?;
    }
    let updated_at = cp.last_updated_at();
    cp.set_state(StreamState::Faker {
        seed: config.seed,
        updated_at,
        loop_offset: None,
    });
    Ok(())
}

/// The Python `Users.read_records`.
fn read_users<W: Write>(
    cp: &mut Checkpointer<'_, W>,
    config: &FakerConfig,
    seed_bits: u64,
    vocab: &Vocabulary,
) -> io::Result<()> {
    let count = config.count;
    cp.estimate(count, count.saturating_mul(USER_BYTES))?;
    let mut loop_offset = 0u64;
    loop {
        let n = config.records_per_slice.min(count - loop_offset);
        for index in loop_offset..loop_offset + n {
            cp.record(|buf, updated_at| {
                users::write_user(buf, vocab, seed_bits, index, updated_at)
            })?;
        }
        loop_offset += n;
        let state = StreamState::Faker {
            seed: config.seed,
            updated_at: cp.last_updated_at(),
            loop_offset: Some(loop_offset),
        };
        cp.set_state(state);
        if loop_offset >= count {
            return Ok(());
        }
    }
}

/// The Python `Purchases.read_records`: slices of `records_per_slice`
/// users, each with its purchases.
fn read_purchases<W: Write>(
    cp: &mut Checkpointer<'_, W>,
    config: &FakerConfig,
    seed_bits: u64,
) -> io::Result<()> {
    let count = config.count;
    let estimate = count as f64 * 1.3;
    cp.estimate(
        round_half_even(estimate),
        round_half_even(estimate * PURCHASE_BYTES),
    )?;
    let mut loop_offset = 0u64;
    loop {
        let n = config.records_per_slice.min(count - loop_offset);
        for user in loop_offset..loop_offset + n {
            let (purchases, _) = purchases::plan(user);
            for i in 0..purchases {
                cp.record(|buf, updated_at| {
                    purchases::write_purchase(buf, seed_bits, user, i, updated_at)
                })?;
            }
        }
        loop_offset += n;
        let state = StreamState::Faker {
            seed: config.seed,
            updated_at: cp.last_updated_at(),
            loop_offset: Some(loop_offset),
        };
        cp.set_state(state);
        if loop_offset >= count {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::round_half_even;

    #[test]
    fn python_rounding() {
        assert_eq!(round_half_even(6.5), 6);
        assert_eq!(round_half_even(7.5), 8);
        assert_eq!(round_half_even(65.0), 65);
        assert_eq!(round_half_even(50.0 * 1.3 * 230.0), 14950);
    }
}
