//! Epoch seconds to civil dates and RFC 3339 strings, without a date library.

pub use ipsight_core::time::{civil_from_days, days_from_civil, rfc3339};

/// Broken-down UTC time of epoch seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year.
    pub year: i64,
    /// Month 1–12.
    pub month: u32,
    /// Day of month 1–31.
    pub day: u32,
    /// Hour 0–23.
    pub hour: u32,
    /// Minute 0–59.
    pub minute: u32,
    /// Second 0–59.
    pub second: u32,
}

impl Civil {
    /// Break down epoch seconds (UTC).
    pub fn from_epoch(secs: i64) -> Civil {
        let days = secs.div_euclid(86_400);
        let rem = secs.rem_euclid(86_400) as u32;
        let (year, month, day) = civil_from_days(days);
        Civil {
            year,
            month,
            day,
            hour: rem / 3600,
            minute: rem / 60 % 60,
            second: rem % 60,
        }
    }
}

/// `2026-01-05T13:29:57.123Z`: the millisecond form GuardDuty uses for `createdAt`/`updatedAt`.
pub fn rfc3339_millis(secs: i64, millis: u32) -> String {
    let c = Civil::from_epoch(secs);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, millis
    )
}

/// `YYYY/MM/DD`: the date part of CloudTrail and GuardDuty export keys.
pub fn date_path(secs: i64) -> String {
    let c = Civil::from_epoch(secs);
    format!("{:04}/{:02}/{:02}", c.year, c.month, c.day)
}

/// `YYYYMMDDTHHMMZ`: the timestamp in CloudTrail log file names.
pub fn file_stamp(secs: i64) -> String {
    let c = Civil::from_epoch(secs);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute
    )
}

/// `YYYYMMDDTHHMMSSZ`: the timestamp in CloudTrail digest file names.
pub fn file_stamp_secs(secs: i64) -> String {
    let c = Civil::from_epoch(secs);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second
    )
}

/// Day of week of epoch seconds, 0 = Sunday … 6 = Saturday (1970-01-01 was a Thursday).
pub fn weekday(secs: i64) -> u32 {
    (secs.div_euclid(86_400) + 4).rem_euclid(7) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_767_619_797), "2026-01-05T13:29:57Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(file_stamp(1_767_619_797), "20260105T1329Z");
        assert_eq!(date_path(1_767_619_797), "2026/01/05");
        assert_eq!(weekday(1_767_619_797), 1); // a Monday
        for d in [-1000, 0, 10_957, 20_458, 100_000] {
            let (y, m, dd) = civil_from_days(d);
            assert_eq!(days_from_civil(y, m, dd), d);
        }
    }
}
