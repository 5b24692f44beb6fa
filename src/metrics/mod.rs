//! Server metrics as upstream models them: metric entities (`server`, `replica@<gpid>`,
//! `disk@<tag>`, `table@<id>`, `profiler`...) each holding counters, gauges and percentiles,
//! served as `/metrics` JSON (see `http`), as Prometheus/OpenMetrics text (`prom`, encoded by
//! the `prometheus-client` crate) and through the legacy perf-counter remote commands
//! (`perf_counters`). The entity registry itself is ours because upstream's entity model
//! (typed entities with attributes, percentiles over a sample ring) is what its tools read
//! and no metrics crate offers it. Recording is a relaxed atomic add (a percentile: two
//! atomics), so the hot path pays nothing else; all work happens when someone reads.

pub mod http;
pub mod perf_counters;
pub mod prom;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// The kind of a metric (upstream's type names).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gauge,
    Counter,
    Percentile,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Gauge => "Gauge",
            Kind::Counter => "Counter",
            Kind::Percentile => "Percentile",
        }
    }
}

/// The prototype of a metric: name, kind, unit (upstream's unit names) and description.
#[derive(Debug, Clone, Copy)]
pub struct Proto {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: &'static str,
    pub desc: &'static str,
}

/// The percentiles every percentile metric reports, as upstream: p50, p90, p95, p99, p999.
pub const KTH: [(&str, f64); 5] = [
    ("p50", 0.50),
    ("p90", 0.90),
    ("p95", 0.95),
    ("p99", 0.99),
    ("p999", 0.999),
];

/// A metric's value at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(i64),
    Pcts([i64; 5]),
}

impl Value {
    /// The single value (a percentile's p99).
    pub fn scalar(&self) -> i64 {
        match self {
            Value::Int(v) => *v,
            Value::Pcts(p) => p[3],
        }
    }
}

/// A monotonic count since creation.
#[derive(Debug, Default)]
pub struct Counter(AtomicI64);

impl Counter {
    pub const KIND: Kind = Kind::Counter;
    pub fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn value(&self) -> Value {
        Value::Int(self.get())
    }
}

/// A current amount, up or down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub const KIND: Kind = Kind::Gauge;
    pub fn set(&self, v: i64) {
        self.0.store(v, Ordering::Relaxed);
    }
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
    pub fn value(&self) -> Value {
        Value::Int(self.get())
    }
}

/// Samples kept per percentile metric (upstream's default sample size).
pub const SAMPLES: usize = 4096;

/// Percentiles over the last `SAMPLES` samples (a ring, as upstream).
#[derive(Debug)]
pub struct Percentile {
    ring: Box<[AtomicI64]>,
    next: AtomicUsize,
}

impl Default for Percentile {
    fn default() -> Self {
        Percentile::with_capacity(SAMPLES)
    }
}

impl Percentile {
    pub const KIND: Kind = Kind::Percentile;

    /// A ring of `n` samples.
    pub fn with_capacity(n: usize) -> Percentile {
        Percentile {
            ring: (0..n.max(1)).map(|_| AtomicI64::new(0)).collect(),
            next: AtomicUsize::new(0),
        }
    }

    pub fn record(&self, v: i64) {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        self.ring[i % self.ring.len()].store(v, Ordering::Relaxed);
    }

    /// Records the time since `start` in ns.
    pub fn since(&self, start: std::time::Instant) {
        self.record(start.elapsed().as_nanos().min(i64::MAX as u128) as i64);
    }

    /// The samples held.
    fn samples(&self) -> Vec<i64> {
        let n = self.next.load(Ordering::Relaxed).min(self.ring.len());
        self.ring[..n]
            .iter()
            .map(|a| a.load(Ordering::Relaxed))
            .collect()
    }

    /// The p50..p999 of the samples held (all 0 before the first sample).
    pub fn pcts(&self) -> [i64; 5] {
        pcts_of(&mut self.samples())
    }

    pub fn value(&self) -> Value {
        Value::Pcts(self.pcts())
    }
}

/// Stripes of the process-wide metrics many threads update at once (network bytes, the
/// profilers): each thread adds to its own cache line, readers sum them.
const STRIPES: usize = 8;

#[repr(align(64))]
#[derive(Debug)]
struct Stripe(AtomicI64);

fn stripe() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static MINE: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    MINE.with(|m| *m)
}

/// A monotonic count updated from many threads.
#[derive(Debug)]
pub struct StripedCounter([Stripe; STRIPES]);

impl Default for StripedCounter {
    fn default() -> Self {
        StripedCounter::new()
    }
}

impl StripedCounter {
    pub const KIND: Kind = Kind::Counter;
    pub const fn new() -> StripedCounter {
        StripedCounter([const { Stripe(AtomicI64::new(0)) }; STRIPES])
    }
    pub fn add(&self, n: i64) {
        self.0[stripe()].0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> i64 {
        self.0.iter().map(|s| s.0.load(Ordering::Relaxed)).sum()
    }
    pub fn value(&self) -> Value {
        Value::Int(self.get())
    }
}

/// Percentiles recorded from many threads: one ring per stripe (`SAMPLES` in all), merged
/// when read. Its count of samples is `recorded()`.
#[derive(Debug)]
pub struct StripedPercentile {
    rings: Vec<Percentile>,
}

impl Default for StripedPercentile {
    fn default() -> Self {
        StripedPercentile {
            rings: (0..STRIPES)
                .map(|_| Percentile::with_capacity(SAMPLES / STRIPES))
                .collect(),
        }
    }
}

impl StripedPercentile {
    pub const KIND: Kind = Kind::Percentile;
    pub fn record(&self, v: i64) {
        self.rings[stripe()].record(v);
    }
    pub fn since(&self, start: std::time::Instant) {
        self.rings[stripe()].since(start);
    }
    /// How many samples were ever recorded.
    pub fn recorded(&self) -> i64 {
        self.rings
            .iter()
            .map(|r| r.next.load(Ordering::Relaxed) as i64)
            .sum()
    }
    pub fn pcts(&self) -> [i64; 5] {
        let mut v: Vec<i64> = self.rings.iter().flat_map(|r| r.samples()).collect();
        pcts_of(&mut v)
    }
    pub fn value(&self) -> Value {
        Value::Pcts(self.pcts())
    }
}

/// p50..p999 of `v` (sorted here; all 0 when empty), as upstream picks the kth samples.
fn pcts_of(v: &mut [i64]) -> [i64; 5] {
    let n = v.len();
    if n == 0 {
        return [0; 5];
    }
    v.sort_unstable();
    let mut out = [0; 5];
    for (o, (_, k)) in out.iter_mut().zip(KTH) {
        *o = v[((n as f64 * k) as usize).min(n - 1)];
    }
    out
}

/// A set of metrics that belongs to one entity.
pub trait MetricSet: Send + Sync {
    /// Calls `f` with each metric's prototype and current value.
    fn visit(&self, f: &mut dyn FnMut(&Proto, Value));
}

/// Declares a struct of metrics with their prototypes:
/// `metric_set! { pub struct S { get_requests: Counter = ("Requests", "The number of GET requests"), } }`.
#[macro_export]
macro_rules! metric_set {
    ($(#[$m:meta])* pub struct $name:ident {
        $($(#[$fm:meta])* $field:ident : $ty:ident = ($unit:literal, $desc:literal)),* $(,)?
    }) => {
        $(#[$m])*
        #[derive(Debug, Default)]
        pub struct $name {
            $($(#[$fm])* pub $field: $crate::metrics::$ty,)*
        }
        impl $crate::metrics::MetricSet for $name {
            fn visit(&self, f: &mut dyn FnMut(&$crate::metrics::Proto, $crate::metrics::Value)) {
                $(f(
                    &$crate::metrics::Proto {
                        name: stringify!($field),
                        kind: $crate::metrics::$ty::KIND,
                        unit: $unit,
                        desc: $desc,
                    },
                    self.$field.value(),
                );)*
            }
        }
    };
}

/// What a computed set does when read: calls its argument with each metric and value.
pub type ComputeFn = Box<dyn Fn(&mut dyn FnMut(&Proto, Value)) + Send + Sync>;

/// Metrics computed when read (from state someone else owns).
pub struct Computed(pub ComputeFn);

impl MetricSet for Computed {
    fn visit(&self, f: &mut dyn FnMut(&Proto, Value)) {
        (self.0)(f)
    }
}

/// One registered entity: its type, id and attributes, and the sets of metrics it holds
/// (weakly: an entity whose owners are all gone disappears).
struct Entry {
    ty: &'static str,
    attrs: Vec<(String, String)>,
    sets: Vec<Weak<dyn MetricSet>>,
}

/// A metric as read.
#[derive(Debug, Clone)]
pub struct MetricSnap {
    pub proto: Proto,
    pub value: Value,
}

/// An entity as read.
#[derive(Debug, Clone)]
pub struct EntitySnap {
    pub ty: &'static str,
    pub id: String,
    pub attrs: Vec<(String, String)>,
    pub metrics: Vec<MetricSnap>,
}

/// Who this process is, for the `/metrics` header and the perf-counter names.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    pub cluster: String,
    pub role: String,
    pub host: String,
    pub port: u16,
}

#[derive(Default)]
struct Registry {
    entities: BTreeMap<String, Entry>,
    identity: Identity,
}

fn registry() -> &'static Mutex<Registry> {
    static R: OnceLock<Mutex<Registry>> = OnceLock::new();
    R.get_or_init(|| Mutex::new(Registry::default()))
}

/// Sets who this process is (called once at start by each role).
pub fn set_identity(id: Identity) {
    if let Ok(mut r) = registry().lock() {
        r.identity = id;
    }
}

pub fn identity() -> Identity {
    registry()
        .lock()
        .map(|r| r.identity.clone())
        .unwrap_or_default()
}

/// Adds `set` to the entity `id` (created with `ty` and `attrs` if new). The set counts
/// for as long as its `Arc` lives.
pub fn register<S: MetricSet + 'static>(
    ty: &'static str,
    id: &str,
    attrs: &[(&str, String)],
    set: &Arc<S>,
) {
    let weak: Weak<dyn MetricSet> = Arc::downgrade(&(set.clone() as Arc<dyn MetricSet>));
    let Ok(mut r) = registry().lock() else {
        return;
    };
    r.entities
        .retain(|_, e| e.sets.iter().any(|s| s.strong_count() > 0));
    let e = r.entities.entry(id.to_string()).or_insert_with(|| Entry {
        ty,
        attrs: attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        sets: Vec::new(),
    });
    e.sets.retain(|s| s.strong_count() > 0);
    e.sets.push(weak);
}

/// An entity taken out of the registry to be read: type, id, attributes, sets.
type LiveEntity = (
    &'static str,
    String,
    Vec<(String, String)>,
    Vec<Arc<dyn MetricSet>>,
);

/// Reads every live entity (sorted by id).
pub fn snapshot() -> Vec<EntitySnap> {
    let live: Vec<LiveEntity> = {
        let Ok(mut r) = registry().lock() else {
            return Vec::new();
        };
        r.entities
            .retain(|_, e| e.sets.iter().any(|s| s.strong_count() > 0));
        r.entities
            .iter()
            .map(|(id, e)| {
                (
                    e.ty,
                    id.clone(),
                    e.attrs.clone(),
                    e.sets.iter().filter_map(Weak::upgrade).collect(),
                )
            })
            .collect()
    };
    // Values are read outside the registry lock: computed sets may take other locks.
    live.into_iter()
        .map(|(ty, id, attrs, sets)| {
            let mut metrics = Vec::new();
            for s in sets {
                s.visit(&mut |p, v| {
                    metrics.push(MetricSnap {
                        proto: *p,
                        value: v,
                    })
                });
            }
            EntitySnap {
                ty,
                id,
                attrs,
                metrics,
            }
        })
        .collect()
}

/// The bytes of the files under `dir` (recursively).
pub fn tree_bytes(dir: &std::path::Path) -> i64 {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_bytes(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len() as i64),
            _ => 0,
        })
        .sum()
}

/// Bytes the RPC server read from and wrote to its connections (all protocols).
pub static NETWORK_RECEIVED_BYTES: StripedCounter = StripedCounter::new();
pub static NETWORK_SENT_BYTES: StripedCounter = StripedCounter::new();

/// The process's resident and virtual memory in MB (from /proc/self/statm).
pub fn process_mem_mb() -> (i64, i64) {
    let page = 4096i64;
    let text = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let mut it = text
        .split_whitespace()
        .map(|s| s.parse::<i64>().unwrap_or(0));
    let virt = (it.next().unwrap_or(0) * page) >> 20;
    let res = (it.next().unwrap_or(0) * page) >> 20;
    (res, virt)
}

/// Registers the `server` entity's memory gauges of this process (every role has them).
pub fn register_process() -> Arc<Computed> {
    let set = Arc::new(Computed(Box::new(|f| {
        let (res, virt) = process_mem_mb();
        f(
            &Proto {
                name: "virtual_mem_usage_mb",
                kind: Kind::Gauge,
                unit: "MegaBytes",
                desc: "The total amount of virtual memory usage in MB",
            },
            Value::Int(virt),
        );
        f(
            &Proto {
                name: "resident_mem_usage_mb",
                kind: Kind::Gauge,
                unit: "MegaBytes",
                desc: "The total amount of physical memory usage in MB",
            },
            Value::Int(res),
        );
        f(
            &Proto {
                name: "network_received_bytes",
                kind: Kind::Counter,
                unit: "Bytes",
                desc: "The bytes received from the connections of the RPC port",
            },
            Value::Int(NETWORK_RECEIVED_BYTES.get()),
        );
        f(
            &Proto {
                name: "network_sent_bytes",
                kind: Kind::Counter,
                unit: "Bytes",
                desc: "The bytes sent on the connections of the RPC port",
            },
            Value::Int(NETWORK_SENT_BYTES.get()),
        );
    })));
    register("server", "server", &[], &set);
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    metric_set! {
        /// A set for the tests.
        pub struct TestSet {
            test_requests: Counter = ("Requests", "requests"),
            test_level: Gauge = ("Bytes", "level"),
            test_latency_ns: Percentile = ("NanoSeconds", "latency"),
        }
    }

    #[test]
    fn percentiles_pick_the_kth_sample() {
        let p = Percentile::default();
        assert_eq!(p.pcts(), [0; 5]);
        for v in 1..=1000 {
            p.record(v);
        }
        assert_eq!(p.pcts(), [501, 901, 951, 991, 1000]);
        // The ring keeps only the last SAMPLES values.
        for _ in 0..SAMPLES {
            p.record(7);
        }
        assert_eq!(p.pcts(), [7; 5]);
    }

    #[test]
    fn striped_metrics_sum_their_stripes() {
        let c = std::sync::Arc::new(StripedCounter::new());
        let p = std::sync::Arc::new(StripedPercentile::default());
        let hs: Vec<_> = (0..4)
            .map(|_| {
                let (c, p) = (c.clone(), p.clone());
                std::thread::spawn(move || {
                    for v in 1..=100 {
                        c.inc();
                        p.record(v);
                    }
                })
            })
            .collect();
        for h in hs {
            h.join().unwrap();
        }
        assert_eq!(c.get(), 400);
        assert_eq!(p.recorded(), 400);
        assert_eq!(p.pcts()[0], 51);
    }

    #[test]
    fn entities_live_as_long_as_their_sets() {
        let s = Arc::new(TestSet::default());
        s.test_requests.add(3);
        s.test_level.set(-2);
        register(
            "replica",
            "replica@99.1",
            &[("table_id", "99".into()), ("partition_id", "1".into())],
            &s,
        );
        let snap = snapshot();
        let e = snap
            .iter()
            .find(|e| e.id == "replica@99.1")
            .expect("entity");
        assert_eq!(e.ty, "replica");
        assert_eq!(e.metrics.len(), 3);
        assert_eq!(e.metrics[0].proto.name, "test_requests");
        assert_eq!(e.metrics[0].value, Value::Int(3));
        assert_eq!(e.metrics[1].value, Value::Int(-2));
        assert_eq!(e.metrics[2].proto.kind, Kind::Percentile);
        drop(s);
        assert!(!snapshot().iter().any(|e| e.id == "replica@99.1"));
    }
}
