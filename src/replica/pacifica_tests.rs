//! Scripted-event tests of the PacificA state machine: a few replicas wired together by an
//! in-memory message queue (the test plays the meta), checking commits, failures,
//! reconciliation and learning.

use std::collections::{BTreeMap, VecDeque};

use super::mutation::MutationUpdate;
use super::pacifica::*;

const P: Node = 1;
const S1: Node = 2;
const S2: Node = 3;
const L: Node = 4;

enum Msg {
    Prepare {
        to: Node,
        from: Node,
        status: Status,
        sig: i64,
        m: super::mutation::Mutation,
    },
    Ack {
        to: Node,
        from: Node,
        ballot: i64,
        decree: i64,
        err: AckError,
    },
    AddLearner {
        to: Node,
        from: Node,
        ballot: i64,
        sig: i64,
    },
    Learn {
        to: Node,
        from: Node,
        sig: i64,
        committed: i64,
    },
    LearnReply {
        to: Node,
        sig: i64,
        plan: Result<LearnPlan, &'static str>,
    },
    Completion {
        to: Node,
        from: Node,
        sig: i64,
    },
}

/// Replicas plus the wire between them; the test answers meta proposals itself.
struct Net {
    nodes: BTreeMap<Node, Core>,
    queue: VecDeque<Msg>,
    /// Decrees applied per node, in order.
    applied: BTreeMap<Node, Vec<i64>>,
    acked_clients: Vec<u64>,
    rejected: Vec<(u64, &'static str)>,
    proposals: Vec<(Node, ConfigKind, Node, Membership)>,
    /// Prepare reply tokens: token -> (replier, primary).
    tokens: BTreeMap<u64, (Node, Node)>,
    next_token: u64,
    down: Vec<Node>,
}

fn update(i: u8) -> MutationUpdate {
    MutationUpdate {
        code: "RPC_RRDB_RRDB_PUT".into(),
        serialization_type: 1,
        data: vec![i].into(),
    }
}

fn opts() -> Options {
    Options {
        mutation_2pc_min_replica_count: 1,
        ..Options::default()
    }
}

impl Net {
    fn new(ids: &[Node]) -> Net {
        let mut nodes = BTreeMap::new();
        for id in ids {
            nodes.insert(*id, Core::new(1, 0, *id, 0, 0, opts()).created_empty());
        }
        Net {
            nodes,
            queue: VecDeque::new(),
            applied: BTreeMap::new(),
            acked_clients: Vec::new(),
            rejected: Vec::new(),
            proposals: Vec::new(),
            tokens: BTreeMap::new(),
            next_token: 1000,
            down: Vec::new(),
        }
    }

    /// Installs a configuration on every listed member, as the meta's config sync would.
    fn configure(&mut self, m: Membership) {
        let ids: Vec<Node> = self.nodes.keys().copied().collect();
        for id in ids {
            if m.primary == id || m.secondaries.contains(&id) {
                let mut out = Vec::new();
                self.core(id).on_config(m.clone(), &mut out);
                self.perform(id, out);
            }
        }
        self.run();
    }

    fn core(&mut self, id: Node) -> &mut Core {
        self.nodes.get_mut(&id).expect("node exists")
    }

    fn write(&mut self, at: Node, token: u64, i: u8) {
        let mut out = Vec::new();
        self.core(at)
            .on_client_write(token, update(i), true, 1_000 + i as i64, &mut out);
        self.perform(at, out);
        self.run();
    }

    fn perform(&mut self, id: Node, actions: Vec<Action>) {
        let mut q: VecDeque<Action> = actions.into();
        while let Some(a) = q.pop_front() {
            match a {
                Action::AppendLog(m) => {
                    let mut more = Vec::new();
                    self.core(id).on_log_appended(m.decree, m.ballot, &mut more);
                    q.extend(more);
                }
                Action::Apply { mutation, tokens } => {
                    self.applied.entry(id).or_default().push(mutation.decree);
                    self.acked_clients.extend(tokens);
                }
                Action::RejectClient { token, error } => self.rejected.push((token, error)),
                Action::SendPrepare {
                    to,
                    receiver_status,
                    signature,
                    mutation,
                    ..
                } => self.queue.push_back(Msg::Prepare {
                    to,
                    from: id,
                    status: receiver_status,
                    sig: signature,
                    m: mutation,
                }),
                Action::ReplyPrepare {
                    token,
                    error,
                    decree,
                } => {
                    if let Some((from, to)) = self.tokens.remove(&token) {
                        let ballot = self.nodes[&from].ballot();
                        self.queue.push_back(Msg::Ack {
                            to,
                            from,
                            ballot,
                            decree,
                            err: error,
                        });
                    }
                }
                Action::ProposeToMeta { kind, node, new } => {
                    self.proposals.push((id, kind, node, new))
                }
                Action::SendAddLearner {
                    to,
                    ballot,
                    signature,
                } => self.queue.push_back(Msg::AddLearner {
                    to,
                    from: id,
                    ballot,
                    sig: signature,
                }),
                Action::SendLearn {
                    to,
                    signature,
                    committed,
                } => self.queue.push_back(Msg::Learn {
                    to,
                    from: id,
                    sig: signature,
                    committed,
                }),
                Action::ReplyLearn {
                    learner,
                    signature,
                    plan,
                    ..
                } => self.queue.push_back(Msg::LearnReply {
                    to: learner,
                    sig: signature,
                    plan,
                }),
                Action::SendLearnCompletion { to, signature, .. } => {
                    self.queue.push_back(Msg::Completion {
                        to,
                        from: id,
                        sig: signature,
                    })
                }
                Action::SendRemoveReplica { .. }
                | Action::PersistBallot(_)
                | Action::ResetForLearning
                | Action::SendGroupCheck { .. }
                | Action::ReplyGroupCheck { .. } => {}
            }
        }
    }

    /// Delivers queued messages until the wire is quiet; messages to down nodes are lost and
    /// prepares to them fail, as a refused connection does.
    fn run(&mut self) {
        while let Some(msg) = self.queue.pop_front() {
            let mut out = Vec::new();
            let to = match &msg {
                Msg::Prepare { to, .. }
                | Msg::Ack { to, .. }
                | Msg::AddLearner { to, .. }
                | Msg::Learn { to, .. }
                | Msg::LearnReply { to, .. }
                | Msg::Completion { to, .. } => *to,
            };
            if self.down.contains(&to) {
                if let Msg::Prepare { from, m, .. } = msg {
                    let ballot = m.ballot;
                    self.core(from).on_prepare_ack(
                        to,
                        ballot,
                        m.decree,
                        AckError::Failed,
                        &mut out,
                    );
                    self.perform(from, out);
                }
                continue;
            }
            match msg {
                Msg::Prepare {
                    to,
                    from,
                    status,
                    sig,
                    m,
                } => {
                    self.next_token += 1;
                    let t = self.next_token;
                    self.tokens.insert(t, (to, from));
                    self.core(to).on_prepare(from, status, sig, m, t, &mut out);
                }
                Msg::Ack {
                    to,
                    from,
                    ballot,
                    decree,
                    err,
                } => self
                    .core(to)
                    .on_prepare_ack(from, ballot, decree, err, &mut out),
                Msg::AddLearner {
                    to,
                    from,
                    ballot,
                    sig,
                } => self.core(to).on_add_learner(from, ballot, sig, &mut out),
                Msg::Learn {
                    to,
                    from,
                    sig,
                    committed,
                } => self
                    .core(to)
                    .on_learn_request(from, sig, committed, 7, &mut out),
                Msg::LearnReply { to, sig, plan } => {
                    self.core(to).on_learn_reply(sig, plan, &mut out)
                }
                Msg::Completion { to, from, sig } => {
                    self.core(to).on_learn_completion(from, sig, &mut out);
                }
            }
            self.perform(to, out);
        }
    }

    /// The meta accepts the last proposal of `from`.
    fn accept_last(&mut self, from: Node) -> Membership {
        let idx = self
            .proposals
            .iter()
            .rposition(|p| p.0 == from)
            .expect("a proposal");
        let (_, _, _, new) = self.proposals.remove(idx);
        let mut out = Vec::new();
        self.core(from)
            .on_proposal_reply(true, new.clone(), &mut out);
        self.perform(from, out);
        self.run();
        new
    }
}

fn group() -> Membership {
    Membership {
        ballot: 1,
        primary: P,
        secondaries: vec![S1, S2],
        max_replica_count: 3,
    }
}

#[test]
fn writes_commit_only_after_every_member_prepared() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    assert_eq!(n.nodes[&P].status, Status::Primary);
    assert_eq!(n.nodes[&S1].status, Status::Secondary);
    n.write(P, 1, 1);
    n.write(P, 2, 2);
    assert_eq!(n.acked_clients, vec![1, 2]);
    assert_eq!(n.applied[&P], vec![1, 2]);
    // Secondaries commit what the primary piggy-backs: decree 1 so far.
    assert_eq!(n.applied[&S1], vec![1]);
    n.write(P, 3, 3);
    assert_eq!(n.applied[&S2], vec![1, 2]);
    assert_eq!(n.nodes[&P].last_committed, 3);
    // A write to a secondary is refused.
    n.write(S1, 9, 9);
    assert_eq!(n.rejected, vec![(9, "ERR_INVALID_STATE")]);
}

#[test]
fn a_failed_secondary_is_removed_and_the_write_then_commits() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    n.down.push(S2);
    n.write(P, 1, 1);
    // Not acknowledged: S2 failed, the primary proposes to drop it and pauses writes.
    assert!(n.acked_clients.is_empty());
    let (from, kind, node, new) = n.proposals.last().cloned().unwrap();
    assert_eq!((from, kind, node), (P, ConfigKind::DowngradeToInactive, S2));
    assert_eq!(new.secondaries, vec![S1]);
    assert_eq!(new.ballot, 2);
    n.write(P, 2, 2);
    assert_eq!(n.rejected, vec![(2, "ERR_INVALID_STATE")]);
    n.accept_last(P);
    // Reconciliation re-proposes decree 1 at ballot 2; S1 takes it, so it commits.
    assert_eq!(n.acked_clients, vec![1]);
    assert_eq!(n.nodes[&S1].ballot(), 2);
    n.write(P, 3, 3);
    assert_eq!(n.acked_clients, vec![1, 3]);
}

#[test]
fn a_new_primary_recommits_what_was_prepared() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    n.write(P, 1, 1);
    // P prepares decree 2 everywhere, then dies before committing it.
    n.down.push(P);
    let mut out = Vec::new();
    n.core(P)
        .on_client_write(2, update(2), true, 2_000, &mut out);
    n.perform(P, out);
    n.run();
    assert_eq!(n.nodes[&S1].max_prepared(), 2);
    assert_eq!(n.nodes[&S1].last_committed, 1);
    // The meta makes S1 primary at ballot 2 with S2 as secondary.
    n.configure(Membership {
        ballot: 2,
        primary: S1,
        secondaries: vec![S2],
        max_replica_count: 3,
    });
    // Decree 2 is committed by the new group (it may have been acknowledged to nobody, but
    // PacificA keeps every prepared mutation of the old primary's group).
    assert_eq!(n.nodes[&S1].last_committed, 2);
    assert_eq!(n.applied[&S1], vec![1, 2]);
    n.write(S1, 3, 3);
    assert_eq!(n.applied[&S2], vec![1, 2]);
    assert_eq!(n.nodes[&S1].last_committed, 3);
}

#[test]
fn stale_prepares_are_ignored_and_higher_ballots_adopted() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    n.write(P, 1, 1);
    // S1 moves to ballot 5 (e.g. a newer configuration); P's ballot-1 prepares are dropped.
    let mut out = Vec::new();
    n.core(S1).on_config(
        Membership {
            ballot: 5,
            primary: S2,
            secondaries: vec![S1],
            max_replica_count: 3,
        },
        &mut out,
    );
    n.write(P, 2, 2);
    assert_eq!(n.acked_clients, vec![1]);
    assert_eq!(n.nodes[&S1].max_prepared(), 1);
}

#[test]
fn a_learner_catches_up_from_the_cache_and_becomes_secondary() {
    let mut n = Net::new(&[P, S1, L]);
    n.configure(Membership {
        ballot: 1,
        primary: P,
        secondaries: vec![S1],
        max_replica_count: 3,
    });
    for i in 1..=5 {
        n.write(P, i, i as u8);
    }
    let mut out = Vec::new();
    let cfg = n.nodes[&P].membership.clone();
    n.core(P)
        .on_meta_proposal(ConfigKind::AddSecondary, L, cfg, &mut out);
    n.perform(P, out);
    n.run();
    // The learner got every committed mutation and reported success; P proposes it.
    assert_eq!(n.applied[&L], vec![1, 2, 3, 4, 5]);
    let (_, kind, node, new) = n.proposals.last().cloned().unwrap();
    assert_eq!((kind, node), (ConfigKind::UpgradeToSecondary, L));
    assert_eq!(new.secondaries, vec![S1, L]);
    // A write during the upgrade is refused; after the meta accepts, L takes part in 2PC.
    n.accept_last(P);
    n.write(P, 6, 6);
    n.write(P, 7, 7);
    assert_eq!(n.nodes[&L].status, Status::Secondary);
    assert_eq!(n.applied[&L], vec![1, 2, 3, 4, 5, 6]);
    assert!(n.acked_clients.ends_with(&[6, 7]));
}

#[test]
fn a_learner_too_far_behind_the_cache_is_told_to_copy_a_checkpoint() {
    let mut n = learner_behind_the_cache();
    // The runtime would now copy a checkpoint at decree 5; then learning resumes.
    let mut out = Vec::new();
    n.core(L).on_checkpoint_installed(5, &mut out);
    n.perform(L, out);
    n.run();
    assert_eq!(n.nodes[&L].last_committed, 5);
    assert_eq!(
        n.proposals.last().map(|p| p.1),
        Some(ConfigKind::UpgradeToSecondary)
    );
}

#[test]
fn group_check_commits_on_members_and_an_idle_primary_writes_empty() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    n.write(P, 1, 1);
    // Secondaries only know decree 1 is prepared until something piggy-backs the commit.
    assert_eq!(n.nodes[&S1].last_committed, 0);
    let mut out = Vec::new();
    n.core(P).on_tick(1, &mut out);
    // The first check only notes that decree 1 was proposed since the start.
    n.core(P).on_tick(200_000, &mut out);
    assert!(!out.iter().any(|a| matches!(a, Action::AppendLog(_))));
    out.clear();
    n.core(P).on_tick(400_000, &mut out);
    // The check goes to both members, and an empty write (decree 2) is proposed.
    let checks = out
        .iter()
        .filter(|a| matches!(a, Action::SendGroupCheck { .. }))
        .count();
    assert_eq!(checks, 2);
    assert!(out.iter().any(|a| matches!(a, Action::AppendLog(m) if m.decree == 2 && m.updates[0].code == super::mutation::WRITE_EMPTY)));
    n.perform(P, out);
    n.run();
    assert_eq!(n.nodes[&P].last_committed, 2);
    assert_eq!(n.nodes[&S1].last_committed, 1);
    // A member answering a check at its ballot commits what the primary says.
    let mut out = Vec::new();
    n.core(S1)
        .on_group_check(P, 1, Status::Secondary, 0, 2, 77, &mut out);
    assert_eq!(n.nodes[&S1].last_committed, 2);
    assert!(out.iter().any(|a| matches!(
        a,
        Action::ReplyGroupCheck {
            token: 77,
            ok: true,
            committed: 2,
            ..
        }
    )));
    // A failed check removes the member.
    let mut out = Vec::new();
    n.core(P)
        .on_group_check_reply(S2, false, false, 0, &mut out);
    assert!(out.iter().any(|a| matches!(a, Action::ProposeToMeta { kind: ConfigKind::DowngradeToInactive, node, .. } if *node == S2)));
}

#[test]
fn a_restarted_replica_named_primary_at_a_higher_ballot_fences_first() {
    // Loaded from disk at ballot 3 (say .init-info missed ballot 4): named primary at 4, it
    // must not serve at 4 but propose ballot 5 first.
    let mut core = Core::new(1, 0, P, 3, 0, opts());
    let mut out = Vec::new();
    core.on_config(
        Membership {
            ballot: 4,
            primary: P,
            secondaries: vec![S1],
            max_replica_count: 3,
        },
        &mut out,
    );
    assert_ne!(core.status, Status::Primary);
    let proposed = out.iter().find_map(|a| match a {
        Action::ProposeToMeta { kind, new, .. } => Some((*kind, new.ballot)),
        _ => None,
    });
    assert_eq!(proposed, Some((ConfigKind::PrimaryForceUpdateBallot, 5)));
}

#[test]
fn a_prepare_far_beyond_the_commit_point_is_refused() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    let mut m = super::mutation::Mutation::write_empty(1, 0, 1, i64::MAX, 0, 1);
    m.updates = vec![update(1)];
    let mut out = Vec::new();
    n.core(S1)
        .on_prepare(P, Status::Secondary, 0, m.clone(), 5, &mut out);
    assert_eq!(
        out,
        vec![Action::ReplyPrepare {
            token: 5,
            error: AckError::Failed,
            decree: i64::MAX
        }]
    );
    assert_eq!(n.nodes[&S1].max_prepared(), 0);
    // Replay of such a record from a log is ignored as well.
    let mut c = Core::new(1, 0, S1, 1, 0, opts());
    let mut out = Vec::new();
    c.replay(m, &mut out);
    assert_eq!(c.max_prepared(), 0);
}

fn logged(decree: i64, ballot: i64, i: u8) -> super::mutation::Mutation {
    super::mutation::Mutation {
        app_id: 1,
        partition_index: 0,
        ballot,
        decree,
        log_offset: 0,
        last_committed_decree: decree - 1,
        timestamp: decree,
        updates: vec![update(i)],
    }
}

#[test]
fn latest_per_decree_keeps_the_highest_ballot_and_sorts() {
    let got = latest_per_decree(vec![
        logged(3, 1, 30),
        logged(1, 1, 10),
        logged(3, 2, 31),
        logged(2, 1, 20),
        // an older ballot logged later does not replace a newer one
        logged(3, 1, 32),
        logged(2, 1, 21),
    ]);
    let seen: Vec<(i64, i64, u8)> = got
        .iter()
        .map(|m| (m.decree, m.ballot, m.updates[0].data[0]))
        .collect();
    assert_eq!(seen, vec![(1, 1, 10), (2, 1, 21), (3, 2, 31)]);
}

#[test]
fn learning_from_log_files_is_chosen_as_upstream() {
    // the database has not made the start durable: the log holds it
    assert!(learn_from_log(11, 10, false, true));
    // durable past the start, but the files still reach back to it
    assert!(learn_from_log(5, 10, true, true));
    // durable past the start and the files do not cover it: checkpoint
    assert!(!learn_from_log(5, 10, false, true));
    // no files at all: checkpoint
    assert!(!learn_from_log(11, 10, true, false));
}

/// A learner the cache cannot serve, with the primary holding everything in its log files.
fn learner_behind_the_cache() -> Net {
    let mut n = Net::new(&[P, L]);
    n.nodes.insert(
        P,
        Core::new(
            1,
            0,
            P,
            0,
            0,
            Options {
                mutation_2pc_min_replica_count: 1,
                cache_max_mutations: 2,
                ..Options::default()
            },
        )
        .created_empty(),
    );
    n.configure(Membership {
        ballot: 1,
        primary: P,
        secondaries: vec![],
        max_replica_count: 2,
    });
    for i in 1..=5 {
        n.write(P, i, i as u8);
    }
    let mut out = Vec::new();
    let cfg = n.nodes[&P].membership.clone();
    n.core(P)
        .on_meta_proposal(ConfigKind::AddSecondary, L, cfg, &mut out);
    n.perform(P, out);
    n.run();
    assert_eq!(n.nodes[&L].status, Status::PotentialSecondary);
    assert!(!n.applied.contains_key(&L));
    n
}

#[test]
fn a_learner_applies_learned_log_files_then_learns_the_rest_from_the_cache() {
    let mut n = learner_behind_the_cache();
    let sig = n.nodes[&L].learning_signature().expect("learning");
    // What the runtime read from the copied files: every decree, an older copy of decree 2,
    // and a prepared decree 6 past the primary's commit point that must not be applied.
    let mut files = vec![logged(2, 0, 99)];
    files.extend((1..=5).map(|d| logged(d, 1, d as u8)));
    files.push(logged(6, 1, 6));
    let mut out = Vec::new();
    n.core(L).on_learn_reply(
        sig,
        Ok(LearnPlan::Log {
            mutations: files,
            to_decree: 5,
        }),
        &mut out,
    );
    n.perform(L, out);
    assert_eq!(n.applied[&L], vec![1, 2, 3, 4, 5]);
    assert_eq!(n.nodes[&L].last_committed, 5);
    // a new round follows: the cache now covers the rest and the learner is upgraded
    n.run();
    assert_eq!(
        n.proposals.last().map(|p| (p.1, p.2)),
        Some((ConfigKind::UpgradeToSecondary, L))
    );
}

#[test]
fn learned_log_files_with_a_hole_end_the_round() {
    let mut n = learner_behind_the_cache();
    let sig = n.nodes[&L].learning_signature().expect("learning");
    let mut out = Vec::new();
    n.core(L).on_learn_reply(
        sig,
        Ok(LearnPlan::Log {
            mutations: vec![logged(2, 1, 2), logged(3, 1, 3)],
            to_decree: 5,
        }),
        &mut out,
    );
    assert!(out.is_empty(), "{out:?}");
    assert!(!n.applied.contains_key(&L));
    assert_eq!(n.nodes[&L].status, Status::Inactive { transient: false });
}

/// Client writes sent while `staleness_for_commit` mutations are in 2PC wait in the write
/// queue (none refused); batchable ones share the next mutation, the others get their own;
/// every write is acknowledged once committed, in arrival order.
#[test]
fn a_burst_waits_in_the_write_queue_and_is_batched() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    let staleness = opts().staleness_for_commit;
    // The prepares stay undelivered (the network does not run) while the burst arrives.
    let mut out = Vec::new();
    for t in 0..staleness as u64 {
        n.core(P)
            .on_client_write(100 + t, update(t as u8), true, 10_000, &mut out);
    }
    n.perform(P, out);
    assert_eq!(n.nodes[&P].max_prepared(), staleness);
    // 2PC is full: these wait; three batchable, then one that is not, then two more.
    let mut out = Vec::new();
    for t in 0..3u64 {
        n.core(P)
            .on_client_write(200 + t, update(1), true, 10_000, &mut out);
    }
    n.core(P)
        .on_client_write(203, update(2), false, 10_000, &mut out);
    for t in 4..6u64 {
        n.core(P)
            .on_client_write(200 + t, update(3), true, 10_000, &mut out);
    }
    assert!(
        !out.iter()
            .any(|a| matches!(a, Action::RejectClient { .. } | Action::AppendLog(_))),
        "queued writes are neither refused nor proposed: {out:?}"
    );
    assert_eq!(n.nodes[&P].queued_writes(), 6);
    n.perform(P, out);
    // Delivering the prepares commits the first ones, which lets the queue move.
    n.run();
    assert!(n.rejected.is_empty(), "refused: {:?}", n.rejected);
    assert_eq!(n.nodes[&P].queued_writes(), 0);
    let acked: Vec<u64> = n
        .acked_clients
        .iter()
        .copied()
        .filter(|t| *t >= 200)
        .collect();
    assert_eq!(acked, vec![200, 201, 202, 203, 204, 205]);
    // Three mutations for the six queued writes: [200,201,202], [203], [204,205].
    assert_eq!(n.nodes[&P].last_committed, staleness + 3);
}

/// With `batch_write_disabled` every queued write gets a mutation of its own.
#[test]
fn batch_write_disabled_gives_one_mutation_per_write() {
    let mut core = Core::new(
        1,
        0,
        P,
        0,
        0,
        Options {
            mutation_2pc_min_replica_count: 1,
            staleness_for_commit: 1,
            batch_write_disabled: true,
            ..Options::default()
        },
    )
    .created_empty();
    let mut out = Vec::new();
    core.on_config(
        Membership {
            ballot: 1,
            primary: P,
            secondaries: vec![],
            max_replica_count: 1,
        },
        &mut out,
    );
    let mut out = Vec::new();
    for t in 0..4u64 {
        core.on_client_write(t, update(t as u8), true, 1_000, &mut out);
    }
    assert_eq!(core.queued_writes(), 3);
    let mut applied = Vec::new();
    let mut q: VecDeque<Action> = out.into();
    while let Some(a) = q.pop_front() {
        let mut more = Vec::new();
        match a {
            Action::AppendLog(m) => core.on_log_appended(m.decree, m.ballot, &mut more),
            Action::Apply { mutation, tokens } => applied.push((mutation.decree, tokens)),
            _ => {}
        }
        q.extend(more);
    }
    assert_eq!(
        applied,
        vec![(1, vec![0]), (2, vec![1]), (3, vec![2]), (4, vec![3])]
    );
}

/// Queued writes are refused when the replica stops being primary before proposing them.
#[test]
fn queued_writes_are_refused_when_the_primary_steps_down() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    let staleness = opts().staleness_for_commit;
    let mut out = Vec::new();
    for t in 0..(staleness as u64 + 2) {
        n.core(P)
            .on_client_write(t, update(1), true, 10_000, &mut out);
    }
    n.perform(P, out);
    assert_eq!(n.nodes[&P].queued_writes(), 2);
    // The meta moves the primary role to S1 before any prepare was answered.
    let mut out = Vec::new();
    n.core(P).on_config(
        Membership {
            ballot: 2,
            primary: S1,
            secondaries: vec![P, S2],
            max_replica_count: 3,
        },
        &mut out,
    );
    n.perform(P, out);
    assert_eq!(n.nodes[&P].queued_writes(), 0);
    let refused: Vec<u64> = n.rejected.iter().map(|(t, _)| *t).collect();
    assert!(refused.contains(&(staleness as u64)) && refused.contains(&(staleness as u64 + 1)));
    assert!(n.rejected.iter().all(|(_, e)| *e == "ERR_INVALID_STATE"));
}

/// Writes taken while the runtime holds the queue share one mutation even though 2PC has
/// room; releasing proposes them together.
#[test]
fn writes_taken_together_share_a_mutation() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    let mut out = Vec::new();
    n.core(P).hold_queue();
    for t in 0..5u64 {
        n.core(P)
            .on_client_write(300 + t, update(t as u8), true, 10_000, &mut out);
    }
    assert!(!out.iter().any(|a| matches!(a, Action::AppendLog(_))));
    n.core(P).release_queue(&mut out);
    let appended: Vec<usize> = out
        .iter()
        .filter_map(|a| match a {
            Action::AppendLog(m) => Some(m.updates.len()),
            _ => None,
        })
        .collect();
    assert_eq!(appended, vec![5]);
    n.perform(P, out);
    n.run();
    assert_eq!(n.acked_clients, vec![300, 301, 302, 303, 304]);
    assert_eq!(n.nodes[&S1].max_prepared(), 1);
    assert_eq!(n.nodes[&P].last_committed, 1);
}

#[test]
fn a_primary_whose_storage_failed_asks_the_meta_to_remove_it() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    n.write(P, 1, 1);
    assert_eq!(n.acked_clients, vec![1]);
    // S2 does not answer, so write 2 waits; then P's log fails.
    n.down.push(S2);
    let mut out = Vec::new();
    n.core(P)
        .on_client_write(2, update(2), true, 2_000, &mut out);
    n.perform(P, out);
    let mut out = Vec::new();
    n.core(P).on_local_failure(&mut out);
    n.perform(P, out);
    assert_eq!(n.nodes[&P].status, Status::Error);
    let (from, kind, node, new) = n.proposals.last().cloned().unwrap();
    assert_eq!((from, kind, node), (P, ConfigKind::DowngradeToInactive, P));
    assert_eq!((new.primary, new.ballot), (0, 2));
    assert_eq!(new.secondaries, vec![S1, S2]);
    // The write in flight may still commit on S1 and S2 under a new primary: it is neither
    // acknowledged nor refused. Later writes are refused.
    assert!(!n.rejected.iter().any(|(t, _)| *t == 2));
    n.write(P, 3, 3);
    assert!(n.rejected.contains(&(3, "ERR_INVALID_STATE")));
    assert_eq!(n.acked_clients, vec![1]);
    // A second report changes nothing.
    let mut out = Vec::new();
    n.core(P).on_local_failure(&mut out);
    assert!(out.is_empty());
}

#[test]
fn a_secondary_whose_storage_failed_is_dropped_by_the_primary() {
    let mut n = Net::new(&[P, S1, S2]);
    n.configure(group());
    let mut out = Vec::new();
    n.core(S1).on_local_failure(&mut out);
    n.perform(S1, out);
    assert!(n.proposals.is_empty(), "only a primary reports itself");
    n.write(P, 1, 1);
    let (from, kind, node, new) = n.proposals.last().cloned().unwrap();
    assert_eq!((from, kind, node), (P, ConfigKind::DowngradeToInactive, S1));
    assert_eq!(new.secondaries, vec![S2]);
    n.accept_last(P);
    assert_eq!(n.acked_clients, vec![1]);
}
