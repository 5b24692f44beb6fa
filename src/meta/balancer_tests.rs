//! Tests of the load balancer: operation shapes, the flow-graph primary balance, and whole
//! rebalancing runs (apply every operation, balance again) on synthetic clusters.

use super::*;
use crate::idl::dsn::Gpid;
use crate::idl::dsn_layer2::AppInfo;

fn node(i: u16) -> RpcAddress {
    RpcAddress::from_ipv4(std::net::Ipv4Addr::LOCALHOST, 34800 + i)
}

fn app(id: i32, layout: &[(u16, &[u16])]) -> AppState {
    let partitions = layout
        .iter()
        .enumerate()
        .map(|(i, (p, secs))| PartitionConfiguration {
            pid: Some(Gpid::new(id, i as i32)),
            ballot: Some(3),
            max_replica_count: Some(secs.len() as i32 + 1),
            primary: Some(node(*p)),
            secondaries: Some(secs.iter().map(|s| node(*s)).collect()),
            last_drops: Some(Vec::new()),
            last_committed_decree: Some(0),
            partition_flags: Some(0),
            ..Default::default()
        })
        .collect::<Vec<_>>();
    AppState {
        info: AppInfo {
            app_id: Some(id),
            status: Some(AppStatus::AS_AVAILABLE),
            partition_count: Some(partitions.len() as i32),
            ..Default::default()
        },
        partitions,
    }
}

fn tags(_: i32, _: i32, _: RpcAddress) -> Option<String> {
    Some("default".into())
}

/// Applies an operation's actions to the configuration the way the replicas would.
fn apply(pc: &mut PartitionConfiguration, op: &BalanceOp) {
    for a in &op.actions {
        let mut secs = secondaries_of(pc);
        match a.kind {
            ConfigType::CT_DOWNGRADE_TO_SECONDARY => {
                assert_eq!(primary_of(pc), Some(a.node));
                secs.push(a.node);
                pc.primary = Some(RpcAddress::INVALID);
            }
            ConfigType::CT_UPGRADE_TO_PRIMARY => {
                assert!(primary_of(pc).is_none());
                assert!(secs.contains(&a.node));
                secs.retain(|s| *s != a.node);
                pc.primary = Some(a.node);
            }
            ConfigType::CT_ADD_SECONDARY_FOR_LB => {
                assert_eq!(primary_of(pc), Some(a.target));
                assert!(!secs.contains(&a.node) && primary_of(pc) != Some(a.node));
                secs.push(a.node);
            }
            ConfigType::CT_REMOVE => {
                assert_eq!(primary_of(pc), Some(a.target));
                assert!(secs.contains(&a.node));
                secs.retain(|s| *s != a.node);
            }
            k => panic!("unexpected action {k:?}"),
        }
        pc.secondaries = Some(secs);
    }
}

fn per_node(apps: &BTreeMap<i32, AppState>, nodes: &[RpcAddress]) -> (Vec<i64>, Vec<i64>) {
    let mut p = vec![0; nodes.len()];
    let mut r = vec![0; nodes.len()];
    for a in apps.values() {
        for pc in &a.partitions {
            for (i, n) in nodes.iter().enumerate() {
                match role_of(pc, *n) {
                    Role::Primary => {
                        p[i] += 1;
                        r[i] += 1
                    }
                    Role::Secondary => r[i] += 1,
                    Role::None => {}
                }
            }
        }
    }
    (p, r)
}

fn spread(v: &[i64]) -> i64 {
    v.iter().max().unwrap() - v.iter().min().unwrap()
}

/// One balancer round over `apps` on `nodes`.
fn round(
    apps: &BTreeMap<i32, AppState>,
    nodes: &[RpcAddress],
    opts: &BalancerOptions,
    checker: bool,
) -> MigrationList {
    let view = View {
        apps,
        nodes: nodes.to_vec(),
        disk_tag: &tags,
    };
    balance(&view, opts, checker)
}

/// Runs rounds until the balancer proposes nothing; returns (rounds, operations).
fn run_to_balance(apps: &mut BTreeMap<i32, AppState>, nodes: &[RpcAddress]) -> (usize, usize) {
    let opts = BalancerOptions::default();
    let mut ops = 0;
    for n in 0..100 {
        let list = round(apps, nodes, &opts, false);
        if list.is_empty() {
            return (n, ops);
        }
        ops += list.len();
        for ((id, i), op) in &list {
            let pc = &mut apps.get_mut(id).unwrap().partitions[*i as usize];
            apply(pc, op);
        }
    }
    panic!("the balancer did not converge");
}

#[test]
fn action_sequences_are_upstreams() {
    let (p, f, t) = (node(1), node(2), node(3));
    let mv = actions_for(BalancerRequestType::MOVE_PRIMARY, p, f, t);
    assert_eq!(mv.len(), 2);
    assert_eq!((mv[0].target, mv[0].node), (f, f));
    assert_eq!(mv[0].kind, ConfigType::CT_DOWNGRADE_TO_SECONDARY);
    assert_eq!((mv[1].target, mv[1].node), (t, t));
    let cp = actions_for(BalancerRequestType::COPY_PRIMARY, p, f, t);
    let kinds: Vec<_> = cp.iter().map(|a| a.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ConfigType::CT_ADD_SECONDARY_FOR_LB,
            ConfigType::CT_DOWNGRADE_TO_SECONDARY,
            ConfigType::CT_UPGRADE_TO_PRIMARY,
            ConfigType::CT_REMOVE
        ]
    );
    assert_eq!((cp[3].target, cp[3].node), (t, f));
    let cs = actions_for(BalancerRequestType::COPY_SECONDARY, p, f, t);
    assert_eq!((cs[0].target, cs[0].node), (p, t));
    assert_eq!((cs[1].target, cs[1].node), (p, f));
}

#[test]
fn primaries_move_by_role_switch_when_secondaries_allow() {
    // 6 partitions, all primaries on node 1, secondaries on 2 and 3.
    let layout: Vec<(u16, &[u16])> = (0..6).map(|_| (1u16, &[2u16, 3][..])).collect();
    let mut apps = BTreeMap::from([(1, app(1, &layout))]);
    let nodes = [node(1), node(2), node(3)];
    let list = round(&apps, &nodes, &BalancerOptions::default(), false);
    assert!(!list.is_empty());
    assert!(list
        .values()
        .all(|op| op.balance_type == BalancerRequestType::MOVE_PRIMARY));
    let (rounds, _) = run_to_balance(&mut apps, &nodes);
    assert!(rounds >= 1);
    let (p, r) = per_node(&apps, &nodes);
    assert_eq!(p, vec![2, 2, 2]);
    assert_eq!(r, vec![6, 6, 6]);
}

#[test]
fn a_new_node_receives_primaries_then_replicas() {
    // The onebox table: 8 partitions on 3 nodes, then a 4th node joins empty.
    let layout: Vec<(u16, &[u16])> = vec![
        (1, &[2, 3]),
        (2, &[1, 3]),
        (3, &[1, 2]),
        (1, &[2, 3]),
        (2, &[3, 1]),
        (3, &[2, 1]),
        (1, &[3, 2]),
        (2, &[1, 3]),
    ];
    let mut apps = BTreeMap::from([(1, app(1, &layout))]);
    let nodes = [node(1), node(2), node(3), node(4)];
    let first = round(&apps, &nodes, &BalancerOptions::default(), false);
    // Node 4 holds nothing, so no role switch reaches it: primaries are copied first.
    assert!(first
        .values()
        .all(|op| op.balance_type == BalancerRequestType::COPY_PRIMARY));
    run_to_balance(&mut apps, &nodes);
    let (p, r) = per_node(&apps, &nodes);
    assert!(spread(&p) <= 1, "primaries {p:?}");
    assert!(spread(&r) <= 1, "replicas {r:?}");
    assert_eq!(r.iter().sum::<i64>(), 24);
    for pc in &apps[&1].partitions {
        assert_eq!(secondaries_of(pc).len(), 2);
    }
}

#[test]
fn checker_counts_and_switches_limit_the_work() {
    let layout: Vec<(u16, &[u16])> = (0..8).map(|_| (1u16, &[2u16, 3][..])).collect();
    let apps = BTreeMap::from([(1, app(1, &layout)), (2, app(2, &layout))]);
    let nodes = vec![node(1), node(2), node(3), node(4)];
    let view = View {
        apps: &apps,
        nodes,
        disk_tag: &tags,
    };
    let all = balance(&view, &BalancerOptions::default(), true);
    let (mv, _, cs) = count_ops(&all);
    assert!(mv > 0 && cs > 0, "checker counts every phase: {all:?}");
    let in_turn = BalancerOptions {
        balancer_in_turn: true,
        ..Default::default()
    };
    let one = balance(&view, &in_turn, false);
    assert!(one.keys().all(|(id, _)| *id == 1));
    let ignored = BalancerOptions {
        ignored_apps: BTreeSet::from([1]),
        ..Default::default()
    };
    assert!(balance(&view, &ignored, false)
        .keys()
        .all(|(id, _)| *id == 2));
    let only_move = BalancerOptions {
        only_move_primary: true,
        only_primary_balancer: true,
        ..Default::default()
    };
    assert!(balance(&view, &only_move, true)
        .values()
        .all(|op| op.balance_type == BalancerRequestType::MOVE_PRIMARY));
    // Unknown disk tags stop the balancer.
    let none = |_: i32, _: i32, _: RpcAddress| None;
    let blind = View {
        apps: &apps,
        nodes: view.nodes.clone(),
        disk_tag: &none,
    };
    assert!(balance(&blind, &BalancerOptions::default(), true).is_empty());
}

#[test]
fn balanced_tables_produce_nothing() {
    let layout: Vec<(u16, &[u16])> = vec![
        (1, &[2, 3]),
        (2, &[3, 1]),
        (3, &[1, 2]),
        (1, &[2, 3]),
        (2, &[3, 1]),
        (3, &[1, 2]),
    ];
    let apps = BTreeMap::from([(1, app(1, &layout))]);
    let view = View {
        apps: &apps,
        nodes: vec![node(1), node(2), node(3)],
        disk_tag: &tags,
    };
    assert!(balance(&view, &BalancerOptions::default(), true).is_empty());
}

#[test]
fn the_cluster_policy_evens_out_what_each_table_leaves() {
    // Four tables of 2 partitions on 4 nodes, each balanced on its own (replicas 2,2,1,1),
    // but every table puts its extra replicas on nodes 1 and 2: the cluster is 8,8,4,4.
    let layout: Vec<(u16, &[u16])> = vec![(1, &[2, 3]), (2, &[1, 4])];
    let mut apps: BTreeMap<i32, AppState> = (1..=4).map(|id| (id, app(id, &layout))).collect();
    let nodes = [node(1), node(2), node(3), node(4)];
    let per_table = round(&apps, &nodes, &BalancerOptions::default(), false);
    assert!(
        per_table.is_empty(),
        "each table is balanced on its own: {per_table:?}"
    );
    let opts = BalancerOptions {
        balance_cluster: true,
        balance_op_count_per_round: 3,
        ..Default::default()
    };
    let mut rounds = 0;
    loop {
        // The cluster policy never counts (as upstream).
        assert!(round(&apps, &nodes, &opts, true).is_empty());
        let list = round(&apps, &nodes, &opts, false);
        if list.is_empty() {
            break;
        }
        assert!(
            list.len() <= 3,
            "at most balance_op_count_per_round operations"
        );
        for ((id, i), op) in &list {
            apply(&mut apps.get_mut(id).unwrap().partitions[*i as usize], op);
        }
        rounds += 1;
        assert!(rounds < 50, "the cluster policy did not converge");
    }
    let (p, r) = per_node(&apps, &nodes);
    assert!(spread(&r) <= 1, "replicas per node {r:?}");
    assert!(spread(&p) <= 1, "primaries per node {p:?}");
    assert_eq!(r.iter().sum::<i64>(), 24);
}
