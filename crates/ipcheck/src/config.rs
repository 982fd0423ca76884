//! ipcheck's configuration, read once at cold start from the environment (set by the SAM template).
use ipsight_aws::config::{Env, Trigger};
use ipsight_aws::ScorerSettings;
use ipsight_formats::notify::S3Object;
use ipsight_formats::ocsf::OcsfMapping;
use ipsight_model::NewPrincipals;
use ipsight_ports::{LabelSource, ObjectRef};
use serde::Serialize;

/// When a pair raises an alert. Both set: either suffices.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct Threshold {
    /// `ALERT_MIN_PERCENTILE`: alert when the pair is less normal than this share (percent) of known
    /// activity (needs a calibrated scorer), e.g. 99.5.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_unusual_percentile: Option<f64>,
    /// `ALERT_MAX_DOT_PRODUCT`: alert when `dot_product` is at or below this.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_dot_product: Option<f32>,
}

impl Threshold {
    pub fn is_alert(&self, dot: f32, pct: Option<f64>) -> bool {
        self.max_dot_product.is_some_and(|t| dot <= t)
            || matches!((self.min_unusual_percentile, pct), (Some(t), Some(p)) if p >= t)
    }

    /// Whether alerting is on at all (a threshold is set).
    pub fn is_set(&self) -> bool {
        self.min_unusual_percentile.is_some() || self.max_dot_product.is_some()
    }

    /// The alert decision for a score: a principal the baseline has never seen alerts by
    /// `NEW_PRINCIPALS` alone (its dot product comes from a hash bucket shared with others, so no
    /// threshold on it means anything); any other pair by the thresholds, the percentile being the
    /// combined one when a baseline is loaded.
    pub fn is_alert_score(&self, s: &ipsight_ports::Score, new_principals: NewPrincipals) -> bool {
        if s.is_new_principal() {
            return self.is_set() && new_principals == NewPrincipals::Alert;
        }
        self.is_alert(s.dot_product, s.unusual_percentile)
    }
}

/// Size limits for one object.
#[derive(Debug, Clone)]
pub struct Limits {
    /// `MAX_OBJECT_BYTES`: largest Parquet object downloaded (it goes to /tmp).
    pub max_object_bytes: u64,
    /// `MAX_UNCOMPRESSED_BYTES`: cap on a streamed object's decompressed bytes.
    pub max_uncompressed_bytes: u64,
    /// `MAX_DISTINCT_PAIRS`: distinct pairs held for one object.
    pub max_distinct_pairs: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_object_bytes: 2 << 30,
            max_uncompressed_bytes: 8 << 30,
            // Measured (examples/bench_sidecar): one million distinct pairs peak at 874 MB with a
            // 474 MB model and sidecar loaded and few alerts (1,553 MB when 20% alert), so the
            // template's 1,024 MB holds about a million on a normal day; above that an object
            // fails naming this limit instead of the function being killed.
            max_distinct_pairs: 1_000_000,
        }
    }
}

/// Configuration from the environment (set by the SAM template).
#[derive(Debug, Clone)]
pub struct Config {
    /// `OUTPUT_BUCKET`: where scores and alert files go.
    pub output_bucket: String,
    /// `SCORES_PREFIX` (default `scores/`).
    pub scores_prefix: String,
    /// `ALERTS_PREFIX` (default `alerts/`).
    pub alerts_prefix: String,
    /// `INPUT_BUCKET` / `INPUT_PREFIX`: what triggers us, used to refuse a self-triggering setup.
    pub trigger: Trigger,
    /// `OCSF_JSON_PREFIX`: `.json`/`.json.gz` objects under it are OCSF JSON (lines or documents).
    pub ocsf_json_prefix: Option<String>,
    /// `EVENT_BUS_NAME`: custom EventBridge bus for alerts (unset: alert files only).
    pub event_bus: Option<String>,
    pub threshold: Threshold,
    pub mapping: OcsfMapping,
    pub limits: Limits,
    /// `MESSAGE_CONCURRENCY`: SQS messages handled at once (I/O overlaps; default 4).
    pub message_concurrency: usize,
    /// `LABELS_URI` / `LABELS_PREFIX` (a prefix of `OUTPUT_BUCKET`): analyst labels, read once per
    /// invocation. A pair confirmed as a false positive raises no alert (its score line says why);
    /// a confirmed true positive alerts whatever its score.
    pub labels: Option<LabelSource>,
    /// The scorer (`SAGEMAKER_ENDPOINT` or `MODEL_URI` and their settings).
    pub scorer: ScorerSettings,
    /// `ENTITY`: what the entities are (default `principal`); must match the model's and the
    /// extractor's.
    pub entity: ipsight_formats::EntityKind,
    /// `TUNING_URI`: `s3://bucket/key` of the tuning file (docs/tuning.example.toml), read once per
    /// invocation like the labels: an edit applies from the next batch on.
    pub tuning: Option<ObjectRef>,
    /// `ALERT_STATE_PREFIX` (default `alert-state/`, in `OUTPUT_BUCKET`): one small object per
    /// alerted pair, for the tuning file's `alerts.dedup_hours` window.
    pub alert_state_prefix: String,
    /// `IP_DB_URIS`: MaxMind-format databases and `ip-ranges.json` (objects or prefixes) read at
    /// cold start; alerts then carry `network`.
    pub ip_dbs: Vec<ObjectRef>,
    /// `SECURITY_HUB=true`: `(AWS_ACCOUNT_ID, AWS_REGION)` importing the alerts as findings.
    pub security_hub: Option<(String, String)>,
}

pub use ipsight_aws::config::ConfigError;

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let env = Env::new(get);
        let defaults = Limits::default();
        let threshold = Threshold {
            min_unusual_percentile: env.percent_opt("ALERT_MIN_PERCENTILE")?,
            max_dot_product: env.number_opt("ALERT_MAX_DOT_PRODUCT")?,
        };
        if threshold.max_dot_product.is_some_and(|d| !d.is_finite()) {
            return Err(ConfigError::invalid(
                "ALERT_MAX_DOT_PRODUCT",
                env.or("ALERT_MAX_DOT_PRODUCT", ""),
                "a finite number",
            ));
        }
        let output_bucket = env.required("OUTPUT_BUCKET")?;
        let cfg = Config {
            labels: env.labels(&output_bucket)?,
            output_bucket,
            scores_prefix: env.prefix("SCORES_PREFIX", "scores/"),
            alerts_prefix: env.prefix("ALERTS_PREFIX", "alerts/"),
            trigger: Trigger::from_env(&env),
            ocsf_json_prefix: env.get("OCSF_JSON_PREFIX"),
            event_bus: env.get("EVENT_BUS_NAME"),
            threshold,
            mapping: OcsfMapping::from_lookup(env.lookup())?,
            limits: Limits {
                max_object_bytes: env.number("MAX_OBJECT_BYTES", defaults.max_object_bytes)?,
                max_uncompressed_bytes: env
                    .number("MAX_UNCOMPRESSED_BYTES", defaults.max_uncompressed_bytes)?,
                max_distinct_pairs: env
                    .number("MAX_DISTINCT_PAIRS", defaults.max_distinct_pairs)?,
            },
            message_concurrency: env.number("MESSAGE_CONCURRENCY", 4usize)?.max(1),
            scorer: ScorerSettings::from_env(&env)?,
            entity: env.entity()?,
            tuning: env.s3_object("TUNING_URI")?,
            alert_state_prefix: env.prefix("ALERT_STATE_PREFIX", "alert-state/"),
            ip_dbs: ipsight_aws::triage::ip_db_uris(&env)?,
            security_hub: ipsight_aws::triage::security_hub_target(&env)?,
        };
        if cfg.alert_state_prefix.is_empty()
            || [&cfg.scores_prefix, &cfg.alerts_prefix].iter().any(|p| {
                p.starts_with(&cfg.alert_state_prefix)
                    || cfg.alert_state_prefix.starts_with(p.as_str())
            })
        {
            return Err(ConfigError::invalid(
                "ALERT_STATE_PREFIX",
                cfg.alert_state_prefix,
                "must be non-empty and apart from SCORES_PREFIX and ALERTS_PREFIX",
            ));
        }
        if cfg.scores_prefix.is_empty() || cfg.scores_prefix == cfg.alerts_prefix {
            return Err(ConfigError::invalid(
                "SCORES_PREFIX",
                cfg.scores_prefix,
                "must be non-empty and differ from ALERTS_PREFIX",
            ));
        }
        for out_prefix in [
            &cfg.scores_prefix,
            &cfg.alerts_prefix,
            &cfg.alert_state_prefix,
        ] {
            cfg.trigger.refuse(&cfg.output_bucket, out_prefix)?;
        }
        Ok(cfg)
    }

    pub(crate) fn is_own_output(&self, obj: &S3Object) -> bool {
        obj.bucket == self.output_bucket
            && (obj.key.starts_with(&self.scores_prefix)
                || obj.key.starts_with(&self.alerts_prefix)
                || obj.key.starts_with(&self.alert_state_prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use ipsight_testkit::vars as env;

    #[test]
    fn config() {
        let c = Config::from_lookup(env(&[("OUTPUT_BUCKET", "data")])).unwrap();
        assert_eq!(c.scores_prefix, "scores/");
        assert_eq!(c.threshold, Threshold::default());
        // Triggered by the whole data bucket: scores/ would re-trigger us.
        let e = Config::from_lookup(env(&[("OUTPUT_BUCKET", "data"), ("INPUT_BUCKET", "data")]))
            .unwrap_err();
        assert!(e.to_string().contains("infinite loop"), "{e}");
        let e = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "data"),
            ("INPUT_BUCKET", "data"),
            ("INPUT_PREFIX", "alerts/x/"),
        ]))
        .unwrap_err();
        assert!(matches!(e, ConfigError::Retrigger { .. }));
        let ok = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "data"),
            ("INPUT_BUCKET", "data"),
            ("INPUT_PREFIX", "infer/"),
            ("ALERT_MIN_PERCENTILE", "99.5"),
            ("ALERT_MAX_DOT_PRODUCT", "-2"),
        ]))
        .unwrap();
        assert_eq!(ok.threshold.min_unusual_percentile, Some(99.5));
        assert_eq!(ok.entity, ipsight_formats::EntityKind::Principal);
        let ua = Config::from_lookup(env(&[
            ("OUTPUT_BUCKET", "d"),
            ("ENTITY", "user_agent_family"),
        ]))
        .unwrap();
        assert_eq!(ua.entity, ipsight_formats::EntityKind::UserAgentFamily);
        for (k, v) in [
            ("ALERT_MIN_PERCENTILE", "high"),
            ("ALERT_MIN_PERCENTILE", "120"),
            ("ALERT_MAX_DOT_PRODUCT", "NaN"),
            ("MAX_OBJECT_BYTES", "1GB"),
            ("OCSF_CLASSES", "dns"),
            ("ENTITY", "role"),
        ] {
            let e = Config::from_lookup(env(&[("OUTPUT_BUCKET", "d"), (k, v)])).unwrap_err();
            assert!(e.to_string().contains(k), "{k}: {e}");
        }
        assert!(matches!(
            Config::from_lookup(env(&[])),
            Err(ConfigError::Missing("OUTPUT_BUCKET"))
        ));
    }

    #[test]
    fn thresholds() {
        let t = Threshold {
            min_unusual_percentile: Some(99.5),
            max_dot_product: None,
        };
        assert!(t.is_alert(0.0, Some(99.7)));
        assert!(!t.is_alert(-9.0, Some(50.0)));
        assert!(!t.is_alert(-9.0, None));
        let t = Threshold {
            min_unusual_percentile: None,
            max_dot_product: Some(-1.0),
        };
        assert!(t.is_alert(-1.0, None) && !t.is_alert(-0.5, Some(100.0)));
        assert!(!Threshold::default().is_alert(-100.0, Some(100.0)));
    }
}
