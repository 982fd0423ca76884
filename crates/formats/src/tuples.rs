//! The tuple CSV contract: `entity,ip\n`, no header, UTF-8 — SageMaker IP Insights' `text/csv`.
//!
//! Principal ids never contain commas, but federated user names may (`[\w+=,.@-]`), so an entity
//! holding `,`, `"`, CR or LF is written RFC 4180-quoted; everything else is written bare.
use std::io::{self, Write};
use std::net::IpAddr;

/// Write one `entity,ip` line (IPv6 in RFC 5952 canonical text: std's `Display`).
pub fn write_tuple<W: Write + ?Sized>(
    w: &mut W,
    entity: &str,
    ip: impl Into<IpAddr>,
) -> io::Result<()> {
    write_entity(w, entity)?;
    writeln!(w, ",{}", ip.into())
}

/// Write the entity field of a CSV line (tuple or pair file), RFC 4180-quoted only when needed.
pub fn write_entity<W: Write + ?Sized>(w: &mut W, entity: &str) -> io::Result<()> {
    if entity
        .bytes()
        .any(|c| matches!(c, b',' | b'"' | b'\n' | b'\r'))
    {
        w.write_all(b"\"")?;
        w.write_all(entity.replace('"', "\"\"").as_bytes())?;
        w.write_all(b"\"")
    } else {
        w.write_all(entity.as_bytes())
    }
}

/// Split one CSV line (without its newline) into `(entity, ip)` text, honouring RFC 4180 quotes on
/// the entity. Returns `None` when the line does not have exactly two fields.
pub fn split_tuple(line: &str) -> Option<(std::borrow::Cow<'_, str>, &str)> {
    let (e, ip) = split_entity(line.strip_suffix('\r').unwrap_or(line))?;
    (!ip.contains(',')).then_some((e, ip))
}

/// Split the (possibly quoted) entity field off a CSV line: `(entity, the fields after its comma)`.
/// `None` when there is no comma after the entity or a quote is not closed.
pub fn split_entity(line: &str) -> Option<(std::borrow::Cow<'_, str>, &str)> {
    if let Some(rest) = line.strip_prefix('"') {
        // Quoted entity: find the closing quote that is not doubled.
        let bytes = rest.as_bytes();
        let mut i = 0;
        let mut ent = String::new();
        while i < bytes.len() {
            if bytes[i] == b'"' {
                if bytes.get(i + 1) == Some(&b'"') {
                    ent.push('"');
                    i += 2;
                    continue;
                }
                let after = &rest[i + 1..];
                return Some((ent.into(), after.strip_prefix(',')?));
            }
            let ch = rest[i..].chars().next()?;
            ent.push(ch);
            i += ch.len_utf8();
        }
        None
    } else {
        let (e, rest) = line.split_once(',')?;
        Some((e.into(), rest))
    }
}

/// Where data goes to SageMaker IP Insights (the training channel, the endpoint), which is
/// IPv4-only: IPv4 tuples pass, IPv6 tuples are left out and counted, never dropped silently. The one
/// filter every producer of a SageMaker channel uses (the retrain's window expansion, a copy of tuple
/// CSVs), so "what SageMaker never sees" is counted the same way everywhere.
#[derive(Debug)]
pub struct SageMakerChannel<W> {
    out: W,
    counts: ChannelCounts,
}

/// What a [`SageMakerChannel`] passed and left out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct ChannelCounts {
    /// IPv4 tuples written to the channel.
    pub tuples: u64,
    /// IPv6 tuples left out (scored and trained by ipsight's own model instead).
    pub ipv6_left_out: u64,
}

/// A tuple CSV line a [`SageMakerChannel`] cannot pass on: the line number (1-based) and why.
#[derive(Debug, thiserror::Error)]
pub enum ChannelError {
    #[error("line {line}: {reason}")]
    Line { line: u64, reason: String },
    #[error("reading the tuples: {0}")]
    Read(io::Error),
    #[error("writing the SageMaker channel: {0}")]
    Write(io::Error),
}

impl<W: Write> SageMakerChannel<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            counts: ChannelCounts::default(),
        }
    }

    /// One pair: written when IPv4 (an IPv4-mapped IPv6 address is its IPv4 host), counted as
    /// left out when IPv6. Returns whether it was written.
    pub fn push(&mut self, entity: &str, ip: IpAddr) -> io::Result<bool> {
        match ip.to_canonical() {
            IpAddr::V4(v4) => {
                write_tuple(&mut self.out, entity, v4)?;
                self.counts.tuples += 1;
                Ok(true)
            }
            IpAddr::V6(_) => {
                self.counts.ipv6_left_out += 1;
                Ok(false)
            }
        }
    }

    /// Every line of a tuple CSV (`entity,ip`, IPv6 in any valid text). A line that is not a
    /// tuple fails the copy, naming the line: a channel is never written half-checked by accident.
    pub fn copy_tuples<R: io::BufRead>(&mut self, input: R) -> Result<(), ChannelError> {
        for (n, line) in input.lines().enumerate() {
            let line = line.map_err(ChannelError::Read)?;
            if line.trim().is_empty() {
                continue;
            }
            let bad = |reason: String| ChannelError::Line {
                line: n as u64 + 1,
                reason,
            };
            let (entity, ip) =
                split_tuple(&line).ok_or_else(|| bad("not an `entity,ip` tuple".into()))?;
            let ip = crate::ip::classify_ip(ip)
                .address()
                .ok_or_else(|| bad(format!("{ip:?} is not an IP address")))?;
            self.push(&entity, ip).map_err(ChannelError::Write)?;
        }
        Ok(())
    }

    pub fn counts(&self) -> ChannelCounts {
        self.counts
    }

    /// The writer and the counts.
    pub fn finish(self) -> (W, ChannelCounts) {
        (self.out, self.counts)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut out = Vec::new();
        write_tuple(&mut out, "AIDAX", std::net::Ipv4Addr::new(1, 2, 3, 4)).unwrap();
        write_tuple(&mut out, "1:a,\"b\"", std::net::Ipv4Addr::new(5, 6, 7, 8)).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, "AIDAX,1.2.3.4\n\"1:a,\"\"b\"\"\",5.6.7.8\n");
        let lines: Vec<_> = text.lines().map(|l| split_tuple(l).unwrap()).collect();
        assert_eq!(lines[0].0, "AIDAX");
        assert_eq!(lines[1].0, "1:a,\"b\"");
        assert_eq!(lines[1].1, "5.6.7.8");
        assert!(split_tuple("a,b,c").is_none());
        assert!(split_tuple("nocomma").is_none());
    }

    #[test]
    fn sagemaker_channel_passes_ipv4_and_counts_ipv6() {
        let input =
            "AIDAX,1.2.3.4\nAIDAX,2001:DB8::0:1\n\"1:a,b\",::ffff:5.6.7.8\nAROAY,2a02:1234::1\n";
        let mut ch = SageMakerChannel::new(Vec::new());
        ch.copy_tuples(input.as_bytes()).unwrap();
        let (out, counts) = ch.finish();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "AIDAX,1.2.3.4\n\"1:a,b\",5.6.7.8\n"
        );
        assert_eq!(
            counts,
            ChannelCounts {
                tuples: 2,
                ipv6_left_out: 2
            }
        );
        let mut ch = SageMakerChannel::new(Vec::new());
        let e = ch
            .copy_tuples("AIDAX,1.2.3.4\nAIDAX,fe80::1%eth0\n".as_bytes())
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "line 2: \"fe80::1%eth0\" is not an IP address"
        );
        let e = ch.copy_tuples("just-one-field\n".as_bytes()).unwrap_err();
        assert_eq!(e.to_string(), "line 1: not an `entity,ip` tuple");
    }
}
