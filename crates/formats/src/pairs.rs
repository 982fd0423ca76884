//! The pair file: aggregated `<entity, ip>` history, ipsight's own format.
//!
//! ```text
//! entity,ip,events,first_seen,last_seen
//! AIDAEXAMPLE,203.0.113.7,412,2026-01-05T08:01:13Z,2026-01-09T17:59:02Z
//! ```
//!
//! One line per distinct `<entity, ip>` after the header, which is exactly
//! [`PAIR_HEADER`] and tells the file apart from SageMaker's headerless two-column channel.
//! `events` is how many records named the pair; `first_seen`/`last_seen` are the earliest and
//! latest record times **as the source wrote them** (CloudTrail's `eventTime` text; OCSF `time`
//! rendered as RFC 3339), empty when no record had a time. The entity is RFC 4180-quoted when it
//! holds `,` `"` CR or LF, as in the tuple CSV; the IP is canonical text (RFC 5952 for IPv6).
//! Lines are sorted by entity, then IP, so equal inputs give byte-identical files.
//!
//! Merging pair files (per object → per day → a window) sums `events` and keeps the earliest
//! `first_seen` and the latest `last_seen`; times are compared as instants, not as text, because
//! `…:08Z` and `…:08.120Z` sort the wrong way round as strings.
use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::net::IpAddr;

use crate::tuples::{split_entity, write_entity};
use ipsight_core::time::epoch_seconds;

/// The first line of every pair file.
pub const PAIR_HEADER: &str = "entity,ip,events,first_seen,last_seen";

/// Whether `first_line` (with or without its line ending) is the pair-file header.
pub fn is_pair_header(first_line: &[u8]) -> bool {
    let l = first_line.strip_suffix(b"\n").unwrap_or(first_line);
    let l = l.strip_suffix(b"\r").unwrap_or(l);
    // A UTF-8 byte-order mark from a spreadsheet round trip is not a different format.
    let l = l.strip_prefix(b"\xef\xbb\xbf").unwrap_or(l);
    l == PAIR_HEADER.as_bytes()
}

/// What is known about one `<entity, ip>`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PairHistory {
    pub events: u64,
    /// Earliest record time as written (empty: none known).
    pub first_seen: String,
    /// Latest record time as written (empty: none known).
    pub last_seen: String,
}

/// An instant to compare times by: seconds since the epoch, then the fraction's digits (padded so
/// `.1` and `.100` are equal). `None` for text that is not an RFC 3339 time.
fn instant(t: &str) -> Option<(i64, u64)> {
    let secs = epoch_seconds(t)?;
    let frac = t
        .get(19..)
        .and_then(|r| r.strip_prefix('.'))
        .map(|r| {
            let digits: String = r.chars().take_while(char::is_ascii_digit).take(9).collect();
            format!("{digits:0<9}").parse().unwrap_or(0)
        })
        .unwrap_or(0);
    Some((secs, frac))
}

/// Whether time `a` is before time `b`; empty means unknown and never wins. Unparseable times
/// compare as text, which is right for CloudTrail's fixed-width `eventTime`.
fn earlier(a: &str, b: &str) -> bool {
    if a.is_empty() {
        return false;
    }
    if b.is_empty() {
        return true;
    }
    match (instant(a), instant(b)) {
        (Some(x), Some(y)) => x < y,
        _ => a < b,
    }
}

impl PairHistory {
    /// One more record at `time` (`None`: the record had none).
    pub fn add_event(&mut self, time: Option<&str>) {
        self.events += 1;
        if let Some(t) = time.filter(|t| !t.is_empty()) {
            if earlier(t, &self.first_seen) {
                self.first_seen = t.to_owned();
            }
            if self.last_seen.is_empty() || earlier(&self.last_seen, t) {
                self.last_seen = t.to_owned();
            }
        }
    }

    /// Fold another history of the same pair in: counts summed, earliest first, latest last.
    pub fn merge(&mut self, o: &PairHistory) {
        self.events += o.events;
        if earlier(&o.first_seen, &self.first_seen) {
            self.first_seen.clone_from(&o.first_seen);
        }
        if !o.last_seen.is_empty()
            && (self.last_seen.is_empty() || earlier(&self.last_seen, &o.last_seen))
        {
            self.last_seen.clone_from(&o.last_seen);
        }
    }

    /// The UTC day (days since 1970-01-01) of `first_seen`, if it is a time.
    pub fn first_day(&self) -> Option<i64> {
        epoch_seconds(&self.first_seen).map(|s| s.div_euclid(86_400))
    }

    /// The UTC day of `last_seen`, if it is a time.
    pub fn last_day(&self) -> Option<i64> {
        epoch_seconds(&self.last_seen).map(|s| s.div_euclid(86_400))
    }
}

/// How many training samples a pair line stands for: `active_days × (1 + ln(events per active
/// day))`, rounded, at least 1, at most [`MAX_TRAINING_WEIGHT`].
///
/// Why: a tuple CSV weighs a pair by its raw event count, so one busy automation role (thousands of
/// calls a day from one address) outweighs a person's home address a thousandfold, and the model
/// spends its capacity on what is already certain. What makes an address normal for a principal is
/// mostly *on how many days* it was used, and only weakly how busy those days were: so the weight
/// grows linearly with active days and logarithmically with the daily count. Active days are not in
/// a line, so they are estimated as `min(events, days from first_seen to last_seen inclusive)`
/// (exact for per-day pair files, where each day's line counts once: a window of daily files sums
/// its days' weights); without times, one day.
pub fn training_weight(h: &PairHistory) -> u32 {
    let events = h.events.max(1) as f64;
    let span = match (h.first_day(), h.last_day()) {
        (Some(f), Some(l)) if l >= f => (l - f + 1) as f64,
        _ => 1.0,
    };
    let days = span.min(events);
    let w = days * (1.0 + (events / days).ln());
    (w.round() as u64).clamp(1, MAX_TRAINING_WEIGHT as u64) as u32
}

/// Upper bound of [`training_weight`]: a year of daily use at a few thousand calls a day.
pub const MAX_TRAINING_WEIGHT: u32 = 4096;

/// Distinct `<entity, ip>` pairs with their histories: what a preparer accumulates over its inputs
/// and what merging pair files produces. Memory is per distinct pair, not per event.
#[derive(Debug, Clone, Default)]
pub struct PairAggregate {
    /// Keyed by entity first so that a record of a known pair is found with the borrowed entity
    /// text (no owned key built per event).
    by_entity: HashMap<String, HashMap<IpAddr, PairHistory>>,
    len: usize,
}

impl PairAggregate {
    pub fn new() -> Self {
        Self::default()
    }

    /// Distinct pairs.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Events over all pairs.
    pub fn events(&self) -> u64 {
        self.iter().map(|(_, _, h)| h.events).sum()
    }

    fn entry(&mut self, entity: &str, ip: IpAddr) -> &mut PairHistory {
        if !self.by_entity.contains_key(entity) {
            self.by_entity.insert(entity.to_owned(), HashMap::new());
        }
        let ips = self.by_entity.get_mut(entity).expect("inserted above");
        let mut new = false;
        let h = ips.entry(ip).or_insert_with(|| {
            new = true;
            PairHistory::default()
        });
        if new {
            self.len += 1;
        }
        h
    }

    /// One record naming `entity` from `ip` at `time`.
    pub fn add_event(&mut self, entity: &str, ip: IpAddr, time: Option<&str>) {
        self.entry(entity, ip).add_event(time);
    }

    /// A history of `entity` from `ip` (a line of another pair file).
    pub fn add(&mut self, entity: &str, ip: IpAddr, h: &PairHistory) {
        self.entry(entity, ip).merge(h);
    }

    /// Every pair of `other`, merged in.
    pub fn merge(&mut self, other: &PairAggregate) {
        for (e, ip, h) in other.iter() {
            self.add(e, ip, h);
        }
    }

    /// Every pair, unordered.
    pub fn iter(&self) -> impl Iterator<Item = (&str, IpAddr, &PairHistory)> {
        self.by_entity
            .iter()
            .flat_map(|(e, m)| m.iter().map(move |(ip, h)| (e.as_str(), *ip, h)))
    }

    /// The pairs sorted by entity then IP (the file order).
    pub fn sorted(&self) -> Vec<(&str, IpAddr, &PairHistory)> {
        let mut v: Vec<_> = self.iter().collect();
        v.sort_unstable_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));
        v
    }

    /// Write the pair file: header, then the sorted lines. Returns the bytes written.
    pub fn write<W: Write>(&self, w: &mut W) -> io::Result<u64> {
        let mut counter = Counting { inner: w, n: 0 };
        writeln!(counter, "{PAIR_HEADER}")?;
        for (entity, ip, h) in self.sorted() {
            write_pair_line(&mut counter, entity, ip, h)?;
        }
        counter.flush()?;
        Ok(counter.n)
    }
}

struct Counting<'w, W> {
    inner: &'w mut W,
    n: u64,
}

impl<W: Write> Write for Counting<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.n += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// One pair line (no header).
pub fn write_pair_line<W: Write>(
    w: &mut W,
    entity: &str,
    ip: IpAddr,
    h: &PairHistory,
) -> io::Result<()> {
    write_entity(w, entity)?;
    writeln!(w, ",{ip},{},{},{}", h.events, h.first_seen, h.last_seen)
}

#[derive(Debug, thiserror::Error)]
pub enum PairError {
    #[error("line 1: expected the pair-file header `{PAIR_HEADER}`, found {found:?}")]
    Header { found: String },
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Counts of a pair-file read.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PairReadStats {
    /// Lines after the header.
    pub lines: u64,
    pub pairs: u64,
    pub blank: u64,
}

/// One pair line parsed; `line` is the whole line (without its ending), so errors can quote it.
fn parse_pair_line(line: &str) -> Result<(String, IpAddr, PairHistory), String> {
    let (entity, rest) = split_entity(line)
        .ok_or_else(|| "expected 5 columns: entity,ip,events,first_seen,last_seen".to_string())?;
    if entity.is_empty() {
        return Err("empty entity".into());
    }
    let mut f = rest.split(',');
    let (Some(ip), Some(events), Some(first), Some(last), None) =
        (f.next(), f.next(), f.next(), f.next(), f.next())
    else {
        return Err(format!(
            "expected 5 columns: entity,ip,events,first_seen,last_seen, found {:?}",
            line
        ));
    };
    let ip: IpAddr = ip
        .parse()
        .map_err(|_| format!("{ip:?} is not an IP address"))?;
    let events: u64 = events
        .parse()
        .ok()
        .filter(|&n| n > 0)
        .ok_or_else(|| format!("events {events:?} is not a positive count"))?;
    for t in [first, last] {
        if !t.is_empty() && epoch_seconds(t).is_none() {
            return Err(format!("{t:?} is not an RFC 3339 time"));
        }
    }
    Ok((
        entity.into_owned(),
        ip,
        PairHistory {
            events,
            first_seen: first.to_owned(),
            last_seen: last.to_owned(),
        },
    ))
}

/// Read a pair file, calling `f(entity, ip, history)` per line. The header is required; the first
/// malformed line fails the read with its number (a pair file is machine-written: a bad line means
/// a damaged file, and training on the rest would silently lose history).
pub fn read_pair_file<R: BufRead>(
    mut r: R,
    mut f: impl FnMut(&str, IpAddr, &PairHistory),
) -> Result<PairReadStats, PairError> {
    let mut buf = Vec::with_capacity(256);
    r.read_until(b'\n', &mut buf)?;
    if !is_pair_header(&buf) {
        return Err(PairError::Header {
            found: String::from_utf8_lossy(&buf)
                .trim_end()
                .chars()
                .take(80)
                .collect(),
        });
    }
    let mut stats = PairReadStats::default();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf)? == 0 {
            return Ok(stats);
        }
        stats.lines += 1;
        let line_no = stats.lines + 1;
        let malformed = |message: String| PairError::Malformed {
            line: line_no,
            message,
        };
        let line = std::str::from_utf8(&buf).map_err(|_| malformed("not UTF-8".into()))?;
        let line = line.trim_end_matches(['\n', '\r']);
        if line.trim().is_empty() {
            stats.blank += 1;
            continue;
        }
        let (entity, ip, h) = parse_pair_line(line).map_err(malformed)?;
        stats.pairs += 1;
        f(&entity, ip, &h);
    }
}

/// Read a pair file into an aggregate (lines of the same pair are merged).
pub fn read_pair_aggregate<R: BufRead>(
    r: R,
    into: &mut PairAggregate,
) -> Result<PairReadStats, PairError> {
    read_pair_file(r, |e, ip, h| into.add(e, ip, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn aggregates_counts_and_time_range() {
        let mut a = PairAggregate::new();
        a.add_event("AIDA1", ip("198.51.100.7"), Some("2026-01-05T10:00:00Z"));
        a.add_event("AIDA1", ip("198.51.100.7"), Some("2026-01-05T09:00:00Z"));
        a.add_event("AIDA1", ip("198.51.100.7"), None);
        a.add_event("AIDA1", ip("198.51.100.7"), Some("2026-01-06T01:00:00Z"));
        a.add_event(
            "1:a,\"b\"",
            ip("2001:db8::1"),
            Some("2026-01-05T00:00:00.500Z"),
        );
        a.add_event("1:a,\"b\"", ip("2001:db8::1"), Some("2026-01-05T00:00:00Z"));
        let mut out = Vec::new();
        let n = a.write(&mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(n as usize, text.len());
        assert_eq!(
            text,
            "entity,ip,events,first_seen,last_seen\n\
             \"1:a,\"\"b\"\"\",2001:db8::1,2,2026-01-05T00:00:00Z,2026-01-05T00:00:00.500Z\n\
             AIDA1,198.51.100.7,4,2026-01-05T09:00:00Z,2026-01-06T01:00:00Z\n"
        );
        // Read back and merge with itself: counts double, times stay.
        let mut b = PairAggregate::new();
        for _ in 0..2 {
            read_pair_aggregate(text.as_bytes(), &mut b).unwrap();
        }
        let s = b.sorted();
        assert_eq!(s.len(), 2);
        assert_eq!(s[1].2.events, 8);
        assert_eq!(s[1].2.first_seen, "2026-01-05T09:00:00Z");
        assert_eq!(s[1].2.first_day(), Some(20_458));
        assert_eq!(s[1].2.last_day(), Some(20_459));
    }

    #[test]
    fn training_weight_is_per_active_day_and_log_of_count() {
        let h = |events, first: &str, last: &str| PairHistory {
            events,
            first_seen: first.into(),
            last_seen: last.into(),
        };
        // One event: one sample. Unknown times: one day.
        assert_eq!(training_weight(&h(1, "", "")), 1);
        assert_eq!(training_weight(&h(100, "", "")), 6); // 1 + ln 100
                                                         // 10 days × 100 a day: 10 × (1 + ln 100) = 56, not 1000.
        let ten = h(1000, "2026-01-01T00:00:00Z", "2026-01-10T23:00:00Z");
        assert_eq!(training_weight(&ten), 56);
        // More days weigh more than more events on the same days.
        let twenty = h(1000, "2026-01-01T00:00:00Z", "2026-01-20T23:00:00Z");
        assert!(training_weight(&twenty) > training_weight(&ten));
        // Fewer events than days in the span: at most one active day per event.
        assert_eq!(
            training_weight(&h(3, "2026-01-01T00:00:00Z", "2026-03-01T00:00:00Z")),
            3
        );
        assert_eq!(
            training_weight(&h(u64::MAX, "2000-01-01T00:00:00Z", "2026-01-01T00:00:00Z")),
            MAX_TRAINING_WEIGHT
        );
    }

    #[test]
    fn merge_keeps_earliest_and_latest_and_unknown_never_wins() {
        let mut h = PairHistory {
            events: 1,
            first_seen: String::new(),
            last_seen: String::new(),
        };
        h.merge(&PairHistory {
            events: 2,
            first_seen: "2026-01-02T00:00:00Z".into(),
            last_seen: "2026-01-03T00:00:00Z".into(),
        });
        h.merge(&PairHistory {
            events: 3,
            first_seen: "2026-01-01T23:59:59.9Z".into(),
            last_seen: "2026-01-03T00:00:00.01Z".into(),
        });
        h.merge(&PairHistory::default());
        assert_eq!(h.events, 6);
        assert_eq!(h.first_seen, "2026-01-01T23:59:59.9Z");
        assert_eq!(h.last_seen, "2026-01-03T00:00:00.01Z");
    }

    #[test]
    fn header_is_required_and_bad_lines_name_their_number() {
        let e = read_pair_file("AIDA1,1.2.3.4\n".as_bytes(), |_, _, _| {}).unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 1: expected the pair-file header `entity,ip,events,first_seen,last_seen`, found \"AIDA1,1.2.3.4\""
        );
        for (body, msg) in [
            (
                "a,1.2.3.4,1,,\nb,1.2.3.4,0,,\n",
                "line 3: events \"0\" is not a positive count",
            ),
            ("a,1.2.3.4,1,,,\n", "line 2: expected 5 columns"),
            (
                "a,1.2.3.4.5,1,,\n",
                "line 2: \"1.2.3.4.5\" is not an IP address",
            ),
            (
                "a,1.2.3.4,1,yesterday,\n",
                "line 2: \"yesterday\" is not an RFC 3339 time",
            ),
            (",1.2.3.4,1,,\n", "line 2: empty entity"),
        ] {
            let text = format!("{PAIR_HEADER}\r\n{body}");
            let e = read_pair_file(text.as_bytes(), |_, _, _| {}).unwrap_err();
            assert!(e.to_string().starts_with(msg), "{e} / {msg}");
        }
        let mut n = 0;
        let st = read_pair_file(
            format!("\u{feff}{PAIR_HEADER}\r\n\r\na,1.2.3.4,3,,\r\n").as_bytes(),
            |e, ip, h| {
                n += 1;
                assert_eq!((e, ip, h.events), ("a", "1.2.3.4".parse().unwrap(), 3));
            },
        )
        .unwrap();
        assert_eq!((n, st.blank, st.pairs, st.lines), (1, 1, 1, 2));
    }
}
