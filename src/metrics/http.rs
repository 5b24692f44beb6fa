//! The `/metrics` page: upstream's query arguments (`with_metric_fields`, `types`, `ids`,
//! `attributes`, `metrics`, `detail`), its JSON layout and its 400 error texts; plus
//! `format=prometheus` (or an OpenMetrics `Accept` header) for Prometheus text.

use super::{EntitySnap, Kind, Value, KTH};

/// What the page answers: status, content type, body.
pub struct Page {
    pub status: u16,
    pub content_type: &'static str,
    pub body: String,
}

fn bad(msg: &str) -> Page {
    Page {
        status: 400,
        content_type: "text/plain",
        body: serde_json::json!({ "error_message": msg }).to_string(),
    }
}

/// Splits a comma list, trimming blanks and dropping empty items (upstream's split_args).
fn list(v: &str) -> Vec<String> {
    v.split(',')
        .map(|s| s.trim_matches(|c| c == ' ' || c == '\t' || c == '\r' || c == '\n'))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

/// The parsed query.
#[derive(Debug, Default)]
struct Query {
    fields: Option<Vec<String>>,
    types: Vec<String>,
    ids: Vec<String>,
    attrs: Vec<(String, String)>,
    metrics: Vec<String>,
    detail: bool,
    prometheus: bool,
}

fn parse(args: &[(String, String)]) -> Result<Query, Page> {
    let mut q = Query::default();
    for (k, v) in args {
        match k.as_str() {
            "with_metric_fields" => q.fields = Some(list(v)),
            "types" => q.types = list(v),
            "ids" => q.ids = list(v),
            "attributes" => {
                let l = list(v);
                if !l.len().is_multiple_of(2) {
                    return Err(bad("the number of arguments for attributes should be even, since each attribute name always pairs with a value"));
                }
                q.attrs = l.chunks(2).map(|c| (c[0].clone(), c[1].clone())).collect();
            }
            "metrics" => q.metrics = list(v),
            "detail" => match v.to_ascii_lowercase().as_str() {
                "true" => q.detail = true,
                "false" => q.detail = false,
                _ => {
                    return Err(bad(
                        "the value of detail should be a boolean value, i.e. true or false",
                    ))
                }
            },
            // Ours: Prometheus text instead of JSON.
            "format" if v == "prometheus" || v == "openmetrics" => q.prometheus = true,
            _ => return Err(bad(&format!("unknown field {k}={v}"))),
        }
    }
    Ok(q)
}

fn selected(q: &Query, e: &EntitySnap) -> bool {
    (q.types.is_empty() || q.types.iter().any(|t| t == e.ty))
        && (q.ids.is_empty() || q.ids.contains(&e.id))
        && (q.attrs.is_empty()
            || q.attrs
                .iter()
                .any(|(k, v)| e.attrs.iter().any(|(ek, ev)| ek == k && ev == v)))
}

/// Answers `/metrics` for `method`, the decoded query arguments and the `Accept` header.
pub fn page(method: &str, args: &[(String, String)], accept: Option<&str>) -> Page {
    if method != "GET" {
        return bad("please use 'GET' method while querying for metrics");
    }
    let q = match parse(args) {
        Ok(q) => q,
        Err(p) => return p,
    };
    let mut entities = super::snapshot();
    entities.retain(|e| selected(&q, e));
    for e in &mut entities {
        if !q.metrics.is_empty() {
            e.metrics
                .retain(|m| q.metrics.iter().any(|n| n == m.proto.name));
        }
    }
    entities.retain(|e| !e.metrics.is_empty());
    let openmetrics = accept.is_some_and(|a| a.contains("application/openmetrics-text"));
    if q.prometheus || openmetrics {
        return Page {
            status: 200,
            content_type: "application/openmetrics-text; version=1.0.0; charset=utf-8",
            body: super::prom::encode(&entities),
        };
    }
    Page {
        status: 200,
        content_type: "text/plain",
        body: json(&q, &entities),
    }
}

fn json(q: &Query, entities: &[EntitySnap]) -> String {
    let brief = ["name", "value", "p50", "p90", "p95", "p99", "p999"];
    let allow = |f: &str| match &q.fields {
        Some(l) if !l.is_empty() => l.iter().any(|x| x == f),
        Some(_) => true,
        None => q.detail || brief.contains(&f),
    };
    let id = super::identity();
    let ents: Vec<serde_json::Value> = entities
        .iter()
        .map(|e| {
            let metrics: Vec<serde_json::Value> = e
                .metrics
                .iter()
                .map(|m| {
                    let mut o = serde_json::Map::new();
                    if allow("type") {
                        o.insert("type".into(), m.proto.kind.name().into());
                    }
                    if allow("name") {
                        o.insert("name".into(), m.proto.name.into());
                    }
                    if allow("unit") {
                        o.insert("unit".into(), m.proto.unit.into());
                    }
                    if allow("desc") {
                        o.insert("desc".into(), m.proto.desc.into());
                    }
                    match (m.proto.kind, m.value) {
                        (Kind::Percentile, Value::Pcts(p)) => {
                            for ((k, _), v) in KTH.iter().zip(p) {
                                if allow(k) {
                                    o.insert((*k).into(), v.into());
                                }
                            }
                        }
                        (_, v) => {
                            if allow("value") {
                                o.insert("value".into(), v.scalar().into());
                            }
                        }
                    }
                    serde_json::Value::Object(o)
                })
                .collect();
            let attrs: serde_json::Map<String, serde_json::Value> = e
                .attrs
                .iter()
                .map(|(k, v)| (k.clone(), v.clone().into()))
                .collect();
            serde_json::json!({
                "type": e.ty,
                "id": e.id,
                "attributes": attrs,
                "metrics": metrics,
            })
        })
        .collect();
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let or_unknown = |s: &str| {
        if s.is_empty() {
            "unknown".to_string()
        } else {
            s.to_string()
        }
    };
    let v = serde_json::json!({
        "cluster": or_unknown(&id.cluster),
        "role": or_unknown(&id.role),
        "host": or_unknown(&id.host),
        "port": id.port,
        "timestamp_ns": now_ns,
        "entities": ents,
    });
    serde_json::to_string_pretty(&v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[(&str, &str)]) -> Vec<(String, String)> {
        a.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn bad_arguments_get_upstreams_errors() {
        let p = page("GET", &args(&[("attributes", "table_id")]), None);
        assert_eq!(p.status, 400);
        assert!(p.body.contains("should be even"), "{}", p.body);
        let p = page("GET", &args(&[("detail", "yes")]), None);
        assert!(p.body.contains("true or false"));
        let p = page("GET", &args(&[("color", "red")]), None);
        assert!(p.body.contains("unknown field color=red"));
        let p = page("POST", &[], None);
        assert!(p.body.contains("'GET' method"));
    }

    #[test]
    fn filters_and_fields() {
        let s = std::sync::Arc::new(crate::replica::metrics::ReplicaMetrics::default());
        s.get_requests.add(42);
        s.get_latency_ns.record(1000);
        super::super::register(
            "replica",
            "replica@77.5",
            &[("table_id", "77".into()), ("partition_id", "5".into())],
            &s,
        );
        let p = page(
            "GET",
            &args(&[
                ("types", "replica"),
                ("attributes", "table_id,77"),
                ("metrics", "get_requests,get_latency_ns"),
            ]),
            None,
        );
        assert_eq!(p.status, 200);
        let v: serde_json::Value = serde_json::from_str(&p.body).expect("json");
        let e = &v["entities"][0];
        assert_eq!(e["id"], "replica@77.5");
        assert_eq!(e["attributes"]["partition_id"], "5");
        assert_eq!(e["metrics"][0]["name"], "get_requests");
        assert_eq!(e["metrics"][0]["value"], 42);
        assert!(e["metrics"][0].get("type").is_none());
        assert_eq!(e["metrics"][1]["p99"], 1000);
        let p = page(
            "GET",
            &args(&[
                ("ids", "replica@77.5"),
                ("detail", "true"),
                ("metrics", "get_requests"),
            ]),
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&p.body).expect("json");
        assert_eq!(v["entities"][0]["metrics"][0]["type"], "Counter");
        assert_eq!(v["entities"][0]["metrics"][0]["unit"], "Requests");
        let p = page(
            "GET",
            &args(&[("ids", "replica@77.5"), ("with_metric_fields", "name")]),
            None,
        );
        let v: serde_json::Value = serde_json::from_str(&p.body).expect("json");
        assert!(v["entities"][0]["metrics"][0].get("value").is_none());
        drop(s);
    }
}
