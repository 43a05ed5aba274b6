//! The ledger of states: which were sent, which the destination confirmed, and what
//! each confirmation covers.
//!
//! Owns matching an echoed STATE against the ones sent. It does not persist (the
//! loop hands accepted states to [`crate::state`]) and does not read input.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::value::RawValue;

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
    /// A sent state; `line` is the STATE message as it was sent (its fingerprint
    /// is taken from the text, so numbers compare exactly).
    pub fn new(
        state: AirbyteStateMessage,
        line: &[u8],
        records_before: Vec<(StreamDescriptor, u64)>,
    ) -> Self {
        Self {
            fingerprint: fingerprint_line(line).unwrap_or_else(|| fingerprint(&state)),
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

/// Confirmed states remembered to name an echo of one of them "out of order".
const RECENT_CONFIRMED: usize = 1024;

/// Sent and confirmed states of one write.
#[derive(Debug, Default)]
pub(crate) struct Ledger {
    pending: VecDeque<SentState>,
    /// Fingerprints of the last [`RECENT_CONFIRMED`] confirmed states, to tell an
    /// echo "out of order" (of a state already confirmed) from "never sent";
    /// bounded, so a write of many states holds no growing set.
    recent_confirmed: VecDeque<u64>,
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
        self.states_sent += 1;
        self.pending.push_back(sent);
    }

    /// Accepts an echo: the states it covers (it and every earlier pending one, in
    /// order) are returned for persisting, with the echo's `destinationStats` on the
    /// last. A destination may skip echoing some states; the next echo covers them.
    ///
    /// `line` is the echo as the destination wrote it: matching uses its text.
    pub fn accept(
        &mut self,
        echoed: &AirbyteStateMessage,
        line: &[u8],
    ) -> Result<Vec<AirbyteStateMessage>, StateMismatch> {
        let fp = fingerprint_line(line).unwrap_or_else(|| fingerprint(echoed));
        let Some(position) = self.pending.iter().position(|s| s.fingerprint == fp) else {
            return Err(if self.recent_confirmed.contains(&fp) {
                StateMismatch::OutOfOrder
            } else {
                StateMismatch::NeverSent
            });
        };
        let covered: Vec<SentState> = self.pending.drain(..=position).collect();
        self.states_confirmed += covered.len() as u64;
        for state in &covered {
            if self.recent_confirmed.len() == RECENT_CONFIRMED {
                self.recent_confirmed.pop_front();
            }
            self.recent_confirmed.push_back(state.fingerprint);
        }
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
            let total = self.reported.entry(descriptor.clone()).or_default();
            *total = total.saturating_add(reported as u64);
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

/// A hash of the STATE message on `line` (`{"type":"STATE","state":{…}}`) that
/// ignores `sourceStats` / `destinationStats` (destinations add the latter), key
/// order and insignificant spelling, and compares numbers exactly by their decimal
/// value from the text (`3` = `3.0` = `3e0`, while two integers that differ beyond
/// 2^53 stay apart). `None` when the line holds no state object.
pub(crate) fn fingerprint_line(line: &[u8]) -> Option<u64> {
    let line = std::str::from_utf8(line).ok()?;
    let message: BTreeMap<String, &RawValue> = serde_json::from_str(line).ok()?;
    fingerprint_state(message.get("state")?.get())
}

/// [`fingerprint_line`] of a state given as the JSON text of its `state` object.
pub(crate) fn fingerprint_state(state: &str) -> Option<u64> {
    let mut fields: BTreeMap<String, &RawValue> = serde_json::from_str(state).ok()?;
    fields.remove("sourceStats");
    fields.remove("destinationStats");
    let mut hasher = DefaultHasher::new();
    hash_members(fields, &mut hasher).ok()?;
    Some(hasher.finish())
}

/// [`fingerprint_state`] of a parsed state (its numbers as serde_json holds them).
pub(crate) fn fingerprint(state: &AirbyteStateMessage) -> u64 {
    let text = serde_json::to_string(state).unwrap_or_default();
    fingerprint_state(&text).unwrap_or_default()
}

/// Hashes one JSON value from its text, canonically.
fn hash_raw(raw: &str, hasher: &mut DefaultHasher) -> Result<(), serde_json::Error> {
    let raw = raw.trim();
    match raw.as_bytes().first() {
        Some(b'{') => hash_members(serde_json::from_str(raw)?, hasher)?,
        Some(b'[') => {
            let items: Vec<&RawValue> = serde_json::from_str(raw)?;
            (4u8, items.len()).hash(hasher);
            for item in items {
                hash_raw(item.get(), hasher)?;
            }
        }
        Some(b'"') => (3u8, serde_json::from_str::<String>(raw)?).hash(hasher),
        Some(b't') => (1u8, true).hash(hasher),
        Some(b'f') => (1u8, false).hash(hasher),
        Some(b'n') => 0u8.hash(hasher),
        _ => (2u8, canonical_number(raw)).hash(hasher),
    }
    Ok(())
}

/// Hashes an object's members in key order. A member whose value is `null`
/// counts as absent, as the message model reads it: a destination that echoes
/// `"namespace":null` for a descriptor sent without one (or the reverse) echoes
/// the same state.
fn hash_members(
    members: BTreeMap<String, &RawValue>,
    hasher: &mut DefaultHasher,
) -> Result<(), serde_json::Error> {
    let present: Vec<_> = members
        .into_iter()
        .filter(|(_, value)| value.get().trim() != "null")
        .collect();
    (5u8, present.len()).hash(hasher);
    for (key, value) in present {
        key.hash(hasher);
        hash_raw(value.get(), hasher)?;
    }
    Ok(())
}

/// A JSON number's exact value as `[-]DIGITSeEXP`, digits without leading or
/// trailing zeros (zero is `0`): equal values, equal text, at any precision.
fn canonical_number(text: &str) -> String {
    let (negative, rest) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, "0"),
    };
    let (int, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let Ok(exponent) = exponent.trim_start_matches('+').parse::<i128>() else {
        return text.to_owned(); // beyond i128: compare by spelling
    };
    let digits = format!("{int}{frac}");
    let trimmed = digits.trim_start_matches('0');
    let significant = trimmed.trim_end_matches('0');
    if significant.is_empty() {
        return "0".to_owned();
    }
    let exponent = exponent - frac.len() as i128 + (trimmed.len() - significant.len()) as i128;
    format!(
        "{}{significant}e{exponent}",
        if negative { "-" } else { "" }
    )
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
        let state = state(cursor);
        let line = line(&state);
        SentState::new(state, &line, vec![(StreamDescriptor::new("s"), records)])
    }

    /// The STATE message line of `state`, as a connector writes it.
    fn line(state: &AirbyteStateMessage) -> Vec<u8> {
        serde_json::to_vec(&json!({"type": "STATE", "state": state})).expect("json")
    }

    fn accept(
        ledger: &mut Ledger,
        echoed: &AirbyteStateMessage,
    ) -> Result<Vec<AirbyteStateMessage>, StateMismatch> {
        ledger.accept(echoed, &line(echoed))
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
        let covered = accept(&mut ledger, &echoed).expect("accepted");
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
        assert_eq!(
            accept(&mut ledger, &state(1)),
            Err(StateMismatch::OutOfOrder)
        );
        assert_eq!(
            accept(&mut ledger, &state(9)),
            Err(StateMismatch::NeverSent)
        );
        assert!(accept(&mut ledger, &state(3)).is_ok());
        assert_eq!(ledger.final_states().len(), 1);
    }

    #[test]
    fn a_write_of_many_states_remembers_a_bounded_number() {
        let mut ledger = Ledger::default();
        for cursor in 0..5000 {
            ledger.register(sent(cursor, cursor as u64));
            accept(&mut ledger, &state(cursor)).expect("in order");
        }
        assert!(ledger.pending.is_empty());
        assert_eq!(ledger.recent_confirmed.len(), RECENT_CONFIRMED);
        // A recent state echoed again is still named out of order.
        assert_eq!(
            accept(&mut ledger, &state(4999)),
            Err(StateMismatch::OutOfOrder)
        );
        assert_eq!(ledger.states_confirmed, 5000);
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
        accept(&mut ledger, &echo(1, 10.0)).expect("1");
        assert!(ledger.warnings.is_empty(), "{:?}", ledger.warnings);
        accept(&mut ledger, &echo(2, 14.0)).expect("2");
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
        accept(&mut ledger, &echo(2, 25.0)).expect("2");
        assert!(ledger.warnings.is_empty(), "{:?}", ledger.warnings);
    }

    #[test]
    fn fingerprints_ignore_stats_key_order_and_number_spelling() {
        let a: AirbyteStateMessage = serde_json::from_value(json!({"type":"STREAM","stream":{"stream_descriptor":{"name":"s"},"stream_state":{"a":1,"b":2.0}},"sourceStats":{"recordCount":3.0}})).expect("a");
        let b: AirbyteStateMessage = serde_json::from_value(json!({"stream":{"stream_state":{"b":2,"a":1.0},"stream_descriptor":{"name":"s"}},"type":"STREAM","destinationStats":{"recordCount":3.0}})).expect("b");
        assert_eq!(fingerprint(&a), fingerprint(&b));
        assert_ne!(fingerprint(&a), fingerprint(&state(1)));
    }

    fn of(state_json: &str) -> u64 {
        fingerprint_line(format!(r#"{{"type":"STATE","state":{state_json}}}"#).as_bytes())
            .expect("a state")
    }

    #[test]
    fn numbers_compare_exactly_by_value_from_their_text() {
        // Beyond 2^53, f64 cannot tell these apart; their text can.
        assert_ne!(
            of(r#"{"data":{"cursor":9007199254740993}}"#),
            of(r#"{"data":{"cursor":9007199254740992}}"#)
        );
        assert_ne!(
            of(r#"{"data":{"c":123456789012345678901234567890}}"#),
            of(r#"{"data":{"c":123456789012345678901234567891}}"#)
        );
        assert_ne!(
            of(r#"{"data":{"c":0.10000000000000000001}}"#),
            of(r#"{"data":{"c":0.1}}"#)
        );
        // Insignificant spelling still matches.
        for same in ["1", "1.0", "1e0", "10e-1", "0.1E1", "1.000"] {
            assert_eq!(
                of(&format!(r#"{{"data":{{"c":{same}}}}}"#)),
                of(r#"{"data":{"c":1}}"#),
                "{same}"
            );
        }
        assert_eq!(of(r#"{"data":{"c":-0.0}}"#), of(r#"{"data":{"c":0}}"#));
        assert_eq!(
            of(r#"{"data":{"b":[1, "x"], "a":null},"destinationStats":{"recordCount":3}}"#),
            of(r#"{ "data" : { "a" : null , "b" : [ 1.0 , "\u0078" ] } }"#)
        );
        assert_ne!(of(r#"{"data":{"c":"1"}}"#), of(r#"{"data":{"c":1}}"#));
    }

    #[test]
    fn a_null_member_matches_an_absent_one() {
        let with_null = r#"{"type":"STREAM","stream":{"stream_descriptor":{"name":"a","namespace":null},"stream_state":{"c":1}}}"#;
        let without = r#"{"type":"STREAM","stream":{"stream_descriptor":{"name":"a"},"stream_state":{"c":1}}}"#;
        assert_eq!(of(with_null), of(without));
        let other = r#"{"type":"STREAM","stream":{"stream_descriptor":{"name":"a","namespace":"n"},"stream_state":{"c":1}}}"#;
        assert_ne!(of(with_null), of(other));
        // null as an array item is a value, not an absent member.
        assert_ne!(of(r#"{"data":{"c":[null]}}"#), of(r#"{"data":{"c":[]}}"#));
    }

    #[test]
    fn reported_counts_past_u64_saturate() {
        let mut ledger = Ledger::default();
        for cursor in [1, 2] {
            ledger.register(sent(cursor, 1));
            accept(&mut ledger, &echo(cursor, 1e20)).expect("echo accepted");
        }
        assert_eq!(ledger.reported[&StreamDescriptor::new("s")], u64::MAX);
    }

    #[test]
    fn an_echo_of_a_large_cursor_matches_only_its_own_state() {
        let mut ledger = Ledger::default();
        let sent_line =
            br#"{"type":"STATE","state":{"type":"LEGACY","data":{"cursor":9007199254740993}}}"#;
        let state: AirbyteStateMessage =
            serde_json::from_value(json!({"type":"LEGACY","data":{"cursor":9007199254740993u64}}))
                .expect("state");
        ledger.register(SentState::new(state.clone(), sent_line, vec![]));
        let other =
            br#"{"type":"STATE","state":{"type":"LEGACY","data":{"cursor":9007199254740992}}}"#;
        assert_eq!(ledger.accept(&state, other), Err(StateMismatch::NeverSent));
        assert!(ledger.accept(&state, sent_line).is_ok());
    }
}
