//! Where analysts work, on one object's alert candidates: network context (`IP_DB_URIS`) and the
//! tuning file (`TUNING_URI`): allowlists, AWS service callers, the learning period, and the dedup
//! window, whose state is one small object per alerted pair under `ALERT_STATE_PREFIX`.
use ipsight_core::labels::LabelSet;
use ipsight_core::tuning::{PrincipalAge, Subject, Tuning};
use ipsight_enrich::{network_history, Enricher, Network};
use ipsight_formats::tuning::AlertMark;
use ipsight_ports::{ObjectRef, ObjectStore, PrincipalProfile, PutCondition, StoreError};
use tokio::io::AsyncReadExt;

use crate::record::alert_id;
use crate::{Config, ScoreRecord};

/// What one invocation applies besides the threshold: analyst labels and the tuning file (read
/// per invocation), the databases (read at cold start).
#[derive(Clone, Copy, Default)]
pub struct Extras<'a> {
    pub labels: Option<&'a LabelSet>,
    pub tuning: Option<&'a Tuning>,
    pub enricher: Option<&'a Enricher>,
}

/// The learning period starts at `history: new_principal` (the baseline never saw the principal)
/// or at the principal's first-seen day in the baseline.
fn principal_age(r: &ScoreRecord, profile: Option<&PrincipalProfile>) -> PrincipalAge {
    match (r.history, profile.and_then(|p| p.first_seen_day)) {
        (Some(ipsight_ports::History::NewPrincipal), _) => PrincipalAge::New,
        (_, Some(day)) => PrincipalAge::FirstSeen(day),
        _ => PrincipalAge::Unknown,
    }
}

fn subject<'a>(r: &'a ScoreRecord, profile: Option<&PrincipalProfile>) -> Subject<'a> {
    let net = r.network.as_ref();
    Subject {
        entity: &r.entity,
        ip: Some(r.ip),
        asn: net.and_then(|n| n.asn),
        country: net.and_then(|n| n.country.as_deref()),
        aws_services: net
            .and_then(|n| n.aws.as_ref())
            .map(|a| a.services.as_slice()),
        invoked_by: r.invoked_by.as_deref(),
        principal: principal_age(r, profile),
    }
}

/// Enrich the alert candidates, then let the tuning file suppress them (the score line keeps
/// `alert: false` and the rule in `suppressed_reason`). Pairs an analyst confirmed are left
/// alone. `now` is the invocation's time in epoch seconds. Writes nothing: it runs on each chunk
/// of records as it is scored; [`dedup`] runs once the whole object is scored.
pub(crate) fn suppress(
    x: &Extras<'_>,
    records: &mut [ScoreRecord],
    now: i64,
    profile_of: &dyn Fn(&str) -> Option<PrincipalProfile>,
) -> Result<(), String> {
    let day = now.div_euclid(86_400);
    for r in records.iter_mut().filter(|r| r.alert) {
        // The baseline's view of the principal: its known prefixes (network history) and its
        // first-seen day (learning period). Alert candidates only: a few per object.
        let profile = profile_of(&r.entity);
        if let Some(e) = x.enricher {
            let net = e
                .lookup(r.ip, Network::default())
                .map_err(|e| e.to_string())?;
            if let Some(p) = &profile {
                if let Some((h, sentence)) = network_history(e, &net, p.prefixes.iter().copied())
                    .map_err(|e| e.to_string())?
                {
                    r.network_history = Some(h);
                    if let Some(s) = sentence {
                        r.explanation = format!("{} {s}", r.explanation);
                    }
                }
            }
            r.network = Some(net);
        }
        if r.label == Some("true_positive") {
            continue;
        }
        if let Some(s) = x
            .tuning
            .and_then(|t| t.check(&subject(r, profile.as_ref()), day))
        {
            r.alert = false;
            r.suppressed_reason = Some(s.rule);
        }
    }
    Ok(())
}

/// A pair's alert mark and its version: `None` when there is none; `Some((None, _))` when the
/// object does not parse as one.
async fn read_mark(
    store: &impl ObjectStore,
    obj: &ObjectRef,
) -> Result<Option<(Option<AlertMark>, Option<String>)>, String> {
    match store.get(obj).await {
        Ok(mut body) => {
            let mut buf = Vec::new();
            (&mut body.reader)
                .take(64 << 10)
                .read_to_end(&mut buf)
                .await
                .map_err(|e| format!("reading alert state {obj}: {e}"))?;
            Ok(Some((
                serde_json::from_slice::<AlertMark>(&buf).ok(),
                body.version_tag,
            )))
        }
        // S3 answers 403 for a missing key unless the caller may list the bucket (the
        // template's ListBucket is prefix-conditioned): no state yet, either way. A real
        // permission problem still surfaces when the mark is written.
        Err(StoreError::NotFound(_) | StoreError::AccessDenied(_)) => Ok(None),
        Err(e) => Err(format!("reading alert state: {e}")),
    }
}

/// The dedup window on the alert candidates left by [`suppress`]: one state object per alerted
/// pair is read and written with an S3 conditional write (`If-None-Match: *` for a new pair,
/// `If-Match: <ETag>` to replace an expired mark), so of two invocations alerting on the same new
/// pair at the same moment exactly one wins and publishes; the other re-reads the winner's mark and
/// is suppressed by it. Runs once every pair of the object has been scored, so a scoring
/// failure leaves no mark of an alert that was never published. `source` is the object's `s3://`
/// URI.
pub(crate) async fn dedup(
    cfg: &Config,
    store: &impl ObjectStore,
    x: &Extras<'_>,
    records: &mut [ScoreRecord],
    source: &str,
    now: i64,
) -> Result<(), String> {
    let Some((tuning, window)) = x.tuning.and_then(|t| t.dedup_window_secs.map(|w| (t, w))) else {
        return Ok(());
    };
    for r in records
        .iter_mut()
        .filter(|r| r.alert && r.label != Some("true_positive"))
    {
        let obj = ObjectRef::new(
            &cfg.output_bucket,
            AlertMark::key(&cfg.alert_state_prefix, &r.entity, r.ip),
        );
        let mut attempts = 0;
        loop {
            attempts += 1;
            let state = read_mark(store, &obj).await?;
            let tag = match &state {
                // A mark from a clock ahead of ours counts as just written.
                Some((Some(m), _)) if m.source == source => {
                    // A redelivery of the object that alerted: alert again (same id), keep the mark.
                    break;
                }
                Some((Some(m), _))
                    if m.suppresses(now.max(m.alerted_at), window, source, &tuning.name)
                        .is_some() =>
                {
                    let s = m.suppresses(now.max(m.alerted_at), window, source, &tuning.name);
                    r.alert = false;
                    r.suppressed_reason = s.map(|s| s.rule);
                    break;
                }
                // Older than the window, or unreadable (written by hand, cut short): replaced,
                // if nobody replaced it since we read it.
                Some((_, tag)) => tag.clone(),
                None => None,
            };
            let mark = AlertMark {
                entity: r.entity.clone(),
                ip: r.ip.to_string(),
                alerted_at: now,
                alert_id: alert_id(r),
                source: source.to_owned(),
            };
            let body = serde_json::to_vec(&mark).map_err(|e| e.to_string())?;
            let cond = match (&state, tag.as_deref()) {
                (None, _) => Some(PutCondition::Absent),
                (Some(_), Some(t)) => Some(PutCondition::Matches(t)),
                // A store that gives no version: replace unconditionally.
                (Some(_), None) => None,
            };
            let won = match cond {
                Some(c) => store
                    .put_bytes_if(&obj, body.into(), "application/json", c)
                    .await
                    .map_err(|e| format!("writing alert state: {e}"))?,
                None => {
                    store
                        .put_bytes(&obj, body.into(), "application/json")
                        .await
                        .map_err(|e| format!("writing alert state: {e}"))?;
                    true
                }
            };
            if won {
                break;
            }
            // Another invocation wrote the pair's mark between our read and our write: read
            // it again; its alert stands and ours is suppressed (or, if it came from this same
            // object, alerts again with the same id).
            if attempts >= 4 {
                return Err(format!(
                    "alert state {obj}: changed under every one of {attempts} conditional writes"
                ));
            }
        }
    }
    Ok(())
}
