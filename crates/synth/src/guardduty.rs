//! GuardDuty findings on the world's principals, with ground truth, and the three ways they arrive:
//! EventBridge events, the S3 export (`*.jsonl.gz`) and plain JSON arrays.
//!
//! * **Attack** findings (`attack = true`) pair a known principal with an address it never uses
//!   (a hosting provider or a random public IPv4, never in its /24s): credential exfiltration for
//!   instance roles, malicious-IP callers, anomalous behaviour, console logins.
//! * **Benign** findings (`attack = false`) are low-severity findings on a real call of the world
//!   (so the `<entity, ip>` pair is one [`World::normal_pairs`] yields): GuardDuty's
//!   `Discovery:IAMUser/AnomalousBehavior` noise and root-credential-usage findings.
//! * **Port probes** (`Recon:EC2/PortProbeUnprotectedPort`) concern an instance, not an access key:
//!   they yield no pair (`entity = None`) and are labelled benign.
//!
//! Shapes follow real findings (GuardDuty's published samples; `ipsight_testkit::guardduty_shapes`
//! holds ours in their shapes): `accessKeyDetails.principalId` keeps the `:session` suffix for
//! roles exactly as GuardDuty sends it; `organization.asn` is a string as in current findings. Updated findings repeat the same `id` with a higher `count` and
//! later `updatedAt`, as GuardDuty updates findings in place.
use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::path::Path;

use serde_json::{json, Value};

use crate::cloudtrail::GzFile;
use crate::geo::{self, HOSTING};
use crate::rng::{mix, Prng};
use crate::time::{rfc3339, rfc3339_millis};
use crate::world::{ActorKind, IdentityKind, SessionStyle, Source, Who, World};
use crate::{Error, Result};

const TAG_FINDINGS: u64 = 201;

/// A finding and its ground truth.
#[derive(Debug, Clone, PartialEq)]
pub struct LabeledFinding {
    /// The finding JSON (the EventBridge `detail`).
    pub finding: Value,
    /// An attacker used the principal from this address.
    pub attack: bool,
    /// The normalised entity the finding is about (`None` for findings without an access key).
    pub entity: Option<String>,
    /// The IPv4 address of the call (`None` when the finding has none).
    pub ip: Option<Ipv4Addr>,
}

/// How many findings of each kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FindingsOptions {
    /// Selects the sample (independent of the world seed's other streams).
    pub seed: u64,
    /// Findings on attack pairs.
    pub attacks: usize,
    /// Low-severity findings on normal pairs.
    pub benign: usize,
    /// Port-probe findings (no pair).
    pub port_probes: usize,
    /// How many of the findings also appear again, updated (same id, higher count).
    pub updates: usize,
}

impl Default for FindingsOptions {
    fn default() -> Self {
        FindingsOptions {
            seed: 1,
            attacks: 20,
            benign: 40,
            port_probes: 5,
            updates: 5,
        }
    }
}

struct Caller {
    account: usize,
    region: usize,
    principal_id: String,
    user_name: String,
    user_type: &'static str,
    access_key_id: String,
    entity: String,
    instance_session: bool,
}

fn caller(
    world: &World,
    r: &mut Prng,
    identity: usize,
    session: Option<String>,
    day: i64,
) -> Caller {
    let id = &world.identities[identity];
    let principal_id = match (&session, id.kind) {
        (Some(s), IdentityKind::AssumedRole) => format!("{}:{s}", id.principal_id),
        _ => id.principal_id.clone(),
    };
    let access_key_id = match id.kind {
        IdentityKind::IamUser if r.chance(0.8) => id.access_key_id.clone(),
        _ => world.session_key(identity, session.as_deref(), day),
    };
    Caller {
        account: id.account,
        region: 0,
        principal_id,
        user_name: if id.kind == IdentityKind::Root {
            "Root".into()
        } else {
            id.name.clone()
        },
        user_type: id.kind.as_str(),
        access_key_id,
        entity: id.principal_id.clone(),
        instance_session: session.as_deref().is_some_and(|s| s.starts_with("i-")),
    }
}

fn remote_ip_details(ip: Ipv4Addr) -> Value {
    let (country, city, isp) = geo::whois(ip).unwrap_or((
        "Unknown",
        "Unknown",
        geo::Isp {
            name: "Unknown",
            asn: 0,
            net16: [0, 0],
        },
    ));
    json!({
        "ipAddressV4": ip.to_string(),
        "organization": {"asn": isp.asn.to_string(), "asnOrg": isp.name.to_uppercase(), "isp": isp.name, "org": isp.name},
        "country": {"countryName": country},
        "city": {"cityName": city},
        "geoLocation": {"lat": 0.0, "lon": 0.0}
    })
}

#[allow(clippy::too_many_arguments)]
fn api_finding(
    world: &World,
    r: &mut Prng,
    c: &Caller,
    ftype: &str,
    severity: f64,
    time: i64,
    ip: Ipv4Addr,
    api: &str,
    service: &str,
    additional: Value,
) -> Value {
    let acct = &world.accounts[c.account].id;
    let region = world.region_name(c.region);
    let id = r.hex(32);
    let detector = detector_id(world, c.account);
    let title = match ftype {
        t if t.contains("InstanceCredentialExfiltration") => format!(
            "Credentials for instance role {} used from external IP address.",
            c.user_name
        ),
        t if t.contains("MaliciousIPCaller") => {
            format!("API {api} was invoked from a known malicious IP address.")
        }
        t if t.contains("RootCredentialUsage") => {
            format!("API {api} was invoked using root credentials.")
        }
        t if t.contains("ConsoleLoginSuccess") => {
            "Unexpected console login by an IAM principal.".into()
        }
        _ => format!(
            "The API {api} was invoked by {} {} under unusual circumstances.",
            c.user_type, c.user_name
        ),
    };
    let created = time + 300 + r.below(600) as i64;
    json!({
        "schemaVersion": "2.0",
        "accountId": acct,
        "region": region,
        "partition": "aws",
        "id": id,
        "arn": format!("arn:aws:guardduty:{region}:{acct}:detector/{detector}/finding/{id}"),
        "type": ftype,
        "resource": {
            "resourceType": "AccessKey",
            "accessKeyDetails": {
                "accessKeyId": c.access_key_id,
                "principalId": c.principal_id,
                "userName": c.user_name,
                "userType": c.user_type
            }
        },
        "service": {
            "serviceName": "guardduty",
            "detectorId": detector,
            "action": {
                "actionType": "AWS_API_CALL",
                "awsApiCallAction": {
                    "api": api,
                    "serviceName": service,
                    "callerType": "Remote IP",
                    "remoteIpDetails": remote_ip_details(ip),
                    "affectedResources": {}
                }
            },
            "resourceRole": "TARGET",
            "additionalInfo": additional,
            "eventFirstSeen": rfc3339(time),
            "eventLastSeen": rfc3339(time),
            "archived": false,
            "count": 1
        },
        "severity": severity,
        "createdAt": rfc3339_millis(created, r.below(1000) as u32),
        "updatedAt": rfc3339_millis(created, r.below(1000) as u32),
        "title": title,
        "description": format!("{title} This finding was generated by ipsight-synth.")
    })
}

fn detector_id(world: &World, account: usize) -> String {
    Prng::derive(world.config.seed, TAG_FINDINGS, u64::MAX, account as u64).hex(32)
}

/// A random public address an entity never uses: 70% from a hosting provider, 30% anywhere.
fn attacker_ip(world: &World, r: &mut Prng, entity: &str) -> Ipv4Addr {
    loop {
        let ip = if r.chance(0.7) {
            let h = r.pick(HOSTING);
            Ipv4Addr::new(
                h.net16[0],
                h.net16[1],
                r.below(256) as u8,
                r.range(1, 254) as u8,
            )
        } else {
            Ipv4Addr::from(r.next_u64() as u32)
        };
        if geo::is_public_v4(ip) && !world.is_usual(entity, ip) {
            return ip;
        }
    }
}

/// Generate labelled findings on the world (attack, benign and port-probe findings, then the
/// updated copies), deterministic in `(world seed, opts)`.
pub fn generate_findings(world: &World, opts: &FindingsOptions) -> Vec<LabeledFinding> {
    let mut r = Prng::derive(world.config.seed, TAG_FINDINGS, opts.seed, 0);
    let days = world.config.days.max(1) as u64;
    let mut out = Vec::new();
    if world.actors.is_empty() {
        return out;
    }

    for _ in 0..opts.attacks {
        let a = r.below(world.actors.len() as u64) as usize;
        let actor = &world.actors[a];
        let day = r.below(days) as u32;
        let time = world.day_start(day) + r.below(86_400) as i64;
        let (identity, session) = match actor.root {
            Some(root) if r.chance(0.1) => (root, None),
            _ => {
                let u = r.pick(&actor.uses);
                let s = match &u.session {
                    SessionStyle::None => None,
                    SessionStyle::Fixed(s) => Some(s.clone()),
                    SessionStyle::Instances(ids) => Some(r.pick(ids).clone()),
                    SessionStyle::Botocore => Some(format!("botocore-session-{time}")),
                };
                (u.identity, s)
            }
        };
        let mut c = caller(world, &mut r, identity, session, time.div_euclid(86_400));
        c.region = actor.region;
        let ip = attacker_ip(world, &mut r, &c.entity);
        let (ftype, severity, api, service) =
            if c.instance_session && actor.kind == ActorKind::Automation {
                (
                    "UnauthorizedAccess:IAMUser/InstanceCredentialExfiltration.OutsideAWS",
                    8.0,
                    "DescribeInstances",
                    "ec2.amazonaws.com",
                )
            } else {
                *r.pick(&[
                    (
                        "Recon:IAMUser/MaliciousIPCaller",
                        5.0,
                        "ListBuckets",
                        "s3.amazonaws.com",
                    ),
                    (
                        "Discovery:IAMUser/AnomalousBehavior",
                        5.0,
                        "ListUsers",
                        "iam.amazonaws.com",
                    ),
                    (
                        "Persistence:IAMUser/AnomalousBehavior",
                        5.0,
                        "CreateAccessKey",
                        "iam.amazonaws.com",
                    ),
                    (
                        "CredentialAccess:IAMUser/AnomalousBehavior",
                        8.0,
                        "GetSecretValue",
                        "secretsmanager.amazonaws.com",
                    ),
                    (
                        "UnauthorizedAccess:IAMUser/ConsoleLoginSuccess.B",
                        5.0,
                        "ConsoleLogin",
                        "signin.amazonaws.com",
                    ),
                ])
            };
        let additional = if ftype.contains("MaliciousIPCaller") {
            json!({"threatListName": "ProofPoint", "threatName": "Known Attacker"})
        } else {
            json!({"value": "{\"unusual\":{\"isps\":[\"hosting\"],\"asns\":[\"new\"]}}", "type": "default"})
        };
        let finding = api_finding(
            world, &mut r, &c, ftype, severity, time, ip, api, service, additional,
        );
        out.push(LabeledFinding {
            finding,
            attack: true,
            entity: Some(c.entity),
            ip: Some(ip),
        });
    }

    let mut benign = 0;
    let mut tries = 0;
    while benign < opts.benign && tries < opts.benign * 50 + 100 {
        tries += 1;
        let a = r.below(world.actors.len() as u64) as usize;
        let day = r.below(days) as u32;
        let mut evs = Vec::new();
        world.actor_day_events(a, day, &mut evs);
        let usable: Vec<_> = evs
            .into_iter()
            .filter(|e| matches!(e.source, Source::V4(_)) && matches!(e.who, Who::Principal { .. }))
            .collect();
        if usable.is_empty() {
            continue;
        }
        let e = &usable[r.below(usable.len() as u64) as usize];
        let (Who::Principal { identity, session }, Source::V4(ip)) = (&e.who, e.source) else {
            continue;
        };
        let mut c = caller(
            world,
            &mut r,
            *identity,
            session.clone(),
            e.time.div_euclid(86_400),
        );
        c.region = e.region;
        let root = world.identities[*identity].kind == IdentityKind::Root;
        let ftype = if root {
            "Policy:IAMUser/RootCredentialUsage"
        } else {
            "Discovery:IAMUser/AnomalousBehavior"
        };
        let additional = json!({"value": "{\"unusual\":{\"hoursOfDay\":[1]}}", "type": "default"});
        let finding = api_finding(
            world,
            &mut r,
            &c,
            ftype,
            2.0,
            e.time,
            ip,
            e.api.name,
            e.api.source,
            additional,
        );
        out.push(LabeledFinding {
            finding,
            attack: false,
            entity: Some(c.entity),
            ip: Some(ip),
        });
        benign += 1;
    }

    for _ in 0..opts.port_probes {
        let acct = r.below(world.accounts.len() as u64) as usize;
        let region = r.below(world.config.regions.len() as u64) as usize;
        let time = world.day_start(r.below(days) as u32) + r.below(86_400) as i64;
        let ip = attacker_ip(world, &mut r, "");
        let acct_id = &world.accounts[acct].id;
        let region_name = world.region_name(region);
        let id = r.hex(32);
        let detector = detector_id(world, acct);
        let instance = format!("i-0{}", r.hex(16));
        let (port, port_name) = *r.pick(&[
            (22u16, "SSH"),
            (3389, "RDP"),
            (5432, "PostgreSQL"),
            (6379, "Redis"),
        ]);
        let created = time + 600;
        let finding = json!({
            "schemaVersion": "2.0",
            "accountId": acct_id,
            "region": region_name,
            "partition": "aws",
            "id": id,
            "arn": format!("arn:aws:guardduty:{region_name}:{acct_id}:detector/{detector}/finding/{id}"),
            "type": "Recon:EC2/PortProbeUnprotectedPort",
            "resource": {
                "resourceType": "Instance",
                "instanceDetails": {"instanceId": instance, "instanceType": "t3.medium", "instanceState": "running", "availabilityZone": format!("{region_name}a")}
            },
            "service": {
                "serviceName": "guardduty",
                "detectorId": detector,
                "action": {
                    "actionType": "PORT_PROBE",
                    "portProbeAction": {
                        "blocked": false,
                        "portProbeDetails": [{
                            "localPortDetails": {"port": port, "portName": port_name},
                            "remoteIpDetails": remote_ip_details(ip)
                        }]
                    }
                },
                "resourceRole": "TARGET",
                "additionalInfo": {"threatListName": "ProofPoint"},
                "eventFirstSeen": rfc3339(time),
                "eventLastSeen": rfc3339(time),
                "archived": false,
                "count": 1
            },
            "severity": 2.0,
            "createdAt": rfc3339_millis(created, 0),
            "updatedAt": rfc3339_millis(created, 0),
            "title": format!("Unprotected port on EC2 instance {instance} is being probed."),
            "description": format!("EC2 instance has an unprotected port {port} which is being probed by a known malicious host.")
        });
        out.push(LabeledFinding {
            finding,
            attack: false,
            entity: None,
            ip: None,
        });
    }

    let originals = out.len();
    for k in 0..opts.updates.min(originals) {
        let mut f = out[(k * 7919) % originals].clone();
        let extra = 1 + r.below(20) as i64;
        let svc = &mut f.finding["service"];
        let last = svc["eventLastSeen"]
            .as_str()
            .map(parse_rfc3339)
            .unwrap_or(0)
            + 3600 * extra;
        svc["count"] = json!(1 + extra);
        svc["eventLastSeen"] = json!(rfc3339(last));
        f.finding["updatedAt"] = json!(rfc3339_millis(last + 300, 0));
        out.push(f);
    }
    out
}

/// Epoch seconds of `YYYY-MM-DDTHH:MM:SS…` (what this module writes).
fn parse_rfc3339(s: &str) -> i64 {
    let n = |a: usize, b: usize| s.get(a..b).and_then(|x| x.parse::<i64>().ok()).unwrap_or(0);
    crate::time::days_from_civil(n(0, 4), n(5, 7) as u32, n(8, 10) as u32) * 86_400
        + n(11, 13) * 3600
        + n(14, 16) * 60
        + n(17, 19)
}

/// The EventBridge event GuardDuty emits for a finding (what `extract-guardduty` receives).
pub fn eventbridge_event(finding: &Value) -> Value {
    let id = finding["id"].as_str().unwrap_or_default();
    let updated = finding["updatedAt"].as_str().unwrap_or_default();
    let mut r = Prng::derive(0, TAG_FINDINGS, mix(id.len() as u64, fnv(id)), fnv(updated));
    json!({
        "version": "0",
        "id": r.uuid(),
        "detail-type": "GuardDuty Finding",
        "source": "aws.guardduty",
        "account": finding["accountId"],
        "time": updated.get(..19).map(|t| format!("{t}Z")).unwrap_or_default(),
        "region": finding["region"],
        "resources": [],
        "detail": finding
    })
}

fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

/// Write the findings as GuardDuty's S3 export does: per account, region and day of `updatedAt`,
/// one `AWSLogs/<acct>/GuardDuty/<region>/YYYY/MM/DD/<uuid>.jsonl.gz` object, one finding per
/// line. Returns the keys (relative to `dir`) in a stable order.
pub fn write_guardduty_export(dir: &Path, findings: &[LabeledFinding]) -> Result<Vec<String>> {
    let mut groups: BTreeMap<(String, String, String), Vec<&Value>> = BTreeMap::new();
    for f in findings {
        let v = &f.finding;
        let updated = v["updatedAt"].as_str().unwrap_or("1970-01-01");
        let date = updated.get(..10).unwrap_or("1970-01-01").replace('-', "/");
        groups
            .entry((
                v["accountId"].as_str().unwrap_or_default().into(),
                v["region"].as_str().unwrap_or_default().into(),
                date,
            ))
            .or_default()
            .push(v);
    }
    let mut keys = Vec::new();
    for ((acct, region, date), list) in groups {
        let mut r = Prng::derive(fnv(&acct), TAG_FINDINGS, fnv(&region), fnv(&date));
        let key = format!(
            "AWSLogs/{acct}/GuardDuty/{region}/{date}/{}.jsonl.gz",
            r.uuid()
        );
        let mut f = GzFile::create(&dir.join(&key), 6)?;
        let res = (|| -> io::Result<()> {
            for v in list {
                serde_json::to_writer(&mut f.w, v).map_err(io::Error::other)?;
                f.w.write_all(b"\n")?;
            }
            Ok(())
        })();
        res.map_err(f.err())?;
        f.finish()?;
        keys.push(key);
    }
    Ok(keys)
}

/// Write the findings as one pretty JSON array (like `aws guardduty get-findings` output's list).
pub fn write_findings_json(path: &Path, findings: &[LabeledFinding]) -> Result<()> {
    let arr: Vec<&Value> = findings.iter().map(|f| &f.finding).collect();
    let err = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(err)?;
    }
    let s = serde_json::to_string_pretty(&arr).map_err(|e| err(io::Error::other(e)))?;
    fs::write(path, s).map_err(err)
}

/// Write one EventBridge event per finding as `<dir>/<finding id>[-<n>].json` (updated findings
/// get a suffix); returns the file names in order.
pub fn write_eventbridge_events(dir: &Path, findings: &[LabeledFinding]) -> Result<Vec<String>> {
    let err = |source| Error::Io {
        path: dir.to_owned(),
        source,
    };
    fs::create_dir_all(dir).map_err(err)?;
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    let mut names = Vec::new();
    for f in findings {
        let id = f.finding["id"].as_str().unwrap_or("finding").to_owned();
        let n = seen.entry(id.clone()).or_insert(0);
        let name = if *n == 0 {
            format!("{id}.json")
        } else {
            format!("{id}-{n}.json")
        };
        *n += 1;
        let body = serde_json::to_string_pretty(&eventbridge_event(&f.finding))
            .map_err(|e| err(io::Error::other(e)))?;
        fs::write(dir.join(&name), body).map_err(err)?;
        names.push(name);
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_back() {
        assert_eq!(parse_rfc3339("2026-01-05T13:29:57Z"), 1_767_619_797);
        assert_eq!(
            parse_rfc3339(&rfc3339_millis(1_767_619_797, 12)),
            1_767_619_797
        );
    }
}
