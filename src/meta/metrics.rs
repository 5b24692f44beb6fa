//! The meta server's metric entities, refreshed by each checker round while leader: `server`
//! (alive and unalive replica servers) and one `table@<id>` per available table with its
//! partitions counted by health, as upstream's table metrics count them.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::server_state::ServerState;
use crate::idl::dsn_layer2::AppStatus;
use crate::metric_set;

metric_set! {
    /// The meta server's own figures.
    pub struct MetaServerMetrics {
        alive_replica_servers: Gauge = ("Servers", "The number of alive replica servers"),
        unalive_replica_servers: Gauge = ("Servers", "The number of unalive replica servers"),
    }
}

metric_set! {
    /// The partitions of one table by health.
    pub struct TableMetrics {
        dead_partitions: Gauge = ("Partitions", "The number of dead partitions, which means primary = 0 && secondary = 0"),
        unreadable_partitions: Gauge = ("Partitions", "The number of unreadable partitions, which means primary = 0 && secondary > 0"),
        unwritable_partitions: Gauge = ("Partitions", "The number of unwritable partitions, which means primary = 1 && primary + secondary < mutation_2pc_min_replica_count"),
        writable_ill_partitions: Gauge = ("Partitions", "The number of writable ill partitions, which means primary = 1 && primary + secondary >= mutation_2pc_min_replica_count && primary + secondary < max_replica_count"),
        healthy_partitions: Gauge = ("Partitions", "The number of healthy partitions, which means primary = 1 && primary + secondary >= max_replica_count"),
    }
}

/// The meta's entities.
pub struct MetaMetrics {
    server: Arc<MetaServerMetrics>,
    _process: Arc<crate::metrics::Computed>,
    tables: Mutex<HashMap<i32, Arc<TableMetrics>>>,
}

impl MetaMetrics {
    pub fn register() -> MetaMetrics {
        let server = Arc::new(MetaServerMetrics::default());
        crate::metrics::register("server", "server", &[], &server);
        MetaMetrics {
            server,
            _process: crate::metrics::register_process(),
            tables: Mutex::new(HashMap::new()),
        }
    }

    /// Refreshes the figures from the state.
    pub fn update(&self, s: &ServerState) {
        let alive = s.nodes.values().filter(|n| n.alive).count() as i64;
        self.server.alive_replica_servers.set(alive);
        self.server
            .unalive_replica_servers
            .set(s.nodes.len() as i64 - alive);
        let Ok(mut tables) = self.tables.lock() else {
            return;
        };
        let min2pc = s.guardian.mutation_2pc_min_replica_count;
        let mut seen = Vec::new();
        for (id, app) in &s.apps {
            if app.info.status != Some(AppStatus::AS_AVAILABLE) {
                continue;
            }
            seen.push(*id);
            let t = tables.entry(*id).or_insert_with(|| {
                let t = Arc::new(TableMetrics::default());
                crate::metrics::register(
                    "table",
                    &format!("table@{id}"),
                    &[("table_id", id.to_string())],
                    &t,
                );
                t
            });
            let mut c = [0i64; 5];
            for p in &app.partitions {
                let primary = p.primary.as_ref().is_some_and(|a| a.0 != 0);
                let replicas =
                    i32::from(primary) + p.secondaries.as_ref().map_or(0, |v| v.len() as i32);
                let max = p.max_replica_count.unwrap_or(3);
                let min = if min2pc > 0 {
                    min2pc
                } else {
                    (max / 2 + 1).max(1)
                };
                let i = if !primary {
                    usize::from(replicas > 0)
                } else if replicas < min {
                    2
                } else if replicas < max {
                    3
                } else {
                    4
                };
                c[i] += 1;
            }
            t.dead_partitions.set(c[0]);
            t.unreadable_partitions.set(c[1]);
            t.unwritable_partitions.set(c[2]);
            t.writable_ill_partitions.set(c[3]);
            t.healthy_partitions.set(c[4]);
        }
        tables.retain(|id, _| seen.contains(id));
    }
}
