//! Reader for the tuple CSV (`entity,ip` lines, no header): SageMaker IP Insights' training channel
//! format. Malformed lines are reported with their line number; they either fail the read or are
//! skipped and counted. [`read_training_data`] also reads ipsight's pair file (told apart by its
//! header line, see `ipsight_formats::pairs`), each line weighted by `training_weight`.
use std::io::{BufRead, Read};
use std::net::IpAddr;

use ipsight_formats::pairs::{is_pair_header, read_pair_file, training_weight, PairError};

use thiserror::Error;

use crate::train::TrainingData;
use crate::wire::{parse_ip, split_csv_pair};

#[derive(Debug, Error)]
pub enum TupleError {
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("line {line}: not UTF-8")]
    Utf8 { line: u64 },
    #[error("pair file: {0}")]
    Pairs(#[from] PairError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// What to do with a malformed line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Malformed {
    #[default]
    Fail,
    /// Skip it, count it, and remember the first few for the report.
    Skip,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReadStats {
    pub lines: u64,
    pub pairs: u64,
    pub blank: u64,
    pub skipped: u64,
    /// The first (up to 10) skipped lines' errors, for the report.
    pub first_errors: Vec<String>,
    /// Pair file only: its lines (distinct pairs), and the events they stand for; `pairs` is then
    /// the weighted sample count.
    pub pair_lines: u64,
    pub events: u64,
    /// Pair file only: how many of its pairs are IPv6 (trained beside the IPv4 ones).
    pub ipv6_pairs: u64,
}

/// Calls `f(entity, ip)` for every well-formed line.
pub fn for_each_tuple(
    mut reader: impl BufRead,
    mode: Malformed,
    mut f: impl FnMut(&str, IpAddr),
) -> Result<ReadStats, TupleError> {
    let mut stats = ReadStats::default();
    let mut buf = Vec::with_capacity(256);
    loop {
        buf.clear();
        if reader.read_until(b'\n', &mut buf)? == 0 {
            break;
        }
        stats.lines += 1;
        let line_no = stats.lines;
        let parsed = match std::str::from_utf8(&buf) {
            Err(_) => Err("not UTF-8".to_string()),
            Ok(line) if line.trim().is_empty() => {
                stats.blank += 1;
                continue;
            }
            Ok(line) => split_csv_pair(line).and_then(|(e, ip)| {
                if e.is_empty() {
                    return Err("empty entity".to_string());
                }
                Ok((e, parse_ip(ip)?))
            }),
        };
        match parsed {
            Ok((e, ip)) => {
                stats.pairs += 1;
                f(&e, ip);
            }
            Err(message) => match mode {
                Malformed::Fail => {
                    return Err(TupleError::Malformed {
                        line: line_no,
                        message,
                    })
                }
                Malformed::Skip => {
                    stats.skipped += 1;
                    if stats.first_errors.len() < 10 {
                        stats
                            .first_errors
                            .push(format!("line {line_no}: {message}"));
                    }
                }
            },
        }
    }
    Ok(stats)
}

/// Reads a tuple CSV or a pair file (told apart by the pair file's header line) into training data
/// (entities hashed on the fly). A pair line becomes `training_weight` samples of its pair. `mode`
/// applies to tuple CSVs; a pair file is machine-written, so a malformed line fails the read.
pub fn read_training_data(
    mut reader: impl BufRead,
    mode: Malformed,
) -> Result<(TrainingData, ReadStats), TupleError> {
    let mut data = TrainingData::new();
    let mut first = Vec::with_capacity(64);
    reader.read_until(b'\n', &mut first)?;
    let reader = std::io::Cursor::new(first).chain(reader);
    if !is_pair_header(reader.get_ref().0.get_ref()) {
        let stats = for_each_tuple(reader, mode, |e, ip| data.push(e, ip))?;
        return Ok((data, stats));
    }
    let mut stats = ReadStats::default();
    let read = read_pair_file(reader, |e, ip, h| {
        stats.events += h.events;
        let w = training_weight(h);
        data.push_copies(e, ip, w);
        stats.pairs += w as u64;
        stats.ipv6_pairs += u64::from(ip.is_ipv6());
    })?;
    stats.lines = read.lines + 1;
    stats.blank = read.blank;
    stats.pair_lines = read.pairs;
    Ok((data, stats))
}

/// Reads a tuple CSV or a pair file (as [`read_training_data`]) into the observations the hybrid
/// detector trains from: one per tuple line (one event, no time) or per pair line (its events,
/// first/last day, and `training_weight` samples for the embedding). IPv6 pairs are kept: the
/// baseline takes them (`ipv6_pairs` counts them; the IPv4 embedding skips them).
pub fn read_pair_log(
    mut reader: impl BufRead,
    mode: Malformed,
) -> Result<(crate::hybrid::PairLog, ReadStats), TupleError> {
    let mut log = crate::hybrid::PairLog::new();
    let mut first = Vec::with_capacity(64);
    reader.read_until(b'\n', &mut first)?;
    let reader = std::io::Cursor::new(first).chain(reader);
    if !is_pair_header(reader.get_ref().0.get_ref()) {
        let stats = for_each_tuple(reader, mode, |e, ip| log.push_tuple(e, ip))?;
        return Ok((log, stats));
    }
    let mut stats = ReadStats::default();
    let day = |d: Option<i64>| d.and_then(|d| u32::try_from(d).ok());
    let read = read_pair_file(reader, |e, ip, h| {
        stats.events += h.events;
        let w = training_weight(h);
        if ip.to_canonical().is_ipv6() {
            stats.ipv6_pairs += 1;
        } else {
            stats.pairs += w as u64;
        }
        log.push_weighted(e, ip, h.events, day(h.first_day()), day(h.last_day()), w);
    })?;
    stats.lines = read.lines + 1;
    stats.blank = read.blank;
    stats.pair_lines = read.pairs;
    Ok((log, stats))
}

/// Reads a tuple CSV keeping the entity strings.
pub fn read_pairs(
    reader: impl BufRead,
    mode: Malformed,
) -> Result<(Vec<(String, IpAddr)>, ReadStats), TupleError> {
    let mut pairs = Vec::new();
    let stats = for_each_tuple(reader, mode, |e, ip| pairs.push((e.to_string(), ip)))?;
    Ok((pairs, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = "alice,1.2.3.4\n\nbob, 5.6.7.8\r\n\"c,d\",9.9.9.9\nbad line\nx,300.1.1.1\ny,1.2.3.4,extra\n";

    #[test]
    fn pair_files_are_recognised_by_their_header_and_weighted() {
        let text = "entity,ip,events,first_seen,last_seen\n\
                    a,1.2.3.4,1000,2026-01-01T00:00:00Z,2026-01-10T23:00:00Z\n\
                    b,5.6.7.8,1,,\n\
                    c,2001:db8::1,4,,\n";
        let (data, stats) = read_training_data(text.as_bytes(), Malformed::Fail).unwrap();
        // c's IPv6 pair trains too (weight 2 for 4 events without times).
        assert_eq!(data.len(), 59);
        assert_eq!(stats.pairs, 59);
        assert_eq!(data.ipv6_pairs(), 2);
        assert_eq!(
            (stats.pair_lines, stats.events, stats.ipv6_pairs),
            (3, 1005, 1)
        );
        let a = crate::hashing::fnv1a64(b"a");
        assert_eq!(data.entity_hashes.iter().filter(|&&h| h == a).count(), 56);
        // The same lines without the header are not a tuple CSV.
        let err = read_training_data(&text.as_bytes()[38..], Malformed::Fail).unwrap_err();
        assert!(err.to_string().starts_with("line 1: "), "{err}");
        let err = read_training_data(
            format!("{}x,1.2.3.4,0,,\n", &text[..38]).as_bytes(),
            Malformed::Skip,
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "pair file: line 2: events \"0\" is not a positive count"
        );
        // A tuple CSV still reads as before, first line included.
        let (data, _) =
            read_training_data("a,1.2.3.4\nb,5.6.7.8\n".as_bytes(), Malformed::Fail).unwrap();
        assert_eq!(data.len(), 2);
    }

    #[test]
    fn fails_on_first_malformed_line_with_its_number() {
        let err = read_pairs(INPUT.as_bytes(), Malformed::Fail).unwrap_err();
        assert_eq!(err.to_string(), "line 5: expected two columns: entity,ip");
    }

    #[test]
    fn skips_and_counts() {
        let (pairs, stats) = read_pairs(INPUT.as_bytes(), Malformed::Skip).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("alice".to_string(), IpAddr::from([1, 2, 3, 4])),
                ("bob".to_string(), IpAddr::from([5, 6, 7, 8])),
                ("c,d".to_string(), IpAddr::from([9, 9, 9, 9])),
            ]
        );
        assert_eq!(stats.skipped, 3);
        assert_eq!(stats.blank, 1);
        assert_eq!(stats.lines, 7);
        assert!(
            stats.first_errors[1].starts_with("line 6: \"300.1.1.1\""),
            "{:?}",
            stats.first_errors
        );
        assert!(
            stats.first_errors[2].contains("line 7"),
            "{:?}",
            stats.first_errors
        );
    }
}
