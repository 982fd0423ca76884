//! Where alerts go: an EventBridge bus (production) or nowhere but the alert files ([`NoAlerts`]).
use std::future::Future;

use crate::Alert;

/// The alert port. `publish` gets every alert of one object; an error fails that object (and so
/// its SQS message, which is redelivered).
pub trait AlertSink: Send + Sync {
    fn publish(&self, alerts: &[Alert]) -> impl Future<Output = Result<(), String>> + Send;
}

/// No bus configured: alerts are only written to `alerts/<source key>.jsonl`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoAlerts;

impl AlertSink for NoAlerts {
    async fn publish(&self, _alerts: &[Alert]) -> Result<(), String> {
        Ok(())
    }
}

/// `source` of the events we put on the bus; rules match on it.
pub const EVENT_SOURCE: &str = "ipsight.ipcheck";
/// `detail-type` of the events.
pub const DETAIL_TYPE: &str = "IP Insights unusual activity";

/// Alerts as events on a custom EventBridge bus, one event per alert (`detail` = the [`Alert`]).
#[derive(Debug, Clone)]
pub struct EventBridgeSink {
    client: aws_sdk_eventbridge::Client,
    bus: String,
}

impl EventBridgeSink {
    pub fn new(client: aws_sdk_eventbridge::Client, bus: impl Into<String>) -> Self {
        Self {
            client,
            bus: bus.into(),
        }
    }

    pub fn from_conf(conf: &aws_config::SdkConfig, bus: impl Into<String>) -> Self {
        Self::new(aws_sdk_eventbridge::Client::new(conf), bus)
    }

    /// The PutEvents entry of one alert: `detail` is the alert itself (score record with its
    /// history and why, threshold, id).
    pub fn entry(
        &self,
        a: &Alert,
    ) -> Result<aws_sdk_eventbridge::types::PutEventsRequestEntry, String> {
        let detail = serde_json::to_string(a).map_err(|e| e.to_string())?;
        let mut b = aws_sdk_eventbridge::types::PutEventsRequestEntry::builder()
            .event_bus_name(&self.bus)
            .source(EVENT_SOURCE)
            .detail_type(DETAIL_TYPE)
            .detail(detail);
        if let Some(rest) = a.record.source.strip_prefix("s3://") {
            b = b.resources(format!("arn:aws:s3:::{rest}"));
        }
        Ok(b.build())
    }
}

impl AlertSink for EventBridgeSink {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), String> {
        let entries = alerts
            .iter()
            .map(|a| self.entry(a))
            .collect::<Result<Vec<_>, _>>()?;
        ipsight_aws::events::put_events(&self.client, &self.bus, entries)
            .await
            .map(|_| ())
    }
}

/// Alerts as Security Hub findings (`SECURITY_HUB=true`), built and sent by the same
/// `ipsight-securityhub` code as fuse's rows: one finding per `<principal, address>` in ipcheck's
/// own id space (`<account>/ipsight/ipcheck-alert/<principal>/<ip>`, `GeneratorId`
/// `ipsight-ipcheck`), so a redelivered object or a later alert on the same pair updates it, and
/// the fused row of the pair stays a finding of its own.
///
/// Severity: the alert's `unusual_percentile` is its risk (0–100, Security Hub's bands); an
/// alert without one (an uncalibrated scorer's dot-product threshold) is HIGH (70): it crossed the
/// threshold, nothing more is known. `UpdatedAt` is the day of the pair's last event (never the
/// clock), so a redelivery sends the same finding.
#[derive(Debug, Clone)]
pub struct SecurityHubSink {
    client: aws_sdk_securityhub::Client,
    account: String,
    region: String,
}

/// The risk of an alert without a calibrated percentile.
pub const UNCALIBRATED_ALERT_RISK: f64 = 70.0;

impl SecurityHubSink {
    pub fn new(client: aws_sdk_securityhub::Client, (account, region): (String, String)) -> Self {
        Self {
            client,
            account,
            region,
        }
    }

    /// The findings of a batch of alerts, in order, and the ones too large to send.
    pub fn findings(
        &self,
        alerts: &[Alert],
    ) -> (
        Vec<Vec<ipsight_securityhub::Finding>>,
        ipsight_securityhub::Skipped,
    ) {
        use ipsight_securityhub::{asff, Detection, Generator, Importer};
        let today = ipsight_core::time::today_utc();
        let findings: Vec<_> = alerts
            .iter()
            .map(|a| {
                let r = &a.record;
                let date = [r.last_seen.as_deref(), r.first_seen.as_deref()]
                    .into_iter()
                    .flatten()
                    .filter_map(|t| t.get(..10))
                    .find(|d| ipsight_core::time::day_number(d).is_some())
                    .unwrap_or(&today);
                let importer =
                    Importer::for_date(date, Some(self.account.clone()), Some(self.region.clone()));
                let types: Vec<String> = r.finding_type.iter().cloned().collect();
                let ids: Vec<String> = r.finding_id.iter().cloned().collect();
                asff::finding(
                    &importer,
                    &Detection {
                        generator: Generator::Ipcheck,
                        date,
                        entity: &r.entity,
                        ip: r.ip,
                        risk: r.unusual_percentile.unwrap_or(UNCALIBRATED_ALERT_RISK),
                        max_severity: r.severity.unwrap_or(0.0),
                        unusual_percentile: r.unusual_percentile,
                        history: r.history.map(|h| h.as_str()),
                        explanation: &r.explanation,
                        finding_types: &types,
                        finding_ids: &ids,
                        account: Some(r.account.as_deref().unwrap_or(&self.account)),
                        region: Some(r.region.as_deref().unwrap_or(&self.region)),
                        first_seen: r.first_seen.as_deref(),
                        last_seen: r.last_seen.as_deref(),
                        network: r.network.as_ref(),
                    },
                )
            })
            .collect();
        let mut skipped = ipsight_securityhub::Skipped::default();
        let batches = asff::request_bodies(&findings, &mut skipped);
        (batches, skipped)
    }
}

impl AlertSink for SecurityHubSink {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), String> {
        let (batches, skipped) = self.findings(alerts);
        if skipped.too_large > 0 {
            eprintln!(
                "{}",
                serde_json::json!({"event": "securityhub_skipped", "function": crate::FUNCTION,
                                   "too_large": skipped.too_large})
            );
        }
        ipsight_securityhub::publish(&self.client, &batches)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// The sinks a configuration turns on (`EVENT_BUS_NAME`, `SECURITY_HUB=true`); none: alert files
/// only. Each gets every alert of an object, in that order; the first failure fails the object
/// (redelivered: the bus gets the same `alert_id`s again, Security Hub the same finding ids).
#[derive(Debug, Clone, Default)]
pub struct Sinks {
    pub event_bridge: Option<EventBridgeSink>,
    pub security_hub: Option<SecurityHubSink>,
}

impl AlertSink for Sinks {
    async fn publish(&self, alerts: &[Alert]) -> Result<(), String> {
        if let Some(s) = &self.event_bridge {
            s.publish(alerts).await?;
        }
        if let Some(s) = &self.security_hub {
            s.publish(alerts).await?;
        }
        Ok(())
    }
}
