//! One structured JSON log line per unit of work, with CloudWatch Embedded Metric Format counts.
//!
//! Lambda ships stdout to CloudWatch Logs; a line carrying an `_aws` block becomes metrics without
//! any API call. Callers pass only counts and object names, never credentials or access-key ids.
use serde_json::{json, Map, Value};

/// Build an EMF log line: `fields` are logged as-is; `metrics` (name → count) also become metrics in
/// `namespace`, dimensioned by `function`.
pub fn emf_line(
    namespace: &str,
    function: &str,
    fields: Map<String, Value>,
    metrics: &[(&str, u64)],
) -> String {
    let ts = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let mut root = fields;
    root.insert("function".into(), Value::String(function.to_owned()));
    for (name, v) in metrics {
        root.insert((*name).to_owned(), json!(v));
    }
    root.insert(
        "_aws".into(),
        json!({
            "Timestamp": ts,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [["function"]],
                "Metrics": metrics.iter().map(|(n, _)| json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>(),
            }]
        }),
    );
    Value::Object(root).to_string()
}

/// Print one EMF line to stdout (where Lambda ships it to CloudWatch) in ipsight's namespace:
/// every function's per-object and per-run record.
pub fn log(function: &str, fields: Map<String, Value>, metrics: &[(&str, u64)]) {
    println!("{}", emf_line("ipsight", function, fields, metrics));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape() {
        let mut f = Map::new();
        f.insert("key".into(), "a/b.json.gz".into());
        let line = emf_line(
            "ipsight",
            "prepare-cloudtrail",
            f,
            &[("records", 3), ("tuples", 2)],
        );
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["records"], 3);
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Metrics"][1]["Name"],
            "tuples"
        );
        assert_eq!(
            v["_aws"]["CloudWatchMetrics"][0]["Dimensions"][0][0],
            "function"
        );
        assert_eq!(v["function"], "prepare-cloudtrail");
    }
}
