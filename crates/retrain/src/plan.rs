//! What a retrain reads: from a listing (sizes, ages, keys) to the objects that train, the objects
//! held back to judge, and what is ignored, before anything is downloaded.
//!
//! Two kinds of input, each with its own hold-back rule:
//! - **pair files by day** (the preparer's `OUTPUTS=pairs`: `<pairs>/dt=YYYY-MM-DD/<key>.csv`, and
//!   the daily compactions `<daily>/dt=YYYY-MM-DD.csv`): the days of the rolling window
//!   (`TRAINING_DAYS`, ending today); the newest days are held back;
//! - **tuple CSVs** (`train/`: SageMaker's channel format): every object; the newest objects are
//!   held back.
use std::collections::BTreeMap;

use ipsight_core::time::{date, day_number};
use ipsight_ports::ObjectInfo;

/// Which objects train and which are held back (tuple CSVs).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Oldest first.
    pub train: Vec<ObjectInfo>,
    /// Newest first.
    pub holdout: Vec<ObjectInfo>,
    pub total_bytes: u64,
    /// Objects under the prefix that are not tuple CSVs (folders, temporaries, other files).
    pub ignored: usize,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

/// The newest objects, until they hold at least `fraction` of the bytes, are held back; at least
/// one object is left to train on. Ties in age are broken by key, so a run is reproducible.
pub fn plan(objects: Vec<ObjectInfo>, fraction: f64) -> Result<Plan, PlanError> {
    let total = objects.len();
    let mut csv: Vec<ObjectInfo> = objects
        .into_iter()
        .filter(|o| o.key.ends_with(".csv") && o.size > 0)
        .collect();
    let ignored = total - csv.len();
    if csv.len() < 2 {
        return Err(PlanError(format!(
            "{} non-empty tuple CSV object(s) found: retraining needs at least two, because the \
             newest are held back to judge the candidate against the serving model",
            csv.len()
        )));
    }
    csv.sort_by(|a, b| {
        (a.last_modified_ms, &a.key)
            .cmp(&(b.last_modified_ms, &b.key))
            .reverse()
    });
    let total_bytes: u64 = csv.iter().map(|o| o.size).sum();
    let sizes: Vec<u64> = csv.iter().map(|o| o.size).collect();
    let n = held_back(&sizes, fraction);
    let mut train = csv.split_off(n);
    train.reverse();
    Ok(Plan {
        train,
        holdout: csv,
        total_bytes,
        ignored,
    })
}

/// How many of the items (newest first, by size) are held back: until they hold at least
/// `fraction` of the bytes, leaving at least one to train on.
fn held_back(sizes_newest_first: &[u64], fraction: f64) -> usize {
    let total: u64 = sizes_newest_first.iter().sum();
    let want = (total as f64 * fraction).ceil() as u64;
    let (mut held, mut n) = (0u64, 0usize);
    while n + 1 < sizes_newest_first.len() && held < want {
        held += sizes_newest_first[n];
        n += 1;
    }
    n
}

/// One day of pair files: the per-object files the preparer wrote, and the day's compaction if one
/// exists.
#[derive(Debug, Clone, PartialEq)]
pub struct PairDay {
    /// Days since 1970-01-01.
    pub day: i64,
    pub objects: Vec<ObjectInfo>,
    pub daily: Option<ObjectInfo>,
}

impl PairDay {
    /// `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        date(self.day * 86_400)
    }

    /// Whether the compaction holds every per-object file of the day: it exists and is not older
    /// than any of them (a late object makes the day compact again).
    pub fn compaction_is_current(&self) -> bool {
        self.daily.as_ref().is_some_and(|d| {
            self.objects
                .iter()
                .all(|o| o.last_modified_ms <= d.last_modified_ms)
        })
    }

    /// Bytes a retrain reads for this day.
    pub fn bytes(&self) -> u64 {
        if self.compaction_is_current() {
            self.daily.as_ref().map_or(0, |d| d.size)
        } else {
            self.objects.iter().map(|o| o.size).sum()
        }
    }
}

/// The window's days, split.
#[derive(Debug, Clone, PartialEq)]
pub struct DayPlan {
    /// Oldest first.
    pub train: Vec<PairDay>,
    /// Newest first.
    pub holdout: Vec<PairDay>,
    /// First and last day of the window (inclusive).
    pub window: (i64, i64),
    pub total_bytes: u64,
    /// Pair objects of days outside the window (expired by the lifecycle rule in time).
    pub outside_window: usize,
    /// Keys under the prefixes that are not pair files of a day (folders, other files).
    pub ignored: usize,
}

/// The day of a key `<prefix>dt=YYYY-MM-DD/…` (per object) or `<prefix>dt=YYYY-MM-DD.csv` (daily).
pub fn day_of_key(prefix: &str, key: &str) -> Option<i64> {
    let rest = key.strip_prefix(prefix)?.strip_prefix("dt=")?;
    let d = rest.get(..10)?;
    let after = rest.get(10..)?;
    (after == ".csv" || (after.starts_with('/') && after.ends_with(".csv") && after.len() > 5))
        .then(|| day_number(d))
        .flatten()
}

/// The daily compaction's key of a day.
pub fn daily_key(daily_prefix: &str, day: i64) -> String {
    format!("{daily_prefix}dt={}.csv", date(day * 86_400))
}

/// Groups the listings of per-object pair files (under `objects_prefix`) and daily compactions
/// (under `daily_prefix`) by day, keeps the `days` days ending on `today`, and holds back the newest
/// days until they hold `fraction` of the bytes (at least one day trains). `None` when the window
/// has no pair files at all; an error when it has one day only.
pub fn plan_days(
    objects_prefix: &str,
    objects: Vec<ObjectInfo>,
    daily_prefix: &str,
    daily: Vec<ObjectInfo>,
    today: i64,
    days: u32,
    fraction: f64,
) -> Result<Option<DayPlan>, PlanError> {
    let first = today - i64::from(days.max(1)) + 1;
    let mut by_day: BTreeMap<i64, PairDay> = BTreeMap::new();
    let (mut outside, mut ignored) = (0usize, 0usize);
    for o in objects {
        match day_of_key(objects_prefix, &o.key) {
            Some(d) if (first..=today).contains(&d) && o.size > 0 => {
                by_day
                    .entry(d)
                    .or_insert_with(|| PairDay {
                        day: d,
                        objects: Vec::new(),
                        daily: None,
                    })
                    .objects
                    .push(o);
            }
            Some(_) if o.size > 0 => outside += 1,
            _ => ignored += 1,
        }
    }
    for o in daily {
        match day_of_key(daily_prefix, &o.key) {
            Some(d) if (first..=today).contains(&d) && o.size > 0 => {
                by_day
                    .entry(d)
                    .or_insert_with(|| PairDay {
                        day: d,
                        objects: Vec::new(),
                        daily: None,
                    })
                    .daily = Some(o);
            }
            Some(_) if o.size > 0 => outside += 1,
            _ => ignored += 1,
        }
    }
    if by_day.is_empty() {
        return Ok(None);
    }
    if by_day.len() < 2 {
        return Err(PlanError(format!(
            "pair files of one day only ({}) in the {days}-day window: retraining needs at least \
             two days, because the newest are held back to judge the candidate",
            date(by_day.keys().next().copied().unwrap_or(today) * 86_400)
        )));
    }
    let mut newest_first: Vec<PairDay> = by_day.into_values().rev().collect();
    for d in &mut newest_first {
        d.objects.sort_by(|a, b| a.key.cmp(&b.key));
    }
    let sizes: Vec<u64> = newest_first.iter().map(PairDay::bytes).collect();
    let total_bytes = sizes.iter().sum();
    let n = held_back(&sizes, fraction);
    let mut train = newest_first.split_off(n);
    train.reverse();
    Ok(Some(DayPlan {
        train,
        holdout: newest_first,
        window: (first, today),
        total_bytes,
        outside_window: outside,
        ignored,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(key: &str, size: u64, at: i64) -> ObjectInfo {
        ObjectInfo {
            key: key.into(),
            size,
            last_modified_ms: at,
            version_tag: String::new(),
        }
    }

    #[test]
    fn the_newest_objects_are_held_back() {
        let objs = vec![
            info("train/d3.csv", 100, 3),
            info("train/d1.csv", 100, 1),
            info("train/d2.csv", 100, 2),
            info("train/d4.csv", 50, 4),
            info("train/", 0, 0),
            info("train/notes.txt", 10, 9),
            info("train/empty.csv", 0, 9),
        ];
        let p = plan(objs.clone(), 0.2).unwrap();
        let keys = |v: &[ObjectInfo]| v.iter().map(|o| o.key.clone()).collect::<Vec<_>>();
        // 20% of 350 = 70 bytes: d4 (50) is not enough, d3 is added.
        assert_eq!(keys(&p.holdout), ["train/d4.csv", "train/d3.csv"]);
        assert_eq!(keys(&p.train), ["train/d1.csv", "train/d2.csv"]);
        assert_eq!((p.total_bytes, p.ignored), (350, 3));
        // Never everything: one object always trains.
        let p = plan(objs.clone(), 0.99).unwrap();
        assert_eq!(keys(&p.train), ["train/d1.csv"]);
        // Same age: key order decides.
        let p = plan(vec![info("b.csv", 10, 1), info("a.csv", 10, 1)], 0.1).unwrap();
        assert_eq!(
            (keys(&p.train), keys(&p.holdout)),
            (vec!["a.csv".into()], vec!["b.csv".into()])
        );
        let e = plan(vec![info("a.csv", 10, 1), info("b.txt", 10, 1)], 0.1).unwrap_err();
        assert!(e.to_string().contains("at least two"), "{e}");
    }

    #[test]
    fn days_of_keys() {
        let p = "pairs/objects/";
        let d = day_number("2026-01-20").unwrap();
        assert_eq!(
            day_of_key(p, "pairs/objects/dt=2026-01-20/AWSLogs/1/x.json.gz.csv"),
            Some(d)
        );
        assert_eq!(
            day_of_key("pairs/daily/", "pairs/daily/dt=2026-01-20.csv"),
            Some(d)
        );
        for bad in [
            "pairs/objects/dt=2026-01-20/",
            "pairs/objects/dt=2026-13-20/x.csv",
            "pairs/objects/x.csv",
            "pairs/objects/dt=2026-01-20.csv.tmp",
            "other/dt=2026-01-20/x.csv",
        ] {
            assert_eq!(day_of_key(p, bad), None, "{bad}");
        }
        assert_eq!(
            daily_key("pairs/daily/", d),
            "pairs/daily/dt=2026-01-20.csv"
        );
    }

    #[test]
    fn the_window_keeps_its_days_and_holds_back_the_newest() {
        let today = day_number("2026-01-20").unwrap();
        let o = |day: &str, n: u32, size: u64, at: i64| {
            info(&format!("pairs/objects/dt={day}/obj{n}.csv"), size, at)
        };
        let objects = vec![
            o("2026-01-20", 1, 100, 50),
            o("2026-01-19", 1, 60, 40),
            o("2026-01-19", 2, 40, 41),
            o("2026-01-18", 1, 100, 30),
            o("2026-01-10", 1, 100, 10), // outside a 3-day window
            info("pairs/objects/readme.txt", 5, 1),
        ];
        let daily = vec![
            // Current compaction of the 18th; a stale one of the 19th (an object arrived later).
            info("pairs/daily/dt=2026-01-18.csv", 80, 35),
            info("pairs/daily/dt=2026-01-19.csv", 70, 40),
        ];
        let p = plan_days(
            "pairs/objects/",
            objects,
            "pairs/daily/",
            daily,
            today,
            3,
            0.3,
        )
        .unwrap()
        .unwrap();
        assert_eq!(p.window, (today - 2, today));
        assert_eq!((p.outside_window, p.ignored), (1, 1));
        let days = |v: &[PairDay]| v.iter().map(PairDay::date).collect::<Vec<_>>();
        // 80 (compaction) + 100 (two objects: the compaction is stale) + 100 = 280; 30% = 84: the
        // newest day (100) is enough.
        assert_eq!(p.total_bytes, 280);
        assert_eq!(days(&p.holdout), ["2026-01-20"]);
        assert_eq!(days(&p.train), ["2026-01-18", "2026-01-19"]);
        assert!(p.train[0].compaction_is_current());
        assert!(!p.train[1].compaction_is_current());
        // No pair files in the window: None (the tuples are used); one day: an error that says so.
        assert!(plan_days(
            "pairs/objects/",
            vec![],
            "pairs/daily/",
            vec![],
            today,
            3,
            0.3
        )
        .unwrap()
        .is_none());
        let e = plan_days(
            "pairs/objects/",
            vec![o("2026-01-20", 1, 100, 50)],
            "pairs/daily/",
            vec![],
            today,
            3,
            0.3,
        )
        .unwrap_err();
        assert!(e.to_string().contains("at least two days"), "{e}");
    }
}
