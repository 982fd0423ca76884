//! Reader for the tuple CSV (`entity,ip` lines, no header): SageMaker IP Insights' training channel
//! format. Malformed lines are reported with their line number; they either fail the read or are
//! skipped and counted.
use std::io::BufRead;
use std::net::Ipv4Addr;

use thiserror::Error;

use crate::train::TrainingData;
use crate::wire::{parse_ip, split_csv_pair};

#[derive(Debug, Error)]
pub enum TupleError {
    #[error("line {line}: {message}")]
    Malformed { line: u64, message: String },
    #[error("line {line}: not UTF-8")]
    Utf8 { line: u64 },
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
}

/// Calls `f(entity, ip)` for every well-formed line.
pub fn for_each_tuple(
    mut reader: impl BufRead,
    mode: Malformed,
    mut f: impl FnMut(&str, Ipv4Addr),
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

/// Reads a tuple CSV into training data (entities hashed on the fly).
pub fn read_training_data(
    reader: impl BufRead,
    mode: Malformed,
) -> Result<(TrainingData, ReadStats), TupleError> {
    let mut data = TrainingData::new();
    let stats = for_each_tuple(reader, mode, |e, ip| data.push(e, ip))?;
    Ok((data, stats))
}

/// Reads a tuple CSV keeping the entity strings.
pub fn read_pairs(
    reader: impl BufRead,
    mode: Malformed,
) -> Result<(Vec<(String, Ipv4Addr)>, ReadStats), TupleError> {
    let mut pairs = Vec::new();
    let stats = for_each_tuple(reader, mode, |e, ip| pairs.push((e.to_string(), ip)))?;
    Ok((pairs, stats))
}

#[cfg(test)]
mod tests {
    use super::*;

    const INPUT: &str = "alice,1.2.3.4\n\nbob, 5.6.7.8\r\n\"c,d\",9.9.9.9\nbad line\nx,300.1.1.1\ny,1.2.3.4,extra\n";

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
                ("alice".to_string(), Ipv4Addr::new(1, 2, 3, 4)),
                ("bob".to_string(), Ipv4Addr::new(5, 6, 7, 8)),
                ("c,d".to_string(), Ipv4Addr::new(9, 9, 9, 9)),
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
