//! The ledger of states: which were sent, which the destination confirmed, and what
//! each confirmation covers.
//!
//! Owns matching an echoed STATE against the ones sent. It does not persist (the
//! loop hands accepted states to [`crate::state`]) and does not read input.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::Value;

use crate::protocol::{AirbyteStateMessage, StateType, StreamDescriptor};

/// A state as it went to the destination, with the record counts it covers.
#[derive(Debug, Clone)]
pub(crate) struct SentState {
    pub fingerprint: u64,
    pub state: AirbyteStateMessage,
    /// Records sent per stream before this state, cumulative.
    pub records_before: Vec<(StreamDescriptor, u64)>,
    /// Records this state covers as a destination counts them for
    /// `destinationStats`: since the previous state of its stream (STREAM), or
    /// since the previous state of any kind (GLOBAL, LEGACY). Set on register.
    pub covers: u64,
}

impl SentState {
    pub fn new(state: AirbyteStateMessage, records_before: Vec<(StreamDescriptor, u64)>) -> Self {
        Self {
            fingerprint: fingerprint(&state),
            state,
            records_before,
            covers: 0,
        }
    }
}

/// Why an echoed state was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StateMismatch {
    /// No state like it was ever sent.
    NeverSent,
    /// It was sent, but a later state was already confirmed, or it was echoed twice.
    OutOfOrder,
}

impl std::fmt::Display for StateMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::NeverSent => "a state it never received",
            Self::OutOfOrder => "a state out of order (already confirmed or superseded)",
        })
    }
}

/// Where a state is filed: per stream, or one GLOBAL / LEGACY slot.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Slot {
    Stream(StreamDescriptor),
    Global,
    Legacy,
}

fn slot(state: &AirbyteStateMessage) -> Slot {
    match (state.effective_type(), &state.stream) {
        (StateType::Stream, Some(s)) => Slot::Stream(s.stream_descriptor.clone()),
        (StateType::Global, _) => Slot::Global,
        _ => Slot::Legacy,
    }
}

/// Sent and confirmed states of one write.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pending: VecDeque<SentState>,
    /// Every fingerprint sent, to tell "out of order" from "never sent".
    sent: HashMap<u64, u64>,
    pub states_sent: u64,
    pub states_confirmed: u64,
    /// Records confirmed per stream: the counts before the last accepted state.
    pub confirmed: Vec<(StreamDescriptor, u64)>,
    final_states: BTreeMap<Slot, AirbyteStateMessage>,
    /// Per stream, the cumulative count at its last state; and the total at the
    /// last state of any kind.
    counted_at_state: HashMap<StreamDescriptor, u64>,
    total_at_state: u64,
    /// Records the destination reported (`destinationStats.recordCount`) per stream.
    pub reported: BTreeMap<StreamDescriptor, u64>,
    /// Disagreements between what was sent and what the destination reported.
    pub warnings: Vec<String>,
}

impl Ledger {
    pub fn register(&mut self, mut sent: SentState) {
        let total: u64 = sent.records_before.iter().map(|(_, n)| n).sum();
        sent.covers = match slot(&sent.state) {
            Slot::Stream(descriptor) => {
                let now = sent
                    .records_before
                    .iter()
                    .find(|(d, _)| d == &descriptor)
                    .map_or(0, |(_, n)| *n);
                let before = self.counted_at_state.insert(descriptor, now).unwrap_or(0);
                now.saturating_sub(before)
            }
            Slot::Global | Slot::Legacy => {
                for (d, n) in &sent.records_before {
                    self.counted_at_state.insert(d.clone(), *n);
                }
                total.saturating_sub(self.total_at_state)
            }
        };
        self.total_at_state = total;
        *self.sent.entry(sent.fingerprint).or_default() += 1;
        self.states_sent += 1;
        self.pending.push_back(sent);
    }

    /// Accepts an echo: the states it covers (it and every earlier pending one, in
    /// order) are returned for persisting, with the echo's `destinationStats` on the
    /// last. A destination may skip echoing some states; the next echo covers them.
    pub fn accept(
        &mut self,
        echoed: &AirbyteStateMessage,
    ) -> Result<Vec<AirbyteStateMessage>, StateMismatch> {
        let fp = fingerprint(echoed);
        let Some(position) = self.pending.iter().position(|s| s.fingerprint == fp) else {
            return Err(if self.sent.contains_key(&fp) {
                StateMismatch::OutOfOrder
            } else {
                StateMismatch::NeverSent
            });
        };
        let covered: Vec<SentState> = self.pending.drain(..=position).collect();
        self.states_confirmed += covered.len() as u64;
        self.reconcile(echoed, &covered);
        let mut states = Vec::with_capacity(covered.len());
        for (i, sent) in covered.into_iter().enumerate() {
            let mut state = sent.state;
            if i == position {
                state.destination_stats = echoed.destination_stats.clone();
                self.confirmed = sent.records_before;
            }
            self.final_states.insert(slot(&state), state.clone());
            states.push(state);
        }
        Ok(states)
    }

    /// Compares the echo's `destinationStats.recordCount` with what the states it
    /// confirms covered (those of its slot: a destination that skipped echoing
    /// some states counts their records in the next echo).
    fn reconcile(&mut self, echoed: &AirbyteStateMessage, covered: &[SentState]) {
        let Some(reported) = echoed
            .destination_stats
            .as_ref()
            .and_then(|s| s.record_count)
        else {
            return;
        };
        let echoed_slot = slot(echoed);
        let sent: u64 = covered
            .iter()
            .filter(|s| slot(&s.state) == echoed_slot)
            .map(|s| s.covers)
            .sum();
        if let Slot::Stream(descriptor) = &echoed_slot {
            *self.reported.entry(descriptor.clone()).or_default() += reported as u64;
        }
        if reported.fract() != 0.0 || reported as u64 != sent {
            const MAX_WARNINGS: usize = 20;
            let what = match &echoed_slot {
                Slot::Stream(d) => format!("the state of stream {d}"),
                Slot::Global => "a GLOBAL state".to_owned(),
                Slot::Legacy => "a LEGACY state".to_owned(),
            };
            let warning = format!(
                "the destination reported {reported} records (destinationStats) for {what}, \
                 but airlock sent {sent}"
            );
            tracing::warn!("{warning}");
            if self.warnings.len() < MAX_WARNINGS {
                self.warnings.push(warning);
            }
        }
    }

    /// The last confirmed state of each stream (and the GLOBAL / LEGACY one).
    pub fn final_states(&self) -> Vec<AirbyteStateMessage> {
        self.final_states.values().cloned().collect()
    }
}

/// A hash of a state that ignores `sourceStats` / `destinationStats` (destinations
/// add the latter) and key order, and compares numbers by value (`3` = `3.0`).
pub(crate) fn fingerprint(state: &AirbyteStateMessage) -> u64 {
    let mut value = serde_json::to_value(state).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("sourceStats");
        map.remove("destinationStats");
    }
    let mut hasher = DefaultHasher::new();
    hash_value(&value, &mut hasher);
    hasher.finish()
}

fn hash_value(value: &Value, hasher: &mut DefaultHasher) {
    match value {
        Value::Null => 0u8.hash(hasher),
        Value::Bool(b) => (1u8, b).hash(hasher),
        Value::Number(n) => (2u8, n.as_f64().map(f64::to_bits)).hash(hasher),
        Value::String(s) => (3u8, s).hash(hasher),
        Value::Array(items) => {
            (4u8, items.len()).hash(hasher);
            items.iter().for_each(|v| hash_value(v, hasher));
        }
        Value::Object(map) => {
            (5u8, map.len()).hash(hasher);
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                key.hash(hasher);
                hash_value(&map[key], hasher);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::protocol::AirbyteStateStats;

    fn state(cursor: i64) -> AirbyteStateMessage {
        AirbyteStateMessage::stream(StreamDescriptor::new("s"), json!({ "cursor": cursor }))
    }

    fn sent(cursor: i64, records: u64) -> SentState {
        SentState::new(state(cursor), vec![(StreamDescriptor::new("s"), records)])
    }

    #[test]
    fn an_echo_confirms_it_and_every_earlier_state_in_order() {
        let mut ledger = Ledger::default();
        ledger.register(sent(1, 10));
        ledger.register(sent(2, 20));
        ledger.register(sent(3, 30));
        let mut echoed = state(2);
        echoed.destination_stats = Some(AirbyteStateStats {
            record_count: Some(10.0),
            ..Default::default()
        });
        let covered = ledger.accept(&echoed).expect("accepted");
        assert_eq!(covered.len(), 2);
        assert_eq!(
            covered[1]
                .destination_stats
                .as_ref()
                .and_then(|s| s.record_count),
            Some(10.0)
        );
        assert_eq!(ledger.confirmed, vec![(StreamDescriptor::new("s"), 20)]);
        assert_eq!(ledger.states_confirmed, 2);
        assert_eq!(ledger.accept(&state(1)), Err(StateMismatch::OutOfOrder));
        assert_eq!(ledger.accept(&state(9)), Err(StateMismatch::NeverSent));
        assert!(ledger.accept(&state(3)).is_ok());
        assert_eq!(ledger.final_states().len(), 1);
    }

    fn echo(cursor: i64, reported: f64) -> AirbyteStateMessage {
        let mut echoed = state(cursor);
        echoed.destination_stats = Some(AirbyteStateStats {
            record_count: Some(reported),
            ..Default::default()
        });
        echoed
    }

    #[test]
    fn destination_stats_that_disagree_with_what_was_sent_are_warned_about() {
        let mut ledger = Ledger::default();
        ledger.register(sent(1, 10));
        ledger.register(sent(2, 25));
        ledger.register(sent(3, 30));
        ledger.accept(&echo(1, 10.0)).expect("1");
        assert!(ledger.warnings.is_empty(), "{:?}", ledger.warnings);
        ledger.accept(&echo(2, 14.0)).expect("2");
        assert_eq!(ledger.warnings.len(), 1);
        assert!(
            ledger.warnings[0].contains("reported 14 records")
                && ledger.warnings[0].contains("airlock sent 15"),
            "{}",
            ledger.warnings[0]
        );
        assert_eq!(ledger.reported[&StreamDescriptor::new("s")], 24);
    }

    #[test]
    fn an_echo_that_skipped_states_is_compared_with_all_it_covers() {
        let mut ledger = Ledger::default();
        ledger.register(sent(1, 10));
        ledger.register(sent(2, 25));
        ledger.accept(&echo(2, 25.0)).expect("2");
        assert!(ledger.warnings.is_empty(), "{:?}", ledger.warnings);
    }

    #[test]
    fn fingerprints_ignore_stats_key_order_and_number_spelling() {
        let a: AirbyteStateMessage = serde_json::from_value(json!({"type":"STREAM","stream":{"stream_descriptor":{"name":"s"},"stream_state":{"a":1,"b":2.0}},"sourceStats":{"recordCount":3.0}})).expect("a");
        let b: AirbyteStateMessage = serde_json::from_value(json!({"stream":{"stream_state":{"b":2,"a":1.0},"stream_descriptor":{"name":"s"}},"type":"STREAM","destinationStats":{"recordCount":3.0}})).expect("b");
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&state(1)));
    }
}
