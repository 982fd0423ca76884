//! CloudTrail log objects → `entity,ip` tuples, streaming.
//!
//! A CloudTrail object is one JSON document `{"Records":[{…},{…},…]}` that can reach hundreds of MB
//! uncompressed, usually on a single line. We never hold it whole: the decompressed stream is read in
//! chunks, and each record is parsed from the buffer with `serde_json::from_slice` as soon as it is
//! complete, then dropped. Memory is bounded by the buffer plus the largest record (itself capped).
//! Bare arrays of records (exports, the stratus-red-team samples) are accepted too.
use std::borrow::Cow;
use std::io::{self, BufRead, Read, Write};
use std::net::Ipv4Addr;

use serde::{de::IgnoredAny, Deserialize, Serialize};

use crate::entity::normalise_entity;
use crate::ip::{classify_ip, IpClass};
use crate::limit::{is_cap_error, maybe_gunzip, CappedReader};
use crate::tuples::write_tuple;

/// Limits for one object.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Maximum uncompressed bytes read from one object (gzip-bomb guard).
    pub max_uncompressed_bytes: u64,
    /// Maximum size of a single record.
    pub max_record_bytes: usize,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            // Real CloudTrail objects stay well under this; a bomb does not.
            max_uncompressed_bytes: 4 << 30,
            max_record_bytes: 32 << 20,
        }
    }
}

/// Counts for one object (or, summed, for many). Every record lands in exactly one bucket:
/// `tuples + no_principal + aws_internal + service_host + ipv6 + missing_ip + invalid_ip == records`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrepareStats {
    pub records: u64,
    pub tuples: u64,
    pub no_principal: u64,
    pub aws_internal: u64,
    pub service_host: u64,
    pub ipv6: u64,
    pub missing_ip: u64,
    pub invalid_ip: u64,
    /// Uncompressed bytes read.
    pub bytes_in: u64,
}

impl PrepareStats {
    pub fn add(&mut self, o: &PrepareStats) {
        self.records += o.records;
        self.tuples += o.tuples;
        self.no_principal += o.no_principal;
        self.aws_internal += o.aws_internal;
        self.service_host += o.service_host;
        self.ipv6 += o.ipv6;
        self.missing_ip += o.missing_ip;
        self.invalid_ip += o.invalid_ip;
        self.bytes_in += o.bytes_in;
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CloudTrailError {
    #[error(
        "read failed after {offset} uncompressed bytes (truncated or corrupt gzip?): {source}"
    )]
    Read { offset: u64, source: io::Error },
    #[error(
        "uncompressed size exceeds the cap of {cap} bytes (gzip bomb or unexpectedly large object)"
    )]
    TooLarge { cap: u64 },
    #[error("a single record exceeds {limit} bytes (at record {record})")]
    RecordTooLarge { limit: usize, record: u64 },
    #[error("invalid JSON at record {record} (uncompressed byte offset {offset}): {source}")]
    Json {
        record: u64,
        offset: u64,
        source: serde_json::Error,
    },
    #[error("unexpected {found} at uncompressed byte offset {offset}: expected {expected}")]
    Structure {
        offset: u64,
        found: String,
        expected: &'static str,
    },
    #[error("no `Records` array: not a CloudTrail log file (a digest file?)")]
    NoRecords,
    #[error("writing output failed: {0}")]
    Write(io::Error),
}

/// The fields of a CloudTrail record we use; everything else is skipped without allocation.
#[derive(Debug, Deserialize)]
pub struct Record<'a> {
    #[serde(rename = "userIdentity", borrow, default)]
    pub user_identity: Option<UserIdentity<'a>>,
    #[serde(rename = "sourceIPAddress", borrow, default)]
    pub source_ip_address: Option<Cow<'a, str>>,
    #[serde(rename = "eventSource", borrow, default)]
    pub event_source: Option<Cow<'a, str>>,
    #[serde(rename = "eventTime", borrow, default)]
    pub event_time: Option<Cow<'a, str>>,
}

#[derive(Debug, Deserialize)]
pub struct UserIdentity<'a> {
    #[serde(rename = "type", borrow, default)]
    pub identity_type: Option<Cow<'a, str>>,
    #[serde(rename = "principalId", borrow, default)]
    pub principal_id: Option<Cow<'a, str>>,
    #[serde(rename = "accountId", borrow, default)]
    pub account_id: Option<Cow<'a, str>>,
}

/// Why a record yields no tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTuple {
    NoPrincipal,
    AwsInternal,
    ServiceHost,
    Ipv6,
    MissingIp,
    InvalidIp,
}

/// Apply the tuple contract (ARCHITECTURE.md) to one record.
pub fn record_tuple(rec: &Record<'_>) -> Result<(String, Ipv4Addr), NoTuple> {
    let ui = rec.user_identity.as_ref();
    let entity = normalise_entity(
        ui.and_then(|u| u.identity_type.as_deref()),
        ui.and_then(|u| u.principal_id.as_deref()),
        ui.and_then(|u| u.account_id.as_deref()),
    );
    let ip = match rec.source_ip_address.as_deref() {
        None | Some("") => Err(NoTuple::MissingIp),
        Some(s) => match classify_ip(s) {
            IpClass::V4(v4) => Ok(v4),
            IpClass::V6(_) => Err(NoTuple::Ipv6),
            IpClass::AwsInternal => Err(NoTuple::AwsInternal),
            IpClass::ServiceHost => Err(NoTuple::ServiceHost),
            IpClass::Invalid => Err(NoTuple::InvalidIp),
        },
    };
    // A missing principal is reported first: it is the reason no tuple could ever exist.
    let entity = entity.ok_or(NoTuple::NoPrincipal)?;
    Ok((entity, ip?))
}

impl PrepareStats {
    fn count(&mut self, r: Result<(), NoTuple>) {
        self.records += 1;
        match r {
            Ok(()) => self.tuples += 1,
            Err(NoTuple::NoPrincipal) => self.no_principal += 1,
            Err(NoTuple::AwsInternal) => self.aws_internal += 1,
            Err(NoTuple::ServiceHost) => self.service_host += 1,
            Err(NoTuple::Ipv6) => self.ipv6 += 1,
            Err(NoTuple::MissingIp) => self.missing_ip += 1,
            Err(NoTuple::InvalidIp) => self.invalid_ip += 1,
        }
    }
}

/// Stream a CloudTrail object (gzip or plain JSON) into tuple CSV lines on `out`.
///
/// On error the caller must discard what was written: the error says which record and why, and
/// callers write to a temporary file that is only published on success (no half outputs).
pub fn prepare_cloudtrail<R: BufRead, W: Write>(
    input: R,
    out: &mut W,
    opts: &PrepareOptions,
) -> Result<PrepareStats, CloudTrailError> {
    let mut stats = PrepareStats::default();
    let mut write_err: Option<io::Error> = None;
    let bytes = for_each_record(input, opts, |rec| {
        let t = record_tuple(rec);
        let r = match t {
            Ok((entity, ip)) => {
                if let Err(e) = write_tuple(out, &entity, ip) {
                    write_err = Some(e);
                    return false;
                }
                Ok(())
            }
            Err(e) => Err(e),
        };
        stats.count(r);
        true
    })?;
    if let Some(e) = write_err {
        return Err(CloudTrailError::Write(e));
    }
    stats.bytes_in = bytes;
    Ok(stats)
}

/// Call `f` for every record of a CloudTrail object, in order, without holding the object in memory.
/// `f` returns `false` to stop early. Returns the uncompressed bytes read.
pub fn for_each_record<R: BufRead>(
    input: R,
    opts: &PrepareOptions,
    mut f: impl FnMut(&Record<'_>) -> bool,
) -> Result<u64, CloudTrailError> {
    let decoded = maybe_gunzip(input).map_err(|e| CloudTrailError::Read {
        offset: 0,
        source: e,
    })?;
    let capped = CappedReader::new(decoded, opts.max_uncompressed_bytes);
    let mut s = Scanner::new(capped, opts.max_record_bytes);
    s.skip_ws()?;
    match s.peek()? {
        Some(b'[') => {
            s.pos += 1;
            s.records(&mut f)?;
        }
        Some(b'{') => {
            s.pos += 1;
            let mut saw_records = false;
            loop {
                s.skip_ws()?;
                match s.peek()? {
                    Some(b'}') => {
                        s.pos += 1;
                        break;
                    }
                    Some(b'"') => {}
                    other => return Err(s.unexpected(other, "an object key or '}'")),
                }
                let key: String = s.parse_one(|v: String| v)?;
                s.skip_ws()?;
                s.expect(b':', "':'")?;
                s.skip_ws()?;
                if key == "Records" && !saw_records {
                    saw_records = true;
                    s.expect(b'[', "the Records array")?;
                    if !s.records(&mut f)? {
                        return Ok(s.consumed());
                    }
                } else {
                    s.parse_one(|_: IgnoredAny| ())?;
                }
                s.skip_ws()?;
                match s.peek()? {
                    Some(b',') => s.pos += 1,
                    Some(b'}') => {
                        s.pos += 1;
                        break;
                    }
                    other => return Err(s.unexpected(other, "',' or '}'")),
                }
            }
            if !saw_records {
                return Err(CloudTrailError::NoRecords);
            }
        }
        None => return Err(CloudTrailError::NoRecords),
        other => return Err(s.unexpected(other, "'{' or '['")),
    }
    s.skip_ws()?;
    if let Some(c) = s.peek()? {
        return Err(s.unexpected(Some(c), "end of file"));
    }
    Ok(s.consumed())
}

/// A growable window over the decompressed stream: `buf[pos..end]` is unconsumed data. `buf` is
/// zero-filled only when it grows, never per read, and starts small because most CloudTrail objects
/// are tens of KB (a large fresh buffer per object costs page faults on every file).
struct Scanner<R> {
    r: CappedReader<R>,
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    /// Absolute stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    max_record: usize,
    record_no: u64,
}

const CHUNK: usize = 64 << 10;

impl<R: Read> Scanner<R> {
    fn new(r: CappedReader<R>, max_record: usize) -> Self {
        Self {
            r,
            buf: vec![0; CHUNK],
            pos: 0,
            end: 0,
            base: 0,
            eof: false,
            max_record,
            record_no: 0,
        }
    }

    fn consumed(&self) -> u64 {
        self.r.consumed()
    }

    fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Read at least `min_new` more bytes (or to EOF), first moving unconsumed data to the front.
    fn fill(&mut self, min_new: usize) -> Result<(), CloudTrailError> {
        if self.pos > 0 {
            self.buf.copy_within(self.pos..self.end, 0);
            self.base += self.pos as u64;
            self.end -= self.pos;
            self.pos = 0;
        }
        let target = self.end + min_new.max(1);
        if self.buf.len() < target {
            // Powers of two, but no larger than a record at the cap needs (see `grow`).
            let size = target
                .next_power_of_two()
                .min(self.max_record.saturating_add(1 + CHUNK))
                .max(target);
            // `resize` alone grows the capacity amortised (doubling), which would undo the bound.
            self.buf.reserve_exact(size - self.buf.len());
            self.buf.resize(size, 0);
        }
        while self.end < target && !self.eof {
            match self.r.read(&mut self.buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    if is_cap_error(&e) {
                        return Err(CloudTrailError::TooLarge { cap: self.r_cap() });
                    }
                    return Err(CloudTrailError::Read {
                        offset: self.base + self.end as u64,
                        source: e,
                    });
                }
            }
        }
        Ok(())
    }

    fn r_cap(&self) -> u64 {
        // The cap is the number of bytes consumed when it trips.
        self.r.consumed()
    }

    fn peek(&mut self) -> Result<Option<u8>, CloudTrailError> {
        if self.pos >= self.end {
            if self.eof {
                return Ok(None);
            }
            self.fill(CHUNK)?;
            if self.pos >= self.end {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[self.pos]))
    }

    fn skip_ws(&mut self) -> Result<(), CloudTrailError> {
        loop {
            while self.pos < self.end {
                match self.buf[self.pos] {
                    b' ' | b'\n' | b'\r' | b'\t' => self.pos += 1,
                    _ => return Ok(()),
                }
            }
            if self.eof {
                return Ok(());
            }
            self.fill(CHUNK)?;
        }
    }

    fn expect(&mut self, c: u8, what: &'static str) -> Result<(), CloudTrailError> {
        match self.peek()? {
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            other => Err(self.unexpected(other, what)),
        }
    }

    fn unexpected(&self, found: Option<u8>, expected: &'static str) -> CloudTrailError {
        let found = match found {
            None => "end of file".to_owned(),
            Some(c) if c.is_ascii_graphic() => format!("'{}'", c as char),
            Some(c) => format!("byte 0x{c:02x}"),
        };
        CloudTrailError::Structure {
            offset: self.offset(),
            found,
            expected,
        }
    }

    /// Parse one JSON value of type `T` at the cursor, hand it to `f`, advance past it.
    /// An incomplete value triggers a refill that at least doubles the window, so a record split
    /// across many chunks is re-parsed O(log n) times, not O(n).
    fn parse_one<T, O>(&mut self, mut f: impl FnMut(T) -> O) -> Result<O, CloudTrailError>
    where
        T: for<'de> Deserialize<'de>,
    {
        loop {
            let slice = &self.buf[self.pos..self.end];
            let mut it = serde_json::Deserializer::from_slice(slice).into_iter::<T>();
            match it.next() {
                Some(Ok(v)) => {
                    let n = it.byte_offset();
                    self.pos += n;
                    return Ok(f(v));
                }
                Some(Err(e)) if e.is_eof() && !self.eof => self.grow()?,
                None if !self.eof => self.grow()?,
                Some(Err(e)) => {
                    return Err(CloudTrailError::Json {
                        record: self.record_no,
                        offset: self.offset(),
                        source: e,
                    })
                }
                None => return Err(self.unexpected(None, "a JSON value")),
            }
        }
    }

    fn grow(&mut self) -> Result<(), CloudTrailError> {
        let pending = self.end - self.pos;
        if pending > self.max_record {
            return Err(CloudTrailError::RecordTooLarge {
                limit: self.max_record,
                record: self.record_no,
            });
        }
        // Double the window (O(log n) re-parses of a long record), but stop one byte past the cap:
        // that is enough to tell a record over the cap, and keeps the window near the cap instead of
        // twice it (a 100 MB record peaked at 64 MiB with the 32 MiB cap before).
        let room = (self.max_record + 1).saturating_sub(pending).max(1);
        self.fill(pending.max(CHUNK).min(room))
    }

    /// The records of an array whose '[' has been consumed. Returns false if `f` asked to stop.
    fn records(
        &mut self,
        f: &mut impl FnMut(&Record<'_>) -> bool,
    ) -> Result<bool, CloudTrailError> {
        self.skip_ws()?;
        if self.peek()? == Some(b']') {
            self.pos += 1;
            return Ok(true);
        }
        loop {
            self.skip_ws()?;
            self.record_no += 1;
            let keep_going = loop {
                let slice = &self.buf[self.pos..self.end];
                let mut it = serde_json::Deserializer::from_slice(slice).into_iter::<Record<'_>>();
                match it.next() {
                    Some(Ok(rec)) => {
                        let n = it.byte_offset();
                        let go = f(&rec);
                        self.pos += n;
                        break go;
                    }
                    Some(Err(e)) if e.is_eof() && !self.eof => self.grow()?,
                    None if !self.eof => self.grow()?,
                    Some(Err(e)) => {
                        return Err(CloudTrailError::Json {
                            record: self.record_no,
                            offset: self.offset(),
                            source: e,
                        })
                    }
                    None => return Err(self.unexpected(None, "a record")),
                }
            };
            if !keep_going {
                return Ok(false);
            }
            self.skip_ws()?;
            match self.peek()? {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(true);
                }
                other => return Err(self.unexpected(other, "',' or ']' after a record")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};

    fn run(input: &[u8]) -> Result<(String, PrepareStats), CloudTrailError> {
        let mut out = Vec::new();
        let st = prepare_cloudtrail(input, &mut out, &PrepareOptions::default())?;
        Ok((String::from_utf8(out).unwrap(), st))
    }

    fn gz(data: &[u8]) -> Vec<u8> {
        let mut e = GzEncoder::new(Vec::new(), Compression::fast());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    const DOC: &str = r#"{"Records":[
      {"eventVersion":"1.08","userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1","accountId":"111122223333","accessKeyId":"AKIAXXXXXXXXXXXXXXXX"},"sourceIPAddress":"198.51.100.7","userAgent":"aws-cli"},
      {"userIdentity":{"type":"AssumedRole","principalId":"AROAROLE1:i-0abc","sessionContext":{"a":[1,2,{"b":"}"}]}},"sourceIPAddress":"203.0.113.9"},
      {"userIdentity":{"type":"FederatedUser","principalId":"111122223333:bob"},"sourceIPAddress":"192.0.2.1"},
      {"userIdentity":{"type":"Root","principalId":"111122223333","accountId":"111122223333"},"sourceIPAddress":"192.0.2.2"},
      {"userIdentity":{"type":"AWSService","invokedBy":"ec2.amazonaws.com"},"sourceIPAddress":"ec2.amazonaws.com"},
      {"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"},"sourceIPAddress":"AWS Internal"},
      {"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"},"sourceIPAddress":"cloudtrail.amazonaws.com"},
      {"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"},"sourceIPAddress":"2001:db8::1"},
      {"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"}},
      {"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"},"sourceIPAddress":"1.2.3.4.5"},
      {"userIdentity":{"type":"IAMUser","principalId":"AIDA\u0055SER2"},"sourceIPAddress":"198.51.100.8","extra":"\"quoted ] } ,"}
    ]}"#;

    #[test]
    fn rules_and_counts() {
        let (csv, st) = run(DOC.as_bytes()).unwrap();
        assert_eq!(
            csv,
            "AIDAUSER1,198.51.100.7\nAROAROLE1,203.0.113.9\n111122223333:bob,192.0.2.1\n111122223333,192.0.2.2\nAIDAUSER2,198.51.100.8\n"
        );
        assert_eq!(
            st,
            PrepareStats {
                records: 11,
                tuples: 5,
                no_principal: 1,
                aws_internal: 1,
                service_host: 1,
                ipv6: 1,
                missing_ip: 1,
                invalid_ip: 1,
                bytes_in: DOC.len() as u64
            }
        );
        // Same through gzip, and across tiny read chunks.
        let (csv2, _) = run(&gz(DOC.as_bytes())).unwrap();
        assert_eq!(csv, csv2);
    }

    #[test]
    fn bare_array_and_other_keys() {
        let (csv, st) =
            run(br#"[{"userIdentity":{"principalId":"AIDAX"},"sourceIPAddress":"1.1.1.1"}]"#)
                .unwrap();
        assert_eq!(csv, "AIDAX,1.1.1.1\n");
        assert_eq!(st.records, 1);
        let (csv, _) = run(br#"{"before":{"x":[1,2]},"Records":[],"after":"y"}"#).unwrap();
        assert_eq!(csv, "");
        let (_, st) = run(br#"{"Records":[]}"#).unwrap();
        assert_eq!(st.records, 0);
    }

    #[test]
    fn errors_are_clear() {
        let digest = br#"{"awsAccountId":"1","digestStartTime":"x","logFiles":[]}"#;
        assert!(matches!(run(digest), Err(CloudTrailError::NoRecords)));
        assert!(matches!(run(b""), Err(CloudTrailError::NoRecords)));
        let e = run(br#"{"Records":[{"userIdentity":{},"sourceIPAddress":"1.1.1.1"},{"oops"}]}"#)
            .unwrap_err();
        assert!(matches!(e, CloudTrailError::Json { record: 2, .. }), "{e}");
        assert!(e.to_string().contains("record 2"));
        let e = run(br#"{"Records":[{"a":1}"#).unwrap_err();
        assert!(
            e.to_string().contains("end of file") || matches!(e, CloudTrailError::Json { .. }),
            "{e}"
        );
        let e = run(br#"{"Records":[{"a":1}] trailing"#).unwrap_err();
        assert!(matches!(e, CloudTrailError::Structure { .. }), "{e}");
        let e = run(b"\x00\x01garbage").unwrap_err();
        assert!(matches!(e, CloudTrailError::Structure { .. }), "{e}");
        // Truncated gzip.
        let g = gz(DOC.as_bytes());
        let e = run(&g[..g.len() / 2]).unwrap_err();
        assert!(matches!(e, CloudTrailError::Read { .. }), "{e}");
        assert!(e.to_string().contains("truncated or corrupt gzip"));
    }

    #[test]
    fn caps() {
        // A gzip bomb: 64 MiB of spaces compresses to ~64 KiB.
        let bomb = gz(&vec![b' '; 64 << 20]);
        let opts = PrepareOptions {
            max_uncompressed_bytes: 1 << 20,
            ..Default::default()
        };
        let e = prepare_cloudtrail(&bomb[..], &mut Vec::new(), &opts).unwrap_err();
        assert!(matches!(e, CloudTrailError::TooLarge { .. }), "{e}");
        let big = format!(r#"{{"Records":[{{"x":"{}"}}]}}"#, "a".repeat(3 << 20));
        let opts = PrepareOptions {
            max_record_bytes: 1 << 20,
            ..Default::default()
        };
        let e = prepare_cloudtrail(big.as_bytes(), &mut Vec::new(), &opts).unwrap_err();
        assert!(matches!(e, CloudTrailError::RecordTooLarge { .. }), "{e}");
        // Under the cap, a multi-chunk record parses.
        let (_, st) = run(big.as_bytes()).unwrap();
        assert_eq!(st.records, 1);
    }

    #[test]
    fn many_records_across_chunks() {
        let mut doc = String::from("{\"Records\":[");
        for i in 0..20000 {
            if i > 0 {
                doc.push(',');
            }
            doc.push_str(&format!(
                r#"{{"userIdentity":{{"type":"IAMUser","principalId":"AIDA{i}"}},"sourceIPAddress":"10.0.{}.{}","pad":"{}"}}"#,
                i / 256 % 256,
                i % 256,
                "p".repeat(i % 97)
            ));
        }
        doc.push_str("]}");
        let (csv, st) = run(&gz(doc.as_bytes())).unwrap();
        assert_eq!(st.records, 20000);
        assert_eq!(st.tuples, 20000);
        assert_eq!(csv.lines().nth(19999).unwrap(), "AIDA19999,10.0.78.31");
    }

    #[test]
    fn real_stratus_red_team_samples() {
        let dir = format!(
            "{}/../../../shared/data/real/stratus-red-team",
            env!("CARGO_MANIFEST_DIR")
        );
        let mut total = PrepareStats::default();
        let mut files = 0;
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            let (csv, st) = run(&data).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            for line in csv.lines() {
                let (ent, ip) = line.split_once(',').unwrap();
                assert!(
                    !ent.contains(':') || !ent.starts_with("AROA"),
                    "session suffix kept: {line}"
                );
                assert!(ip.parse::<Ipv4Addr>().is_ok(), "{line}");
            }
            total.add(&st);
            files += 1;
        }
        assert!(files >= 30);
        assert!(total.records > 300 && total.tuples > 100, "{total:?}");
        assert_eq!(
            total.records,
            total.tuples
                + total.no_principal
                + total.aws_internal
                + total.service_host
                + total.ipv6
                + total.missing_ip
                + total.invalid_ip
        );
    }
}
