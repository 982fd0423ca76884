//! Benchmark inputs: one huge CloudTrail object, and a multi-hundred-MB trail of many files.
//!
//! Both are generated from a fixed benchmark world (see [`benchmark_config`]) so runs are
//! comparable across machines and commits, and both stream: memory stays at one day of events plus
//! write buffers, whatever the requested size.
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::cloudtrail::{write_cloudtrail, write_record, CloudTrailOptions, Counting, Summary};
use crate::world::{SynthConfig, World};
use crate::{Error, Result};

/// The world used for benchmarks: 500 people and 60 automation roles in two accounts, with
/// enough days that the trail reaches about `target_uncompressed_bytes` (at least one day).
pub fn benchmark_config(target_uncompressed_bytes: u64, seed: u64) -> SynthConfig {
    // About 18 MB of JSON per day for this population (measured; only used to pick `days`).
    const BYTES_PER_DAY: u64 = 18 << 20;
    let days = target_uncompressed_bytes.div_ceil(BYTES_PER_DAY).max(1) as u32;
    SynthConfig {
        seed,
        users: 500,
        automation: 60,
        days,
        events_per_user_day: 30,
        ..SynthConfig::default()
    }
}

/// Write a multi-file trail of roughly `target_uncompressed_bytes` of JSON under `dir`, for
/// throughput benchmarks: 15-minute delivery windows, gzip level 1, digests, no Insights or
/// folder markers. Rebuild the same world with `World::new(benchmark_config(target, seed))` to get
/// the expected tuples; the [`Summary`] has the counts.
pub fn write_benchmark_trail(
    dir: &Path,
    target_uncompressed_bytes: u64,
    seed: u64,
) -> Result<Summary> {
    let world = World::new(benchmark_config(target_uncompressed_bytes, seed));
    let opts = CloudTrailOptions {
        file_window_secs: 900,
        insights: false,
        gzip_level: 1,
        ..Default::default()
    };
    write_cloudtrail(&world, dir, &opts)
}

/// Write ONE CloudTrail object `{"Records":[…]}` of at least `target_uncompressed_bytes` of JSON
/// (it stops after the first record that reaches the target), without holding it in memory: for
/// memory benchmarks and the "compressed size does not bound uncompressed size" pitfall. The file
/// is gzip (level 1) if `path` ends in `.gz`, plain JSON otherwise. Records come from the
/// benchmark world, day after day, for as many days as needed.
///
/// Returns a [`Summary`] with `log_files = 1`, the record/tuple/skip counts and both sizes.
pub fn write_large_object(
    path: &Path,
    target_uncompressed_bytes: u64,
    seed: u64,
) -> Result<Summary> {
    let err = |source: io::Error| Error::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent).map_err(err)?;
    }
    let file = File::create(path).map_err(err)?;
    let world = World::new(benchmark_config(0, seed));
    let mut sum = Summary {
        log_files: 1,
        keys: vec![path.display().to_string()],
        ..Default::default()
    };
    if path.extension().is_some_and(|e| e == "gz") {
        let mut w = Counting {
            inner: BufWriter::with_capacity(256 * 1024, GzEncoder::new(file, Compression::new(1))),
            bytes: 0,
        };
        stream_records(&mut w, &world, target_uncompressed_bytes, &mut sum).map_err(err)?;
        sum.uncompressed_bytes = w.bytes;
        let gz = w.inner.into_inner().map_err(|e| err(e.into_error()))?;
        let f = gz.finish().map_err(err)?;
        sum.compressed_bytes = f.metadata().map_err(err)?.len();
    } else {
        let mut w = Counting {
            inner: BufWriter::with_capacity(256 * 1024, file),
            bytes: 0,
        };
        stream_records(&mut w, &world, target_uncompressed_bytes, &mut sum).map_err(err)?;
        w.flush().map_err(err)?;
        sum.uncompressed_bytes = w.bytes;
        sum.compressed_bytes = w.bytes;
    }
    Ok(sum)
}

fn stream_records<W: Write>(
    w: &mut Counting<W>,
    world: &World,
    target: u64,
    sum: &mut Summary,
) -> io::Result<()> {
    w.write_all(b"{\"Records\":[")?;
    let mut first = true;
    let mut day = 0u32;
    'days: loop {
        let events = world.day_events(day);
        for (i, e) in events.iter().enumerate() {
            if w.bytes + 2 >= target && !first {
                sum.count(world, &events[..i]);
                break 'days;
            }
            if !first {
                w.write_all(b",")?;
            }
            first = false;
            write_record(w, world, e)?;
        }
        sum.count(world, &events);
        day += 1;
    }
    w.write_all(b"]}")
}
