//! A linearizability checker for one read/write register (Wing & Gong's search with Lowe's
//! memoisation of (linearized set, register state)). Operations carry their invocation and
//! response times; an operation without a response (a write whose outcome the client never
//! learned) may take effect at any point after its invocation, or never.

use std::collections::HashSet;

/// What a client did on one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpKind {
    Write(u64),
    /// The value read (None: the key was never written).
    Read(Option<u64>),
}

/// One operation of a history; times are totally ordered instants of the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    pub kind: OpKind,
    pub call: u64,
    /// None: no response was ever seen (pending forever).
    pub ret: Option<u64>,
    pub client: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinResult {
    Ok,
    Violation,
    /// The search exceeded its step budget.
    GaveUp,
}

#[derive(Clone, Copy)]
struct Entry {
    op: usize,
    is_call: bool,
    prev: usize,
    next: usize,
}

const NIL: usize = usize::MAX;

/// Is `history` (all on one register, initially unwritten) linearizable?
pub fn check(history: &[Op], max_steps: u64) -> LinResult {
    // Events: (time, order, op, is_call); at equal times responses come before calls.
    let mut evs: Vec<(u64, u8, usize, bool)> = Vec::new();
    for (i, op) in history.iter().enumerate() {
        evs.push((op.call, 1, i, true));
        if let Some(r) = op.ret {
            evs.push((r, 0, i, false));
        }
    }
    evs.sort();
    let n = evs.len();
    // Index 0 is a sentinel head.
    let mut es: Vec<Entry> = Vec::with_capacity(n + 1);
    es.push(Entry {
        op: NIL,
        is_call: false,
        prev: NIL,
        next: if n > 0 { 1 } else { NIL },
    });
    let mut ret_of = vec![NIL; history.len()];
    let mut call_of = vec![NIL; history.len()];
    for (k, (_, _, op, is_call)) in evs.iter().enumerate() {
        let idx = k + 1;
        es.push(Entry {
            op: *op,
            is_call: *is_call,
            prev: idx - 1,
            next: if idx < n { idx + 1 } else { NIL },
        });
        if *is_call {
            call_of[*op] = idx;
        } else {
            ret_of[*op] = idx;
        }
    }
    let mut remaining_returns = history.iter().filter(|o| o.ret.is_some()).count();
    let words = history.len().div_ceil(64).max(1);
    let mut bits = vec![0u64; words];
    let mut state: Option<u64> = None;
    let mut cache: HashSet<(Vec<u64>, Option<u64>)> = HashSet::new();
    let mut stack: Vec<(usize, Option<u64>)> = Vec::new();
    let mut cur = es[0].next;
    let mut steps = 0u64;

    fn unlink(es: &mut [Entry], i: usize) {
        let (p, n) = (es[i].prev, es[i].next);
        es[p].next = n;
        if n != NIL {
            es[n].prev = p;
        }
    }
    fn relink(es: &mut [Entry], i: usize) {
        let (p, n) = (es[i].prev, es[i].next);
        es[p].next = i;
        if n != NIL {
            es[n].prev = i;
        }
    }

    loop {
        if remaining_returns == 0 {
            return LinResult::Ok;
        }
        steps += 1;
        if steps > max_steps {
            return LinResult::GaveUp;
        }
        let backtrack = cur == NIL || !es[cur].is_call;
        if !backtrack {
            let op = es[cur].op;
            let next_state = match &history[op].kind {
                OpKind::Write(v) => Some(Some(*v)),
                OpKind::Read(v) => (*v == state).then_some(state),
            };
            if let Some(ns) = next_state {
                bits[op / 64] |= 1 << (op % 64);
                if cache.insert((bits.clone(), ns)) {
                    stack.push((cur, state));
                    state = ns;
                    unlink(&mut es, cur);
                    if ret_of[op] != NIL {
                        unlink(&mut es, ret_of[op]);
                        remaining_returns -= 1;
                    }
                    cur = es[0].next;
                    continue;
                }
                bits[op / 64] &= !(1 << (op % 64));
            }
            cur = es[cur].next;
            continue;
        }
        let Some((call, prev_state)) = stack.pop() else {
            return LinResult::Violation;
        };
        let op = es[call].op;
        if ret_of[op] != NIL {
            relink(&mut es, ret_of[op]);
            remaining_returns += 1;
        }
        relink(&mut es, call);
        debug_assert_eq!(call_of[op], call);
        bits[op / 64] &= !(1 << (op % 64));
        state = prev_state;
        cur = es[call].next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(v: u64, call: u64, ret: Option<u64>) -> Op {
        Op {
            kind: OpKind::Write(v),
            call,
            ret,
            client: 0,
        }
    }

    fn r(v: Option<u64>, call: u64, ret: u64) -> Op {
        Op {
            kind: OpKind::Read(v),
            call,
            ret: Some(ret),
            client: 1,
        }
    }

    const BUDGET: u64 = 1_000_000;

    #[test]
    fn sequential_histories() {
        assert_eq!(check(&[], BUDGET), LinResult::Ok);
        let h = [r(None, 1, 2), w(1, 3, Some(4)), r(Some(1), 5, 6)];
        assert_eq!(check(&h, BUDGET), LinResult::Ok);
        let bad = [w(1, 1, Some(2)), r(None, 3, 4)];
        assert_eq!(check(&bad, BUDGET), LinResult::Violation);
    }

    #[test]
    fn concurrent_write_may_be_seen_or_not() {
        let h = [w(1, 1, Some(10)), r(None, 2, 3), r(Some(1), 4, 5)];
        assert_eq!(check(&h, BUDGET), LinResult::Ok);
        // Once a read saw the new value, a later read may not see the old one.
        let bad = [w(1, 1, Some(10)), r(Some(1), 2, 3), r(None, 4, 5)];
        assert_eq!(check(&bad, BUDGET), LinResult::Violation);
    }

    #[test]
    fn reading_a_value_before_its_write_began() {
        let bad = [r(Some(7), 1, 2), w(7, 3, Some(4))];
        assert_eq!(check(&bad, BUDGET), LinResult::Violation);
    }

    #[test]
    fn stale_read_after_an_acknowledged_overwrite() {
        let bad = [w(1, 1, Some(2)), w(2, 3, Some(4)), r(Some(1), 5, 6)];
        assert_eq!(check(&bad, BUDGET), LinResult::Violation);
        // Concurrent with the second write the old value is fine.
        let ok = [w(1, 1, Some(2)), w(2, 3, Some(8)), r(Some(1), 5, 6)];
        assert_eq!(check(&ok, BUDGET), LinResult::Ok);
    }

    #[test]
    fn pending_writes_take_effect_late_or_never() {
        // A write without a response may show up much later...
        let ok = [w(1, 1, None), r(None, 2, 3), r(Some(1), 50, 51)];
        assert_eq!(check(&ok, BUDGET), LinResult::Ok);
        // ...or never.
        let ok = [
            w(1, 1, None),
            r(None, 2, 3),
            w(2, 4, Some(5)),
            r(Some(2), 6, 7),
        ];
        assert_eq!(check(&ok, BUDGET), LinResult::Ok);
        // But not before it was invoked, and not twice.
        let bad = [w(1, 5, None), r(Some(1), 1, 3)];
        assert_eq!(check(&bad, BUDGET), LinResult::Violation);
        let bad = [
            w(1, 1, None),
            r(Some(1), 2, 3),
            w(2, 4, Some(5)),
            r(Some(1), 6, 7),
        ];
        assert_eq!(check(&bad, BUDGET), LinResult::Violation);
    }

    #[test]
    fn lost_acknowledged_write() {
        let bad = [
            w(1, 1, Some(2)),
            r(Some(1), 3, 4),
            w(2, 5, Some(6)),
            r(Some(1), 7, 8),
        ];
        assert_eq!(check(&bad, BUDGET), LinResult::Violation);
    }

    #[test]
    fn many_concurrent_clients() {
        // Four overlapping writes and reads consistent with the order 3, 1, 4, 2.
        let h = [
            w(1, 1, Some(20)),
            w(2, 2, Some(21)),
            w(3, 3, Some(22)),
            w(4, 4, Some(23)),
            r(Some(3), 5, 6),
            r(Some(1), 7, 8),
            r(Some(4), 9, 10),
            r(Some(2), 24, 25),
        ];
        assert_eq!(check(&h, BUDGET), LinResult::Ok);
        let mut bad = h.to_vec();
        bad.push(r(Some(3), 26, 27));
        assert_eq!(check(&bad, BUDGET), LinResult::Violation);
    }
}
