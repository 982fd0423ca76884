//! CloudTrail bucket writer: log files, digests, an Insights file and optional folder markers,
//! laid out exactly like a trail's S3 bucket, written streaming.
//!
//! # Layout under `dir` (keys are paths relative to `dir`)
//!
//! ```text
//! AWSLogs/[o-<org>/]<acct>/CloudTrail/<region>/YYYY/MM/DD/<acct>_CloudTrail_<region>_<YYYYMMDDTHHMMZ>_<16 alnum>.json.gz
//! AWSLogs/[o-<org>/]<acct>/CloudTrail-Digest/<region>/YYYY/MM/DD/<acct>_CloudTrail-Digest_<region>_<trail>_<home region>_<YYYYMMDDTHHMMSSZ>.json.gz
//! AWSLogs/[o-<org>/]<acct>/CloudTrail-Insight/<region>/YYYY/MM/DD/<acct>_CloudTrail-Insight_<region>_<YYYYMMDDTHHMMZ>_<16 alnum>.json.gz
//! ```
//!
//! Log files hold `{"Records":[…]}` for one account, region and delivery window (split at
//! `max_records_per_file`). Digest files are JSON objects *without* `Records` (naive parsers crash
//! on them); the Insights file has `Records` without `userIdentity`. Both must be skipped by path.
//!
//! **Folder objects.** S3 consoles create zero-byte objects named `prefix/`; a filesystem cannot
//! hold a file whose name ends in `/`. With `folder_markers`, each directory holding log files also
//! gets a zero-byte sibling file `<dir>_$folder$` (the Hadoop/EMR convention for the same thing),
//! and [`Summary::folder_keys`] lists the S3-style `prefix/` keys so S3-backed tests can PUT them.
use std::collections::BTreeSet;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::ops::Range;
use std::path::{Path, PathBuf};

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::rng::{mix, Prng, ALNUM, UPPER_ALNUM};
use crate::time::{date_path, file_stamp, file_stamp_secs, rfc3339};
use crate::world::{hex_id, Event, IdentityKind, SkipReason, Source, Who, World};
use crate::{Error, Result};

const TAG_FILE: u64 = 101;
const TAG_DIGEST: u64 = 102;

/// How to lay out the bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudTrailOptions {
    /// Days to write (`None`: all the world's days).
    pub days: Option<Range<u32>>,
    /// Organization trail: keys start `AWSLogs/<org id>/<acct>/…`.
    pub organization_trail: bool,
    /// Trail name (appears in digest names and contents).
    pub trail_name: String,
    /// Bucket name (appears in digest contents only).
    pub bucket: String,
    /// Delivery window per log file, seconds (CloudTrail delivers about every 5 minutes).
    pub file_window_secs: i64,
    /// Split a window's records into files of at most this many records.
    pub max_records_per_file: usize,
    /// Write one digest per account, region and day.
    pub digests: bool,
    /// Write one CloudTrail Insights file per account.
    pub insights: bool,
    /// Write zero-byte `<dir>_$folder$` files (see the module docs).
    pub folder_markers: bool,
    /// gzip level 0–9 (1 is about 3× faster than 6 and only slightly larger).
    pub gzip_level: u32,
}

impl Default for CloudTrailOptions {
    fn default() -> Self {
        CloudTrailOptions {
            days: None,
            organization_trail: false,
            trail_name: "management-events".into(),
            bucket: "aws-cloudtrail-logs-ipsight-synthetic".into(),
            file_window_secs: 3600,
            max_records_per_file: 2000,
            digests: true,
            insights: true,
            folder_markers: false,
            gzip_level: 1,
        }
    }
}

/// Records skipped by a preparer, by reason (first matching rule in [`SkipReason`] order).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SkipCounts {
    /// No principal id (AWSService).
    pub no_principal: u64,
    /// No `sourceIPAddress`.
    pub missing_ip: u64,
    /// `AWS Internal`.
    pub aws_internal: u64,
    /// `*.amazonaws.com` hosts.
    pub service_host: u64,
    /// IPv6 sources.
    pub ipv6: u64,
}

impl SkipCounts {
    /// Count one skip.
    pub fn add(&mut self, r: SkipReason) {
        match r {
            SkipReason::NoPrincipal => self.no_principal += 1,
            SkipReason::MissingIp => self.missing_ip += 1,
            SkipReason::AwsInternal => self.aws_internal += 1,
            SkipReason::ServiceHost => self.service_host += 1,
            SkipReason::Ipv6 => self.ipv6 += 1,
        }
    }

    /// All skipped records.
    pub fn total(&self) -> u64 {
        self.no_principal + self.missing_ip + self.aws_internal + self.service_host + self.ipv6
    }

    fn merge(&mut self, o: SkipCounts) {
        self.no_principal += o.no_principal;
        self.missing_ip += o.missing_ip;
        self.aws_internal += o.aws_internal;
        self.service_host += o.service_host;
        self.ipv6 += o.ipv6;
    }
}

/// What a writer produced.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    /// Log files (`CloudTrail/`) written.
    pub log_files: u64,
    /// Digest files written.
    pub digest_files: u64,
    /// Insights files written.
    pub insight_files: u64,
    /// `_$folder$` marker files written.
    pub folder_markers: u64,
    /// Records in log files.
    pub records: u64,
    /// Records that yield a tuple (= `World::normal_pairs(days).count()`).
    pub expected_tuples: u64,
    /// Records that yield none, by reason (`records = expected_tuples + skipped.total()`).
    pub skipped: SkipCounts,
    /// Uncompressed JSON bytes of the log files.
    pub uncompressed_bytes: u64,
    /// gzip bytes of the log files.
    pub compressed_bytes: u64,
    /// Keys (relative paths with `/`) of the log files, in write order.
    pub keys: Vec<String>,
    /// Keys of digest and Insights files.
    pub other_keys: Vec<String>,
    /// S3-style zero-byte folder keys (`…/`) matching the markers (filled when `folder_markers`).
    pub folder_keys: Vec<String>,
}

impl Summary {
    /// Count written records: totals, expected tuples and skips.
    pub(crate) fn count(&mut self, world: &World, events: &[Event]) {
        self.records += events.len() as u64;
        for e in events {
            match world.tuple_of(e) {
                Ok(_) => self.expected_tuples += 1,
                Err(r) => self.skipped.add(r),
            }
        }
    }

    /// Add another summary (e.g. of a later day) to this one.
    pub fn merge(&mut self, o: Summary) {
        self.log_files += o.log_files;
        self.digest_files += o.digest_files;
        self.insight_files += o.insight_files;
        self.folder_markers += o.folder_markers;
        self.records += o.records;
        self.expected_tuples += o.expected_tuples;
        self.skipped.merge(o.skipped);
        self.uncompressed_bytes += o.uncompressed_bytes;
        self.compressed_bytes += o.compressed_bytes;
        self.keys.extend(o.keys);
        self.other_keys.extend(o.other_keys);
        self.folder_keys.extend(o.folder_keys);
    }
}

/// Counts bytes on their way into the inner writer.
pub(crate) struct Counting<W> {
    pub inner: W,
    pub bytes: u64,
}

impl<W: Write> Write for Counting<W> {
    #[inline]
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.bytes += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Io {
        path: path.to_owned(),
        source,
    }
}

/// A gzip file being written through a counting buffered writer.
pub(crate) struct GzFile {
    path: PathBuf,
    pub w: BufWriter<Counting<GzEncoder<File>>>,
}

impl GzFile {
    pub fn create(path: &Path, level: u32) -> Result<GzFile> {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_err(parent))?;
        }
        let f = File::create(path).map_err(io_err(path))?;
        let gz = GzEncoder::new(f, Compression::new(level.min(9)));
        Ok(GzFile {
            path: path.to_owned(),
            w: BufWriter::with_capacity(
                256 * 1024,
                Counting {
                    inner: gz,
                    bytes: 0,
                },
            ),
        })
    }

    /// Finish; returns (uncompressed, compressed) bytes.
    pub fn finish(self) -> Result<(u64, u64)> {
        let path = self.path;
        let counting = self.w.into_inner().map_err(|e| Error::Io {
            path: path.clone(),
            source: e.into_error(),
        })?;
        let f = counting.inner.finish().map_err(io_err(&path))?;
        let compressed = f.metadata().map_err(io_err(&path))?.len();
        Ok((counting.bytes, compressed))
    }

    pub fn err(&self) -> impl FnOnce(io::Error) -> Error + '_ {
        io_err(&self.path)
    }
}

/// Write a JSON string literal: the fast path copies plain strings, the rest goes through serde_json.
#[inline]
pub(crate) fn js<W: Write>(w: &mut W, s: &str) -> io::Result<()> {
    if s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\') {
        w.write_all(b"\"")?;
        w.write_all(s.as_bytes())?;
        w.write_all(b"\"")
    } else {
        serde_json::to_writer(w, s).map_err(io::Error::other)
    }
}

/// The key prefix of an account: `AWSLogs/[o-…/]<acct>/`.
fn account_prefix(world: &World, acct: usize, org: bool) -> String {
    if org {
        format!("AWSLogs/{}/{}/", world.org_id, world.accounts[acct].id)
    } else {
        format!("AWSLogs/{}/", world.accounts[acct].id)
    }
}

/// Render one event as a CloudTrail record (no trailing separator).
pub fn write_record<W: Write>(w: &mut W, world: &World, e: &Event) -> io::Result<()> {
    let acct = &world.accounts[e.account].id;
    let region = world.region_name(e.region);
    let login = e.api.name == "ConsoleLogin";
    let mut ids = Prng::new(e.uid);
    w.write_all(b"{\"eventVersion\":\"1.09\",\"userIdentity\":{")?;
    match &e.who {
        Who::Service(host) => {
            w.write_all(b"\"type\":\"AWSService\",\"invokedBy\":")?;
            js(w, host)?;
        }
        Who::Principal { identity, session } => {
            let id = &world.identities[*identity];
            let session = session.as_deref();
            let created = rfc3339(e.time - (e.uid % 3000) as i64 - 30);
            let day = e.time.div_euclid(86_400);
            write!(w, "\"type\":\"{}\",\"principalId\":", id.kind.as_str())?;
            match (id.kind, session) {
                (IdentityKind::AssumedRole, Some(s)) => {
                    w.write_all(b"\"")?;
                    w.write_all(id.principal_id.as_bytes())?;
                    w.write_all(b":")?;
                    w.write_all(s.as_bytes())?;
                    w.write_all(b"\"")?;
                }
                _ => js(w, &id.principal_id)?,
            }
            w.write_all(b",\"arn\":")?;
            match (id.kind, session) {
                (IdentityKind::AssumedRole, Some(s)) => {
                    let role_name = &id.name;
                    js(
                        w,
                        &format!("arn:aws:sts::{acct}:assumed-role/{role_name}/{s}"),
                    )?
                }
                _ => js(w, &id.arn)?,
            }
            write!(w, ",\"accountId\":\"{acct}\"")?;
            match id.kind {
                IdentityKind::IamUser => {
                    if !login {
                        w.write_all(b",\"accessKeyId\":")?;
                        if e.console {
                            js(w, &world.session_key(*identity, Some("console"), day))?;
                        } else {
                            js(w, &id.access_key_id)?;
                        }
                    }
                    w.write_all(b",\"userName\":")?;
                    js(w, &id.name)?;
                    if e.console && !login {
                        write!(w, ",\"sessionContext\":{{\"sessionIssuer\":{{}},\"webIdFederationData\":{{}},\"attributes\":{{\"creationDate\":\"{created}\",\"mfaAuthenticated\":\"true\"}}}}")?;
                    }
                }
                IdentityKind::Root => {
                    if !login {
                        w.write_all(b",\"accessKeyId\":")?;
                        js(w, &world.session_key(*identity, Some("console"), day))?;
                        write!(w, ",\"sessionContext\":{{\"sessionIssuer\":{{}},\"webIdFederationData\":{{}},\"attributes\":{{\"creationDate\":\"{created}\",\"mfaAuthenticated\":\"true\"}}}}")?;
                    }
                }
                IdentityKind::AssumedRole | IdentityKind::FederatedUser => {
                    w.write_all(b",\"accessKeyId\":")?;
                    js(w, &world.session_key(*identity, session, day))?;
                    let issuer = if id.kind == IdentityKind::AssumedRole {
                        id
                    } else {
                        &world.identities[world.accounts[e.account].broker]
                    };
                    let itype = if id.kind == IdentityKind::AssumedRole {
                        "Role"
                    } else {
                        "IAMUser"
                    };
                    w.write_all(b",\"sessionContext\":{\"sessionIssuer\":{\"type\":")?;
                    js(w, itype)?;
                    w.write_all(b",\"principalId\":")?;
                    js(w, &issuer.principal_id)?;
                    w.write_all(b",\"arn\":")?;
                    js(w, &issuer.arn)?;
                    write!(w, ",\"accountId\":\"{acct}\",\"userName\":")?;
                    js(w, &issuer.name)?;
                    let mfa = if session.is_some_and(|s| s.contains('@')) {
                        "true"
                    } else {
                        "false"
                    };
                    write!(w, "}},\"webIdFederationData\":{{}},\"attributes\":{{\"creationDate\":\"{created}\",\"mfaAuthenticated\":\"{mfa}\"}}")?;
                    if session.is_some_and(|s| s.starts_with("i-")) {
                        w.write_all(b"},\"ec2RoleDelivery\":\"2.0\"")?;
                    } else {
                        w.write_all(b"}")?;
                    }
                }
            }
        }
    }
    write!(
        w,
        "}},\"eventTime\":\"{}\",\"eventSource\":\"{}\",\"eventName\":\"{}\",\"awsRegion\":\"{}\"",
        rfc3339(e.time),
        e.api.source,
        e.api.name,
        region
    )?;
    match e.source {
        Source::V4(ip) => write!(w, ",\"sourceIPAddress\":\"{ip}\"")?,
        Source::V6(ip) => write!(w, ",\"sourceIPAddress\":\"{ip}\"")?,
        Source::AwsInternal => w.write_all(b",\"sourceIPAddress\":\"AWS Internal\"")?,
        Source::Host(h) => write!(w, ",\"sourceIPAddress\":\"{h}\"")?,
        Source::Missing => {}
    }
    if let Some(ua) = e.agent {
        w.write_all(b",\"userAgent\":")?;
        js(w, ua)?;
    }
    if login {
        w.write_all(b",\"requestParameters\":null,\"responseElements\":{\"ConsoleLogin\":\"Success\"},\"additionalEventData\":{\"LoginTo\":\"https://console.aws.amazon.com/console/home?state=hashArgs%23&isauthcode=true\",\"MobileVersion\":\"No\",\"MFAUsed\":\"Yes\"}")?;
        write!(
            w,
            ",\"eventID\":\"{}\",\"readOnly\":false,\"eventType\":\"AwsConsoleSignIn\"",
            ids.uuid()
        )?;
    } else {
        write!(
            w,
            ",\"requestParameters\":{},\"responseElements\":{}",
            e.api.params, e.api.response
        )?;
        if e.api.source == "s3.amazonaws.com" {
            let mut rid = String::with_capacity(16);
            ids.push_chars(&mut rid, UPPER_ALNUM, 16);
            write!(w, ",\"requestID\":\"{rid}\"")?;
        } else {
            write!(w, ",\"requestID\":\"{}\"", ids.uuid())?;
        }
        write!(
            w,
            ",\"eventID\":\"{}\",\"readOnly\":{},\"eventType\":\"AwsApiCall\"",
            ids.uuid(),
            e.api.read_only
        )?;
    }
    write!(w, ",\"managementEvent\":true,\"recipientAccountId\":\"{acct}\",\"eventCategory\":\"Management\"")?;
    if matches!(e.source, Source::V4(_) | Source::V6(_)) {
        let svc = e.api.source.split('.').next().unwrap_or("");
        if login {
            // Sign-in events carry no TLS details.
        } else if e.api.global {
            write!(w, ",\"tlsDetails\":{{\"tlsVersion\":\"TLSv1.3\",\"cipherSuite\":\"TLS_AES_128_GCM_SHA256\",\"clientProvidedHostHeader\":\"{svc}.amazonaws.com\"}}")?;
        } else {
            write!(w, ",\"tlsDetails\":{{\"tlsVersion\":\"TLSv1.3\",\"cipherSuite\":\"TLS_AES_128_GCM_SHA256\",\"clientProvidedHostHeader\":\"{svc}.{region}.amazonaws.com\"}}")?;
        }
        if e.console && !login {
            w.write_all(b",\"sessionCredentialFromConsole\":\"true\"")?;
        }
    }
    w.write_all(b"}")
}

/// Write events as one `{"Records":[…]}` document.
pub(crate) fn write_records<W: Write>(
    w: &mut W,
    world: &World,
    events: &[Event],
) -> io::Result<()> {
    w.write_all(b"{\"Records\":[")?;
    for (i, e) in events.iter().enumerate() {
        if i > 0 {
            w.write_all(b",")?;
        }
        write_record(w, world, e)?;
    }
    w.write_all(b"]}")
}

/// A day's partial summary and the directories it wrote into.
type DayOutput = (Summary, BTreeSet<String>);

struct LogFileInfo {
    key: String,
    oldest: i64,
    newest: i64,
}

/// Write the world's CloudTrail bucket under `dir` (see the module docs for the layout).
///
/// Days are written in parallel (one thread per core, each holding one day of events — a few
/// dozen bytes per event — and a 256 KiB buffer); records are rendered straight into the gzip
/// stream. Output bytes and [`Summary`] (merged in day order) do not depend on the thread count.
/// The summary says how many tuples a correct preparer must produce and how many records it must
/// skip, by reason.
pub fn write_cloudtrail(world: &World, dir: &Path, opts: &CloudTrailOptions) -> Result<Summary> {
    let days = opts.days.clone().unwrap_or(0..world.config.days);
    let n_days = days.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(n_days.max(1));
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<Option<Result<DayOutput>>> = (0..n_days).map(|_| None).collect();
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n_days {
                            break;
                        }
                        let r = write_day(world, dir, opts, days.start + i as u32);
                        let failed = r.is_err();
                        mine.push((i, r));
                        if failed {
                            break;
                        }
                    }
                    mine
                })
            })
            .collect();
        for h in handles {
            for (i, r) in h.join().expect("writer thread panicked") {
                results[i] = Some(r);
            }
        }
    });
    let mut sum = Summary::default();
    let mut dirs = BTreeSet::new();
    for r in results.into_iter().flatten() {
        let (d, ds) = r?;
        sum.merge(d);
        dirs.extend(ds);
    }
    if opts.insights && !days.is_empty() {
        for acct in 0..world.accounts.len() {
            let key = write_insight(world, dir, opts, acct, days.start)?;
            sum.insight_files += 1;
            sum.other_keys.push(key);
        }
    }
    if opts.folder_markers {
        let mut folders = BTreeSet::new();
        for d in &dirs {
            // Every directory level below AWSLogs/ (S3 "Create folder" makes one object per level).
            let mut end = 0;
            while let Some(p) = d[end..].find('/') {
                end += p + 1;
                folders.insert(d[..end].to_owned());
            }
        }
        for f in folders {
            let marker = dir.join(format!("{}_$folder$", f.trim_end_matches('/')));
            if let Some(parent) = marker.parent() {
                fs::create_dir_all(parent).map_err(io_err(parent))?;
            }
            File::create(&marker).map_err(io_err(&marker))?;
            sum.folder_markers += 1;
            sum.folder_keys.push(f);
        }
    }
    Ok(sum)
}

/// One day of log files and digests; returns its partial summary and the directories written.
fn write_day(world: &World, dir: &Path, opts: &CloudTrailOptions, day: u32) -> Result<DayOutput> {
    let window = opts.file_window_secs.max(60);
    let max = opts.max_records_per_file.max(1);
    let home_region = world.region_name(0).to_owned();
    let mut sum = Summary::default();
    let mut dirs = BTreeSet::new();
    let events = world.day_events(day);
    let n_regions = world.config.regions.len();
    let mut files: Vec<Vec<LogFileInfo>> = (0..world.accounts.len() * n_regions)
        .map(|_| Vec::new())
        .collect();
    let mut i = 0;
    while i < events.len() {
        let e0 = &events[i];
        let win = e0.time.div_euclid(window);
        let mut j = i + 1;
        while j < events.len()
            && j - i < max
            && events[j].account == e0.account
            && events[j].region == e0.region
            && events[j].time.div_euclid(window) == win
        {
            j += 1;
        }
        let chunk = &events[i..j];
        let last = chunk[chunk.len() - 1].time;
        let acct = &world.accounts[e0.account].id;
        let region = world.region_name(e0.region);
        // File name time: the end of the delivery window, kept within the day of its records.
        let stamp_t = (win * window + window - 1).min(last.div_euclid(86_400) * 86_400 + 86_399);
        let mut r = Prng::derive(
            world.config.seed,
            TAG_FILE,
            mix(e0.account as u64, e0.region as u64),
            mix(win as u64, i as u64),
        );
        let mut suffix = String::with_capacity(16);
        r.push_chars(&mut suffix, ALNUM, 16);
        let dir_key = format!(
            "{}CloudTrail/{}/{}/",
            account_prefix(world, e0.account, opts.organization_trail),
            region,
            date_path(e0.time)
        );
        let key = format!(
            "{dir_key}{acct}_CloudTrail_{region}_{}_{suffix}.json.gz",
            file_stamp(stamp_t)
        );
        let mut f = GzFile::create(&dir.join(&key), opts.gzip_level)?;
        write_records(&mut f.w, world, chunk).map_err(f.err())?;
        let (u, c) = f.finish()?;
        sum.uncompressed_bytes += u;
        sum.compressed_bytes += c;
        sum.log_files += 1;
        sum.count(world, chunk);
        files[e0.account * n_regions + e0.region].push(LogFileInfo {
            key: key.clone(),
            oldest: chunk[0].time,
            newest: last,
        });
        dirs.insert(dir_key);
        sum.keys.push(key);
        i = j;
    }
    if opts.digests {
        for acct in 0..world.accounts.len() {
            for region in 0..n_regions {
                let list = &files[acct * n_regions + region];
                let key = write_digest(world, dir, opts, acct, region, day, list, &home_region)?;
                sum.digest_files += 1;
                sum.other_keys.push(key);
            }
        }
    }
    Ok((sum, dirs))
}

#[allow(clippy::too_many_arguments)]
fn write_digest(
    world: &World,
    dir: &Path,
    opts: &CloudTrailOptions,
    acct: usize,
    region: usize,
    day: u32,
    files: &[LogFileInfo],
    home_region: &str,
) -> Result<String> {
    let id = &world.accounts[acct].id;
    let region_name = world.region_name(region);
    let start = world.day_start(day);
    let end = start + 86_399;
    let mut r = Prng::derive(
        world.config.seed,
        TAG_DIGEST,
        acct as u64,
        mix(region as u64, day as u64),
    );
    let prefix = account_prefix(world, acct, opts.organization_trail);
    let name = |t: i64| {
        format!(
            "{prefix}CloudTrail-Digest/{region_name}/{}/{id}_CloudTrail-Digest_{region_name}_{}_{home_region}_{}.json.gz",
            date_path(t),
            opts.trail_name,
            file_stamp_secs(t)
        )
    };
    let key = name(end);
    let mut f = GzFile::create(&dir.join(&key), opts.gzip_level)?;
    let w = &mut f.w;
    let res = (|| -> io::Result<()> {
        write!(
            w,
            "{{\"awsAccountId\":\"{id}\",\"digestStartTime\":\"{}\",\"digestEndTime\":\"{}\",",
            rfc3339(start),
            rfc3339(end)
        )?;
        w.write_all(b"\"digestS3Bucket\":")?;
        js(w, &opts.bucket)?;
        w.write_all(b",\"digestS3Object\":")?;
        js(w, &key)?;
        write!(
            w,
            ",\"digestPublicKeyFingerprint\":\"{}\",\"digestSignatureAlgorithm\":\"SHA256withRSA\"",
            hex_id(&mut r, 32)
        )?;
        if let (Some(first), Some(last)) = (files.first(), files.last()) {
            write!(
                w,
                ",\"newestEventTime\":\"{}\",\"oldestEventTime\":\"{}\"",
                rfc3339(last.newest),
                rfc3339(first.oldest)
            )?;
        }
        if day > 0 {
            w.write_all(b",\"previousDigestS3Bucket\":")?;
            js(w, &opts.bucket)?;
            w.write_all(b",\"previousDigestS3Object\":")?;
            js(w, &name(start - 1))?;
            write!(
                w,
                ",\"previousDigestHashValue\":\"{}\",\"previousDigestHashAlgorithm\":\"SHA-256\",\"previousDigestSignature\":\"{}\"",
                hex_id(&mut r, 64),
                hex_id(&mut r, 512)
            )?;
        }
        w.write_all(b",\"logFiles\":[")?;
        for (i, lf) in files.iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            w.write_all(b"{\"s3Bucket\":")?;
            js(w, &opts.bucket)?;
            w.write_all(b",\"s3Object\":")?;
            js(w, &lf.key)?;
            write!(
                w,
                ",\"hashValue\":\"{}\",\"hashAlgorithm\":\"SHA-256\",\"newestEventTime\":\"{}\",\"oldestEventTime\":\"{}\"}}",
                hex_id(&mut r, 64),
                rfc3339(lf.newest),
                rfc3339(lf.oldest)
            )?;
        }
        w.write_all(b"]}")
    })();
    res.map_err(f.err())?;
    f.finish()?;
    Ok(key)
}

fn write_insight(
    world: &World,
    dir: &Path,
    opts: &CloudTrailOptions,
    acct: usize,
    day: u32,
) -> Result<String> {
    let id = &world.accounts[acct].id;
    let region = world.region_name(0);
    let t = world.day_start(day) + 14 * 3600;
    let mut r = Prng::derive(
        world.config.seed,
        TAG_DIGEST,
        acct as u64,
        u64::MAX - day as u64,
    );
    let mut suffix = String::new();
    r.push_chars(&mut suffix, ALNUM, 16);
    let key = format!(
        "{}CloudTrail-Insight/{region}/{}/{id}_CloudTrail-Insight_{region}_{}_{suffix}.json.gz",
        account_prefix(world, acct, opts.organization_trail),
        date_path(t),
        file_stamp(t + 1800)
    );
    let shared = r.uuid();
    let mut f = GzFile::create(&dir.join(&key), opts.gzip_level)?;
    let w = &mut f.w;
    let res = (|| -> io::Result<()> {
        w.write_all(b"{\"Records\":[")?;
        for (i, (state, at)) in [("Start", t), ("End", t + 1800)].into_iter().enumerate() {
            if i > 0 {
                w.write_all(b",")?;
            }
            write!(
                w,
                "{{\"eventVersion\":\"1.08\",\"eventTime\":\"{}\",\"awsRegion\":\"{region}\",\"eventID\":\"{}\",\"eventType\":\"AwsCloudTrailInsight\",\"recipientAccountId\":\"{id}\",\"sharedEventID\":\"{shared}\",\"insightDetails\":{{\"state\":\"{state}\",\"eventSource\":\"ec2.amazonaws.com\",\"eventName\":\"RunInstances\",\"insightType\":\"ApiCallRateInsight\",\"insightContext\":{{\"statistics\":{{\"baseline\":{{\"average\":0.0125}},\"insight\":{{\"average\":1.6}},\"insightDuration\":30}},\"attributions\":[]}}}},\"eventCategory\":\"Insight\"}}",
                rfc3339(at),
                r.uuid()
            )?;
        }
        w.write_all(b"]}")
    })();
    res.map_err(f.err())?;
    f.finish()?;
    Ok(key)
}
