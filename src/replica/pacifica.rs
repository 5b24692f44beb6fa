//! The PacificA state machine of one partition replica, free of I/O: events in (client
//! writes, prepares and acks, log completions, meta configurations, learning messages, timer
//! ticks), actions out (log appends, applies, sends, replies, proposals to the meta). The
//! runtime performs the actions and feeds completions back; the simulator drives the same code.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::mutation::{Mutation, MutationUpdate};

/// How far above its commit point a replica accepts prepared mutations.
pub const PREPARE_WINDOW: i64 = 1000;

/// A replica server, by its rpc_address value.
pub type Node = u64;

/// Identifies a pending reply held by the runtime (a client write or a prepare to answer).
pub type Token = u64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Not serving; `transient` when it was a member and may come back at the same ballot.
    Inactive {
        transient: bool,
    },
    Primary,
    Secondary,
    PotentialSecondary,
    Error,
}

/// Membership changes a replica proposes to the meta (upstream config_type values).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigKind {
    AssignPrimary = 1,
    UpgradeToPrimary = 2,
    AddSecondary = 3,
    UpgradeToSecondary = 4,
    DowngradeToSecondary = 5,
    DowngradeToInactive = 6,
    Remove = 7,
    AddSecondaryForLb = 8,
    PrimaryForceUpdateBallot = 9,
}

impl ConfigKind {
    pub fn from_i32(v: i32) -> Option<ConfigKind> {
        use ConfigKind::*;
        Some(match v {
            1 => AssignPrimary,
            2 => UpgradeToPrimary,
            3 => AddSecondary,
            4 => UpgradeToSecondary,
            5 => DowngradeToSecondary,
            6 => DowngradeToInactive,
            7 => Remove,
            8 => AddSecondaryForLb,
            9 => PrimaryForceUpdateBallot,
            _ => return None,
        })
    }
}

/// A partition configuration as the replica sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Membership {
    pub ballot: i64,
    pub primary: Node,
    pub secondaries: Vec<Node>,
    pub max_replica_count: i32,
}

/// How a prepare or learn request went, as seen by the sender.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AckError {
    Ok,
    /// Retry soon (learner not ready yet, or transient inactive).
    TryAgain,
    /// The member cannot take this prepare; the primary removes it.
    Failed,
}

/// How a learner catches up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LearnPlan {
    /// Committed mutations from the primary's memory; prepares follow from `prepare_start`.
    Cache {
        mutations: Vec<Mutation>,
        prepare_start: i64,
    },
    /// Not from the cache: the runtime answers with log files (LT_LOG) or a checkpoint
    /// (LT_APP), see [`learn_from_log`].
    App,
    /// Learner side of LT_LOG: the mutations read from the primary's log files, to apply up to
    /// `to_decree` (the primary's committed decree); a new learning round follows.
    Log {
        mutations: Vec<Mutation>,
        to_decree: i64,
    },
}

/// Primary: whether a learner starting at `start` learns from the log files rather than a
/// checkpoint. As upstream: yes when the database has not made `start` durable yet (so the
/// log still holds every decree from there), or when the files cover `start`.
pub fn learn_from_log(start: i64, durable: i64, files_cover: bool, have_files: bool) -> bool {
    have_files && (start > durable || files_cover)
}

/// One mutation per decree, ascending; for a decree logged more than once the latest copy of
/// the highest ballot wins (a re-proposal by a newer primary replaces the older one).
pub fn latest_per_decree(mutations: Vec<Mutation>) -> Vec<Mutation> {
    let mut by_decree: BTreeMap<i64, Mutation> = BTreeMap::new();
    for m in mutations {
        match by_decree.get(&m.decree) {
            Some(old) if old.ballot > m.ballot => {}
            _ => {
                by_decree.insert(m.decree, m);
            }
        }
    }
    by_decree.into_values().collect()
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    AppendLog(Mutation),
    /// Commit: apply to storage, then answer the clients: `tokens[i]` waits for
    /// `mutation.updates[i]` (empty when no client waits here for this mutation).
    Apply {
        mutation: Mutation,
        tokens: Vec<Token>,
    },
    RejectClient {
        token: Token,
        error: &'static str,
    },
    SendPrepare {
        to: Node,
        ballot: i64,
        /// The status the receiver must have (Secondary or PotentialSecondary).
        receiver_status: Status,
        signature: i64,
        mutation: Mutation,
    },
    ReplyPrepare {
        token: Token,
        error: AckError,
        decree: i64,
    },
    ProposeToMeta {
        kind: ConfigKind,
        node: Node,
        new: Membership,
    },
    /// Ask `to` to learn from us (RPC_LEARN_ADD_LEARNER).
    SendAddLearner {
        to: Node,
        ballot: i64,
        signature: i64,
    },
    /// Learner: send RPC_LEARN to the primary.
    SendLearn {
        to: Node,
        signature: i64,
        committed: i64,
    },
    /// Primary: answer a learn request with this plan (App: the runtime makes a checkpoint).
    ReplyLearn {
        token: Token,
        learner: Node,
        signature: i64,
        plan: Result<LearnPlan, &'static str>,
    },
    /// Learner: tell the primary learning succeeded (RPC_LEARN_COMPLETION_NOTIFY).
    SendLearnCompletion {
        to: Node,
        signature: i64,
        committed: i64,
    },
    /// Primary: tell a removed member to close (RPC_REMOVE_REPLICA).
    SendRemoveReplica {
        to: Node,
        ballot: i64,
    },
    /// Primary: RPC_GROUP_CHECK to a member (status it must have, learner signature).
    SendGroupCheck {
        to: Node,
        ballot: i64,
        receiver_status: Status,
        signature: i64,
        committed: i64,
    },
    /// Member: answer a group check.
    ReplyGroupCheck {
        token: Token,
        ok: bool,
        committed: i64,
        learner_succeeded: bool,
        signature: i64,
    },
    /// Persist the new ballot (`.init-info`).
    PersistBallot(i64),
    /// The learner's local state is discarded (checkpoint about to be installed).
    ResetForLearning,
}

#[derive(Debug, Clone)]
struct Prepared {
    m: Mutation,
    logged: bool,
    acked: BTreeSet<Node>,
    /// Sent time (ms) per member still owing an ack.
    waiting: BTreeMap<Node, i64>,
    /// Secondary: the prepare to answer once logged.
    reply: Option<Token>,
}

/// Client writes that will be proposed together as one mutation.
#[derive(Debug, Clone, Default)]
struct Batch {
    tokens: Vec<Token>,
    updates: Vec<MutationUpdate>,
    bytes: usize,
}

#[derive(Debug, Clone)]
struct Learner {
    signature: i64,
    prepare_start: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LearnStage {
    WithoutPrepare,
    WithPrepare,
    Succeeded,
}

#[derive(Debug, Clone)]
struct Pending {
    kind: ConfigKind,
    node: Node,
    new: Membership,
    sent_ms: i64,
}

/// A deliberate protocol bug for the simulator to catch; always `None` in production.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Inject {
    #[default]
    None,
    /// The primary commits (and answers the client) once its own log has the mutation,
    /// without waiting for the secondaries' prepare acks.
    AckBeforePrepare,
    /// A new primary drops its uncommitted mutations instead of re-proposing them.
    SkipReconciliation,
    /// A batch of several client writes is committed (and acknowledged) once the primary
    /// logged it, before every member prepared it.
    AckBatchEarly,
    /// A primary whose log or storage failed goes to Error without telling the meta.
    SilentLocalFailure,
}

/// Tunables (upstream `[replication]` keys).
#[derive(Debug, Clone)]
pub struct Options {
    pub mutation_2pc_min_replica_count: usize,
    pub staleness_for_commit: i64,
    pub prepare_timeout_ms: i64,
    pub learner_prepare_timeout_ms: i64,
    pub config_retry_ms: i64,
    /// Committed mutations kept in memory for LT_CACHE learning.
    pub cache_max_mutations: usize,
    pub cache_max_bytes: usize,
    /// `group_check_interval_ms` (0 disables group checks).
    pub group_check_interval_ms: i64,
    /// `empty_write_disabled`: no empty write when a group check finds the partition idle.
    pub empty_write_disabled: bool,
    /// `batch_write_disabled`: every client write becomes a mutation of its own.
    pub batch_write_disabled: bool,
    /// A batch takes no more writes once its requests add up to this many bytes (upstream's
    /// `mutation::is_full`, 1 MiB).
    pub max_batch_bytes: usize,
    /// Planted bug (simulator only).
    pub inject: Inject,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            mutation_2pc_min_replica_count: 2,
            staleness_for_commit: 20,
            prepare_timeout_ms: 3000,
            learner_prepare_timeout_ms: 5000,
            config_retry_ms: 1000,
            cache_max_mutations: 50_000,
            cache_max_bytes: 256 << 20,
            group_check_interval_ms: 100_000,
            empty_write_disabled: false,
            batch_write_disabled: false,
            max_batch_bytes: 1 << 20,
            inject: Inject::None,
        }
    }
}

/// The replica state machine.
pub struct Core {
    pub app_id: i32,
    pub pidx: i32,
    pub me: Node,
    pub status: Status,
    pub membership: Membership,
    pub last_committed: i64,
    opts: Options,
    prepared: BTreeMap<i64, Prepared>,
    cache: VecDeque<Mutation>,
    cache_bytes: usize,
    learners: BTreeMap<Node, Learner>,
    next_learning_version: i64,
    pending: Option<Pending>,
    /// Client writes awaiting commit, per decree: their tokens and the identity (timestamp,
    /// updates) of the mutation proposed for them.
    waiters: BTreeMap<i64, (Vec<Token>, i64, Vec<MutationUpdate>)>,
    /// Primary: client writes not yet proposed (upstream's write queue): full batches in
    /// arrival order, then the batch still taking writes.
    queue: VecDeque<Batch>,
    open_batch: Option<Batch>,
    /// The latest clock reading from a client write (µs), for mutation timestamps.
    clock_us: i64,
    /// While set, client writes only join the queue; `release_queue` proposes them. The
    /// runtime holds the queue while it takes the writes that arrived together, so they
    /// share mutations instead of each taking a 2PC round of its own.
    holding: bool,
    last_timestamp: i64,
    now_ms: i64,
    /// Learner side: (signature, stage).
    learning: Option<(i64, LearnStage)>,
    /// After a restart: the meta still names us primary, so fence with a new ballot first.
    initializing: bool,
    last_group_check_ms: i64,
    /// Decree proposed most recently when the last group check ran.
    decree_at_last_check: i64,
    /// Primary: the last decree re-proposed on taking over (upstream's
    /// `last_prepare_decree_on_new_primary`); reads wait until it is committed.
    last_prepare_on_new_primary: i64,
}

impl Core {
    /// A replica loaded at `ballot` with `last_committed` applied, not serving yet.
    pub fn new(
        app_id: i32,
        pidx: i32,
        me: Node,
        ballot: i64,
        last_committed: i64,
        opts: Options,
    ) -> Core {
        Core {
            app_id,
            pidx,
            me,
            status: Status::Inactive { transient: false },
            membership: Membership {
                ballot,
                ..Membership::default()
            },
            last_committed,
            opts,
            prepared: BTreeMap::new(),
            cache: VecDeque::new(),
            cache_bytes: 0,
            learners: BTreeMap::new(),
            next_learning_version: (ballot << 32) + 1,
            pending: None,
            waiters: BTreeMap::new(),
            queue: VecDeque::new(),
            open_batch: None,
            clock_us: 0,
            holding: false,
            last_timestamp: 0,
            now_ms: 0,
            learning: None,
            initializing: true,
            last_group_check_ms: 0,
            decree_at_last_check: 0,
            last_prepare_on_new_primary: 0,
        }
    }

    /// A replica created empty rather than loaded from disk: no earlier incarnation can have
    /// acted at any ballot, so it needs no fencing when the meta names it primary.
    pub fn created_empty(mut self) -> Core {
        self.initializing = false;
        self
    }

    pub fn ballot(&self) -> i64 {
        self.membership.ballot
    }

    pub fn max_prepared(&self) -> i64 {
        self.prepared
            .keys()
            .next_back()
            .copied()
            .unwrap_or(self.last_committed)
            .max(self.last_committed)
    }

    pub fn is_serving_writes(&self) -> bool {
        self.status == Status::Primary && self.pending.is_none()
    }

    /// May serve client reads: a primary, not reconfiguring, that has committed everything
    /// it re-proposed on taking over (earlier decrees may have been acknowledged to clients
    /// by the previous primary).
    pub fn is_readable(&self) -> bool {
        self.is_serving_writes() && self.last_committed >= self.last_prepare_on_new_primary
    }

    /// Learner: the signature of the learning round under way.
    pub fn learning_signature(&self) -> Option<i64> {
        self.learning.map(|l| l.0)
    }

    pub fn learner_count(&self) -> usize {
        self.learners.len()
    }

    /// Feeds a mutation found in the log at start-up ("prepare in inactive mode").
    pub fn replay(&mut self, m: Mutation, out: &mut Vec<Action>) {
        if m.ballot > self.membership.ballot {
            self.membership.ballot = m.ballot;
        }
        if m.decree <= self.last_committed || m.decree > self.last_committed + PREPARE_WINDOW {
            return;
        }
        if let Some(p) = self.prepared.get(&m.decree) {
            if p.m.ballot >= m.ballot {
                return;
            }
        }
        let commit_to = m.last_committed_decree;
        self.prepared.insert(
            m.decree,
            Prepared {
                m,
                logged: true,
                acked: BTreeSet::new(),
                waiting: BTreeMap::new(),
                reply: None,
            },
        );
        self.commit_to(commit_to, out);
    }

    fn set_ballot(&mut self, ballot: i64, out: &mut Vec<Action>) {
        if ballot > self.membership.ballot {
            self.membership.ballot = ballot;
            self.next_learning_version = (ballot << 32) + 1;
            out.push(Action::PersistBallot(ballot));
        }
    }

    fn members_but_me(&self) -> Vec<Node> {
        self.membership
            .secondaries
            .iter()
            .copied()
            .filter(|n| *n != self.me)
            .collect()
    }

    // ---- primary: client writes and 2PC ------------------------------------------------

    /// A client write at the primary. It joins the write queue: writes that allow batching
    /// (`allow_batch`: single puts and removes) share a mutation until it is full; others
    /// get one of their own. Mutations leave the queue while fewer than
    /// `staleness_for_commit` are in 2PC, so a burst waits instead of being refused.
    pub fn on_client_write(
        &mut self,
        token: Token,
        update: MutationUpdate,
        allow_batch: bool,
        now_us: i64,
        out: &mut Vec<Action>,
    ) {
        self.clock_us = self.clock_us.max(now_us);
        let batching = allow_batch && !self.opts.batch_write_disabled;
        if !batching {
            self.close_batch();
        }
        let b = self.open_batch.get_or_insert_with(Batch::default);
        b.bytes += update.code.len() + update.data.len() + 12;
        b.tokens.push(token);
        b.updates.push(update);
        if !batching || b.bytes >= self.opts.max_batch_bytes {
            self.close_batch();
        }
        // Refused at once where this replica cannot propose (see `pump`).
        self.pump(out);
    }

    /// Holds client writes in the queue until `release_queue` (see `holding`).
    pub fn hold_queue(&mut self) {
        self.holding = true;
    }

    /// Proposes what was queued while held, as far as 2PC has room.
    pub fn release_queue(&mut self, out: &mut Vec<Action>) {
        self.holding = false;
        self.pump(out);
    }

    /// Client writes queued at the primary, not yet proposed.
    pub fn queued_writes(&self) -> usize {
        self.queue.iter().map(|b| b.tokens.len()).sum::<usize>()
            + self.open_batch.as_ref().map_or(0, |b| b.tokens.len())
    }

    fn close_batch(&mut self) {
        if let Some(b) = self.open_batch.take() {
            self.queue.push_back(b);
        }
    }

    /// Moves queued client writes into 2PC while there is room (not while held); refuses them
    /// all, held or not, once this replica cannot propose (not primary, reconfiguring, too
    /// few members).
    fn pump(&mut self, out: &mut Vec<Action>) {
        if self.queue.is_empty() && self.open_batch.is_none() {
            return;
        }
        let refuse = if self.status != Status::Primary || self.pending.is_some() {
            Some("ERR_INVALID_STATE")
        } else if 1 + self.membership.secondaries.len() < self.opts.mutation_2pc_min_replica_count {
            Some("ERR_NOT_ENOUGH_MEMBER")
        } else {
            None
        };
        if let Some(error) = refuse {
            self.close_batch();
            for b in std::mem::take(&mut self.queue) {
                for token in b.tokens {
                    out.push(Action::RejectClient { token, error });
                }
            }
            return;
        }
        if self.holding {
            return;
        }
        while self.max_prepared() - self.last_committed < self.opts.staleness_for_commit {
            let Some(b) = self.queue.pop_front().or_else(|| self.open_batch.take()) else {
                break;
            };
            self.propose_batch(b, out);
        }
    }

    fn propose_batch(&mut self, b: Batch, out: &mut Vec<Action>) {
        let decree = self.max_prepared() + 1;
        self.last_timestamp = self.clock_us.max(self.last_timestamp + 1);
        let m = Mutation {
            app_id: self.app_id,
            partition_index: self.pidx,
            ballot: self.membership.ballot,
            decree,
            log_offset: 0,
            last_committed_decree: self.last_committed,
            timestamp: self.last_timestamp,
            updates: b.updates,
        };
        let waiter = (b.tokens, m.timestamp, m.updates.clone());
        if let Some((old, ..)) = self.waiters.insert(decree, waiter) {
            // Earlier writes at this decree (from a former term as primary) were never
            // committed: another mutation is being proposed in their place.
            for token in old {
                out.push(Action::RejectClient {
                    token,
                    error: "ERR_INVALID_STATE",
                });
            }
        }
        self.propose(m, out);
    }

    /// Puts a mutation in the prepare list and sends it to every member that must ack it.
    fn propose(&mut self, m: Mutation, out: &mut Vec<Action>) {
        let decree = m.decree;
        let mut waiting = BTreeMap::new();
        for n in self.members_but_me() {
            waiting.insert(n, self.now_ms);
            out.push(Action::SendPrepare {
                to: n,
                ballot: self.membership.ballot,
                receiver_status: Status::Secondary,
                signature: 0,
                mutation: m.clone(),
            });
        }
        for (n, l) in &self.learners {
            if l.prepare_start.is_some_and(|s| s <= decree) {
                waiting.insert(*n, self.now_ms);
                out.push(Action::SendPrepare {
                    to: *n,
                    ballot: self.membership.ballot,
                    receiver_status: Status::PotentialSecondary,
                    signature: l.signature,
                    mutation: m.clone(),
                });
            }
        }
        out.push(Action::AppendLog(m.clone()));
        self.prepared.insert(
            decree,
            Prepared {
                m,
                logged: false,
                acked: BTreeSet::new(),
                waiting,
                reply: None,
            },
        );
    }

    /// The runtime finished appending this mutation to the log.
    pub fn on_log_appended(&mut self, decree: i64, ballot: i64, out: &mut Vec<Action>) {
        let Some(p) = self.prepared.get_mut(&decree) else {
            return;
        };
        if p.m.ballot != ballot {
            return;
        }
        p.logged = true;
        match self.status {
            Status::Primary => self.try_commit(out),
            Status::Secondary | Status::PotentialSecondary => {
                let commit_to = p.m.last_committed_decree;
                if let Some(t) = p.reply.take() {
                    out.push(Action::ReplyPrepare {
                        token: t,
                        error: AckError::Ok,
                        decree,
                    });
                }
                self.commit_to(commit_to, out);
            }
            _ => {}
        }
    }

    fn try_commit(&mut self, out: &mut Vec<Action>) {
        if self.status != Status::Primary {
            return;
        }
        loop {
            let d = self.last_committed + 1;
            let Some(p) = self.prepared.get(&d) else {
                break;
            };
            let early = match self.opts.inject {
                Inject::AckBeforePrepare => true,
                Inject::AckBatchEarly => p.m.updates.len() > 1,
                _ => false,
            };
            let ready = p.logged && (p.waiting.is_empty() || early);
            if !ready {
                break;
            }
            self.commit_one(d, out);
        }
        self.pump(out);
    }

    fn commit_one(&mut self, d: i64, out: &mut Vec<Action>) {
        let Some(p) = self.prepared.remove(&d) else {
            return;
        };
        self.last_committed = d;
        // Answer the client only if the committed mutation is the one it asked for: after
        // losing and regaining (or watching others hold) the primary role, another mutation
        // may commit at this decree, and then the client's write is lost for good.
        let tokens = match self.waiters.remove(&d) {
            Some((t, ts, ups)) if ts == p.m.timestamp && ups == p.m.updates => t,
            Some((t, ..)) => {
                for token in t {
                    out.push(Action::RejectClient {
                        token,
                        error: "ERR_INVALID_STATE",
                    });
                }
                Vec::new()
            }
            None => Vec::new(),
        };
        self.cache_bytes += p.m.encoded_len();
        self.cache.push_back(p.m.clone());
        while self.cache.len() > self.opts.cache_max_mutations
            || self.cache_bytes > self.opts.cache_max_bytes
        {
            match self.cache.pop_front() {
                Some(old) => self.cache_bytes = self.cache_bytes.saturating_sub(old.encoded_len()),
                None => break,
            }
        }
        out.push(Action::Apply {
            mutation: p.m,
            tokens,
        });
    }

    /// Non-primary commit up to `decree` (piggy-backed by the primary), as far as logged.
    fn commit_to(&mut self, decree: i64, out: &mut Vec<Action>) {
        while self.last_committed < decree {
            let d = self.last_committed + 1;
            match self.prepared.get(&d) {
                Some(p) if p.logged => self.commit_one(d, out),
                _ => break,
            }
        }
    }

    pub fn on_prepare_ack(
        &mut self,
        from: Node,
        ballot: i64,
        decree: i64,
        error: AckError,
        out: &mut Vec<Action>,
    ) {
        if self.status != Status::Primary || ballot != self.membership.ballot {
            return;
        }
        match error {
            AckError::Ok => {
                if let Some(p) = self.prepared.get_mut(&decree) {
                    if p.waiting.remove(&from).is_some() {
                        p.acked.insert(from);
                    }
                }
                self.try_commit(out);
            }
            AckError::TryAgain => {
                // Re-sent on a later tick; mark the send time so the timeout still applies.
                if let Some(p) = self.prepared.get_mut(&decree) {
                    if let Some(t) = p.waiting.get_mut(&from) {
                        *t = (*t).min(self.now_ms);
                    }
                }
            }
            AckError::Failed => self.member_failed(from, out),
        }
    }

    /// A member could not take a prepare: drop a learner, or propose removing a secondary.
    pub fn member_failed(&mut self, node: Node, out: &mut Vec<Action>) {
        if self.status != Status::Primary {
            return;
        }
        if self.learners.contains_key(&node) {
            let upgrading = self
                .pending
                .as_ref()
                .is_some_and(|p| p.kind == ConfigKind::UpgradeToSecondary && p.node == node);
            if upgrading {
                // The meta may already have made it a secondary: committing without it would
                // leave a secondary missing a committed decree. Keep waiting; once it is a
                // secondary its prepares time out like any member's.
                return;
            }
        }
        if self.learners.remove(&node).is_some() {
            for p in self.prepared.values_mut() {
                p.waiting.remove(&node);
            }
            self.try_commit(out);
            return;
        }
        if self.pending.is_some() || !self.membership.secondaries.contains(&node) {
            return;
        }
        let mut new = self.membership.clone();
        new.secondaries.retain(|n| *n != node);
        self.start_reconfig(ConfigKind::DowngradeToInactive, node, new, out);
    }

    fn start_reconfig(
        &mut self,
        kind: ConfigKind,
        node: Node,
        mut new: Membership,
        out: &mut Vec<Action>,
    ) {
        new.ballot = self.membership.ballot + 1;
        self.pending = Some(Pending {
            kind,
            node,
            new: new.clone(),
            sent_ms: self.now_ms,
        });
        out.push(Action::ProposeToMeta { kind, node, new });
        // No 2PC during a reconfiguration: queued writes are refused, clients retry.
        self.pump(out);
    }

    // ---- configuration from the meta --------------------------------------------------

    /// The meta answered our proposal (ERR_OK or ERR_INVALID_VERSION) with this config.
    pub fn on_proposal_reply(&mut self, accepted: bool, config: Membership, out: &mut Vec<Action>) {
        let Some(p) = self.pending.take() else {
            self.on_config(config, out);
            return;
        };
        if accepted && p.kind == ConfigKind::Remove && config.ballot == p.new.ballot {
            out.push(Action::SendRemoveReplica {
                to: p.node,
                ballot: config.ballot,
            });
        }
        if accepted && p.kind == ConfigKind::PrimaryForceUpdateBallot {
            self.initializing = false;
        }
        self.on_config(config, out);
    }

    /// The meta could not be reached or refused for another reason: retry later.
    pub fn on_proposal_failed(&mut self) {
        if let Some(p) = self.pending.as_mut() {
            p.sent_ms = self.now_ms;
        }
    }

    /// Adopts a configuration (from config sync, a proposal, or a meta reply).
    pub fn on_config(&mut self, c: Membership, out: &mut Vec<Action>) {
        self.adopt_config(c, out);
        self.pump(out);
    }

    fn adopt_config(&mut self, c: Membership, out: &mut Vec<Action>) {
        // A replica in error (its log or storage failed) never serves again: its memory may
        // be ahead of what it stored. It comes back only by being reopened from disk.
        if c.ballot < self.membership.ballot {
            return;
        }
        if self.status == Status::Error {
            // The report is sent once, without retry (as upstream); a configuration that
            // still names this failed replica primary (config sync) sends it again, as
            // upstream's config-sync reply does for a primary it no longer hosts.
            if c.primary == self.me {
                self.report_failure(c, out);
            }
            return;
        }
        let is_primary = c.primary == self.me;
        let is_secondary = c.secondaries.contains(&self.me);
        if c.ballot == self.membership.ballot {
            // Same ballot: only the transitions upstream allows.
            match (self.status, is_primary, is_secondary) {
                (Status::Primary, true, _) | (Status::Secondary, _, true) => {
                    self.membership = c;
                    return;
                }
                (Status::Inactive { transient: true }, true, _) => {}
                (Status::Inactive { transient: true }, _, true) => {}
                (Status::Inactive { transient: false }, true, _) if self.initializing => {
                    // Restarted while still primary: fence the old incarnation first.
                    if self.pending.is_none() {
                        self.membership.primary = c.primary;
                        self.membership.secondaries = c.secondaries.clone();
                        self.membership.max_replica_count = c.max_replica_count;
                        let new = c.clone();
                        self.start_reconfig(
                            ConfigKind::PrimaryForceUpdateBallot,
                            self.me,
                            new,
                            out,
                        );
                    }
                    return;
                }
                (Status::PotentialSecondary, false, false) => return,
                _ => {
                    self.membership.max_replica_count = c.max_replica_count;
                    return;
                }
            }
        }
        if self.status == Status::PotentialSecondary && !is_primary && !is_secondary {
            // Learners are not in the meta's configuration; the primary drives them.
            return;
        }
        if is_primary && self.initializing && self.status == (Status::Inactive { transient: false })
        {
            // Restarted and still named primary, at a ballot above the one we loaded: an
            // earlier incarnation may have prepared at that ballot without persisting it, so
            // fence with a new ballot before serving (upstream does so whatever the ballot).
            if self.pending.is_none() {
                self.set_ballot(c.ballot, out);
                self.membership = c.clone();
                self.start_reconfig(ConfigKind::PrimaryForceUpdateBallot, self.me, c, out);
            }
            return;
        }
        self.set_ballot(c.ballot, out);
        self.membership = c;
        if is_primary {
            self.become_primary(out);
        } else if is_secondary {
            self.status = Status::Secondary;
            self.learners.clear();
            self.learning = None;
        } else {
            self.status = Status::Inactive { transient: false };
            self.learners.clear();
            self.learning = None;
        }
    }

    /// Takes over as primary at the current ballot: re-proposes every uncommitted mutation
    /// with the new ballot, filling gaps with empty writes (PacificA reconciliation).
    fn become_primary(&mut self, out: &mut Vec<Action>) {
        self.status = Status::Primary;
        self.initializing = false;
        self.learning = None;
        let secondaries: BTreeSet<Node> = self.membership.secondaries.iter().copied().collect();
        self.learners.retain(|n, _| !secondaries.contains(n));
        let max = if self.opts.inject == Inject::SkipReconciliation {
            self.last_committed
        } else {
            self.max_prepared()
        };
        self.last_prepare_on_new_primary = max;
        let old: BTreeMap<i64, Prepared> = std::mem::take(&mut self.prepared);
        for d in self.last_committed + 1..=max {
            let mut m = match old.get(&d) {
                Some(p) => p.m.clone(),
                None => {
                    Mutation::write_empty(self.app_id, self.pidx, 0, d, 0, self.last_timestamp + 1)
                }
            };
            self.last_timestamp = self.last_timestamp.max(m.timestamp);
            m.ballot = self.membership.ballot;
            m.last_committed_decree = self.last_committed;
            self.propose(m, out);
        }
        self.try_commit(out);
    }

    /// RPC_CONFIG_PROPOSAL from the meta.
    pub fn on_meta_proposal(
        &mut self,
        kind: ConfigKind,
        node: Node,
        config: Membership,
        out: &mut Vec<Action>,
    ) {
        self.meta_proposal(kind, node, config, out);
        self.pump(out);
    }

    fn meta_proposal(
        &mut self,
        kind: ConfigKind,
        node: Node,
        config: Membership,
        out: &mut Vec<Action>,
    ) {
        if config.ballot < self.membership.ballot
            || self.pending.is_some()
            || self.status == Status::Error
        {
            return;
        }
        if config.ballot > self.membership.ballot {
            self.on_config(config.clone(), out);
        }
        match kind {
            ConfigKind::AssignPrimary | ConfigKind::UpgradeToPrimary => {
                if self.status == Status::Primary {
                    return;
                }
                if kind == ConfigKind::UpgradeToPrimary && self.status != Status::Secondary {
                    return;
                }
                let mut new = config;
                new.primary = self.me;
                new.secondaries.retain(|n| *n != self.me);
                self.membership.ballot = new.ballot;
                self.status = Status::Inactive { transient: true };
                self.start_reconfig(kind, self.me, new, out);
            }
            ConfigKind::AddSecondary | ConfigKind::AddSecondaryForLb => {
                if self.status != Status::Primary || config.ballot != self.membership.ballot {
                    return;
                }
                if node == self.me || self.membership.secondaries.contains(&node) {
                    return;
                }
                let limit = self.membership.max_replica_count.max(1) as usize
                    - if kind == ConfigKind::AddSecondary {
                        1
                    } else {
                        0
                    };
                let signature = match self.learners.get(&node) {
                    Some(l) => l.signature,
                    None => {
                        if self.membership.secondaries.len() + self.learners.len() >= limit {
                            return;
                        }
                        let s = self.next_learning_version;
                        self.next_learning_version += 1;
                        self.learners.insert(
                            node,
                            Learner {
                                signature: s,
                                prepare_start: None,
                            },
                        );
                        s
                    }
                };
                out.push(Action::SendAddLearner {
                    to: node,
                    ballot: self.membership.ballot,
                    signature,
                });
            }
            ConfigKind::DowngradeToInactive | ConfigKind::Remove => {
                if self.status != Status::Primary || config.ballot != self.membership.ballot {
                    return;
                }
                let mut new = self.membership.clone();
                if new.primary == node {
                    return;
                }
                new.secondaries.retain(|n| *n != node);
                self.learners.remove(&node);
                self.start_reconfig(kind, node, new, out);
            }
            ConfigKind::DowngradeToSecondary => {
                if self.status != Status::Primary || node != self.me {
                    return;
                }
                let mut new = self.membership.clone();
                new.primary = 0;
                new.secondaries.push(self.me);
                self.start_reconfig(kind, node, new, out);
            }
            ConfigKind::UpgradeToSecondary | ConfigKind::PrimaryForceUpdateBallot => {}
        }
    }

    // ---- secondary / learner side of 2PC -----------------------------------------------

    pub fn on_prepare(
        &mut self,
        from: Node,
        receiver_status: Status,
        signature: i64,
        m: Mutation,
        token: Token,
        out: &mut Vec<Action>,
    ) {
        let ballot = m.ballot;
        if ballot < self.membership.ballot {
            return; // stale primary: no reply, as upstream
        }
        if ballot > self.membership.ballot {
            match (receiver_status, self.status) {
                (Status::Secondary, Status::Error) => {}
                (Status::Secondary, _) => {
                    self.set_ballot(ballot, out);
                    self.membership.primary = from;
                    self.status = Status::Secondary;
                    self.learning = None;
                }
                (Status::PotentialSecondary, Status::PotentialSecondary) => {
                    self.set_ballot(ballot, out);
                    self.membership.primary = from;
                }
                _ => {}
            }
        }
        let reject = |error| Action::ReplyPrepare {
            token,
            error,
            decree: m.decree,
        };
        match self.status {
            Status::Secondary => {}
            Status::PotentialSecondary => match self.learning {
                Some((sig, _)) if sig != signature => return out.push(reject(AckError::Failed)),
                Some((_, LearnStage::WithoutPrepare)) => {
                    return out.push(reject(AckError::TryAgain))
                }
                Some(_) => {}
                None => return out.push(reject(AckError::Failed)),
            },
            Status::Inactive { transient: true } => return out.push(reject(AckError::TryAgain)),
            _ => return out.push(reject(AckError::Failed)),
        }
        if m.decree <= self.last_committed {
            out.push(reject(AckError::Ok));
            return;
        }
        // The prepare list holds a bounded window above the commit point (upstream's
        // max_mutation_count_in_prepare_list); anything beyond it is refused.
        if m.decree > self.last_committed + PREPARE_WINDOW {
            out.push(reject(AckError::Failed));
            return;
        }
        if let Some(p) = self.prepared.get_mut(&m.decree) {
            if p.m.ballot == m.ballot {
                if p.logged {
                    out.push(reject(AckError::Ok));
                } else {
                    p.reply = Some(token);
                }
                return;
            }
        }
        // Commit what the primary says is committed before taking the new mutation.
        let commit_to = m.last_committed_decree.min(m.decree - 1);
        self.commit_to(commit_to, out);
        // A higher-ballot mutation replaces what was prepared at its decree only. Entries above
        // it stay: one of them may be committed (the new primary re-proposes them next, and
        // if it fails first, they must survive for the one after it).
        out.push(Action::AppendLog(m.clone()));
        self.prepared.insert(
            m.decree,
            Prepared {
                m,
                logged: false,
                acked: BTreeSet::new(),
                waiting: BTreeMap::new(),
                reply: Some(token),
            },
        );
    }

    // ---- learning -------------------------------------------------------------------

    /// RPC_LEARN_ADD_LEARNER: become a learner of `from` at `ballot` and start learning.
    pub fn on_add_learner(
        &mut self,
        from: Node,
        ballot: i64,
        signature: i64,
        out: &mut Vec<Action>,
    ) {
        if ballot < self.membership.ballot || self.status == Status::Error {
            return;
        }
        if matches!(self.status, Status::Primary | Status::Secondary)
            && ballot == self.membership.ballot
        {
            return;
        }
        if self.status == Status::PotentialSecondary
            && self.learning.map(|l| l.0) == Some(signature)
        {
            // Already learning this round; ask again (the primary may have lost our request).
            out.push(Action::SendLearn {
                to: from,
                signature,
                committed: self.last_committed,
            });
            return;
        }
        self.set_ballot(ballot, out);
        self.membership.primary = from;
        self.status = Status::PotentialSecondary;
        self.learning = Some((signature, LearnStage::WithoutPrepare));
        // Uncommitted local mutations are not trusted; learning brings the truth.
        self.prepared.clear();
        out.push(Action::SendLearn {
            to: from,
            signature,
            committed: self.last_committed,
        });
    }

    /// Primary: RPC_LEARN from a learner.
    pub fn on_learn_request(
        &mut self,
        learner: Node,
        signature: i64,
        learner_committed: i64,
        token: Token,
        out: &mut Vec<Action>,
    ) {
        let reply = |plan| Action::ReplyLearn {
            token,
            learner,
            signature,
            plan,
        };
        if self.status != Status::Primary {
            return out.push(reply(Err("ERR_INVALID_STATE")));
        }
        let Some(l) = self.learners.get(&learner) else {
            return out.push(reply(Err("ERR_OBJECT_NOT_FOUND")));
        };
        if l.signature != signature {
            return out.push(reply(Err("ERR_WRONG_CHECKSUM")));
        }
        let start = learner_committed.saturating_add(1);
        let cache_covers = learner_committed <= self.last_committed
            && (start > self.last_committed
                || self.cache.front().is_some_and(|f| f.decree <= start));
        if !cache_covers {
            return out.push(reply(Ok(LearnPlan::App)));
        }
        let mutations: Vec<Mutation> = self
            .cache
            .iter()
            .filter(|m| m.decree >= start)
            .cloned()
            .collect();
        let prepare_start = self.last_committed + 1;
        if let Some(l) = self.learners.get_mut(&learner) {
            l.prepare_start = Some(prepare_start);
        }
        out.push(reply(Ok(LearnPlan::Cache {
            mutations,
            prepare_start,
        })));
        // From now on the learner takes part in 2PC: replay what is still uncommitted.
        let pending: Vec<Mutation> = self.prepared.values().map(|p| p.m.clone()).collect();
        for m in pending {
            if let Some(p) = self.prepared.get_mut(&m.decree) {
                p.waiting.insert(learner, self.now_ms);
            }
            out.push(Action::SendPrepare {
                to: learner,
                ballot: self.membership.ballot,
                receiver_status: Status::PotentialSecondary,
                signature,
                mutation: m,
            });
        }
    }

    /// Learner: the primary's answer to RPC_LEARN.
    pub fn on_learn_reply(
        &mut self,
        signature: i64,
        plan: Result<LearnPlan, &'static str>,
        out: &mut Vec<Action>,
    ) {
        let Some((sig, _)) = self.learning else {
            return;
        };
        if sig != signature || self.status != Status::PotentialSecondary {
            return;
        }
        match plan {
            Ok(LearnPlan::Cache {
                mutations,
                prepare_start,
            }) => {
                // A hole ends the batch: the next round learns on from what we have.
                self.apply_learned(mutations, i64::MAX, out);
                if self.last_committed >= prepare_start - 1 {
                    self.learning = Some((sig, LearnStage::Succeeded));
                    out.push(Action::SendLearnCompletion {
                        to: self.membership.primary,
                        signature: sig,
                        committed: self.last_committed,
                    });
                } else {
                    out.push(Action::SendLearn {
                        to: self.membership.primary,
                        signature: sig,
                        committed: self.last_committed,
                    });
                }
            }
            Ok(LearnPlan::Log {
                mutations,
                to_decree,
            }) => {
                let before = self.last_committed;
                self.apply_learned(latest_per_decree(mutations), to_decree, out);
                if self.last_committed == before && before < to_decree {
                    // The files brought nothing usable: give this round up; the primary
                    // starts a new one (and may choose a checkpoint).
                    self.on_learn_failed();
                    return;
                }
                out.push(Action::SendLearn {
                    to: self.membership.primary,
                    signature: sig,
                    committed: self.last_committed,
                });
            }
            Ok(LearnPlan::App) => out.push(Action::ResetForLearning),
            Err(_) => {
                self.status = Status::Inactive { transient: false };
                self.learning = None;
            }
        }
    }

    /// Learner: logs and applies, as committed, the learned mutations (ascending) that extend
    /// the committed prefix, up to `upto`; stops at the first hole.
    fn apply_learned(&mut self, mutations: Vec<Mutation>, upto: i64, out: &mut Vec<Action>) {
        for mut m in mutations {
            if m.decree > upto {
                break;
            }
            if m.decree <= self.last_committed {
                continue;
            }
            if m.decree != self.last_committed + 1 {
                break;
            }
            m.last_committed_decree = m.decree;
            out.push(Action::AppendLog(m.clone()));
            self.last_committed = m.decree;
            out.push(Action::Apply {
                mutation: m,
                tokens: Vec::new(),
            });
        }
    }

    /// Learner: a learned checkpoint at `decree` is installed; learn the rest.
    pub fn on_checkpoint_installed(&mut self, decree: i64, out: &mut Vec<Action>) {
        let Some((sig, _)) = self.learning else {
            return;
        };
        self.prepared.clear();
        self.last_committed = decree;
        out.push(Action::SendLearn {
            to: self.membership.primary,
            signature: sig,
            committed: decree,
        });
    }

    /// Learner: copying or installing the checkpoint failed.
    pub fn on_learn_failed(&mut self) {
        if self.status == Status::PotentialSecondary {
            self.status = Status::Inactive { transient: false };
            self.learning = None;
        }
    }

    /// Primary: a learner reports success; propose it as a secondary.
    pub fn on_learn_completion(
        &mut self,
        learner: Node,
        signature: i64,
        out: &mut Vec<Action>,
    ) -> bool {
        if self.status != Status::Primary || self.pending.is_some() {
            return false;
        }
        let ok = self
            .learners
            .get(&learner)
            .is_some_and(|l| l.signature == signature && l.prepare_start.is_some());
        if !ok {
            return false;
        }
        let mut new = self.membership.clone();
        new.secondaries.push(learner);
        self.start_reconfig(ConfigKind::UpgradeToSecondary, learner, new, out);
        true
    }

    /// RPC_REMOVE_REPLICA: the primary removed us at `ballot`.
    pub fn on_remove(&mut self, ballot: i64, out: &mut Vec<Action>) {
        if ballot < self.membership.ballot
            || (ballot == self.membership.ballot && self.status == Status::PotentialSecondary)
        {
            return;
        }
        self.set_ballot(ballot, out);
        self.status = Status::Inactive { transient: false };
        self.learning = None;
        self.learners.clear();
    }

    /// The meta's configuration no longer names this server: stop serving.
    pub fn on_not_member(&mut self) {
        if matches!(self.status, Status::Primary | Status::Secondary) && self.pending.is_none() {
            self.status = Status::Inactive { transient: false };
            self.learners.clear();
        }
    }

    /// This replica's log or storage failed (upstream's `handle_local_failure`): a primary
    /// asks the meta to take it out of the partition (ballot + 1, no primary; the meta then
    /// picks a secondary), as upstream's `remove_replica_on_meta_server`, once and without
    /// waiting for the answer; every role then goes to Error, fails the prepares it owes and
    /// refuses the writes still queued.
    pub fn on_local_failure(&mut self, out: &mut Vec<Action>) {
        if self.status == Status::Error {
            return;
        }
        if self.status == Status::Primary {
            self.report_failure(self.membership.clone(), out);
        }
        self.status = Status::Error;
        self.pending = None;
        self.learning = None;
        self.learners.clear();
        // Writes already proposed may still commit on the other members: they are never
        // answered here (their clients time out, as upstream's do), only queued writes are
        // refused.
        self.waiters.clear();
        for p in self.prepared.values_mut() {
            if let Some(token) = p.reply.take() {
                out.push(Action::ReplyPrepare {
                    token,
                    error: AckError::Failed,
                    decree: p.m.decree,
                });
            }
        }
        self.pump(out);
    }

    /// Asks the meta to take this failed primary out of `c` (ballot + 1, no primary).
    fn report_failure(&self, c: Membership, out: &mut Vec<Action>) {
        if self.opts.inject == Inject::SilentLocalFailure {
            return;
        }
        let mut new = c;
        new.primary = 0;
        new.ballot += 1;
        out.push(Action::ProposeToMeta {
            kind: ConfigKind::DowngradeToInactive,
            node: self.me,
            new,
        });
    }

    /// Turns empty writes on idle partitions off or on (`replica.disable-empty-write`).
    pub fn set_empty_write_disabled(&mut self, disabled: bool) {
        self.opts.empty_write_disabled = disabled;
    }

    /// The server lost its meta lease: stop serving, keep the ballot.
    pub fn on_meta_disconnected(&mut self) {
        if matches!(self.status, Status::Primary | Status::Secondary) {
            self.status = Status::Inactive { transient: true };
        }
    }

    // ---- group check -------------------------------------------------------------------

    /// Primary: check every member; inject an empty write when nothing was proposed since
    /// the last check, so members learn the commit point.
    fn group_check(&mut self, out: &mut Vec<Action>) {
        for n in self.members_but_me() {
            out.push(Action::SendGroupCheck {
                to: n,
                ballot: self.membership.ballot,
                receiver_status: Status::Secondary,
                signature: 0,
                committed: self.last_committed,
            });
        }
        for (n, l) in &self.learners {
            out.push(Action::SendGroupCheck {
                to: *n,
                ballot: self.membership.ballot,
                receiver_status: Status::PotentialSecondary,
                signature: l.signature,
                committed: self.last_committed,
            });
        }
        let max = self.max_prepared();
        if !self.opts.empty_write_disabled
            && max == self.decree_at_last_check
            && self.pending.is_none()
        {
            let decree = max + 1;
            if decree <= self.last_committed + self.opts.staleness_for_commit {
                self.last_timestamp += 1;
                let m = Mutation::write_empty(
                    self.app_id,
                    self.pidx,
                    self.membership.ballot,
                    decree,
                    self.last_committed,
                    self.last_timestamp,
                );
                self.propose(m, out);
            }
        }
        self.decree_at_last_check = self.max_prepared();
    }

    /// Member: RPC_GROUP_CHECK from the primary.
    #[allow(clippy::too_many_arguments)]
    pub fn on_group_check(
        &mut self,
        from: Node,
        ballot: i64,
        receiver_status: Status,
        signature: i64,
        committed: i64,
        token: Token,
        out: &mut Vec<Action>,
    ) {
        let reply = |s: &Core, ok: bool| Action::ReplyGroupCheck {
            token,
            ok,
            committed: s.last_committed,
            learner_succeeded: matches!(s.learning, Some((sig, LearnStage::Succeeded)) if sig == signature),
            signature,
        };
        if ballot < self.membership.ballot {
            return out.push(reply(self, false));
        }
        match receiver_status {
            Status::PotentialSecondary => {
                if self.status != Status::PotentialSecondary
                    || self.learning.map(|l| l.0) != Some(signature)
                {
                    self.on_add_learner(from, ballot, signature, out);
                }
            }
            _ => {
                if ballot > self.membership.ballot && self.status != Status::Error {
                    self.set_ballot(ballot, out);
                    self.membership.primary = from;
                    self.status = Status::Secondary;
                    self.learning = None;
                }
                if self.status == Status::Secondary {
                    self.commit_to(committed, out);
                }
            }
        }
        let ok = matches!(self.status, Status::Secondary | Status::PotentialSecondary);
        out.push(reply(self, ok));
    }

    /// Primary: a member answered a group check.
    pub fn on_group_check_reply(
        &mut self,
        from: Node,
        ok: bool,
        learner_succeeded: bool,
        signature: i64,
        out: &mut Vec<Action>,
    ) {
        if self.status != Status::Primary {
            return;
        }
        if !ok {
            self.member_failed(from, out);
        } else if learner_succeeded {
            self.on_learn_completion(from, signature, out);
        }
    }

    // ---- time -------------------------------------------------------------------------

    /// Timer tick: prepare timeouts and proposal retries.
    pub fn on_tick(&mut self, now_ms: i64, out: &mut Vec<Action>) {
        if self.now_ms == 0 {
            // The first tick: what was sent before it was stamped 0; count from now.
            for p in self.prepared.values_mut() {
                for t in p.waiting.values_mut() {
                    *t = now_ms;
                }
            }
            if let Some(p) = self.pending.as_mut() {
                p.sent_ms = now_ms;
            }
        }
        self.now_ms = now_ms;
        // Writes queued before the role was lost without an event carrying actions (meta
        // disconnect, not a member, a local failure) are refused now.
        self.pump(out);
        if let Some(p) = self.pending.as_mut() {
            if now_ms - p.sent_ms >= self.opts.config_retry_ms {
                p.sent_ms = now_ms;
                out.push(Action::ProposeToMeta {
                    kind: p.kind,
                    node: p.node,
                    new: p.new.clone(),
                });
            }
        }
        if self.status != Status::Primary {
            return;
        }
        if self.opts.group_check_interval_ms > 0 {
            if self.last_group_check_ms == 0 {
                // The first tick as primary arms the timer.
                self.last_group_check_ms = now_ms;
            } else if now_ms - self.last_group_check_ms >= self.opts.group_check_interval_ms {
                self.group_check(out);
                self.last_group_check_ms = now_ms;
            }
        }
        let mut failed = BTreeSet::new();
        let mut resend = Vec::new();
        for p in self.prepared.values_mut() {
            for (n, sent) in p.waiting.iter_mut() {
                let learner = self.learners.get(n);
                let timeout = if learner.is_some() {
                    self.opts.learner_prepare_timeout_ms
                } else {
                    self.opts.prepare_timeout_ms
                };
                if now_ms - *sent >= timeout {
                    failed.insert(*n);
                } else if learner.is_some() && now_ms - *sent >= 100 {
                    // Learners answer TryAgain until ready; keep offering the prepare.
                    resend.push((*n, p.m.clone()));
                }
            }
        }
        for (n, m) in resend {
            if let Some(l) = self.learners.get(&n) {
                out.push(Action::SendPrepare {
                    to: n,
                    ballot: self.membership.ballot,
                    receiver_status: Status::PotentialSecondary,
                    signature: l.signature,
                    mutation: m,
                });
            }
        }
        for n in failed {
            self.member_failed(n, out);
        }
    }
}
