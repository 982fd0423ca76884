//! A stable-Rust fuzz driver over the same target functions as the cargo-fuzz binaries, for machines
//! without nightly/libFuzzer and for CI: every corpus file, then deterministic random mutations of
//! them (byte flips, interesting values, JSON/gzip tokens, insertions, deletions, splices) until a
//! time or iteration budget runs out. No coverage feedback, so it complements libFuzzer rather than
//! replacing it.
//!
//! ```text
//! cargo run --release --manifest-path fuzz/Cargo.toml --example fuzz_stable -- <target|all> [seconds] [seed]
//! ```
//! A panic, an allocation above 512 MiB (libFuzzer's `-malloc_limit_mb` default is the RSS limit,
//! 2 GiB; ours is stricter because Lambdas run in 128 MB–1 GB) or an execution slower than 2 s is a
//! finding: the input is written to `fuzz/artifacts/<target>/` and the driver exits non-zero.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

const ALLOC_LIMIT: usize = 512 << 20;
const SLOW: Duration = Duration::from_secs(2);

/// The input being executed, so the allocator can save it before aborting.
static CUR_PTR: AtomicPtr<u8> = AtomicPtr::new(std::ptr::null_mut());
static CUR_LEN: AtomicUsize = AtomicUsize::new(0);
static CUR_TARGET: AtomicUsize = AtomicUsize::new(0);

struct Guard;

unsafe impl GlobalAlloc for Guard {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        if l.size() > ALLOC_LIMIT {
            oversize(l.size());
        }
        System.alloc(l)
    }
    unsafe fn alloc_zeroed(&self, l: Layout) -> *mut u8 {
        if l.size() > ALLOC_LIMIT {
            oversize(l.size());
        }
        System.alloc_zeroed(l)
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        if n > ALLOC_LIMIT {
            oversize(n);
        }
        System.realloc(p, l, n)
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        System.dealloc(p, l)
    }
}

#[global_allocator]
static A: Guard = Guard;

fn oversize(n: usize) -> ! {
    let (p, len) = (
        CUR_PTR.load(Ordering::SeqCst),
        CUR_LEN.load(Ordering::SeqCst),
    );
    let name = ipsight_fuzz::TARGETS[CUR_TARGET.load(Ordering::SeqCst)].0;
    if !p.is_null() {
        // SAFETY: the driver keeps the input alive and unmodified while the target runs.
        let input = unsafe { std::slice::from_raw_parts(p, len) };
        let path = save(name, "oom", input);
        eprintln!("FINDING {name}: allocation of {n} bytes (limit {ALLOC_LIMIT}); input {path:?}");
    }
    std::process::abort()
}

fn artifacts(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("artifacts")
        .join(name)
}

fn save(name: &str, kind: &str, input: &[u8]) -> PathBuf {
    let dir = artifacts(name);
    let _ = std::fs::create_dir_all(&dir);
    let path = dir.join(format!("{kind}-{:08x}", crc(input)));
    let _ = std::fs::write(&path, input);
    path
}

fn crc(b: &[u8]) -> u32 {
    b.iter().fold(0x811c9dc5u32, |h, &c| {
        (h ^ c as u32).wrapping_mul(0x01000193)
    })
}

/// SplitMix64: deterministic, dependency-free.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e3779b97f4a7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// Fragments that matter to these parsers: JSON structure, the field names they look up, IP-ish
/// text, gzip magic, UTF-8 edge cases.
const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\\",
    b"\\u0000",
    b"\\ud800",
    b"null",
    b"true",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"\n",
    b"\r\n",
    b" ",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xf0\x9f\x92",
    b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\x03",
    b"\"Records\":[",
    b"\"principalId\":\"",
    b"\"sourceIPAddress\":\"",
    b"\"userIdentity\":{",
    b"AWS Internal",
    b"1.2.3.4",
    b"1.2.3.4.5",
    b"01.02.03.04",
    b"::ffff:1.2.3.4",
    b"256.1.1.1",
    b"::1",
    b"\"instances\":[",
    b"\"features\":[",
    b"\"body\":\"",
    b"\"eventSource\":\"aws:sqs\"",
    b"\"Type\":\"Notification\"",
    b"\"Message\":\"",
    b"\"detail-type\":\"Object Created\"",
    b"\"source\":\"aws.s3\"",
    b"\"key\":\"",
    b"%",
    b"%ff",
    b"+",
    b"\"src_endpoint\":{\"ip\":\"",
    b"\"class_uid\":",
    b"\"actor\":{\"user\":{",
    b"\"service\":{",
    b"\"remoteIpDetails\":{",
    b"\"accessKeyDetails\":{",
    b"\"ipAddressV4\":\"",
    b"\"Findings\":[",
    b"\"detail\":{",
];

fn mutate(rng: &mut Rng, input: &mut Vec<u8>, corpus: &[Vec<u8>]) {
    for _ in 0..1 + rng.below(8) {
        let len = input.len();
        match rng.below(10) {
            0 if len > 0 => {
                let i = rng.below(len);
                input[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                input[i] = [0, 0xff, 0x7f, 0x80, b'0', b'9', b'"', b'\\'][rng.below(8)];
            }
            2 | 3 => {
                let t = TOKENS[rng.below(TOKENS.len())];
                let i = rng.below(len + 1);
                input.splice(i..i, t.iter().copied());
            }
            4 if len > 0 => {
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(64));
                input.drain(i..i + n);
            }
            5 if len > 0 => {
                // Duplicate a chunk (repeated records, deep nesting after a few rounds).
                let i = rng.below(len);
                let n = 1 + rng.below((len - i).min(256));
                let chunk = input[i..i + n].to_vec();
                let j = rng.below(len + 1);
                input.splice(j..j, chunk);
            }
            6 if !corpus.is_empty() => {
                // Splice: our head, another seed's tail.
                let other = &corpus[rng.below(corpus.len())];
                let i = rng.below(len + 1);
                let j = rng.below(other.len() + 1);
                input.truncate(i);
                input.extend_from_slice(&other[j..]);
            }
            7 if len > 0 => {
                input.truncate(rng.below(len));
            }
            8 if len > 1 => {
                let i = rng.below(len);
                let j = rng.below(len);
                input.swap(i, j);
            }
            _ => {
                let i = rng.below(len + 1);
                let b = rng.next() as u8;
                input.insert(i, b);
            }
        }
    }
    // Keep inputs in the size range the targets' caps are tuned for.
    input.truncate(256 << 10);
}

fn run_one(idx: usize, input: &[u8]) -> Result<Duration, String> {
    CUR_TARGET.store(idx, Ordering::SeqCst);
    CUR_PTR.store(input.as_ptr() as *mut u8, Ordering::SeqCst);
    CUR_LEN.store(input.len(), Ordering::SeqCst);
    let t = Instant::now();
    let f = ipsight_fuzz::TARGETS[idx].1;
    let r = panic::catch_unwind(AssertUnwindSafe(|| f(input)));
    CUR_PTR.store(std::ptr::null_mut(), Ordering::SeqCst);
    let el = t.elapsed();
    match r {
        Ok(()) => Ok(el),
        Err(e) => Err(e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "panic".into())),
    }
}

/// Third-party public samples are not in the repository (it holds only what the project wrote):
/// where they are present (`IPSIGHT_REAL_DATA`, else `../shared/data/real` beside the clone, as for
/// the tests) they join the seed corpus of the target that reads their shape.
fn real_samples(name: &str) -> Vec<Vec<u8>> {
    let sub = match name {
        "cloudtrail" => "stratus-red-team",
        "guardduty" => "guardduty",
        "notification" => "aws-event-fixtures",
        _ => return Vec::new(),
    };
    // The tests' rule (`ipsight_testkit::real_data`, not a dependency of this separate workspace):
    // a directory named on purpose must exist; the default beside the clone may be absent.
    let root = match std::env::var_os("IPSIGHT_REAL_DATA").map(std::path::PathBuf::from) {
        Some(dir) => {
            assert!(
                dir.is_dir(),
                "IPSIGHT_REAL_DATA={} is not a directory",
                dir.display()
            );
            dir
        }
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/real"),
    };
    let dir = root.join(sub);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: real {name} samples ({} not found)", dir.display());
        return Vec::new();
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    let samples: Vec<Vec<u8>> = files
        .into_iter()
        .filter(|p| p.metadata().is_ok_and(|m| m.is_file() && m.len() <= 1 << 20))
        .filter_map(|p| std::fs::read(p).ok())
        .collect();
    eprintln!("{name}: {} real samples from {}", samples.len(), dir.display());
    samples
}

fn fuzz(idx: usize, budget: Duration, seed: u64) -> bool {
    let name = ipsight_fuzz::TARGETS[idx].0;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut corpus: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|d| {
            let mut files: Vec<_> = d.flatten().map(|e| e.path()).collect();
            files.sort();
            files
                .into_iter()
                .filter_map(|p| std::fs::read(p).ok())
                .collect()
        })
        .unwrap_or_default();
    corpus.extend(real_samples(name));
    if corpus.is_empty() {
        corpus.push(Vec::new());
    }
    let mut rng = Rng(seed ^ crc(name.as_bytes()) as u64);
    let mut execs = 0u64;
    let (findings, slowest) = (Cell::new(0u64), Cell::new(Duration::ZERO));
    let start = Instant::now();
    let report = |input: &[u8], r: Result<Duration, String>| match r {
        Ok(d) if d > SLOW => {
            findings.set(findings.get() + 1);
            eprintln!(
                "FINDING {name}: slow ({d:?}); input {:?}",
                save(name, "slow", input)
            );
        }
        Ok(d) => slowest.set(slowest.get().max(d)),
        Err(msg) => {
            findings.set(findings.get() + 1);
            eprintln!(
                "FINDING {name}: panic: {msg}; input {:?}",
                save(name, "crash", input)
            );
        }
    };
    for c in &corpus {
        let r = run_one(idx, c);
        report(c, r);
        execs += 1;
    }
    // Quiet the default hook: findings are reported above, once each.
    let hook = panic::take_hook();
    panic::set_hook(Box::new(|_| {}));
    while start.elapsed() < budget && findings.get() < 20 {
        for _ in 0..64 {
            let mut input = corpus[rng.below(corpus.len())].clone();
            mutate(&mut rng, &mut input, &corpus);
            let r = run_one(idx, &input);
            report(&input, r);
            execs += 1;
            // Interesting-enough inputs (valid after mutation is rare) become seeds for stacking.
            if rng.below(256) == 0 && corpus.len() < 512 {
                corpus.push(input);
            }
        }
    }
    panic::set_hook(hook);
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{name}: {execs} executions in {secs:.1} s ({:.0}/s), {} findings, slowest ok exec {:?}",
        execs as f64 / secs,
        findings.get(),
        slowest.get()
    );
    findings.get() == 0
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("all");
    let secs: f64 = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(10.0);
    let seed: u64 = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    if which == "seed-model" {
        seed_model_corpus();
        return;
    }
    let mut ok = true;
    let mut any = false;
    for (i, (name, _)) in ipsight_fuzz::TARGETS.iter().enumerate() {
        if which == "all" || which == *name {
            any = true;
            ok &= fuzz(i, Duration::from_secs_f64(secs), seed);
        }
    }
    if !any {
        eprintln!(
            "unknown target {which:?}; targets: all {}",
            ipsight_fuzz::TARGETS
                .iter()
                .map(|t| t.0)
                .collect::<Vec<_>>()
                .join(" ")
        );
        std::process::exit(2);
    }
    std::process::exit(if ok { 0 } else { 1 });
}

/// Writes the model_file seeds (see `ipsight_fuzz::model_file` for the mode byte): the real file is
/// over 1 MB (the /8 and /16 tables are fixed size), so the seeds are a header prefix and patch lists
/// against the in-process template instead of whole files.
fn seed_model_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus/model_file");
    std::fs::create_dir_all(&dir).unwrap();
    let file = ipsight_fuzz::template_file();
    let mut prefix = vec![0u8];
    prefix.extend_from_slice(&file[..file.len().min(600)]);
    std::fs::write(dir.join("raw-header-prefix"), prefix).unwrap();
    // Mode 3: patch + recompute CRC, no patches = the valid template.
    std::fs::write(dir.join("valid-template"), [3u8]).unwrap();
    // Mode 7: header-biased patches with CRC recomputed: one digit of the header JSON changed.
    let hdr = String::from_utf8_lossy(&file[16..file.len().min(600)]).into_owned();
    let mut seed = vec![7u8];
    for (needle, byte) in [("\"vector_dim\":", b'9'), ("\"rows\":", b'7')] {
        if let Some(i) = hdr.find(needle) {
            let off = (16 + i + needle.len()) as u32;
            seed.extend_from_slice(&off.to_le_bytes());
            seed.push(byte);
        }
    }
    std::fs::write(dir.join("header-patch"), seed).unwrap();
    // Mode 9: truncation (bit 3) without CRC fix.
    std::fs::write(dir.join("truncated"), [9u8, 1, 2, 3, 4, 5]).unwrap();
}
