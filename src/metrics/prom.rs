//! Prometheus (OpenMetrics) text of the metric entities, encoded by the `prometheus-client`
//! crate: each metric becomes the family `pegasus_<name>` with the labels `entity`, `id`,
//! the entity's attributes, `cluster` and `role`; a percentile becomes a gauge per quantile
//! (label `quantile`), since upstream keeps samples, not a histogram.

use std::collections::BTreeMap;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use super::{EntitySnap, Kind, Proto, Value, KTH};

type Labels = Vec<(String, String)>;

/// The samples of one family: its prototype and one value per label set.
#[derive(Debug)]
struct Family {
    proto: Proto,
    samples: Vec<(Labels, Value)>,
}

#[derive(Debug)]
struct Snap(BTreeMap<&'static str, Family>);

impl Collector for Snap {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        for (name, fam) in &self.0 {
            let name = format!("pegasus_{name}");
            let help = fam.proto.desc;
            // A percentile becomes one gauge sample per quantile.
            let points: Vec<(Labels, i64)> = match fam.proto.kind {
                Kind::Percentile => fam
                    .samples
                    .iter()
                    .filter_map(|(labels, v)| match v {
                        Value::Pcts(p) => Some((labels, *p)),
                        Value::Int(_) => None,
                    })
                    .flat_map(|(labels, p)| {
                        KTH.iter().zip(p).map(move |((_, q), pv)| {
                            let mut l = labels.clone();
                            l.push(("quantile".into(), q.to_string()));
                            (l, pv)
                        })
                    })
                    .collect(),
                _ => fam
                    .samples
                    .iter()
                    .map(|(labels, v)| (labels.clone(), v.scalar()))
                    .collect(),
            };
            let counter = fam.proto.kind == Kind::Counter;
            let ty = if counter {
                ConstCounter::new(0u64).metric_type()
            } else {
                ConstGauge::new(0i64).metric_type()
            };
            let mut me = encoder.encode_descriptor(&name, help, None, ty)?;
            for (labels, v) in &points {
                let m = me.encode_family(labels)?;
                if counter {
                    ConstCounter::new(v.max(&0).unsigned_abs()).encode(m)?;
                } else {
                    ConstGauge::new(*v).encode(m)?;
                }
            }
        }
        Ok(())
    }
}

/// Encodes `entities` as OpenMetrics text.
pub fn encode(entities: &[EntitySnap]) -> String {
    let id = super::identity();
    let mut fams: BTreeMap<&'static str, Family> = BTreeMap::new();
    for e in entities {
        let mut labels: Labels = vec![
            ("cluster".into(), id.cluster.clone()),
            ("role".into(), id.role.clone()),
            ("entity".into(), e.ty.to_string()),
            ("id".into(), e.id.clone()),
        ];
        labels.extend(e.attrs.iter().cloned());
        for m in &e.metrics {
            fams.entry(m.proto.name)
                .or_insert_with(|| Family {
                    proto: m.proto,
                    samples: Vec::new(),
                })
                .samples
                .push((labels.clone(), m.value));
        }
    }
    let mut reg = Registry::default();
    reg.register_collector(Box::new(Snap(fams)));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &reg).is_err() {
        out.clear();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::super::MetricSnap;
    use super::*;

    #[test]
    fn families_carry_entity_labels() {
        let e = EntitySnap {
            ty: "replica",
            id: "replica@1.2".into(),
            attrs: vec![("table_id".into(), "1".into())],
            metrics: vec![
                MetricSnap {
                    proto: Proto {
                        name: "get_requests",
                        kind: Kind::Counter,
                        unit: "Requests",
                        desc: "The number of GET requests",
                    },
                    value: Value::Int(9),
                },
                MetricSnap {
                    proto: Proto {
                        name: "get_latency_ns",
                        kind: Kind::Percentile,
                        unit: "NanoSeconds",
                        desc: "lat",
                    },
                    value: Value::Pcts([1, 2, 3, 4, 5]),
                },
            ],
        };
        let t = encode(&[e]);
        assert!(t.contains("# TYPE pegasus_get_requests counter"), "{t}");
        assert!(t.contains("pegasus_get_requests_total{"), "{t}");
        assert!(t.contains("id=\"replica@1.2\""), "{t}");
        assert!(t.contains("quantile=\"0.99\"} 4"), "{t}");
        assert!(t.trim_end().ends_with("# EOF"), "{t}");
    }
}
