//! Linearizability checker for histories of a versioned key-value store with compare-and-put.
//!
//! # Model
//!
//! The sequential specification is the metadata store's: every key is either absent or holds a
//! `(value, version)` pair. Versions count the writes of a key: absent counts as version 0, the
//! first write creates version 1 and every later write adds one.
//!
//! - [`Call::Put`] with a [`Precondition`]: [`Precondition::None`] always holds,
//!   [`Precondition::DoesNotExist`] holds when the key is absent, and
//!   [`Precondition::MatchesVersion`]`(v)` holds when the key is present with version `v` (so
//!   `MatchesVersion(0)` never holds, like in the store, which rejects it). When the precondition
//!   holds the value is stored with the next version and the outcome is
//!   [`Outcome::Written`]`(new_version)`; otherwise nothing changes and the outcome is
//!   [`Outcome::PreconditionFailed`] with the current version (`None` when absent).
//! - [`Call::Get`] returns [`Outcome::Found`] with the current value and version, or
//!   [`Outcome::NotFound`].
//!
//! # Histories
//!
//! A history is every [`Operation`] the clients issued, each with the client, its invocation time,
//! its return time and the observed outcome. Times are ticks of one monotonic clock shared by all
//! clients (nanoseconds since a common origin for [`HistoryRecorder`]). The invocation time must
//! be taken before the request can reach the store and the return time after the response
//! arrived: widening an interval only makes the checker more permissive, narrowing it can produce
//! false alarms. Two operations are ordered in real time only when one returned strictly before
//! the other was invoked; equal ticks count as concurrent.
//!
//! What the recorder must leave out: an operation that certainly had no effect, e.g. the client
//! got "connection refused" or a validation error before the request was sent. Such an operation
//! is not part of the history at all; recording it as indeterminate would be correct but only
//! slows the search down, recording it with an outcome would be wrong.
//!
//! # Indeterminate operations
//!
//! An operation whose outcome is unknown (`result: None`: a timeout, a dropped connection after
//! sending, a client that crashed or gave up) may have taken effect at any moment after its
//! invocation, even long after the client stopped waiting, or never. The checker therefore treats
//! its return time as +infinity, whatever `complete` says, and accepts it with any outcome. A
//! history is linearizable when there is a total order of all operations with a known outcome plus
//! any subset of the indeterminate ones that respects real time (an operation that returned before
//! another was invoked comes first) and in which every operation's outcome is the one the
//! sequential specification gives.
//!
//! Two consequences keep the search small without changing the answer. An indeterminate `Get`
//! constrains nothing and is dropped. An indeterminate `Put` is only placed where its precondition
//! holds: placed where it fails it changes nothing, and since it has no return time it never has
//! to precede anything, so dropping it from that order leaves a valid order.
//!
//! # Algorithm
//!
//! Linearizability is local (P-compositional): a history is linearizable iff the sub-history of
//! every key is, because operations on different keys neither observe nor constrain each other.
//! Each key is checked on its own, which turns one huge search into many small ones.
//!
//! Per key, the checker runs the Wing & Gong search as improved by Lowe ("Testing for
//! linearizability", 2016), the algorithm behind Knossos and Porcupine. The invocation and return
//! events of the key's operations form a doubly linked list sorted by time (invocations before
//! returns at equal ticks). Scanning from the head, every invocation reached before the first
//! return belongs to an operation that may be linearized next: if its outcome matches the
//! specification in the current state, the operation is lifted out of the list, pushed on a stack
//! with the state before it, and the scan restarts at the head. Reaching a return means the
//! operation owning it has to be linearized before anything later, and no candidate worked, so the
//! search backtracks: it pops the last operation, restores the state, relinks its events and
//! continues scanning after its invocation. The history is linearizable once every operation with
//! a known outcome is lifted (the remaining indeterminate ones are left out); it is not when
//! backtracking finds the stack empty.
//!
//! Memoization makes this practical: the search remembers every pair (set of linearized operations
//! as a bitset, model state) it has entered. Reaching the same pair again means the same future
//! was already explored and failed, so it is skipped. With values interned to integers the state is
//! two `u32`s. Histories of a few hundred operations per key with up to ~16 concurrent clients
//! check in milliseconds; the worst case stays exponential in the concurrency.
//!
//! When a key fails, [`CheckResult::NotLinearizable`] names it and lists its operations (the key
//! with the fewest operations when several fail), with the longest partial linearization found.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// Condition on a key's current version under which a [`Call::Put`] takes effect.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Precondition {
    /// Unconditional.
    None,
    /// The key must be absent.
    DoesNotExist,
    /// The key must be present with exactly this version.
    MatchesVersion(u32),
}

/// A request to the store.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    Put { key: String, value: String, expected: Precondition },
    Get { key: String },
}

impl Call {
    pub fn key(&self) -> &str {
        match self {
            Call::Put { key, .. } | Call::Get { key } => key,
        }
    }
}

/// What the client observed. An outcome that does not fit the call (e.g. `Written` for a `Get`)
/// can never be linearized, so it makes the history fail.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The put took effect and created this version.
    Written(u32),
    /// The put had no effect; the key's version at that moment (`None` = absent).
    PreconditionFailed(Option<u32>),
    Found {
        value: String,
        version: u32,
    },
    NotFound,
}

/// One operation of a history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    pub client: u32,
    /// Tick at which the request was issued (before it could reach the store).
    pub invoke: u64,
    /// Tick at which the response arrived; `None` when it never did.
    pub complete: Option<u64>,
    pub call: Call,
    /// `None` when the outcome is unknown: the operation may take effect at any time after
    /// `invoke`, or never, regardless of `complete`.
    pub result: Option<Outcome>,
}

/// Verdict of [`check`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckResult {
    Linearizable,
    /// `key`'s sub-history has no linearization; `explanation` is a multi-line, human-readable
    /// listing of that sub-history.
    NotLinearizable {
        key: String,
        explanation: String,
    },
}

impl CheckResult {
    pub fn is_linearizable(&self) -> bool {
        matches!(self, CheckResult::Linearizable)
    }
}

impl fmt::Display for CheckResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckResult::Linearizable => f.write_str("linearizable"),
            CheckResult::NotLinearizable { explanation, .. } => write!(f, "not linearizable: {explanation}"),
        }
    }
}

/// Checks `history` against the store's sequential specification, key by key.
///
/// The order of `history` does not matter; only the recorded times order operations.
/// Operation numbers in the explanation (`#n`) are indexes into `history`.
///
/// # Panics
///
/// When an operation returned before it was invoked, which is a recording bug.
pub fn check(history: &[Operation]) -> CheckResult {
    let mut by_key: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (index, op) in history.iter().enumerate() {
        if let Some(complete) = op.complete {
            assert!(
                complete >= op.invoke,
                "operation #{index} returned at {complete}, before its invocation at {}: {op}",
                op.invoke
            );
        }
        by_key.entry(op.call.key()).or_default().push(index);
    }
    // Every key is checked so that the smallest failing sub-history, the easiest to read, is the
    // one reported.
    let mut smallest: Option<(usize, &str, String)> = None;
    for (key, indexes) in &by_key {
        if let Err(explanation) = check_key(key, history, indexes) {
            if smallest.as_ref().is_none_or(|(len, _, _)| indexes.len() < *len) {
                smallest = Some((indexes.len(), key, explanation));
            }
        }
    }
    match smallest {
        None => CheckResult::Linearizable,
        Some((_, key, explanation)) => CheckResult::NotLinearizable { key: key.to_owned(), explanation },
    }
}

/// State of one key in the model: `(interned value, version)`, or `None` when absent.
type State = Option<(u32, u32)>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelCall {
    Put { value: u32, expected: Precondition },
    Get,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ModelOutcome {
    Written(u32),
    PreconditionFailed(Option<u32>),
    Found { value: u32, version: u32 },
    NotFound,
}

/// The sequential specification of one key.
fn step(state: State, call: ModelCall) -> (State, ModelOutcome) {
    let current = state.map(|(_, version)| version);
    match call {
        ModelCall::Get => match state {
            Some((value, version)) => (state, ModelOutcome::Found { value, version }),
            None => (state, ModelOutcome::NotFound),
        },
        ModelCall::Put { value, expected } => {
            let holds = match expected {
                Precondition::None => true,
                Precondition::DoesNotExist => current.is_none(),
                Precondition::MatchesVersion(version) => current == Some(version),
            };
            if holds {
                // No overflow: a state's version counts the puts applied to reach it.
                let version = current.map_or(1, |v| v + 1);
                (Some((value, version)), ModelOutcome::Written(version))
            } else {
                (state, ModelOutcome::PreconditionFailed(current))
            }
        }
    }
}

/// One operation of a key's sub-history, in model terms.
struct Entry {
    /// Index into the whole history.
    index: usize,
    call: ModelCall,
    /// `None` for an indeterminate operation.
    result: Option<ModelOutcome>,
    invoke: u64,
    /// `u64::MAX` for an indeterminate operation or one that never returned.
    ret: u64,
}

impl Entry {
    /// State after linearizing this entry in `state`, or `None` when it cannot go there (or, for an
    /// indeterminate put, need not: see the module docs).
    fn apply(&self, state: State) -> Option<State> {
        let (after, outcome) = step(state, self.call);
        match self.result {
            Some(observed) => (observed == outcome).then_some(after),
            None => (after != state).then_some(after),
        }
    }
}

/// Checks one key's sub-history (`indexes` into `history`); `Err` holds the explanation.
fn check_key<'h>(key: &str, history: &'h [Operation], indexes: &[usize]) -> Result<(), String> {
    // Interned values: `ids` maps a value to its index in `values`.
    let mut ids: HashMap<&'h str, u32> = HashMap::new();
    let mut values: Vec<&'h str> = Vec::new();
    let mut intern = |value: &'h str| -> u32 {
        *ids.entry(value).or_insert_with(|| {
            values.push(value);
            u32::try_from(values.len() - 1).expect("fewer than 2^32 values")
        })
    };
    let mut entries = Vec::with_capacity(indexes.len());
    for &index in indexes {
        let op = &history[index];
        if matches!(op.call, Call::Get { .. }) && op.result.is_none() {
            continue;
        }
        let call = match &op.call {
            Call::Put { value, expected, .. } => ModelCall::Put { value: intern(value), expected: *expected },
            Call::Get { .. } => ModelCall::Get,
        };
        let result = op.result.as_ref().map(|outcome| match outcome {
            Outcome::Written(version) => ModelOutcome::Written(*version),
            Outcome::PreconditionFailed(current) => ModelOutcome::PreconditionFailed(*current),
            Outcome::Found { value, version } => ModelOutcome::Found { value: intern(value), version: *version },
            Outcome::NotFound => ModelOutcome::NotFound,
        });
        let ret = if result.is_some() { op.complete.unwrap_or(u64::MAX) } else { u64::MAX };
        entries.push(Entry { index, call, result, invoke: op.invoke, ret });
    }
    match linearize(&entries) {
        Ok(()) => Ok(()),
        Err(longest) => Err(explain(key, history, indexes, &entries, &values, &longest)),
    }
}

/// The WGL search with memoization over one key's entries. `Err` holds the partial linearization
/// that got furthest (indexes into `entries`), for the explanation.
fn linearize(entries: &[Entry]) -> Result<(), Vec<usize>> {
    let n = entries.len();
    // Node 2i is the invocation of entry i, node 2i + 1 its return, node 2n the list's head
    // sentinel; the list is circular so that running off its end lands on the sentinel.
    let head = 2 * n;
    let mut order: Vec<usize> = (0..2 * n).collect();
    order.sort_by_key(|&node| {
        let entry = &entries[node / 2];
        if node.is_multiple_of(2) {
            (entry.invoke, false)
        } else {
            (entry.ret, true)
        }
    });
    let mut next = vec![head; 2 * n + 1];
    let mut prev = vec![head; 2 * n + 1];
    let mut last = head;
    for &node in &order {
        next[last] = node;
        prev[node] = last;
        last = node;
    }
    next[last] = head;
    prev[head] = last;

    let known = entries.iter().filter(|entry| entry.result.is_some()).count();
    // Operations with a known outcome not linearized yet.
    let mut pending = known;
    let mut linearized = vec![0u64; n.div_ceil(64)];
    let mut state: State = None;
    let mut visited: HashSet<(Vec<u64>, State)> = HashSet::new();
    // Linearized entries, each with the state before it.
    let mut stack: Vec<(usize, State)> = Vec::new();
    // The first partial linearization placing the most operations with a known outcome: the
    // unknown ones it contains were needed to get there.
    let mut longest: Vec<usize> = Vec::new();
    let mut most_known = 0;
    let mut node = next[head];
    loop {
        if pending == 0 {
            return Ok(());
        }
        if node != head && node.is_multiple_of(2) {
            let i = node / 2;
            if let Some(after) = entries[i].apply(state) {
                linearized[i / 64] |= 1 << (i % 64);
                if visited.insert((linearized.clone(), after)) {
                    stack.push((i, state));
                    state = after;
                    unlink(&mut next, &mut prev, 2 * i);
                    unlink(&mut next, &mut prev, 2 * i + 1);
                    if entries[i].result.is_some() {
                        pending -= 1;
                    }
                    if known - pending > most_known {
                        most_known = known - pending;
                        longest = stack.iter().map(|&(i, _)| i).collect();
                    }
                    node = next[head];
                    continue;
                }
                linearized[i / 64] &= !(1 << (i % 64));
            }
            node = next[node];
        } else {
            let Some((i, before)) = stack.pop() else {
                return Err(longest);
            };
            linearized[i / 64] &= !(1 << (i % 64));
            state = before;
            // Dancing links: relinking in the reverse order of unlinking restores the list.
            relink(&mut next, &mut prev, 2 * i + 1);
            relink(&mut next, &mut prev, 2 * i);
            if entries[i].result.is_some() {
                pending += 1;
            }
            node = next[2 * i];
        }
    }
}

/// Removes `node` from the list; it keeps its own links so that [`relink`] can put it back.
fn unlink(next: &mut [usize], prev: &mut [usize], node: usize) {
    next[prev[node]] = next[node];
    prev[next[node]] = prev[node];
}

fn relink(next: &mut [usize], prev: &mut [usize], node: usize) {
    next[prev[node]] = node;
    prev[next[node]] = node;
}

fn explain(
    key: &str,
    history: &[Operation],
    indexes: &[usize],
    entries: &[Entry],
    values: &[&str],
    longest: &[usize],
) -> String {
    use fmt::Write as _;
    let unknown = indexes.iter().filter(|&&i| history[i].result.is_none()).count();
    let mut out = format!(
        "key {key:?}: no linearization of its {} operations exists ({} with a known outcome, {unknown} unknown)\n",
        indexes.len(),
        indexes.len() - unknown
    );
    out.push_str("operations by invocation (#index in the history, [invoke, return] in ticks):\n");
    let mut sorted = indexes.to_vec();
    sorted.sort_by_key(|&i| (history[i].invoke, history[i].complete.unwrap_or(u64::MAX), i));
    for i in sorted {
        let _ = writeln!(out, "  #{i:<5} {}", history[i]);
    }
    let state = longest.iter().fold(None, |state, &e| step(state, entries[e].call).0);
    let state = match state {
        None => "absent".to_owned(),
        Some((value, version)) => format!("{} v{version}", quoted(values[value as usize])),
    };
    let placed: Vec<usize> = longest.iter().map(|&e| entries[e].index).collect();
    let stuck = entries.iter().filter(|e| e.result.is_some() && !placed.contains(&e.index)).map(|e| e.index);
    let list = |ops: Vec<usize>| ops.iter().map(|i| format!("#{i}")).collect::<Vec<_>>().join(", ");
    let _ = writeln!(
        out,
        "longest partial linearization: [{}] -> state {state}; none of [{}] can follow it",
        list(placed.clone()),
        list(stuck.collect())
    );
    out
}

/// Debug-quoted, shortened so that large values keep the listing readable.
fn quoted(value: &str) -> String {
    const MAX_CHARS: usize = 40;
    if value.chars().count() <= MAX_CHARS {
        format!("{value:?}")
    } else {
        let head: String = value.chars().take(MAX_CHARS - 3).collect();
        format!("{head:?}...")
    }
}

impl fmt::Display for Precondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Precondition::None => Ok(()),
            Precondition::DoesNotExist => f.write_str(" if absent"),
            Precondition::MatchesVersion(version) => write!(f, " if v{version}"),
        }
    }
}

impl fmt::Display for Call {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Call::Put { key, value, expected } => write!(f, "put {key:?} := {}{expected}", quoted(value)),
            Call::Get { key } => write!(f, "get {key:?}"),
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Written(version) => write!(f, "written v{version}"),
            Outcome::PreconditionFailed(Some(version)) => write!(f, "precondition failed, current v{version}"),
            Outcome::PreconditionFailed(None) => f.write_str("precondition failed, absent"),
            Outcome::Found { value, version } => write!(f, "found {} v{version}", quoted(value)),
            Outcome::NotFound => f.write_str("not found"),
        }
    }
}

impl fmt::Display for Operation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "client {} ", self.client)?;
        match (self.complete, &self.result) {
            (Some(complete), Some(_)) => write!(f, "[{}, {complete}]", self.invoke)?,
            (None, _) => write!(f, "[{}, never)", self.invoke)?,
            (Some(complete), None) => write!(f, "[{}, gave up at {complete})", self.invoke)?,
        }
        write!(f, " {} -> ", self.call)?;
        match &self.result {
            Some(outcome) => write!(f, "{outcome}"),
            None => f.write_str("unknown"),
        }
    }
}

/// Records a history from many threads; clones share it.
///
/// Times are nanoseconds since the recorder was created. Call [`HistoryRecorder::invoke`] right
/// before sending a request and complete the handle right after the response arrives; a handle
/// dropped without completion leaves its operation indeterminate. Leave out requests that
/// certainly never reached the store (see the module docs).
#[derive(Clone, Debug)]
pub struct HistoryRecorder {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    origin: Instant,
    operations: Mutex<Vec<Operation>>,
}

impl Shared {
    fn now(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// A client thread that panicked while holding the lock left the history consistent: every
    /// update is a single push or field assignment.
    fn operations(&self) -> std::sync::MutexGuard<'_, Vec<Operation>> {
        self.operations.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for HistoryRecorder {
    fn default() -> Self {
        HistoryRecorder::new()
    }
}

impl HistoryRecorder {
    pub fn new() -> HistoryRecorder {
        HistoryRecorder { shared: Arc::new(Shared { origin: Instant::now(), operations: Mutex::new(Vec::new()) }) }
    }

    /// Records the invocation of `call` by `client` now; the operation is indeterminate until the
    /// handle is completed.
    #[must_use = "complete the handle when the response arrives, or the operation stays indeterminate"]
    pub fn invoke(&self, client: u32, call: Call) -> OpHandle {
        let invoke = self.shared.now();
        let mut operations = self.shared.operations();
        operations.push(Operation { client, invoke, complete: None, call, result: None });
        OpHandle { shared: Arc::clone(&self.shared), index: operations.len() - 1 }
    }

    /// A snapshot of the operations recorded so far, in invocation-recording order.
    pub fn history(&self) -> Vec<Operation> {
        self.shared.operations().clone()
    }

    /// [`check`] of the current [`HistoryRecorder::history`].
    pub fn check(&self) -> CheckResult {
        check(&self.history())
    }
}

/// An invoked operation of a [`HistoryRecorder`], waiting for its outcome.
#[derive(Debug)]
#[must_use = "complete the handle when the response arrives, or the operation stays indeterminate"]
pub struct OpHandle {
    shared: Arc<Shared>,
    index: usize,
}

impl OpHandle {
    /// The response arrived now with `outcome`.
    pub fn complete(self, outcome: Outcome) {
        let complete = self.shared.now();
        let mut operations = self.shared.operations();
        let op = &mut operations[self.index];
        op.complete = Some(complete);
        op.result = Some(outcome);
    }

    /// The outcome will never be known (timeout, connection lost after sending, ...): the
    /// operation may take effect at any later time or never.
    pub fn unknown(self) {}
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(key: &str, value: &str, expected: Precondition) -> Call {
        Call::Put { key: key.into(), value: value.into(), expected }
    }

    fn get(key: &str) -> Call {
        Call::Get { key: key.into() }
    }

    fn found(value: &str, version: u32) -> Outcome {
        Outcome::Found { value: value.into(), version }
    }

    /// An operation with a known outcome over `[invoke, complete]`.
    fn done(client: u32, (invoke, complete): (u64, u64), call: Call, outcome: Outcome) -> Operation {
        Operation { client, invoke, complete: Some(complete), call, result: Some(outcome) }
    }

    /// An operation invoked at `invoke` that never returned.
    fn lost(client: u32, invoke: u64, call: Call) -> Operation {
        Operation { client, invoke, complete: None, call, result: None }
    }

    #[track_caller]
    fn assert_linearizable(history: &[Operation]) {
        let result = check(history);
        assert!(result.is_linearizable(), "{result}");
    }

    /// Asserts that the history fails on `key` and returns the explanation.
    #[track_caller]
    fn assert_fails_on(history: &[Operation], key: &str) -> String {
        match check(history) {
            CheckResult::Linearizable => panic!("expected key {key:?} to fail, but the history is linearizable"),
            CheckResult::NotLinearizable { key: failed, explanation } => {
                assert_eq!(failed, key, "{explanation}");
                explanation
            }
        }
    }

    use Precondition::{DoesNotExist, MatchesVersion};

    #[test]
    fn empty_history_is_linearizable() {
        assert_linearizable(&[]);
    }

    #[test]
    fn sequential_valid_history_passes() {
        let history = [
            done(1, (0, 10), get("k"), Outcome::NotFound),
            done(1, (20, 30), put("k", "a", DoesNotExist), Outcome::Written(1)),
            done(2, (40, 50), get("k"), found("a", 1)),
            done(2, (60, 70), put("k", "b", MatchesVersion(1)), Outcome::Written(2)),
            done(1, (80, 90), put("k", "c", MatchesVersion(1)), Outcome::PreconditionFailed(Some(2))),
            done(1, (100, 110), put("k", "c", DoesNotExist), Outcome::PreconditionFailed(Some(2))),
            done(3, (120, 130), put("k", "d", Precondition::None), Outcome::Written(3)),
            done(3, (140, 150), get("k"), found("d", 3)),
        ];
        assert_linearizable(&history);
    }

    #[test]
    fn stale_read_fails_and_names_the_key() {
        let mut history = vec![
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            done(1, (20, 30), put("k", "b", MatchesVersion(1)), Outcome::Written(2)),
            done(2, (40, 50), get("k"), found("a", 1)),
        ];
        let explanation = assert_fails_on(&history, "k");
        assert!(explanation.contains("key \"k\""), "{explanation}");
        assert!(explanation.contains("#2"), "{explanation}");
        assert!(explanation.contains("get \"k\" -> found \"a\" v1"), "{explanation}");

        // The same read overlapping the second write may be ordered before it.
        history[2] = done(2, (25, 50), get("k"), found("a", 1));
        assert_linearizable(&history);
    }

    #[test]
    fn concurrent_writes_pass_in_either_order() {
        for (a_version, b_version) in [(1, 2), (2, 1)] {
            let last = if a_version == 2 { "a" } else { "b" };
            let history = [
                done(1, (0, 100), put("k", "a", Precondition::None), Outcome::Written(a_version)),
                done(2, (10, 90), put("k", "b", Precondition::None), Outcome::Written(b_version)),
                done(3, (20, 30), get("k"), Outcome::NotFound),
                done(3, (110, 120), get("k"), found(last, 2)),
            ];
            assert_linearizable(&history);
        }
        // A read after both writes must see the one that got version 2.
        let history = [
            done(1, (0, 100), put("k", "a", Precondition::None), Outcome::Written(2)),
            done(2, (10, 90), put("k", "b", Precondition::None), Outcome::Written(1)),
            done(3, (110, 120), get("k"), found("b", 2)),
        ];
        assert_fails_on(&history, "k");
    }

    #[test]
    fn two_cas_writes_from_the_same_version_cannot_both_succeed() {
        // Overlapping.
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            done(2, (20, 40), put("k", "b", MatchesVersion(1)), Outcome::Written(2)),
            done(3, (25, 45), put("k", "c", MatchesVersion(1)), Outcome::Written(2)),
        ];
        assert_fails_on(&history, "k");
        // Sequential.
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            done(2, (20, 30), put("k", "b", MatchesVersion(1)), Outcome::Written(2)),
            done(3, (40, 50), put("k", "c", MatchesVersion(1)), Outcome::Written(2)),
        ];
        assert_fails_on(&history, "k");
        // Two creations of the same key.
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            done(2, (5, 15), put("k", "b", DoesNotExist), Outcome::Written(1)),
        ];
        assert_fails_on(&history, "k");
        // One of them failing is fine.
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            done(2, (20, 40), put("k", "b", MatchesVersion(1)), Outcome::Written(2)),
            done(3, (25, 45), put("k", "c", MatchesVersion(1)), Outcome::PreconditionFailed(Some(2))),
        ];
        assert_linearizable(&history);
    }

    #[test]
    fn indeterminate_write_observed_later_passes() {
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            lost(2, 20, put("k", "b", MatchesVersion(1))),
            done(3, (30, 40), get("k"), found("a", 1)),
            // Long after the client gave up.
            done(3, (1000, 1010), get("k"), found("b", 2)),
            done(3, (1020, 1030), put("k", "c", MatchesVersion(2)), Outcome::Written(3)),
        ];
        assert_linearizable(&history);
    }

    #[test]
    fn indeterminate_write_never_observed_passes() {
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            lost(2, 20, put("k", "b", Precondition::None)),
            Operation { complete: Some(60), ..lost(2, 50, put("k", "c", MatchesVersion(1))) },
            done(3, (100, 110), get("k"), found("a", 1)),
            done(3, (120, 130), put("k", "d", MatchesVersion(1)), Outcome::Written(2)),
            lost(4, 140, get("k")),
        ];
        assert_linearizable(&history);
    }

    #[test]
    fn indeterminate_write_cannot_take_effect_before_its_invocation() {
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            done(3, (20, 30), get("k"), found("b", 2)),
            lost(2, 40, put("k", "b", MatchesVersion(1))),
        ];
        assert_fails_on(&history, "k");
    }

    #[test]
    fn indeterminate_write_once_observed_stays() {
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            lost(2, 20, put("k", "b", MatchesVersion(1))),
            done(3, (30, 40), get("k"), found("b", 2)),
            done(3, (50, 60), get("k"), found("a", 1)),
        ];
        assert_fails_on(&history, "k");
    }

    #[test]
    fn read_of_a_value_nobody_wrote_fails() {
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            lost(2, 20, put("k", "b", MatchesVersion(1))),
            done(3, (30, 40), get("k"), found("c", 2)),
        ];
        assert_fails_on(&history, "k");
        let history = [done(3, (30, 40), get("k"), found("a", 1))];
        assert_fails_on(&history, "k");
    }

    #[test]
    fn precondition_failure_must_report_the_current_version() {
        let with_failure = |outcome: Outcome| {
            [
                done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
                done(2, (20, 30), put("k", "b", DoesNotExist), outcome),
            ]
        };
        assert_linearizable(&with_failure(Outcome::PreconditionFailed(Some(1))));
        assert_fails_on(&with_failure(Outcome::PreconditionFailed(Some(2))), "k");
        assert_fails_on(&with_failure(Outcome::PreconditionFailed(None)), "k");
        // A precondition that held cannot fail.
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            done(2, (20, 30), put("k", "b", MatchesVersion(1)), Outcome::PreconditionFailed(Some(1))),
        ];
        assert_fails_on(&history, "k");
        // MatchesVersion(0) does not match an absent key.
        let history = [done(1, (0, 10), put("k", "a", MatchesVersion(0)), Outcome::PreconditionFailed(None))];
        assert_linearizable(&history);
    }

    #[test]
    fn outcome_of_the_wrong_kind_fails() {
        let history = [done(1, (0, 10), get("k"), Outcome::Written(1))];
        assert_fails_on(&history, "k");
    }

    #[test]
    fn keys_are_checked_independently() {
        // A model sharing state between keys would reject this: "b" is absent after "a" was
        // written, and both count their versions from 1.
        let history = [
            done(1, (0, 10), put("a", "x", DoesNotExist), Outcome::Written(1)),
            done(2, (20, 30), get("b"), Outcome::NotFound),
            done(2, (40, 50), put("b", "y", DoesNotExist), Outcome::Written(1)),
            done(1, (60, 70), get("a"), found("x", 1)),
        ];
        assert_linearizable(&history);

        let history = [
            done(1, (0, 10), put("a", "x", DoesNotExist), Outcome::Written(1)),
            done(1, (20, 30), get("a"), found("x", 1)),
            done(2, (0, 10), put("b", "y", DoesNotExist), Outcome::Written(1)),
            done(2, (20, 30), get("b"), Outcome::NotFound),
            done(3, (0, 10), put("c", "z", DoesNotExist), Outcome::Written(1)),
        ];
        let explanation = assert_fails_on(&history, "b");
        assert!(!explanation.contains("\"a\""), "only key b's operations are listed: {explanation}");

        // Of two failing keys, the one with fewer operations is reported.
        let mut history = history.to_vec();
        history.extend([
            done(4, (40, 50), put("a", "w", MatchesVersion(1)), Outcome::Written(2)),
            done(4, (60, 70), get("a"), found("x", 1)),
            done(4, (80, 90), get("a"), found("w", 2)),
        ]);
        assert_fails_on(&history, "b");
        history.extend((0..4).map(|i| done(5, (40 + 20 * i, 50 + 20 * i), get("b"), Outcome::NotFound)));
        assert_fails_on(&history, "a");
    }

    #[test]
    fn explanation_lists_the_operations_and_the_partial_linearization() {
        let history = [
            done(1, (0, 10), put("k", "a", DoesNotExist), Outcome::Written(1)),
            lost(2, 5, put("k", "b", Precondition::None)),
            done(3, (20, 30), get("k"), found("a", 1)),
            done(3, (40, 50), get("k"), found("zzz", 1)),
        ];
        let explanation = assert_fails_on(&history, "k");
        for line in [
            "key \"k\": no linearization of its 4 operations exists (3 with a known outcome, 1 unknown)",
            "#0     client 1 [0, 10] put \"k\" := \"a\" if absent -> written v1",
            "#1     client 2 [5, never) put \"k\" := \"b\" -> unknown",
            "#3     client 3 [40, 50] get \"k\" -> found \"zzz\" v1",
            "longest partial linearization: [#0, #2] -> state \"a\" v1; none of [#3] can follow it",
        ] {
            assert!(explanation.contains(line), "missing {line:?} in:\n{explanation}");
        }
    }

    /// xorshift64*: deterministic and good enough to pick operations.
    struct Rng(u64);

    impl Rng {
        fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
        }

        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }

        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }

        /// True with probability `percent` / 100.
        fn chance(&mut self, percent: u64) -> bool {
            self.below(100) < percent
        }
    }

    /// A correct atomic store, written independently of the checker's model.
    #[derive(Default)]
    struct Store {
        keys: HashMap<String, (String, u32)>,
    }

    impl Store {
        fn apply(&mut self, call: &Call) -> Outcome {
            match call {
                Call::Get { key } => match self.keys.get(key) {
                    Some((value, version)) => found(value, *version),
                    None => Outcome::NotFound,
                },
                Call::Put { key, value, expected } => {
                    let current = self.keys.get(key).map(|(_, version)| *version);
                    let ok = match (expected, current) {
                        (Precondition::None, _) | (DoesNotExist, None) => true,
                        (MatchesVersion(want), Some(have)) => *want == have,
                        _ => false,
                    };
                    if !ok {
                        return Outcome::PreconditionFailed(current);
                    }
                    let version = current.unwrap_or(0) + 1;
                    self.keys.insert(key.clone(), (value.clone(), version));
                    Outcome::Written(version)
                }
            }
        }
    }

    /// A client's random next call; `seen` is the last version it saw of each key.
    fn random_call(rng: &mut Rng, keys: &[&str], client: u32, serial: u32, seen: &HashMap<String, u32>) -> Call {
        let key = keys[rng.below(keys.len() as u64) as usize];
        let value = format!("c{client}-{serial}");
        let seen = seen.get(key).copied();
        match rng.below(100) {
            0..35 => get(key),
            35..65 => put(key, &value, seen.map_or(DoesNotExist, MatchesVersion)),
            // Often stale, sometimes from the future.
            65..75 => put(key, &value, MatchesVersion(rng.below(u64::from(seen.unwrap_or(0)) + 3) as u32)),
            75..85 => put(key, &value, DoesNotExist),
            _ => put(key, &value, Precondition::None),
        }
    }

    fn observed_version(outcome: &Outcome) -> Option<u32> {
        match outcome {
            Outcome::Written(version) | Outcome::Found { version, .. } => Some(*version),
            Outcome::PreconditionFailed(current) => *current,
            Outcome::NotFound => None,
        }
    }

    /// Simulated run of `clients` concurrent clients against a correct store: at every tick one
    /// random client makes progress (invoke, take effect, or return), so intervals overlap like in
    /// a real run and each operation takes effect strictly inside its interval. `lost_percent` of
    /// the operations lose their outcome, half of those before taking effect.
    struct Simulation {
        history: Vec<Operation>,
        /// Per key, the value of each version (index version - 1).
        versions: HashMap<String, Vec<String>>,
    }

    fn simulate(seed: u64, clients: u32, keys: &[&str], operations: usize, lost_percent: u64) -> Simulation {
        enum Phase {
            Idle,
            Invoked(usize),
            Applied(usize, Outcome),
        }
        let mut rng = Rng::new(seed);
        let mut store = Store::default();
        let mut history: Vec<Operation> = Vec::new();
        let mut versions: HashMap<String, Vec<String>> = HashMap::new();
        let mut phases: Vec<Phase> = (0..clients).map(|_| Phase::Idle).collect();
        let mut seen: Vec<HashMap<String, u32>> = (0..clients).map(|_| HashMap::new()).collect();
        let mut now = 0u64;
        let mut in_flight = 0;
        while history.len() < operations || in_flight > 0 {
            now += 1 + rng.below(3);
            let client = rng.below(u64::from(clients)) as u32;
            let c = client as usize;
            phases[c] = match std::mem::replace(&mut phases[c], Phase::Idle) {
                Phase::Idle if history.len() < operations => {
                    let serial = history.len() as u32;
                    let call = random_call(&mut rng, keys, client, serial, &seen[c]);
                    history.push(Operation { client, invoke: now, complete: None, call, result: None });
                    in_flight += 1;
                    Phase::Invoked(history.len() - 1)
                }
                Phase::Idle => Phase::Idle,
                Phase::Invoked(_) if rng.chance(lost_percent / 2) => {
                    in_flight -= 1;
                    Phase::Idle
                }
                Phase::Invoked(index) => {
                    let outcome = store.apply(&history[index].call);
                    if let (Outcome::Written(_), Call::Put { key, value, .. }) = (&outcome, &history[index].call) {
                        versions.entry(key.clone()).or_default().push(value.clone());
                    }
                    Phase::Applied(index, outcome)
                }
                Phase::Applied(_, _) if rng.chance(lost_percent / 2) => {
                    in_flight -= 1;
                    Phase::Idle
                }
                Phase::Applied(index, outcome) => {
                    if let Some(version) = observed_version(&outcome) {
                        seen[c].insert(history[index].call.key().to_owned(), version);
                    }
                    history[index].complete = Some(now);
                    history[index].result = Some(outcome);
                    in_flight -= 1;
                    Phase::Idle
                }
            };
        }
        Simulation { history, versions }
    }

    /// Turns the last read that can be made provably stale into a stale read: a read of version
    /// `v >= 2` invoked after another operation had returned having observed `v` now reports
    /// version `v - 1` with its real value. Returns the key and the index of the corrupted read.
    fn corrupt_one_read(sim: &mut Simulation) -> Option<(String, usize)> {
        let history = &sim.history;
        let target = (0..history.len()).rev().find(|&r| {
            let (Call::Get { key }, Some(Outcome::Found { version, .. })) = (&history[r].call, &history[r].result)
            else {
                return false;
            };
            *version >= 2
                && history.iter().any(|q| {
                    q.call.key() == key
                        && q.complete.is_some_and(|complete| complete < history[r].invoke)
                        && q.result.as_ref().and_then(observed_version) == Some(*version)
                })
        })?;
        let key = history[target].call.key().to_owned();
        let Some(Outcome::Found { value, version }) = &mut sim.history[target].result else { unreachable!() };
        *version -= 1;
        *value = sim.versions[&key][*version as usize - 1].clone();
        Some((key, target))
    }

    #[test]
    fn random_histories_of_a_correct_store_pass_and_a_corrupted_read_fails() {
        for seed in 1..=6 {
            let mut sim = simulate(seed, 8, &["a", "b", "c"], 600, 6);
            let started = Instant::now();
            let result = check(&sim.history);
            assert!(result.is_linearizable(), "seed {seed}: {result}");
            let elapsed = started.elapsed();

            let (key, index) = corrupt_one_read(&mut sim).expect("a read to corrupt");
            let explanation = assert_fails_on(&sim.history, &key);
            assert!(explanation.contains(&format!("#{index} ")), "seed {seed}: {explanation}");
            eprintln!("seed {seed}: {} operations checked in {elapsed:?}", sim.history.len());
        }
    }

    #[test]
    fn value_corruption_in_a_random_history_fails() {
        let mut sim = simulate(42, 8, &["a", "b", "c"], 400, 6);
        let index = (0..sim.history.len())
            .rev()
            .find(|&i| matches!(sim.history[i].result, Some(Outcome::Found { .. })))
            .expect("a successful read");
        let Some(Outcome::Found { value, .. }) = &mut sim.history[index].result else { unreachable!() };
        *value = "never written".into();
        let key = sim.history[index].call.key().to_owned();
        assert_fails_on(&sim.history, &key);
    }

    #[test]
    fn high_concurrency_on_one_key_checks_quickly() {
        for seed in 1..=2 {
            let sim = simulate(seed, 16, &["k"], 400, 4);
            let started = Instant::now();
            let result = check(&sim.history);
            assert!(result.is_linearizable(), "seed {seed}: {result}");
            eprintln!("seed {seed}: 400 operations, 16 clients, one key: {:?}", started.elapsed());
        }
    }

    #[test]
    fn recorder_from_threads_against_a_locked_store_is_linearizable() {
        fn assert_send_sync<T: Clone + Send + Sync>() {}
        assert_send_sync::<HistoryRecorder>();

        let recorder = HistoryRecorder::new();
        let store = Arc::new(Mutex::new(Store::default()));
        let threads: Vec<_> = (0..6u32)
            .map(|client| {
                let recorder = recorder.clone();
                let store = Arc::clone(&store);
                std::thread::spawn(move || {
                    let mut rng = Rng::new(u64::from(client) + 100);
                    let mut seen = HashMap::new();
                    for serial in 0..100 {
                        let call = random_call(&mut rng, &["a", "b", "c"], client, serial, &seen);
                        let handle = recorder.invoke(client, call.clone());
                        let outcome = store.lock().unwrap().apply(&call);
                        if let Some(version) = observed_version(&outcome) {
                            seen.insert(call.key().to_owned(), version);
                        }
                        if rng.chance(5) {
                            handle.unknown();
                        } else {
                            handle.complete(outcome);
                        }
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        let history = recorder.history();
        assert_eq!(history.len(), 600);
        assert!(history.iter().all(|op| op.complete.is_none() == op.result.is_none()));
        let result = recorder.check();
        assert!(result.is_linearizable(), "{result}");
    }
}
