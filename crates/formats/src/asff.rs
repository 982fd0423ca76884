//! GuardDuty findings as Security Hub delivers them: the AWS Security Finding Format (ASFF).
//!
//! Organisations that centralise GuardDuty in a Security Hub administrator account see its
//! findings as ASFF: `GetFindings` output (`{"Findings":[…]}`) and EventBridge "Security Hub
//! Findings - Imported" events (`detail.findings`). [`to_guardduty`] rebuilds the native GuardDuty
//! finding (camelCase JSON) from one, so that [`crate::guardduty`] gives it exactly the record it
//! gives the native finding:
//!
//! | GuardDuty finding                      | ASFF                                                      |
//! |----------------------------------------|-----------------------------------------------------------|
//! | `id`                                   | `Id` after `/finding/` (`arn:aws:guardduty:<region>:<account>:detector/<d>/finding/<id>`) |
//! | `accountId`, `region`                  | `AwsAccountId`, `Region` (else the `Id` ARN's)            |
//! | `type`                                 | `[FindingProviderFields.]Types[0]`'s last part, its first `-` after the `:` back to `/` (`TTPs/Discovery/Recon:IAMUser-MaliciousIPCaller`) |
//! | `severity`                             | `FindingProviderFields.Severity.Original`, `Severity.Original`, `Severity.Product`, `Severity.Normalized / 10` |
//! | `createdAt`, `updatedAt`, `title`      | `CreatedAt`, `UpdatedAt`, `Title`                         |
//! | `service.…`                            | `ProductFields` `aws/guardduty/service/…` (flattened; `name.0_` is element 0 of `name`), overlaid with `Action` and `Detection` |
//! | `service.eventFirstSeen`/`LastSeen`    | the `ProductFields` ones, else `FirstObservedAt`/`LastObservedAt` |
//! | `resource.accessKeyDetails`            | the `AwsIamAccessKey` resource: `PrincipalId`, `PrincipalType`, `PrincipalName` |
//! | `resource.instanceDetails.instanceId`  | the `AwsEc2Instance` resource's `Id` (`…:instance/i-…`)   |
//! | `resource.kubernetesDetails`, …        | `ProductFields` `aws/guardduty/resource/…`, where present |
//! | `service.additionalInfo.sample`        | `Sample`                                                  |
//!
//! Findings of other products (Security Hub controls, Inspector, Macie, …) are not GuardDuty's:
//! [`to_guardduty`] says so with their id, and the reader counts them.
use std::collections::BTreeMap;

use serde_json::{Map, Value};

use crate::guardduty::camel_case_keys;

/// True for an ASFF finding (any product).
pub fn is_asff(obj: &Map<String, Value>) -> bool {
    obj.contains_key("ProductArn")
        && (obj.contains_key("AwsAccountId") || obj.contains_key("SchemaVersion"))
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |cur, k| cur.get(k))?
        .as_str()
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn is_guardduty(f: &Value) -> bool {
    str_at(f, &["ProductArn"]).is_some_and(|a| a.ends_with("/aws/guardduty"))
        || str_at(f, &["ProductName"]) == Some("GuardDuty")
        || str_at(f, &["ProductFields", "aws/securityhub/ProductName"]) == Some("GuardDuty")
}

/// The native GuardDuty finding behind an ASFF finding, or, for another product's finding, `Err`
/// with its id.
pub fn to_guardduty(f: Value) -> Result<Value, Option<String>> {
    if !is_guardduty(&f) {
        return Err(str_at(&f, &["Id"]).map(str::to_owned));
    }
    let mut g = match f.get("ProductFields") {
        Some(Value::Object(pf)) => unflatten(pf, "aws/guardduty/"),
        _ => Map::new(),
    };
    let asff_id = str_at(&f, &["Id"]).unwrap_or_default();
    let id = asff_id
        .rsplit_once("/finding/")
        .map_or(asff_id, |(_, id)| id);
    // `arn:aws:guardduty:<region>:<account>:detector/…`
    let arn: Vec<&str> = asff_id.splitn(6, ':').collect();
    let from_arn = |i: usize| arn.get(i).filter(|s| !s.is_empty()).map(|s| s.to_string());
    let mut set = |k: &str, v: Option<Value>| {
        if let Some(v) = v {
            g.insert(k.to_owned(), v);
        }
    };
    let text = |path: &[&str]| str_at(&f, path).map(|s| Value::String(s.to_owned()));
    set("id", (!id.is_empty()).then(|| id.into()));
    set(
        "accountId",
        text(&["AwsAccountId"]).or_else(|| from_arn(4).map(Value::String)),
    );
    set(
        "region",
        text(&["Region"]).or_else(|| from_arn(3).map(Value::String)),
    );
    set("type", finding_type(&f).map(Value::String));
    set("severity", severity(&f).map(Value::from));
    set("createdAt", text(&["CreatedAt"]));
    set("updatedAt", text(&["UpdatedAt"]));
    set("title", text(&["Title"]));
    set("schemaVersion", Some("2.0".into()));

    let service = object_at(&mut g, "service");
    for (k, asff) in [
        ("eventFirstSeen", "FirstObservedAt"),
        ("eventLastSeen", "LastObservedAt"),
    ] {
        if !service.contains_key(k) {
            if let Some(t) = str_at(&f, &[asff]) {
                service.insert(k.to_owned(), t.into());
            }
        }
    }
    for (k, asff) in [("action", "Action"), ("detection", "Detection")] {
        if let Some(v) = f.get(asff).filter(|v| v.is_object()) {
            let mut v = v.clone();
            camel_case_keys(&mut v);
            merge(service.entry(k).or_insert(Value::Null), v);
        }
    }
    if f.get("Sample").and_then(Value::as_bool) == Some(true) {
        service.insert("additionalInfo".into(), serde_json::json!({"sample": true}));
    }

    let resource = object_at(&mut g, "resource");
    for r in f
        .get("Resources")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        match str_at(r, &["Type"]) {
            Some("AwsIamAccessKey") => {
                let d = |k| str_at(r, &["Details", "AwsIamAccessKey", k]);
                let mut akd = Map::new();
                for (k, v) in [
                    ("principalId", d("PrincipalId")),
                    ("userType", d("PrincipalType")),
                    ("userName", d("PrincipalName").or_else(|| d("UserName"))),
                ] {
                    if let Some(v) = v {
                        akd.insert(k.into(), v.into());
                    }
                }
                resource.insert("accessKeyDetails".into(), Value::Object(akd));
            }
            Some("AwsEc2Instance") => {
                if let Some(i) = str_at(r, &["Id"]).and_then(|id| id.rsplit_once("instance/")) {
                    resource.insert(
                        "instanceDetails".into(),
                        serde_json::json!({"instanceId": i.1}),
                    );
                }
            }
            _ => {}
        }
    }
    Ok(Value::Object(g))
}

/// `TTPs/Discovery/Recon:IAMUser-MaliciousIPCaller` → `Recon:IAMUser/MaliciousIPCaller`.
fn finding_type(f: &Value) -> Option<String> {
    let types = f
        .pointer("/FindingProviderFields/Types/0")
        .or_else(|| f.pointer("/Types/0"))?
        .as_str()?;
    let last = types.rsplit('/').next()?.trim();
    let (purpose, rest) = last.split_once(':')?;
    Some(match rest.split_once('-') {
        Some((resource, family)) => format!("{purpose}:{resource}/{family}"),
        None => last.to_owned(),
    })
}

fn severity(f: &Value) -> Option<f64> {
    let original = |v: Option<&Value>| match v? {
        Value::String(s) => s.trim().parse::<f64>().ok(),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    original(f.pointer("/FindingProviderFields/Severity/Original"))
        .or_else(|| original(f.pointer("/Severity/Original")))
        .or_else(|| f.pointer("/Severity/Product")?.as_f64())
        .or_else(|| Some(f.pointer("/Severity/Normalized")?.as_f64()? / 10.0))
        .filter(|s| s.is_finite())
}

/// The object under `k`, made one if it is absent or something else.
fn object_at<'a>(m: &'a mut Map<String, Value>, k: &str) -> &'a mut Map<String, Value> {
    let v = m
        .entry(k.to_owned())
        .or_insert_with(|| Value::Object(Map::new()));
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    v.as_object_mut().expect("just made an object")
}

/// Deep-merge `overlay` into `base`: objects key by key, anything else replaced.
fn merge(base: &mut Value, overlay: Value) {
    match (base, overlay) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o,
    }
}

/// `{"aws/guardduty/service/count": "2", "aws/guardduty/service/x/ips.0_": "…"}` →
/// `{"service": {"count": "2", "x": {"ips": ["…"]}}}` (keys under `prefix` only). Arrays keep their
/// elements in index order without padding gaps, so a hostile `x.999999999_` costs one element.
fn unflatten(fields: &Map<String, Value>, prefix: &str) -> Map<String, Value> {
    let mut root = Node::Obj(BTreeMap::new());
    for (k, v) in fields {
        // GuardDuty's paths are a dozen levels deep; a hostile key of a million `/` must not
        // recurse a million times.
        match k.strip_prefix(prefix) {
            Some(path) if path.split('/').count() <= MAX_FLAT_DEPTH => {
                root.insert(path.split('/'), v.clone())
            }
            _ => {}
        }
    }
    match root.into_value() {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

/// Deepest flattened `ProductFields` key read.
const MAX_FLAT_DEPTH: usize = 32;

/// A tree being rebuilt from flattened keys.
enum Node {
    Leaf(Value),
    Obj(BTreeMap<String, Node>),
    Arr(BTreeMap<usize, Node>),
}

impl Node {
    fn insert<'a>(&mut self, mut path: impl Iterator<Item = &'a str>, value: Value) {
        let Some(seg) = path.next() else {
            // A value and a deeper path for the same key (`additionalInfo` = "" beside
            // `additionalInfo/value`): the deeper, richer one wins.
            if matches!(self, Node::Leaf(_)) {
                *self = Node::Leaf(value);
            }
            return;
        };
        let (name, index) = match seg.strip_suffix('_').and_then(|s| s.rsplit_once('.')) {
            Some((name, i)) => match i.parse::<usize>() {
                Ok(i) => (name, Some(i)),
                Err(_) => (seg, None),
            },
            None => (seg, None),
        };
        if name.is_empty() {
            return;
        }
        if !matches!(self, Node::Obj(_)) {
            *self = Node::Obj(BTreeMap::new());
        }
        let Node::Obj(m) = self else {
            unreachable!("just made an object")
        };
        let child = m.entry(name.to_owned()).or_insert(Node::Leaf(Value::Null));
        let child = match index {
            None => child,
            Some(i) => {
                if !matches!(child, Node::Arr(_)) {
                    *child = Node::Arr(BTreeMap::new());
                }
                let Node::Arr(a) = child else {
                    unreachable!("just made an array")
                };
                a.entry(i).or_insert(Node::Leaf(Value::Null))
            }
        };
        child.insert(path, value);
    }

    fn into_value(self) -> Value {
        match self {
            Node::Leaf(v) => v,
            Node::Obj(m) => {
                Value::Object(m.into_iter().map(|(k, n)| (k, n.into_value())).collect())
            }
            Node::Arr(a) => Value::Array(a.into_values().map(Node::into_value).collect()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn flattened_product_fields() {
        let pf = json!({
            "aws/guardduty/service/count": "3",
            "aws/guardduty/service/additionalInfo": "",
            "aws/guardduty/service/additionalInfo/value": "{\"sample\":true}",
            "aws/guardduty/service/action/kubernetesApiCallAction/sourceIPs.1_": "198.51.100.2",
            "aws/guardduty/service/action/kubernetesApiCallAction/sourceIPs.0_": "198.51.100.1",
            "aws/guardduty/service/evidence/threatIntelligenceDetails.0_/threatListName": "L",
            "aws/guardduty/service/huge.99999999_": "one element",
            "aws/guardduty/service/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a/a": "too deep",
            "aws/securityhub/ProductName": "GuardDuty"
        });
        let m = unflatten(pf.as_object().unwrap(), "aws/guardduty/");
        assert_eq!(
            Value::Object(m),
            json!({"service": {
                "count": "3",
                "additionalInfo": {"value": "{\"sample\":true}"},
                "action": {"kubernetesApiCallAction": {"sourceIPs": ["198.51.100.1", "198.51.100.2"]}},
                "evidence": {"threatIntelligenceDetails": [{"threatListName": "L"}]},
                "huge": ["one element"]
            }})
        );
    }

    #[test]
    fn types_and_severities() {
        let t = |s: &str| finding_type(&json!({"Types": [s]}));
        assert_eq!(
            t("TTPs/Discovery/Recon:IAMUser-MaliciousIPCaller").as_deref(),
            Some("Recon:IAMUser/MaliciousIPCaller")
        );
        assert_eq!(
            t("TTPs/Command and Control/Backdoor:EC2-C&CActivity.B!DNS").as_deref(),
            Some("Backdoor:EC2/C&CActivity.B!DNS")
        );
        assert_eq!(t("Software and Configuration Checks"), None);
        let s = |v: Value| severity(&v);
        assert_eq!(
            s(json!({"FindingProviderFields": {"Severity": {"Original": "8"}}})),
            Some(8.0)
        );
        assert_eq!(s(json!({"Severity": {"Product": 5.0}})), Some(5.0));
        assert_eq!(s(json!({"Severity": {"Normalized": 20}})), Some(2.0));
        assert_eq!(s(json!({"Severity": {"Label": "HIGH"}})), None);
    }
}
