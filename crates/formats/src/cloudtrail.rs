//! CloudTrail log objects → `entity,ip` tuples, streaming.
//!
//! A CloudTrail object is one JSON document `{"Records":[{…},{…},…]}` that can reach hundreds of MB
//! uncompressed, usually on a single line. We never hold it whole: the decompressed stream is read in
//! chunks, and each record is parsed from the buffer as soon as it is complete, then dropped: by the
//! hand-written fast path of `fastrec` for the common shape, by `serde_json` for everything else
//! (and for every error). Memory is bounded by the buffer plus the largest record (itself capped).
//! Bare arrays of records (exports, the stratus-red-team samples) are accepted too. Many small
//! objects in a row go through a [`Workspace`], which reuses the buffers and the gzip decoder.
use std::borrow::Cow;
use std::io::{self, BufRead, Read, Write};
use std::net::IpAddr;

use flate2::bufread::GzDecoder;
use serde::{de::IgnoredAny, Deserialize, Serialize};

use crate::entity::{entity_for, EntityFields, EntityKind};
use crate::fastrec;
use crate::ip::{classify_ip, IpClass};
use crate::limit::{is_cap_error, maybe_gunzip, CappedReader};
use crate::pairs::PairAggregate;
use crate::tuples::write_tuple;

/// Limits for one object.
#[derive(Debug, Clone)]
pub struct PrepareOptions {
    /// Maximum uncompressed bytes read from one object (gzip-bomb guard).
    pub max_uncompressed_bytes: u64,
    /// Maximum size of a single record.
    pub max_record_bytes: usize,
    /// What the tuples' entities are.
    pub entity: EntityKind,
    /// What becomes of records from IPv6 addresses.
    pub ipv6: Ipv6Tuples,
}

/// What becomes of IPv6 records. SageMaker IP Insights is IPv4-only, so output bound for its
/// training channel sets them aside (counted as `ipv6`); ipsight's own model takes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Ipv6Tuples {
    /// Counted as `ipv6`, no tuple.
    #[default]
    SetAside,
    /// Written beside the IPv4 tuples, in canonical RFC 5952 text.
    Keep,
}

impl Default for PrepareOptions {
    fn default() -> Self {
        Self {
            // Real CloudTrail objects stay well under this; a bomb does not.
            max_uncompressed_bytes: 4 << 30,
            max_record_bytes: 32 << 20,
            entity: EntityKind::Principal,
            ipv6: Ipv6Tuples::SetAside,
        }
    }
}

/// Counts for one object (or, summed, for many). Every record lands in exactly one bucket:
/// `tuples + no_principal + aws_internal + service_host + ipv6 + missing_ip + invalid_ip == records`;
/// `ipv6_tuples` counts the IPv6 tuples among `tuples`, `ipv6` the IPv6 records set aside.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PrepareStats {
    pub records: u64,
    pub tuples: u64,
    pub no_principal: u64,
    pub aws_internal: u64,
    pub service_host: u64,
    pub ipv6: u64,
    pub ipv6_tuples: u64,
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
        self.ipv6_tuples += o.ipv6_tuples;
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
    /// Raw bytes, not checked as UTF-8: only entity definitions that use it look at it, so an odd
    /// user agent never fails an object prepared for principals (it was skipped unread before).
    #[serde(rename = "userAgent", borrow, default, deserialize_with = "raw_string")]
    pub user_agent: Option<Cow<'a, [u8]>>,
}

#[derive(Debug, Deserialize)]
pub struct UserIdentity<'a> {
    #[serde(rename = "type", borrow, default)]
    pub identity_type: Option<Cow<'a, str>>,
    #[serde(rename = "principalId", borrow, default)]
    pub principal_id: Option<Cow<'a, str>>,
    #[serde(rename = "accountId", borrow, default)]
    pub account_id: Option<Cow<'a, str>>,
    /// Raw bytes, for the same reason as [`Record::user_agent`].
    #[serde(rename = "arn", borrow, default, deserialize_with = "raw_string")]
    pub arn: Option<Cow<'a, [u8]>>,
    /// The AWS service that made the call for the principal (`athena.amazonaws.com`): the tuning
    /// file's `aws_callers.invoked_by` excludes such events from alerting.
    #[serde(rename = "invokedBy", borrow, default)]
    pub invoked_by: Option<Cow<'a, str>>,
}

/// Why a record yields no tuple.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoTuple {
    NoPrincipal,
    AwsInternal,
    ServiceHost,
    MissingIp,
    InvalidIp,
}

/// Apply the tuple contract (ARCHITECTURE.md) to one record.
pub fn record_tuple(rec: &Record<'_>) -> Result<(String, IpAddr), NoTuple> {
    record_tuple_as(rec, EntityKind::Principal)
}

/// A JSON string (or null) as its raw bytes: serde_json's `deserialize_bytes` does not check UTF-8.
fn raw_string<'de: 'a, 'a, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<Option<Cow<'a, [u8]>>, D::Error> {
    struct Bytes;
    impl<'de> serde::de::Visitor<'de> for Bytes {
        type Value = Cow<'de, [u8]>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string")
        }
        fn visit_borrowed_bytes<E>(self, v: &'de [u8]) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v))
        }
        fn visit_bytes<E>(self, v: &[u8]) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.to_vec()))
        }
        fn visit_byte_buf<E>(self, v: Vec<u8>) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v))
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(Cow::Borrowed(v.as_bytes()))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(Cow::Owned(v.as_bytes().to_vec()))
        }
    }
    struct Opt;
    impl<'de> serde::de::Visitor<'de> for Opt {
        type Value = Option<Cow<'de, [u8]>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a string or null")
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D2: serde::Deserializer<'de>>(self, d: D2) -> Result<Self::Value, D2::Error> {
            d.deserialize_bytes(Bytes).map(Some)
        }
    }
    d.deserialize_option(Opt)
}

/// Text of a raw field; not UTF-8 counts as absent (no tuple for the kinds that need it).
fn utf8(b: Option<&[u8]>) -> Option<&str> {
    b.and_then(|b| std::str::from_utf8(b).ok())
}

/// [`record_tuple`] with another entity definition (a record without what it needs has no
/// tuple, counted as no principal).
///
/// IPv4 and IPv6 sources both give a tuple; whether IPv6 tuples are kept is the caller's choice
/// ([`Ipv6Tuples`]).
pub fn record_tuple_as(rec: &Record<'_>, kind: EntityKind) -> Result<(String, IpAddr), NoTuple> {
    let ui = rec.user_identity.as_ref();
    let entity = entity_for(
        kind,
        &EntityFields {
            identity_type: ui.and_then(|u| u.identity_type.as_deref()),
            principal_id: ui.and_then(|u| u.principal_id.as_deref()),
            account_id: ui.and_then(|u| u.account_id.as_deref()),
            arn: ui.and_then(|u| utf8(u.arn.as_deref())),
            event_source: rec.event_source.as_deref(),
            user_agent: utf8(rec.user_agent.as_deref()),
            instance_id: None,
        },
    );
    let ip = match rec.source_ip_address.as_deref() {
        None | Some("") => Err(NoTuple::MissingIp),
        Some(s) => match classify_ip(s) {
            IpClass::V4(v4) => Ok(IpAddr::V4(v4)),
            IpClass::V6(v6) => Ok(IpAddr::V6(v6)),
            IpClass::AwsInternal => Err(NoTuple::AwsInternal),
            IpClass::ServiceHost => Err(NoTuple::ServiceHost),
            IpClass::Invalid => Err(NoTuple::InvalidIp),
        },
    };
    // A missing principal is reported first: it is the reason no tuple could ever exist.
    let entity = entity.ok_or(NoTuple::NoPrincipal)?;
    Ok((entity, ip?))
}

/// What [`TupleSink`] did with one record.
enum Counted {
    Tuple(IpAddr),
    Ipv6SetAside,
    No(NoTuple),
}

impl PrepareStats {
    fn count(&mut self, r: Counted) {
        self.records += 1;
        match r {
            Counted::Tuple(ip) => {
                self.tuples += 1;
                self.ipv6_tuples += u64::from(ip.is_ipv6());
            }
            Counted::Ipv6SetAside => self.ipv6 += 1,
            Counted::No(NoTuple::NoPrincipal) => self.no_principal += 1,
            Counted::No(NoTuple::AwsInternal) => self.aws_internal += 1,
            Counted::No(NoTuple::ServiceHost) => self.service_host += 1,
            Counted::No(NoTuple::MissingIp) => self.missing_ip += 1,
            Counted::No(NoTuple::InvalidIp) => self.invalid_ip += 1,
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
    prepare_cloudtrail_to(input, Outputs::tuples(out), opts)
}

/// Where a preparer's tuples go: the tuple CSV, the pair aggregate, or both (the same records and
/// rules feed both, so the pair file always agrees with the tuples).
pub struct Outputs<'w, W> {
    pub tuples: Option<&'w mut W>,
    pub pairs: Option<&'w mut PairAggregate>,
}

impl<'w, W> Outputs<'w, W> {
    pub fn tuples(out: &'w mut W) -> Self {
        Self {
            tuples: Some(out),
            pairs: None,
        }
    }
}

impl<'w> Outputs<'w, io::Sink> {
    pub fn pairs(pairs: &'w mut PairAggregate) -> Self {
        Self {
            tuples: None,
            pairs: Some(pairs),
        }
    }
}

/// [`prepare_cloudtrail`] into tuples and/or pairs. On error the pair aggregate may hold some of
/// the object's records: callers aggregate each object separately and merge it only on success.
pub fn prepare_cloudtrail_to<R: BufRead, W: Write>(
    input: R,
    outputs: Outputs<'_, W>,
    opts: &PrepareOptions,
) -> Result<PrepareStats, CloudTrailError> {
    let mut sink = TupleSink::new(outputs, opts);
    let bytes = for_each_record(input, opts, |rec| sink.record(rec));
    sink.finish(bytes)
}

/// [`prepare_cloudtrail`] with the IPv6 tuples on their own stream `out_v6` (whatever `opts.ipv6`
/// says): `out` stays fit for SageMaker's IPv4-only training channel and no IPv6 record is lost.
pub fn prepare_cloudtrail_split<R: BufRead, W: Write, W6: Write>(
    input: R,
    out: &mut W,
    out_v6: &mut W6,
    opts: &PrepareOptions,
) -> Result<PrepareStats, CloudTrailError> {
    let mut sink = TupleSink::new(Outputs::tuples(out), opts);
    sink.v6 = Ipv6Route::Other(out_v6);
    let bytes = for_each_record(input, opts, |rec| sink.record(rec));
    sink.finish(bytes)
}

/// Where a [`TupleSink`] sends IPv6 tuples.
enum Ipv6Route<'w> {
    SetAside,
    Same,
    Other(&'w mut dyn Write),
}

/// Writes the tuple of each record and counts why the others have none.
struct TupleSink<'w, W> {
    out: Outputs<'w, W>,
    v6: Ipv6Route<'w>,
    entity: EntityKind,
    stats: PrepareStats,
    write_err: Option<io::Error>,
}

impl<'w, W: Write> TupleSink<'w, W> {
    fn new(out: Outputs<'w, W>, opts: &PrepareOptions) -> Self {
        Self {
            out,
            v6: match opts.ipv6 {
                Ipv6Tuples::SetAside => Ipv6Route::SetAside,
                Ipv6Tuples::Keep => Ipv6Route::Same,
            },
            entity: opts.entity,
            stats: PrepareStats::default(),
            write_err: None,
        }
    }

    /// One record; `false` stops the scan (the output failed).
    #[inline]
    fn record(&mut self, rec: &Record<'_>) -> bool {
        let r = match record_tuple_as(rec, self.entity) {
            Ok((entity, ip)) => {
                if ip.is_ipv6() && matches!(self.v6, Ipv6Route::SetAside) {
                    self.stats.count(Counted::Ipv6SetAside);
                    return true;
                }
                let written = match (&mut self.v6, self.out.tuples.as_deref_mut()) {
                    (_, None) => Ok(()),
                    (Ipv6Route::Other(w6), Some(_)) if ip.is_ipv6() => write_tuple(w6, &entity, ip),
                    (_, Some(out)) => write_tuple(out, &entity, ip),
                };
                if let Err(e) = written {
                    self.write_err = Some(e);
                    return false;
                }
                if let Some(pairs) = self.out.pairs.as_deref_mut() {
                    pairs.add_event(&entity, ip, rec.event_time.as_deref());
                }
                Counted::Tuple(ip)
            }
            Err(e) => Counted::No(e),
        };
        self.stats.count(r);
        true
    }

    fn finish(self, bytes: Result<u64, CloudTrailError>) -> Result<PrepareStats, CloudTrailError> {
        let bytes = bytes?;
        if let Some(e) = self.write_err {
            return Err(CloudTrailError::Write(e));
        }
        let mut stats = self.stats;
        stats.bytes_in = bytes;
        Ok(stats)
    }
}

/// Buffers and gzip decoder state for preparing many objects one after another (one per worker
/// thread). [`Workspace::prepare_whole`] gives exactly what [`prepare_cloudtrail`] gives, but reads
/// the (compressed) object whole into a reused buffer and reuses the inflate state and the record
/// window, which on small objects (tens of KB, the usual CloudTrail file) saves the per-object
/// allocation and set-up that otherwise costs as much as a good part of the parsing. Memory stays
/// bounded: buffers that grew past a few MiB for one object are released after it.
pub struct Workspace {
    /// The object's raw bytes live in the decoder's reader.
    gz: GzDecoder<Whole>,
    window: Vec<u8>,
}

/// Buffers larger than this are not kept for the next object.
const KEEP_WINDOW: usize = 1 << 20;
const KEEP_INPUT: usize = 16 << 20;

impl Default for Workspace {
    fn default() -> Self {
        Self::new()
    }
}

impl Workspace {
    pub fn new() -> Self {
        Self {
            gz: GzDecoder::new(Whole::default()),
            window: Vec::new(),
        }
    }

    /// [`prepare_cloudtrail`] for an object read whole from `input` first (for small objects: the
    /// compressed bytes are held in memory). `size_hint` is the expected size of `input` (a file's
    /// length), so that it is read in one call.
    pub fn prepare_whole<R: Read, W: Write>(
        &mut self,
        input: R,
        size_hint: u64,
        out: &mut W,
        opts: &PrepareOptions,
    ) -> Result<PrepareStats, CloudTrailError> {
        self.prepare_whole_to(input, size_hint, Outputs::tuples(out), opts)
    }

    /// [`Self::prepare_whole`] into tuples and/or pairs (see [`prepare_cloudtrail_to`]).
    pub fn prepare_whole_to<R: Read, W: Write>(
        &mut self,
        input: R,
        size_hint: u64,
        outputs: Outputs<'_, W>,
        opts: &PrepareOptions,
    ) -> Result<PrepareStats, CloudTrailError> {
        let mut sink = TupleSink::new(outputs, opts);
        let bytes = self.for_each_record_whole(input, size_hint, opts, |rec| sink.record(rec));
        sink.finish(bytes)
    }

    /// [`for_each_record`] for an object read whole from `input` first; see [`Self::prepare_whole`].
    pub fn for_each_record_whole<R: Read>(
        &mut self,
        input: R,
        size_hint: u64,
        opts: &PrepareOptions,
        f: impl FnMut(&Record<'_>) -> bool,
    ) -> Result<u64, CloudTrailError> {
        self.gz
            .get_mut()
            .load(input, size_hint)
            .map_err(|e| CloudTrailError::Read {
                offset: 0,
                source: e,
            })?;
        let whole = self.gz.get_ref();
        let r = if whole.data().starts_with(&[0x1f, 0x8b]) {
            // The same decoding as `maybe_gunzip`'s `MultiGzDecoder`, on a reset decoder.
            let whole = std::mem::take(self.gz.get_mut());
            self.gz.reset(whole);
            scan(
                Members {
                    gz: &mut self.gz,
                    failed: false,
                },
                &mut self.window,
                opts,
                f,
            )
        } else {
            scan(whole.data(), &mut self.window, opts, f)
        };
        if self.window.capacity() > KEEP_WINDOW {
            self.window = Vec::new();
        }
        self.gz.get_mut().release(KEEP_INPUT);
        r
    }
}

/// A whole object in memory: `buf[pos..end]` is unread. `buf` keeps its length (zero-filled once)
/// across objects.
#[derive(Default)]
struct Whole {
    buf: Vec<u8>,
    pos: usize,
    end: usize,
}

impl Whole {
    fn load<R: Read>(&mut self, mut r: R, size_hint: u64) -> io::Result<()> {
        self.pos = 0;
        self.end = 0;
        // One byte more than expected, so that the second read sees the end of the file.
        let want = usize::try_from(size_hint.min(64 << 20)).unwrap_or(0) + 1;
        if self.buf.len() < want {
            self.buf.resize(want, 0);
        }
        loop {
            if self.end == self.buf.len() {
                let more = self.buf.len().max(CHUNK);
                self.buf.resize(self.buf.len() + more, 0);
            }
            match r.read(&mut self.buf[self.end..]) {
                Ok(0) => return Ok(()),
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    fn data(&self) -> &[u8] {
        &self.buf[self.pos..self.end]
    }

    fn release(&mut self, keep: usize) {
        if self.buf.capacity() > keep {
            *self = Self::default();
        }
    }
}

impl Read for Whole {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = out.len().min(self.end - self.pos);
        out[..n].copy_from_slice(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl BufRead for Whole {
    fn fill_buf(&mut self) -> io::Result<&[u8]> {
        Ok(&self.buf[self.pos..self.end])
    }
    fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.end);
    }
}

/// Concatenated gzip members through one reused single-member decoder: when a member ends and input
/// remains, the decoder is reset for the next member, as `MultiGzDecoder` does.
struct Members<'a> {
    gz: &'a mut GzDecoder<Whole>,
    failed: bool,
}

impl Read for Members<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.failed {
            return Ok(0);
        }
        loop {
            let n = match self.gz.read(buf) {
                Ok(n) => n,
                Err(e) => {
                    self.failed = true;
                    return Err(e);
                }
            };
            if n > 0 || buf.is_empty() || self.gz.get_ref().data().is_empty() {
                return Ok(n);
            }
            let whole = std::mem::take(self.gz.get_mut());
            self.gz.reset(whole);
        }
    }
}

/// Call `f` for every record of a CloudTrail object, in order, without holding the object in memory.
/// `f` returns `false` to stop early. Returns the uncompressed bytes read.
pub fn for_each_record<R: BufRead>(
    input: R,
    opts: &PrepareOptions,
    f: impl FnMut(&Record<'_>) -> bool,
) -> Result<u64, CloudTrailError> {
    let decoded = maybe_gunzip(input).map_err(|e| CloudTrailError::Read {
        offset: 0,
        source: e,
    })?;
    scan(decoded, &mut Vec::new(), opts, f)
}

/// The records of the decompressed stream `decoded`, with `window` as the scanner's buffer.
fn scan<R: Read>(
    decoded: R,
    window: &mut Vec<u8>,
    opts: &PrepareOptions,
    mut f: impl FnMut(&Record<'_>) -> bool,
) -> Result<u64, CloudTrailError> {
    let capped = CappedReader::new(decoded, opts.max_uncompressed_bytes);
    let mut s = Scanner::new(capped, window, opts.max_record_bytes);
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
/// are tens of KB (a large fresh buffer per object costs page faults on every file). The buffer may
/// be reused from an earlier object ([`Workspace`]); it starts at the same length either way.
struct Scanner<'b, R> {
    r: CappedReader<R>,
    buf: &'b mut Vec<u8>,
    pos: usize,
    end: usize,
    /// Absolute stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    max_record: usize,
    record_no: u64,
}

const CHUNK: usize = 64 << 10;

impl<'b, R: Read> Scanner<'b, R> {
    fn new(r: CappedReader<R>, buf: &'b mut Vec<u8>, max_record: usize) -> Self {
        // Exactly CHUNK long, as a fresh buffer: the growth steps (and so the record-size bound) do
        // not depend on what an earlier object left behind.
        buf.resize(CHUNK, 0);
        Self {
            r,
            buf,
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
                // The common shape is decoded by hand; anything else (or a record the window cuts
                // off) goes through serde_json, which has the last word on values and errors.
                if let Some((rec, n)) = fastrec::record(slice) {
                    let go = f(&rec);
                    self.pos += n;
                    break go;
                }
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

    #[test]
    fn entity_kinds_through_the_fast_path_and_serde_alike() {
        // Record 1 is the plain shape (fast path); record 2 has an escape in its user agent and
        // record 3 in its ARN, which send them to serde_json; record 4 lacks what some kinds need.
        let trail = br#"{"Records":[
{"eventSource":"s3.amazonaws.com","userAgent":"aws-cli/2.15.0 Python/3.11","sourceIPAddress":"198.51.100.7","userIdentity":{"type":"AssumedRole","principalId":"AROAEXAMPLE:i-0abc","arn":"arn:aws:sts::111122223333:assumed-role/Admin/i-0abc","accountId":"111122223333"}},
{"eventSource":"ec2.amazonaws.com","userAgent":"Boto3/1.34 \"quoted\"","sourceIPAddress":"198.51.100.8","userIdentity":{"type":"IAMUser","principalId":"AIDAEXAMPLE","arn":"arn:aws:iam::111122223333:user/alice","accountId":"111122223333"}},
{"eventSource":"iam.amazonaws.com","userAgent":"console.amazonaws.com","sourceIPAddress":"198.51.100.9","userIdentity":{"type":"IAMUser","principalId":"AIDAOTHER","arn":"arn:aws:iam::111122223333:user/b\u006fb","accountId":"111122223333"}},
{"sourceIPAddress":"198.51.100.10","userIdentity":{"type":"IAMUser","principalId":"AIDANOUA"}}
]}"#;
        let with = |kind: EntityKind| {
            let opts = PrepareOptions {
                entity: kind,
                ..PrepareOptions::default()
            };
            let mut out = Vec::new();
            let st = prepare_cloudtrail(&trail[..], &mut out, &opts).unwrap();
            let mut out2 = Vec::new();
            let st2 = Workspace::new()
                .prepare_whole(&trail[..], trail.len() as u64, &mut out2, &opts)
                .unwrap();
            assert_eq!((out.clone(), &st), (out2, &st2));
            (String::from_utf8(out).unwrap(), st.no_principal)
        };
        assert_eq!(
            with(EntityKind::Principal),
            (
                "AROAEXAMPLE,198.51.100.7\nAIDAEXAMPLE,198.51.100.8\nAIDAOTHER,198.51.100.9\nAIDANOUA,198.51.100.10\n"
                    .into(),
                0
            )
        );
        assert_eq!(
            with(EntityKind::PrincipalEventSource),
            (
                "AROAEXAMPLE|s3.amazonaws.com,198.51.100.7\nAIDAEXAMPLE|ec2.amazonaws.com,198.51.100.8\nAIDAOTHER|iam.amazonaws.com,198.51.100.9\n"
                    .into(),
                1
            )
        );
        assert_eq!(
            with(EntityKind::UserAgentFamily),
            (
                "aws-cli,198.51.100.7\nBoto3,198.51.100.8\nconsole.amazonaws.com,198.51.100.9\n"
                    .into(),
                1
            )
        );
        assert_eq!(
            with(EntityKind::Arn),
            (
                "arn:aws:sts::111122223333:assumed-role/Admin,198.51.100.7\narn:aws:iam::111122223333:user/alice,198.51.100.8\narn:aws:iam::111122223333:user/bob,198.51.100.9\n"
                    .into(),
                1
            )
        );
        // CloudTrail names no instance: nothing.
        assert_eq!(with(EntityKind::InstanceId), (String::new(), 4));
        // A user agent that is not UTF-8 fails nothing: principals are prepared as before, and a
        // user-agent entity is simply absent for that record.
        let odd = b"{\"Records\":[{\"userAgent\":\"\xc3\x28\",\"userIdentity\":{\"principalId\":\"AIDA\"},\"sourceIPAddress\":\"1.2.3.4\"}]}";
        for (kind, want, none) in [
            (EntityKind::Principal, &b"AIDA,1.2.3.4\n"[..], 0),
            (EntityKind::UserAgentFamily, &b""[..], 1),
        ] {
            let opts = PrepareOptions {
                entity: kind,
                ..PrepareOptions::default()
            };
            let mut out = Vec::new();
            let st = prepare_cloudtrail(&odd[..], &mut out, &opts).unwrap();
            assert_eq!((out.as_slice(), st.no_principal), (want, none), "{kind}");
        }
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
                ipv6_tuples: 0,
                missing_ip: 1,
                invalid_ip: 1,
                bytes_in: DOC.len() as u64
            }
        );
        // Same through gzip, and across tiny read chunks.
        let (csv2, _) = run(&gz(DOC.as_bytes())).unwrap();
        assert_eq!(csv, csv2);
    }

    /// IPv6 records: set aside and counted by default, kept in canonical text with `Ipv6Tuples::Keep`,
    /// or routed to their own stream; the IPv4 output is the same in all three.
    #[test]
    fn ipv6_set_aside_kept_or_split() {
        let doc = br#"{"Records":[
{"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"},"sourceIPAddress":"2001:DB8:0:0::0001"},
{"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"},"sourceIPAddress":"198.51.100.7"},
{"userIdentity":{"type":"AssumedRole","principalId":"AROAROLE1:s"},"sourceIPAddress":"2a01:e0a:3c8:7b0:1cf3:e8f4:aa40:3c01"},
{"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"},"sourceIPAddress":"::ffff:192.0.2.1"},
{"userIdentity":{"type":"IAMUser","principalId":"AIDAUSER1"},"sourceIPAddress":"fe80::1%eth0"}
]}"#;
        let v4 = "AIDAUSER1,198.51.100.7\nAIDAUSER1,192.0.2.1\n";
        let v6 = "AIDAUSER1,2001:db8::1\nAROAROLE1,2a01:e0a:3c8:7b0:1cf3:e8f4:aa40:3c01\n";
        let (csv, st) = run(doc).unwrap();
        assert_eq!(csv, v4);
        assert_eq!(
            (
                st.records,
                st.tuples,
                st.ipv6,
                st.ipv6_tuples,
                st.invalid_ip
            ),
            (5, 2, 2, 0, 1)
        );
        let keep = PrepareOptions {
            ipv6: Ipv6Tuples::Keep,
            ..PrepareOptions::default()
        };
        let mut out = Vec::new();
        let st = prepare_cloudtrail(&doc[..], &mut out, &keep).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "AIDAUSER1,2001:db8::1\nAIDAUSER1,198.51.100.7\nAROAROLE1,2a01:e0a:3c8:7b0:1cf3:e8f4:aa40:3c01\nAIDAUSER1,192.0.2.1\n"
        );
        assert_eq!(
            (
                st.records,
                st.tuples,
                st.ipv6,
                st.ipv6_tuples,
                st.invalid_ip
            ),
            (5, 4, 0, 2, 1)
        );
        let mut ws_out = Vec::new();
        let ws_st = Workspace::new()
            .prepare_whole(&doc[..], doc.len() as u64, &mut ws_out, &keep)
            .unwrap();
        assert_eq!(ws_st, st);
        let (mut a, mut b) = (Vec::new(), Vec::new());
        let st =
            prepare_cloudtrail_split(&doc[..], &mut a, &mut b, &PrepareOptions::default()).unwrap();
        assert_eq!(
            (String::from_utf8(a).unwrap(), String::from_utf8(b).unwrap()),
            (v4.to_string(), v6.to_string())
        );
        assert_eq!((st.tuples, st.ipv6, st.ipv6_tuples), (4, 0, 2));
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

    /// Runs `data` through the streaming path and through a reused workspace: same output, same
    /// result or error message.
    fn same_as_streaming(ws: &mut Workspace, data: &[u8], hint: u64, opts: &PrepareOptions) {
        let mut fresh_out = Vec::new();
        let fresh = prepare_cloudtrail(data, &mut fresh_out, opts).map_err(|e| e.to_string());
        let mut ws_out = Vec::new();
        let reused = ws
            .prepare_whole(data, hint, &mut ws_out, opts)
            .map_err(|e| e.to_string());
        assert_eq!(fresh, reused);
        assert_eq!(fresh_out, ws_out);
        // A reader that hands out a few bytes at a time, with no size hint.
        struct Dribble<'a>(&'a [u8]);
        impl Read for Dribble<'_> {
            fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
                let n = buf.len().min(self.0.len()).min(7);
                buf[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        let mut out = Vec::new();
        let dribbled = ws
            .prepare_whole(Dribble(data), 0, &mut out, opts)
            .map_err(|e| e.to_string());
        assert_eq!(fresh, dribbled);
        assert_eq!(fresh_out, out);
    }

    #[test]
    fn workspace_reuse_matches_fresh_decoding() {
        let doc = DOC.as_bytes();
        let g = gz(doc);
        let mut many = String::from("{\"Records\":[");
        for i in 0..3000 {
            if i > 0 {
                many.push(',');
            }
            many.push_str(&format!(
                r#"{{"userIdentity":{{"type":"AssumedRole","principalId":"AROA{i}:s"}},"sourceIPAddress":"10.1.{}.{}","pad":"{}"}}"#,
                i / 256 % 256,
                i % 256,
                "p".repeat(i % 131)
            ));
        }
        many.push_str("]}");
        let mut members = gz(&doc[..100]);
        members.extend(gz(&doc[100..]));
        let mut garbage_after = g.clone();
        garbage_after.extend_from_slice(b"trailing garbage");
        let mut bad_crc = g.clone();
        let n = bad_crc.len();
        bad_crc[n - 8] ^= 1;
        let mut bad_size = g.clone();
        bad_size[n - 1] ^= 1;
        let mut bad_deflate = g.clone();
        bad_deflate[12] ^= 0xff;
        let cases: Vec<(&str, Vec<u8>)> = vec![
            ("gzip", g.clone()),
            ("plain", doc.to_vec()),
            ("truncated", g[..g.len() / 2].to_vec()),
            ("many records", gz(many.as_bytes())),
            ("two members", members),
            ("garbage after member", garbage_after),
            ("bad crc", bad_crc),
            ("bad size", bad_size),
            ("corrupt deflate", bad_deflate),
            ("empty", Vec::new()),
            ("magic only", vec![0x1f, 0x8b]),
            ("header only", g[..10].to_vec()),
            ("invalid json", gz(br#"{"Records":[{"a":1},{"oops"}]}"#)),
            ("digest", gz(br#"{"awsAccountId":"1","logFiles":[]}"#)),
            (
                "bare array",
                gz(br#"[{"userIdentity":{"principalId":"AIDAX"},"sourceIPAddress":"1.1.1.1"}]"#),
            ),
            ("plain many", many.clone().into_bytes()),
        ];
        let default = PrepareOptions::default();
        let small_caps = PrepareOptions {
            max_uncompressed_bytes: 50_000,
            max_record_bytes: 200,
            ..PrepareOptions::default()
        };
        let mut ws = Workspace::new();
        // Every case after every other (errors included), with both sets of limits.
        for opts in [&default, &small_caps] {
            for (_, first) in &cases {
                for (name, data) in &cases {
                    let _ = ws.prepare_whole(&first[..], first.len() as u64, &mut Vec::new(), opts);
                    let hint = data.len() as u64;
                    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        same_as_streaming(&mut ws, data, hint, opts)
                    }));
                    assert!(r.is_ok(), "case {name}");
                }
            }
        }
        // The workspace decodes the multi-chunk gzip case correctly, not merely as the stream does.
        let (csv, st) = {
            let mut out = Vec::new();
            let data = gz(many.as_bytes());
            let st = ws
                .prepare_whole(&data[..], data.len() as u64, &mut out, &default)
                .unwrap();
            (String::from_utf8(out).unwrap(), st)
        };
        assert_eq!(st.records, 3000);
        assert_eq!(st.tuples, 3000);
        assert_eq!(csv.lines().nth(2999).unwrap(), "AROA2999,10.1.11.183");
    }

    /// Prepares one trail file every way there is and checks they agree: the reused workspace and
    /// the fast record path with the stream, and the stream with plain serde_json decoding of every
    /// record. Sessions are cut and every address is IPv4.
    fn agrees_every_way(ws: &mut Workspace, name: &str, data: &[u8]) -> PrepareStats {
        let (csv, st) = run(data).unwrap_or_else(|e| panic!("{name}: {e}"));
        same_as_streaming(ws, data, data.len() as u64, &PrepareOptions::default());
        let mut serde_only = Vec::new();
        let value: serde_json::Value =
            serde_json::from_reader(flate2::read::MultiGzDecoder::new(data))
                .or_else(|_| serde_json::from_slice(data))
                .unwrap();
        let records = value
            .get("Records")
            .unwrap_or(&value)
            .as_array()
            .unwrap()
            .clone();
        for r in records {
            let text = serde_json::to_string(&r).unwrap();
            let rec: Record<'_> = serde_json::from_str(&text).unwrap();
            if let Ok((entity, ip)) = record_tuple(&rec).and_then(|t| {
                if t.1.is_ipv4() {
                    Ok(t)
                } else {
                    Err(NoTuple::InvalidIp)
                }
            }) {
                write_tuple(&mut serde_only, &entity, ip).unwrap();
            }
        }
        assert_eq!(csv.as_bytes(), &serde_only[..], "{name}");
        for line in csv.lines() {
            let (ent, ip) = line.split_once(',').unwrap();
            assert!(
                !ent.contains(':') || !ent.starts_with("AROA"),
                "session suffix kept: {line}"
            );
            assert!(ip.parse::<std::net::Ipv4Addr>().is_ok(), "{line}");
        }
        assert_eq!(
            st.records,
            st.tuples
                + st.no_principal
                + st.aws_internal
                + st.service_host
                + st.ipv6
                + st.missing_ip
                + st.invalid_ip,
            "{name}: every record is a tuple or counted by reason"
        );
        st
    }

    /// The shapes of real exported trails, written by us: a pretty-printed bare array (how
    /// `aws cloudtrail lookup-events` output and Stratus Red Team's samples look) and a gzipped
    /// `Records` document, both holding every entity kind and every skip reason.
    #[test]
    fn own_trail_shapes_agree_every_way() {
        let records: serde_json::Value = serde_json::from_str(DOC).unwrap();
        let pretty = serde_json::to_string_pretty(&records["Records"]).unwrap();
        let mut ws = Workspace::new();
        let st = agrees_every_way(&mut ws, "pretty bare array", pretty.as_bytes());
        assert_eq!((st.records, st.tuples), (11, 5));
        let st = agrees_every_way(&mut ws, "gzipped Records", &gz(DOC.as_bytes()));
        assert_eq!((st.records, st.tuples), (11, 5));
    }

    #[test]
    fn real_stratus_red_team_samples() {
        let Some(dir) = ipsight_testkit::real_data(
            "stratus-red-team",
            "formats cloudtrail::real_stratus_red_team_samples",
        ) else {
            return;
        };
        let mut total = PrepareStats::default();
        let mut files = 0;
        let mut ws = Workspace::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            let data = std::fs::read(&p).unwrap();
            total.add(&agrees_every_way(&mut ws, &p.display().to_string(), &data));
            files += 1;
        }
        assert!(files >= 30);
        assert!(total.records > 300 && total.tuples > 100, "{total:?}");
    }
}
