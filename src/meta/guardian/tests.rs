//! Tests of the guardian: the data-driven cases under `src/meta/testdata/guardian` (format in
//! its README.md) plus unit tests of configuration updates and node death.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use super::*;
use crate::idl::dsn::Gpid;

fn n(k: u16) -> RpcAddress {
    RpcAddress::from_ipv4("127.0.0.1".parse().unwrap(), 34800 + k)
}

fn node(name: &str) -> RpcAddress {
    let k: u16 = name
        .strip_prefix('n')
        .and_then(|k| k.parse().ok())
        .unwrap_or_else(|| panic!("bad node name {name:?}"));
    assert!((1..100).contains(&k), "bad node name {name:?}");
    n(k)
}

fn name(a: RpcAddress) -> String {
    if a.is_invalid() {
        "-".into()
    } else {
        format!("n{}", a.port() - 34800)
    }
}

fn node_list(s: &str) -> Vec<RpcAddress> {
    s.split(',')
        .filter(|x| !x.is_empty() && *x != "-")
        .map(node)
        .collect()
}

fn parse_pid(s: &str) -> Gpid {
    let (a, i) = s.split_once('.').expect("pid is <app>.<index>");
    Gpid::new(
        a.parse().expect("app id"),
        i.parse().expect("partition index"),
    )
}

fn kv(tokens: &[&str]) -> BTreeMap<String, String> {
    tokens
        .iter()
        .map(|t| {
            let (k, v) = t
                .split_once('=')
                .unwrap_or_else(|| panic!("expected k=v: {t}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

fn int(m: &BTreeMap<String, String>, k: &str, default: i64) -> i64 {
    m.get(k)
        .map(|v| v.parse().unwrap_or_else(|_| panic!("bad {k}={v}")))
        .unwrap_or(default)
}

fn pc(pid: Gpid, ballot: i64, max: i32, primary: Option<RpcAddress>) -> PartitionConfiguration {
    PartitionConfiguration {
        pid: Some(pid),
        ballot: Some(ballot),
        max_replica_count: Some(max),
        primary: Some(primary.unwrap_or(RpcAddress::INVALID)),
        secondaries: Some(Vec::new()),
        last_drops: Some(Vec::new()),
        last_committed_decree: Some(0),
        partition_flags: Some(0),
        hp_primary: None,
        hp_secondaries: None,
        hp_last_drops: None,
    }
}

fn parse_pc(tokens: &[&str]) -> PartitionConfiguration {
    let pid = parse_pid(tokens[0]);
    let m = kv(&tokens[1..]);
    for k in m.keys() {
        assert!(
            ["ballot", "max", "primary", "secondaries", "drops", "lcd"].contains(&k.as_str()),
            "unknown pc key {k}"
        );
    }
    let primary = m.get("primary").and_then(|p| node_list(p).first().copied());
    let mut c = pc(pid, int(&m, "ballot", 0), int(&m, "max", 3) as i32, primary);
    c.secondaries = Some(node_list(
        m.get("secondaries").map(String::as_str).unwrap_or(""),
    ));
    c.last_drops = Some(node_list(m.get("drops").map(String::as_str).unwrap_or("")));
    c.last_committed_decree = Some(int(&m, "lcd", 0));
    c
}

fn describe(c: &Cure) -> String {
    match c {
        Cure::Healthy => "healthy".into(),
        Cure::Wait(_) => "wait".into(),
        Cure::Dead(_) => "dead".into(),
        Cure::Propose(Proposal::Send { target, node, kind }) => {
            let k = match *kind {
                ConfigType::CT_ASSIGN_PRIMARY => "assign_primary",
                ConfigType::CT_UPGRADE_TO_PRIMARY => "upgrade_to_primary",
                ConfigType::CT_ADD_SECONDARY => "add_secondary",
                ConfigType::CT_REMOVE => "remove",
                ConfigType::CT_DOWNGRADE_TO_INACTIVE => "downgrade_to_inactive",
                _ => "other",
            };
            format!("{k} {} {}", name(*target), name(*node))
        }
        Cure::Propose(Proposal::Rewrite { .. }) => "rewrite".into(),
    }
}

#[derive(Default)]
struct Case {
    title: String,
    alive: BTreeSet<u64>,
    dead: BTreeSet<u64>,
    collected: BTreeSet<u64>,
    now: i64,
    opts: GuardianOptions,
    pcs: Vec<PartitionConfiguration>,
    drops: BTreeMap<Gpid, Vec<DroppedReplica>>,
    view: Option<NodeView>,
    histories: BTreeMap<Gpid, DropHistory>,
    cures: usize,
}

impl Case {
    fn new(title: &str) -> Case {
        Case {
            title: title.to_string(),
            now: 1_000_000,
            ..Case::default()
        }
    }

    fn line(&mut self, ctx: &str, words: &[&str]) {
        match words[0] {
            "alive" => self.alive.extend(words[1..].iter().map(|w| node(w).0)),
            "dead" => self.dead.extend(words[1..].iter().map(|w| node(w).0)),
            "collected" => self.collected.extend(words[1..].iter().map(|w| node(w).0)),
            "now" => self.now = words[1].parse().expect("now <ms>"),
            "opts" => {
                let m = kv(&words[1..]);
                for (k, v) in &m {
                    match k.as_str() {
                        "delay" => {
                            self.opts.replica_assign_delay_ms_for_dropouts =
                                v.parse().expect("delay")
                        }
                        "min2pc" => {
                            self.opts.mutation_2pc_min_replica_count = v.parse().expect("min2pc")
                        }
                        "reserved" => {
                            self.opts.max_reserved_dropped_replicas = v.parse().expect("reserved")
                        }
                        "blacklist" => {
                            self.opts.assign_secondary_black_list =
                                node_list(v).iter().map(|a| a.0).collect()
                        }
                        _ => panic!("{ctx}: unknown option {k}"),
                    }
                }
            }
            "pc" => {
                assert!(self.view.is_none(), "{ctx}: pc after the first cure");
                self.pcs.push(parse_pc(&words[1..]));
            }
            "drop" => {
                assert!(self.view.is_none(), "{ctx}: drop after the first cure");
                let pid = parse_pid(words[1]);
                let m = kv(&words[3..]);
                self.drops.entry(pid).or_default().push(DroppedReplica {
                    node: node(words[2]),
                    time_ms: int(&m, "time", 0),
                    ballot: int(&m, "ballot", INVALID_BALLOT),
                    last_committed_decree: int(&m, "cd", INVALID_DECREE),
                    last_prepared_decree: int(&m, "pd", INVALID_DECREE),
                });
            }
            "cure" => {
                let pid = parse_pid(words[1]);
                assert_eq!(words.get(2), Some(&"=>"), "{ctx}: cure <pid> => <expected>");
                let expected = words[3..].join(" ");
                self.cure(ctx, pid, &expected);
            }
            w => panic!("{ctx}: unknown directive {w}"),
        }
    }

    fn cure(&mut self, ctx: &str, pid: Gpid, expected: &str) {
        assert!(
            self.alive.is_disjoint(&self.dead),
            "{ctx}: a node is both alive and dead"
        );
        if self.view.is_none() {
            self.view = Some(NodeView::from_partitions(
                self.alive.clone(),
                self.collected.clone(),
                &self.pcs,
            ));
        }
        let config = self
            .pcs
            .iter()
            .find(|p| p.pid == Some(pid))
            .unwrap_or_else(|| panic!("{ctx}: no pc {pid:?}"))
            .clone();
        let (now, opts) = (self.now, self.opts.clone());
        let drops = self.drops.get(&pid).cloned();
        let history = self.histories.entry(pid).or_insert_with(|| match drops {
            Some(d) => DropHistory::from_entries(d),
            None => DropHistory::from_last_drops(&config, now, &opts),
        });
        let view = self.view.as_mut().expect("view");
        let got = cure(&config, view, history, now, &opts);
        assert_eq!(
            describe(&got),
            expected,
            "{ctx}: case {:?}: got {got:?}",
            self.title
        );
        self.cures += 1;
    }
}

fn run_file(path: &PathBuf) -> usize {
    let text = std::fs::read_to_string(path).expect("read testdata");
    let file = path
        .file_name()
        .and_then(|f| f.to_str())
        .unwrap_or("?")
        .to_string();
    let mut cases = 0;
    let mut current: Option<Case> = None;
    for (i, raw) in text.lines().enumerate() {
        let ctx = format!("{file}:{}", i + 1);
        let line = raw.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        if words[0] == "case" {
            if let Some(c) = current.take() {
                assert!(c.cures > 0, "case {:?} has no cure line", c.title);
                cases += 1;
            }
            current = Some(Case::new(&words[1..].join(" ")));
            continue;
        }
        current
            .as_mut()
            .unwrap_or_else(|| panic!("{ctx}: directive before the first case"))
            .line(&ctx, &words);
    }
    if let Some(c) = current {
        assert!(c.cures > 0, "case {:?} has no cure line", c.title);
        cases += 1;
    }
    cases
}

#[test]
fn testdata_cases() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("src/meta/testdata/guardian");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("testdata dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("txt"))
        .collect();
    files.sort();
    let total: usize = files.iter().map(run_file).sum();
    assert!(total >= 15, "only {total} guardian cases");
}

// ---------------------------------------------------------------------------------------------
// check_update

fn request(
    config: PartitionConfiguration,
    kind: ConfigType,
    who: RpcAddress,
) -> ConfigurationUpdateRequest {
    ConfigurationUpdateRequest {
        info: None,
        config: Some(config),
        type_: Some(kind),
        node: Some(who),
        host_node: None,
        meta_split_status: None,
        hp_node: None,
    }
}

fn base() -> PartitionConfiguration {
    let mut c = pc(Gpid::new(1, 0), 5, 3, Some(n(1)));
    c.secondaries = Some(vec![n(2), n(3)]);
    c.last_drops = Some(vec![n(4)]);
    c.last_committed_decree = Some(100);
    c
}

#[test]
fn duplicate_request_returns_current() {
    let cur = base();
    // Same membership (secondaries reordered), same ballot; last_drops differ and are ignored.
    let mut same = cur.clone();
    same.secondaries = Some(vec![n(3), n(2)]);
    same.last_drops = Some(vec![]);
    match check_update(&cur, &request(same, ConfigType::CT_REMOVE, n(3))) {
        UpdateOutcome::Duplicate(c) => assert_eq!(c, cur),
        o => panic!("{o:?}"),
    }
}

#[test]
fn wrong_ballot_is_invalid_version() {
    let cur = base();
    for b in [3, 5, 7, i64::MAX, i64::MIN] {
        let mut next = cur.clone();
        next.ballot = Some(b);
        next.secondaries = Some(vec![n(2)]);
        match check_update(&cur, &request(next, ConfigType::CT_REMOVE, n(3))) {
            UpdateOutcome::InvalidVersion(c) => assert_eq!(c, cur),
            o => panic!("ballot {b}: {o:?}"),
        }
    }
    let mut at_max = cur.clone();
    at_max.ballot = Some(i64::MAX);
    let mut next = at_max.clone();
    next.secondaries = Some(vec![n(2)]);
    assert!(matches!(
        check_update(&at_max, &request(next, ConfigType::CT_REMOVE, n(3))),
        UpdateOutcome::Duplicate(_) | UpdateOutcome::InvalidVersion(_)
    ));
}

#[test]
fn malformed_requests_are_rejected() {
    let cur = base();
    let mut r = request(cur.clone(), ConfigType::CT_REMOVE, n(3));
    r.config = None;
    assert!(matches!(
        check_update(&cur, &r),
        UpdateOutcome::Malformed(_)
    ));
    let mut other = cur.clone();
    other.pid = Some(Gpid::new(1, 1));
    other.ballot = Some(6);
    assert!(matches!(
        check_update(&cur, &request(other, ConfigType::CT_REMOVE, n(3))),
        UpdateOutcome::Malformed(_)
    ));
    // A default (all-None) request must not panic.
    let _ = check_update(&cur, &ConfigurationUpdateRequest::default());
    let _ = check_update(
        &PartitionConfiguration::default(),
        &ConfigurationUpdateRequest::default(),
    );
}

fn applied(
    cur: &PartitionConfiguration,
    next: PartitionConfiguration,
    kind: ConfigType,
    who: RpcAddress,
) -> Vec<RpcAddress> {
    match check_update(cur, &request(next.clone(), kind, who)) {
        UpdateOutcome::Apply(c) => {
            assert_eq!(c.ballot, next.ballot);
            assert_eq!(c.primary, next.primary);
            assert_eq!(c.secondaries, next.secondaries);
            c.last_drops.unwrap_or_default()
        }
        o => panic!("{kind:?}: {o:?}"),
    }
}

#[test]
fn adding_types_remove_the_node_from_last_drops() {
    // ASSIGN_PRIMARY: n4 comes back as primary of an empty partition.
    let mut cur = pc(Gpid::new(1, 0), 5, 3, None);
    cur.last_drops = Some(vec![n(5), n(4)]);
    let mut next = cur.clone();
    next.ballot = Some(6);
    next.primary = Some(n(4));
    assert_eq!(
        applied(&cur, next, ConfigType::CT_ASSIGN_PRIMARY, n(4)),
        vec![n(5)]
    );

    // UPGRADE_TO_PRIMARY: a secondary becomes primary; not in last_drops → unchanged.
    let mut cur = base();
    cur.primary = Some(RpcAddress::INVALID);
    cur.last_drops = Some(vec![n(1)]);
    let mut next = cur.clone();
    next.ballot = Some(6);
    next.primary = Some(n(2));
    next.secondaries = Some(vec![n(3)]);
    assert_eq!(
        applied(&cur, next, ConfigType::CT_UPGRADE_TO_PRIMARY, n(2)),
        vec![n(1)]
    );

    // UPGRADE_TO_SECONDARY: the learner n4 joins.
    let mut cur = base();
    cur.secondaries = Some(vec![n(2)]);
    cur.last_drops = Some(vec![n(3), n(4)]);
    let mut next = cur.clone();
    next.ballot = Some(6);
    next.secondaries = Some(vec![n(2), n(4)]);
    assert_eq!(
        applied(&cur, next, ConfigType::CT_UPGRADE_TO_SECONDARY, n(4)),
        vec![n(3)]
    );
}

#[test]
fn removing_types_append_and_keep_three() {
    for kind in [
        ConfigType::CT_DOWNGRADE_TO_INACTIVE,
        ConfigType::CT_REMOVE,
        ConfigType::CT_DROP_PARTITION,
    ] {
        let mut cur = base();
        cur.last_drops = Some(vec![n(4), n(5), n(6)]);
        let mut next = cur.clone();
        next.ballot = Some(6);
        next.secondaries = Some(vec![n(2)]);
        assert_eq!(
            applied(&cur, next, kind, n(3)),
            vec![n(5), n(6), n(3)],
            "{kind:?}"
        );

        let mut cur = base();
        cur.last_drops = Some(vec![]);
        let mut next = cur.clone();
        next.ballot = Some(6);
        next.secondaries = Some(vec![n(2)]);
        assert_eq!(applied(&cur, next, kind, n(3)), vec![n(3)], "{kind:?}");
    }
}

#[test]
fn other_types_leave_last_drops_alone() {
    for kind in [
        ConfigType::CT_DOWNGRADE_TO_SECONDARY,
        ConfigType::CT_PRIMARY_FORCE_UPDATE_BALLOT,
        ConfigType::CT_INVALID,
        ConfigType(99),
    ] {
        let cur = base();
        let mut next = cur.clone();
        next.ballot = Some(6);
        if kind == ConfigType::CT_DOWNGRADE_TO_SECONDARY {
            next.primary = Some(RpcAddress::INVALID);
            next.secondaries = Some(vec![n(2), n(3), n(1)]);
        }
        assert_eq!(applied(&cur, next, kind, n(1)), vec![n(4)], "{kind:?}");
    }
}

#[test]
fn host_port_last_drops_follow_the_request() {
    let mut cur = base();
    cur.hp_last_drops = Some(vec![HostPort::new("h4", 4)]);
    let mut next = cur.clone();
    next.ballot = Some(6);
    next.secondaries = Some(vec![n(2)]);
    let mut r = request(next, ConfigType::CT_REMOVE, n(3));
    r.hp_node = Some(HostPort::new("h3", 3));
    match check_update(&cur, &r) {
        UpdateOutcome::Apply(c) => assert_eq!(
            c.hp_last_drops,
            Some(vec![HostPort::new("h4", 4), HostPort::new("h3", 3)])
        ),
        o => panic!("{o:?}"),
    }
}

// ---------------------------------------------------------------------------------------------
// on_node_dead

#[test]
fn dead_primary_is_rewritten_out() {
    let mut cur = base();
    cur.last_drops = Some(vec![n(4), n(5), n(6)]);
    match on_node_dead(&cur, n(1)) {
        Some(Proposal::Rewrite { config, kind, node }) => {
            assert_eq!(kind, ConfigType::CT_DOWNGRADE_TO_INACTIVE);
            assert_eq!(node, n(1));
            assert_eq!(config.ballot, Some(6));
            assert_eq!(primary_of(&config), None);
            assert_eq!(config.secondaries, cur.secondaries);
            assert_eq!(config.last_drops, Some(vec![n(5), n(6), n(1)]));
            // What the meta persists passes its own update rules.
            let r = request(config.clone(), kind, node);
            assert_eq!(check_update(&cur, &r), UpdateOutcome::Apply(config));
        }
        p => panic!("{p:?}"),
    }
}

#[test]
fn dead_primary_with_host_ports() {
    let mut cur = base();
    cur.hp_primary = Some(HostPort::new("h1", 1));
    cur.hp_last_drops = Some(vec![]);
    match on_node_dead(&cur, n(1)) {
        Some(Proposal::Rewrite { config, .. }) => {
            assert_eq!(config.hp_primary, Some(HostPort::invalid()));
            assert_eq!(config.hp_last_drops, Some(vec![HostPort::new("h1", 1)]));
        }
        p => panic!("{p:?}"),
    }
}

#[test]
fn dead_secondary_is_downgraded_through_the_primary() {
    let cur = base();
    assert_eq!(
        on_node_dead(&cur, n(3)),
        Some(Proposal::Send {
            target: n(1),
            node: n(3),
            kind: ConfigType::CT_DOWNGRADE_TO_INACTIVE
        })
    );
}

#[test]
fn dead_secondary_without_primary_or_non_member_is_ignored() {
    let mut cur = base();
    cur.primary = Some(RpcAddress::INVALID);
    assert_eq!(on_node_dead(&cur, n(3)), None);
    assert_eq!(on_node_dead(&base(), n(9)), None);
    assert_eq!(on_node_dead(&base(), RpcAddress::INVALID), None);
    assert_eq!(on_node_dead(&PartitionConfiguration::default(), n(1)), None);
}

// ---------------------------------------------------------------------------------------------
// Drop history, validation, proposal bodies

#[test]
fn drop_history_is_trimmed_and_collected_in_order() {
    let opts = GuardianOptions {
        max_reserved_dropped_replicas: 0,
        ..GuardianOptions::default()
    };
    let mut p = pc(Gpid::new(1, 0), 5, 3, Some(n(1)));
    p.secondaries = Some(vec![n(2)]);
    let mut h = DropHistory::new();
    assert!(h.record_drop(&p, n(3), 100, &opts));
    assert!(!h.record_drop(&p, n(3), 200, &opts));
    // 2 replicas + 2 drops > 3: the oldest goes.
    assert!(h.record_drop(&p, n(4), 200, &opts));
    assert_eq!(
        h.entries().iter().map(|e| e.node).collect::<Vec<_>>(),
        vec![n(4)]
    );
    // A reported replica keeps its known drop time and gets its state.
    assert_eq!(h.collect(&p, n(4), 5, 10, 12, &opts), Collected::Updated);
    assert_eq!(h.find(n(4)).map(|d| (d.time_ms, d.ballot)), Some((200, 5)));
    // An unknown one sorts first (no drop time) and is trimmed right away.
    assert_eq!(h.collect(&p, n(5), 9, 90, 99, &opts), Collected::Discarded);
    // With room, it is kept, ordered before the timed drop.
    let mut q = p.clone();
    q.secondaries = Some(vec![]);
    assert_eq!(h.collect(&q, n(5), 9, 90, 99, &opts), Collected::Added);
    assert_eq!(
        h.entries().iter().map(|e| e.node).collect::<Vec<_>>(),
        vec![n(5), n(4)]
    );
    // Configuration changes: adding removes, removing records.
    h.on_config_update(ConfigType::CT_UPGRADE_TO_SECONDARY, n(5), &p, 300, &opts);
    assert!(h.find(n(5)).is_none());
    h.on_config_update(ConfigType::CT_REMOVE, n(2), &q, 400, &opts);
    assert_eq!(
        h.entries().last().map(|e| (e.node, e.time_ms)),
        Some((n(2), 400))
    );
    let mut dropped = q.clone();
    dropped.primary = Some(RpcAddress::INVALID);
    dropped.last_drops = Some(vec![n(1), n(2)]);
    h.on_config_update(ConfigType::CT_DROP_PARTITION, n(1), &dropped, 500, &opts);
    assert_eq!(
        h.entries().iter().map(|e| e.node).collect::<Vec<_>>(),
        vec![n(1), n(2)]
    );
}

#[test]
fn proposals_are_validated() {
    let p = base();
    let alive: BTreeSet<u64> = (1..=5).map(|k| n(k).0).collect();
    let v = NodeView::from_partitions(alive, BTreeSet::new(), [&p]);
    assert!(validate_proposal(&p, &v, n(1), n(4), ConfigType::CT_ADD_SECONDARY).is_ok());
    assert!(validate_proposal(&p, &v, n(1), n(2), ConfigType::CT_ADD_SECONDARY).is_err());
    assert!(validate_proposal(&p, &v, n(2), n(4), ConfigType::CT_ADD_SECONDARY).is_err());
    assert!(validate_proposal(&p, &v, n(1), n(3), ConfigType::CT_REMOVE).is_ok());
    assert!(validate_proposal(&p, &v, n(1), n(4), ConfigType::CT_REMOVE).is_err());
    assert!(validate_proposal(&p, &v, n(1), n(1), ConfigType::CT_DOWNGRADE_TO_SECONDARY).is_ok());
    assert!(validate_proposal(&p, &v, n(1), n(9), ConfigType::CT_ADD_SECONDARY).is_err());
    assert!(validate_proposal(&p, &v, n(1), n(1), ConfigType::CT_ASSIGN_PRIMARY).is_err());
    let mut np = p.clone();
    np.primary = Some(RpcAddress::INVALID);
    assert!(validate_proposal(&np, &v, n(2), n(2), ConfigType::CT_UPGRADE_TO_PRIMARY).is_ok());
    assert!(validate_proposal(&np, &v, n(4), n(4), ConfigType::CT_UPGRADE_TO_PRIMARY).is_err());
    assert!(validate_proposal(&np, &v, n(4), n(4), ConfigType::CT_ASSIGN_PRIMARY).is_ok());
    assert!(validate_proposal(&np, &v, n(2), n(2), ConfigType::CT_ASSIGN_PRIMARY).is_err());
    assert!(validate_proposal(
        &np,
        &v,
        RpcAddress::INVALID,
        n(2),
        ConfigType::CT_ASSIGN_PRIMARY
    )
    .is_err());
}

#[test]
fn proposal_request_carries_app_config_type_and_node() {
    let app = AppInfo {
        app_id: Some(1),
        app_name: Some("t".into()),
        ..AppInfo::default()
    };
    let r = proposal_request(&app, &base(), n(4), ConfigType::CT_ADD_SECONDARY);
    assert_eq!(r.info, Some(app));
    assert_eq!(r.config, Some(base()));
    assert_eq!(r.type_, Some(ConfigType::CT_ADD_SECONDARY));
    assert_eq!(r.node, Some(n(4)));
}

#[test]
fn cure_never_panics_on_odd_configurations() {
    let mut odd = PartitionConfiguration::default();
    let alive: BTreeSet<u64> = [n(1).0, 0, u64::MAX].into_iter().collect();
    let mut v = NodeView::from_partitions(alive, BTreeSet::new(), [&odd]);
    let mut h = DropHistory::new();
    let opts = GuardianOptions {
        replica_assign_delay_ms_for_dropouts: i64::MAX,
        mutation_2pc_min_replica_count: -5,
        ..GuardianOptions::default()
    };
    let _ = cure(&odd, &mut v, &mut h, i64::MIN, &opts);
    odd.max_replica_count = Some(i32::MIN);
    odd.primary = Some(n(1));
    let _ = cure(&odd, &mut v, &mut h, i64::MAX, &opts);
    odd.max_replica_count = Some(i32::MAX);
    odd.last_drops = Some(vec![RpcAddress::INVALID, n(1), n(1)]);
    h = DropHistory::from_entries(vec![DroppedReplica {
        node: n(2),
        time_ms: i64::MAX,
        ballot: i64::MIN,
        last_committed_decree: i64::MAX,
        last_prepared_decree: i64::MIN,
    }]);
    let _ = cure(&odd, &mut v, &mut h, i64::MAX, &opts);
    odd.primary = None;
    odd.secondaries = None;
    let _ = cure(&odd, &mut v, &mut h, 0, &opts);
}

#[test]
fn a_report_older_than_the_drop_says_nothing_about_the_dropped_replica() {
    // Both replicas are gone; n1 left last (at 100 ms, state unknown), n2 earlier and reported
    // ballot 5. n1's only report predates its drop: it may hold newer data, so no choice yet.
    let mut pc = base();
    pc.primary = Some(RpcAddress::INVALID);
    pc.secondaries = Some(vec![]);
    pc.last_drops = Some(vec![n(2), n(1)]);
    pc.last_committed_decree = Some(3);
    let alive: BTreeSet<u64> = [n(1).0, n(2).0].into_iter().collect();
    let collected = alive.clone();
    let mut v = NodeView::from_partitions(alive, collected, [&pc]);
    let mut h = DropHistory::from_entries(vec![
        DroppedReplica {
            node: n(2),
            time_ms: UNKNOWN_DROP_TIME,
            ballot: 5,
            last_committed_decree: 3,
            last_prepared_decree: 4,
        },
        DroppedReplica {
            node: n(1),
            time_ms: 100,
            ballot: INVALID_BALLOT,
            last_committed_decree: INVALID_DECREE,
            last_prepared_decree: INVALID_DECREE,
        },
    ]);
    let opts = GuardianOptions::default();
    v.collected_at = [(n(1).0, 50), (n(2).0, 150)].into_iter().collect();
    match cure(&pc, &mut v, &mut h, 200, &opts) {
        Cure::Dead(reason) => assert!(reason.contains("not collected"), "{reason}"),
        other => panic!("chose a primary from a stale report: {other:?}"),
    }
    // Reported again after the drop without that replica: n2 is the one to take.
    v.collected_at.insert(n(1).0, 150);
    match cure(&pc, &mut v, &mut h, 200, &opts) {
        Cure::Propose(Proposal::Send { node, kind, .. }) => {
            assert_eq!(node, n(2));
            assert_eq!(kind, ConfigType::CT_ASSIGN_PRIMARY);
        }
        other => panic!("expected n2 as primary: {other:?}"),
    }
}
