//! Deterministic simulation of a whole cluster in one thread: the real meta `ServerState`
//! and guardian and the real PacificA `Core`s, wired by a simulated network, disks, clocks
//! and clients under a seeded scheduler with fault injection; global invariants are
//! checked after every step and the clients' histories for linearizability at the end.
//! The same seed replays the same run (see `trace`, a digest of every event).

pub mod checker;
pub mod lin;
pub mod rng;
pub mod world;

/// Planted bugs the simulator must catch (`--inject-bug NAME`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bug {
    /// The primary acknowledges a write before every secondary prepared it.
    AckBeforePrepare,
    /// A new primary drops uncommitted mutations instead of re-proposing them.
    SkipReconciliation,
    /// A replica whose meta lease expired keeps serving reads as primary.
    ReadWithoutLease,
    /// A new primary serves reads before committing what it re-proposed on taking over.
    ReadBeforeReconcile,
    /// A batch of client writes is acknowledged before every write in it is prepared on
    /// every member.
    AckBatchEarly,
    /// A primary whose log failed goes to Error without telling the meta.
    SilentLocalFailure,
}

impl Bug {
    pub const ALL: [(&'static str, Bug); 6] = [
        ("ack-before-prepare", Bug::AckBeforePrepare),
        ("skip-reconciliation", Bug::SkipReconciliation),
        ("read-without-lease", Bug::ReadWithoutLease),
        ("read-before-reconcile", Bug::ReadBeforeReconcile),
        ("ack-batch-early", Bug::AckBatchEarly),
        ("silent-local-failure", Bug::SilentLocalFailure),
    ];

    pub fn parse(s: &str) -> Option<Bug> {
        Self::ALL.iter().find(|(n, _)| *n == s).map(|(_, b)| *b)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, b)| *b == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

#[derive(Debug, Clone)]
pub struct SimOptions {
    pub seed: u64,
    pub bug: Option<Bug>,
    /// Faults are injected until this virtual time (ms).
    pub fault_ms: i64,
    /// The run ends at this virtual time (ms).
    pub end_ms: i64,
    /// Keep a log of notable events.
    pub verbose: bool,
    /// Log every event too (with `verbose`).
    pub trace_events: bool,
}

impl SimOptions {
    pub fn new(seed: u64) -> SimOptions {
        SimOptions {
            seed,
            bug: None,
            fault_ms: 60_000,
            end_ms: 90_000,
            verbose: false,
            trace_events: false,
        }
    }
}

/// The result of one seed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub seed: u64,
    pub trace: u64,
    pub violation: Option<String>,
    pub stats: String,
    pub log: Vec<String>,
}

/// Runs one seed.
pub fn run(opts: SimOptions) -> Outcome {
    let seed = opts.seed;
    let mut w = world::World::new(opts);
    let trace = w.run();
    Outcome {
        seed,
        trace,
        violation: w.checker.violation.clone(),
        stats: w.stats(),
        log: w.log.take().unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_trace() {
        let a = run(SimOptions::new(3));
        let b = run(SimOptions::new(3));
        let c = run(SimOptions::new(4));
        assert_eq!(a.trace, b.trace);
        assert_ne!(a.trace, c.trace);
        assert!(a.violation.is_none(), "{:?}", a.violation);
    }
}
