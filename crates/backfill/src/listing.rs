//! Listing a trail bucket for a window of days without listing its whole history.
//!
//! CloudTrail writes `[prefix/]AWSLogs/[o-orgid/]<acct>/CloudTrail/<region>/YYYY/MM/DD/<file>`.
//! The walk finds the `…/CloudTrail/<region>/` folders with delimiter listings (never descending
//! into digest or Insights trees, or other services' logs beside CloudTrail), then lists each one
//! from the window's first day folder and stops after its last: the cost is one LIST per 1,000
//! objects in the window plus a few per account and region, whatever the age of the trail.
use ipsight_core::keys::skipped_prefix;
use ipsight_core::time::{civil_from_days, day_number};

use crate::manifest::Selection;
use crate::BackfillError;

/// An inclusive range of UTC days.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    first: i64,
    last: i64,
}

fn ymd(day: i64, sep: char) -> String {
    let (y, m, d) = civil_from_days(day);
    format!("{y:04}{sep}{m:02}{sep}{d:02}")
}

impl Window {
    /// `since`: `Nd` (the last N days, ending with `until`) or a date `YYYY-MM-DD`; `until`: a date
    /// (default `today`, a day number). Both ends are included.
    pub fn parse(since: &str, until: Option<&str>, today: i64) -> Result<Self, BackfillError> {
        let last = match until {
            None => today,
            Some(u) => day_number(u)
                .filter(|_| u.len() == 10)
                .ok_or_else(|| BackfillError::invalid("--until", u, "expected YYYY-MM-DD"))?,
        };
        let first = if let Some(n) = since.strip_suffix('d') {
            let n: i64 = n.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                BackfillError::invalid(
                    "--since",
                    since,
                    "expected a number of days (90d) or a date (YYYY-MM-DD)",
                )
            })?;
            last - (n - 1)
        } else {
            day_number(since)
                .filter(|_| since.len() == 10)
                .ok_or_else(|| {
                    BackfillError::invalid(
                        "--since",
                        since,
                        "expected a number of days (90d) or a date (YYYY-MM-DD)",
                    )
                })?
        };
        if first > last {
            return Err(BackfillError::invalid(
                "--since",
                since,
                format!("starts after the window's last day {}", ymd(last, '-')),
            ));
        }
        Ok(Self { first, last })
    }

    pub fn contains(&self, day: &str) -> bool {
        day_number(day).is_some_and(|d| (self.first..=self.last).contains(&d))
    }

    pub fn first(&self) -> String {
        ymd(self.first, '-')
    }

    pub fn last(&self) -> String {
        ymd(self.last, '-')
    }

    pub fn len(&self) -> u64 {
        (self.last - self.first + 1) as u64
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// How deep below the starting prefix the walk looks for `CloudTrail/<region>/` folders:
/// `AWSLogs/o-orgid/<acct>/CloudTrail/<region>/` is five levels.
const MAX_DEPTH: usize = 6;

/// The `…/CloudTrail/<region>/` folder `prefix` is in or is, if any.
fn region_folder(prefix: &str) -> Option<&str> {
    let mut pos = 0;
    let mut parts = prefix.split_inclusive('/');
    let mut prev: Option<&str> = None;
    for part in parts.by_ref() {
        pos += part.len();
        if prev == Some("CloudTrail/") && part.ends_with('/') {
            return Some(&prefix[..pos]);
        }
        prev = Some(part);
    }
    None
}

fn is_account_id(seg: &str) -> bool {
    seg.len() == 12 && seg.bytes().all(|b| b.is_ascii_digit())
}

/// One page-by-page listing; `each` gets `(key, size)` and returns false to stop.
async fn list_from(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
    start_after: Option<String>,
    mut each: impl FnMut(&str, u64) -> Result<bool, BackfillError>,
) -> Result<(), BackfillError> {
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .set_start_after(start_after)
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| BackfillError::s3("listing", bucket, prefix, e))?;
        for o in page.contents() {
            let Some(key) = o.key() else { continue };
            let size = o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
            if !each(key, size)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// The sub-folders (common prefixes) and the objects directly in `prefix`.
async fn folder(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    prefix: &str,
) -> Result<(Vec<String>, Vec<(String, u64)>), BackfillError> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    let mut pages = client
        .list_objects_v2()
        .bucket(bucket)
        .prefix(prefix)
        .delimiter("/")
        .into_paginator()
        .send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| BackfillError::s3("listing", bucket, prefix, e))?;
        dirs.extend(
            page.common_prefixes()
                .iter()
                .filter_map(|p| p.prefix().map(str::to_owned)),
        );
        for o in page.contents() {
            if let Some(k) = o.key() {
                let size = o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0);
                files.push((k.to_owned(), size));
            }
        }
    }
    Ok((dirs, files))
}

/// List the log objects of `sel`'s window under `s3://bucket/prefix` into `sel`.
pub async fn list_trail(
    client: &aws_sdk_s3::Client,
    prefix: &str,
    sel: &mut Selection,
) -> Result<(), BackfillError> {
    let bucket = sel.bucket().to_owned();
    if let Some(reason) = skipped_prefix(prefix) {
        return Err(BackfillError::invalid(
            "--prefix",
            prefix,
            format!(
                "is inside a {} tree, which the preparer skips",
                reason.as_str()
            ),
        ));
    }
    if let Some(root) = region_folder(prefix) {
        // Already inside one region's folder: list the prefix itself (windowed when it is the
        // region folder).
        if root == prefix {
            return list_region(client, &bucket, root, sel).await;
        }
        return list_from(client, &bucket, prefix, None, |k, s| {
            sel.offer(k, Some(s)).map(|_| true)
        })
        .await;
    }
    let base_depth = prefix.matches('/').count();
    let mut queue = vec![prefix.to_owned()];
    let mut regions = Vec::new();
    while let Some(p) = queue.pop() {
        let (dirs, files) = folder(client, &bucket, &p).await?;
        // Objects beside the folders (a README, a console "folder" object) go through the same
        // rule, so that they are counted as skipped rather than ignored.
        for (k, s) in files {
            sel.offer(&k, Some(s))?;
        }
        for d in dirs {
            let segs: Vec<&str> = d.trim_end_matches('/').split('/').collect();
            let last = segs[segs.len() - 1];
            let parent = segs.len().checked_sub(2).map(|i| segs[i]);
            if let Some(reason) = skipped_prefix(&d) {
                sel.skip_prefix(reason.as_str());
            } else if parent == Some("CloudTrail") {
                regions.push(d);
            } else if parent.is_some_and(is_account_id) && last != "CloudTrail" {
                // GuardDuty, Config, ELB… logs under the same account folder.
                sel.skip_prefix("other_service");
            } else if d.matches('/').count() - base_depth < MAX_DEPTH {
                queue.push(d);
            } else {
                sel.skip_prefix("too_deep");
            }
        }
    }
    regions.sort();
    for r in regions {
        list_region(client, &bucket, &r, sel).await?;
    }
    Ok(())
}

/// One `…/CloudTrail/<region>/` folder, from the day before the window to the day after it (the
/// folder's date and the file name's delivery stamp may straddle midnight; the file name's day,
/// which dates the pair file, decides).
async fn list_region(
    client: &aws_sdk_s3::Client,
    bucket: &str,
    root: &str,
    sel: &mut Selection,
) -> Result<(), BackfillError> {
    let w = sel.window;
    // `root/YYYY/MM/DD` sorts just before every key of that day's folder.
    let start_after = format!("{root}{}", ymd(w.first - 1, '/'));
    let stop = ymd(w.last + 1, '/');
    list_from(client, bucket, root, Some(start_after), |k, s| {
        let folder = k.get(root.len()..root.len() + 10).unwrap_or("");
        if folder > stop.as_str() {
            return Ok(false);
        }
        sel.offer(k, Some(s)).map(|_| true)
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows() {
        let today = day_number("2026-12-06").unwrap();
        let w = Window::parse("90d", None, today).unwrap();
        assert_eq!(
            (w.first().as_str(), w.last().as_str()),
            ("2026-09-08", "2026-12-06")
        );
        assert_eq!(w.len(), 90);
        assert!(w.contains("2026-09-08") && w.contains("2026-12-06"));
        assert!(!w.contains("2026-09-07") && !w.contains("2026-12-07"));
        let w = Window::parse("2026-11-30", Some("2026-12-01"), today).unwrap();
        assert_eq!(w.len(), 2);
        assert_eq!(
            Window::parse("1d", None, today).unwrap().first(),
            "2026-12-06"
        );
        for bad in ["0d", "-3d", "x", "2026-13-01", "2026-12-07", "90"] {
            let e = Window::parse(bad, None, today).unwrap_err().to_string();
            assert!(e.starts_with("--since"), "{bad}: {e}");
        }
        assert!(Window::parse("3d", Some("12/01/2026"), today).is_err());
    }

    #[test]
    fn region_folders() {
        assert_eq!(
            region_folder("AWSLogs/o-a/111122223333/CloudTrail/eu-west-1/2026/"),
            Some("AWSLogs/o-a/111122223333/CloudTrail/eu-west-1/")
        );
        assert_eq!(
            region_folder("x/AWSLogs/1/CloudTrail/us-east-1/"),
            Some("x/AWSLogs/1/CloudTrail/us-east-1/")
        );
        assert_eq!(region_folder("AWSLogs/1/CloudTrail/us-"), None);
        assert_eq!(region_folder("AWSLogs/1/CloudTrail/"), None);
    }
}
