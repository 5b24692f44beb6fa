//! Global invariants of a simulated run, checked as the run goes: one primary per ballot,
//! committed decrees never change (a hash chain over every replica's applied prefix), the
//! current primary holds every committed decree, the meta's configurations only move
//! forward, acknowledged writes are seen by later reads; and at the end, the clients'
//! histories are linearizable per key.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::lin::{self, LinResult, Op, OpKind};
use crate::replica::mutation::Mutation;

/// FNV-1a, fed by `write!` (the trace digest and mutation content hashes).
#[derive(Debug, Clone, Copy)]
pub struct Fnv(pub u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn bytes(&mut self, b: &[u8]) {
        for x in b {
            self.0 ^= u64::from(*x);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}

impl std::fmt::Write for Fnv {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.bytes(s.as_bytes());
        Ok(())
    }
}

/// The chain hash after applying `m` on top of `prev`: identifies a committed prefix.
pub fn chain(prev: u64, m: &Mutation) -> u64 {
    let mut h = Fnv(prev ^ 0x9e37_79b9_7f4a_7c15);
    h.bytes(&m.decree.to_le_bytes());
    for u in &m.updates {
        h.bytes(u.code.as_bytes());
        h.bytes(&[0]);
        h.bytes(&u.data);
    }
    h.0
}

pub const CHAIN_START: u64 = 0x1234_5678;

/// Outcome of a client operation as the checker records it.
#[derive(Debug, Default)]
pub struct Checker {
    pub violation: Option<String>,
    /// Per partition: the chain hash of every committed decree (index = decree).
    chains: BTreeMap<i32, Vec<u64>>,
    /// Who was primary per (partition, ballot).
    primaries: BTreeMap<(i32, i64), u64>,
    /// The meta's last configuration per partition: (ballot, primary, secondaries).
    meta_last: BTreeMap<i32, (i64, u64, Vec<u64>)>,
    /// Written value -> (key, decree it was committed at).
    value_decree: BTreeMap<u64, i64>,
    /// Per key: the highest decree of a write whose ack a client has received.
    acked_max: BTreeMap<u8, i64>,
    pub histories: BTreeMap<u8, Vec<Op>>,
    pub acked_writes: u64,
    pub ok_reads: u64,
    pub unknown_writes: u64,
    pub failed_ops: u64,
}

impl Checker {
    pub fn fail(&mut self, msg: String) {
        if self.violation.is_none() {
            self.violation = Some(msg);
        }
    }

    pub fn committed(&self, pidx: i32) -> i64 {
        self.chains
            .get(&pidx)
            .map(|c| c.len() as i64 - 1)
            .unwrap_or(0)
    }

    pub fn chain_at(&self, pidx: i32, decree: i64) -> Option<u64> {
        if decree == 0 {
            return Some(CHAIN_START);
        }
        self.chains.get(&pidx)?.get(decree as usize).copied()
    }

    /// A replica applied decree `decree` giving chain `h` (its previous decree was applied).
    pub fn on_apply(&mut self, node: u64, pidx: i32, decree: i64, h: u64, m: &Mutation) {
        let c = self.chains.entry(pidx).or_insert_with(|| vec![CHAIN_START]);
        let d = decree as usize;
        if d < c.len() {
            if c[d] != h {
                let msg = format!(
                    "committed decree changed: partition {pidx} decree {decree} applied by {} \
                     differs from what was committed before (ballot {}, {} updates)",
                    super::world::name(node),
                    m.ballot,
                    m.updates.len()
                );
                self.fail(msg);
            }
        } else if d == c.len() {
            c.push(h);
            for u in &m.updates {
                if let Some((_, v)) = super::world::decode_put(&u.data) {
                    self.value_decree.entry(v).or_insert(decree);
                }
            }
        } else {
            let msg = format!(
                "partition {pidx}: {} committed decree {decree} but decree {} was never committed",
                super::world::name(node),
                c.len()
            );
            self.fail(msg);
        }
    }

    /// A replica installed a checkpoint at `decree` with chain `h`.
    pub fn on_install(&mut self, node: u64, pidx: i32, decree: i64, h: u64) {
        if self.chain_at(pidx, decree) != Some(h) {
            let msg = format!(
                "partition {pidx}: {} installed a checkpoint at decree {decree} that does not \
                 match the committed prefix",
                super::world::name(node)
            );
            self.fail(msg);
        }
    }

    /// `node` is primary of `pidx` at `ballot` right now.
    pub fn on_primary(&mut self, node: u64, pidx: i32, ballot: i64) {
        let prev = *self.primaries.entry((pidx, ballot)).or_insert(node);
        if prev != node {
            let msg = format!(
                "two primaries of partition {pidx} at ballot {ballot}: {} and {}",
                super::world::name(prev),
                super::world::name(node)
            );
            self.fail(msg);
        }
    }

    /// The primary the meta currently names is serving: it must hold every committed decree.
    pub fn on_current_primary(&mut self, node: u64, pidx: i32, max_prepared: i64) {
        let committed = self.committed(pidx);
        if max_prepared < committed {
            let msg = format!(
                "committed decree rolled back: {} serves partition {pidx} as the meta's \
                 primary with only {max_prepared} decrees, {committed} were committed",
                super::world::name(node)
            );
            self.fail(msg);
        }
    }

    /// The meta's configuration of `pidx`, read after a step.
    pub fn on_meta_config(&mut self, pidx: i32, ballot: i64, primary: u64, mut sec: Vec<u64>) {
        sec.sort_unstable();
        let cur = (ballot, primary, sec);
        if let Some(last) = self.meta_last.get(&pidx) {
            if cur.0 < last.0 || (cur.0 == last.0 && cur != *last) {
                let msg = format!(
                    "meta configuration of partition {pidx} moved backwards: ballot {} {:?} \
                     after ballot {} {:?}",
                    cur.0, cur, last.0, last
                );
                self.fail(msg);
            }
        }
        self.meta_last.insert(pidx, cur);
    }

    // ---- client histories -----------------------------------------------------------

    /// A client invokes an operation; returns its index in the key's history and, for a
    /// read, the decree floor it must observe.
    pub fn invoke(&mut self, client: u32, key: u8, kind: OpKind, at: u64) -> (usize, i64) {
        let h = self.histories.entry(key).or_default();
        h.push(Op {
            kind,
            call: at,
            ret: None,
            client,
        });
        (h.len() - 1, self.acked_max.get(&key).copied().unwrap_or(0))
    }

    pub fn write_acked(&mut self, key: u8, idx: usize, value: u64, at: u64) {
        self.acked_writes += 1;
        if let Some(op) = self.histories.get_mut(&key).and_then(|h| h.get_mut(idx)) {
            op.ret = Some(at);
        }
        match self.value_decree.get(&value) {
            Some(d) => {
                let e = self.acked_max.entry(key).or_insert(0);
                *e = (*e).max(*d);
            }
            None => self.fail(format!(
                "write of value {value:#x} to key {key} was acknowledged but never committed"
            )),
        }
    }

    /// The write definitely did not happen (refused before it was proposed).
    pub fn write_refused(&mut self, key: u8, idx: usize) {
        self.failed_ops += 1;
        if let Some(h) = self.histories.get_mut(&key) {
            if let Some(op) = h.get_mut(idx) {
                // An operation that never happened: make it a read of nothing that never
                // returned, which the checker may leave out.
                op.kind = OpKind::Read(None);
                op.ret = None;
            }
        }
    }

    pub fn write_unknown(&mut self) {
        self.unknown_writes += 1;
    }

    pub fn read_done(&mut self, key: u8, idx: usize, value: Option<u64>, floor: i64, at: u64) {
        self.ok_reads += 1;
        if let Some(op) = self.histories.get_mut(&key).and_then(|h| h.get_mut(idx)) {
            op.kind = OpKind::Read(value);
            op.ret = Some(at);
        }
        let d = match value {
            None => 0,
            Some(v) => match self.value_decree.get(&v) {
                Some(d) => *d,
                None => {
                    self.fail(format!(
                        "read of key {key} returned {v:#x}, a value never committed"
                    ));
                    return;
                }
            },
        };
        if d < floor {
            self.fail(format!(
                "stale read of key {key}: got the value of decree {d}, but a write committed at \
                 decree {floor} was acknowledged before the read began"
            ));
        }
    }

    pub fn read_failed(&mut self, key: u8, idx: usize) {
        self.write_refused(key, idx);
    }

    /// The final check: every key's history is linearizable.
    pub fn check_linearizable(&mut self, budget: u64) -> Option<String> {
        let mut gave_up = None;
        let keys: Vec<u8> = self.histories.keys().copied().collect();
        for k in keys {
            let h: Vec<Op> = self.histories[&k]
                .iter()
                .filter(|o| o.ret.is_some() || matches!(o.kind, OpKind::Write(_)))
                .cloned()
                .collect();
            match lin::check(&h, budget) {
                LinResult::Ok => {}
                LinResult::GaveUp => gave_up = Some(k),
                LinResult::Violation => {
                    let mut s = format!("history of key {k} is not linearizable:");
                    for o in h.iter().rev().take(12).rev() {
                        let _ = write!(
                            s,
                            "\n    client {} {:?} [{}, {}]",
                            o.client,
                            o.kind,
                            o.call,
                            o.ret.map(|r| r.to_string()).unwrap_or_else(|| "-".into())
                        );
                    }
                    self.fail(s);
                    return None;
                }
            }
        }
        gave_up.map(|k| format!("linearizability search gave up on key {k}"))
    }
}
