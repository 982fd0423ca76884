//! The baseline sidecar file: a [`Detector`] (per-entity history, combiner weights, calibrations)
//! stored next to the model (`model.ipsm` → `model.ipsb`, [`sidecar_path`]) or as an S3 object beside
//! the model key ([`sidecar_key`]). A sidecar rather than a section of the model file: SageMaker
//! endpoint users load it with no embedded model, and the model file's format stays its own.
//!
//! Layout (little-endian):
//! ```text
//! magic        8 bytes  "IPSBASE\0"
//! version      u32      SIDECAR_VERSION
//! header_len   u32
//! header_crc   u32      CRC-32 of the header alone (a damaged header is named as such, not as bad JSON)
//! header       JSON: entity definition, counts, combiner, calibrations, fit info
//! padding      zero bytes up to a multiple of 8 from the start of the file
//! arrays       name_ends u64[n], entry_ends u64[n], keys u64[m], counts u64[m],
//!              first u32[m], last u32[m], days u32[m], codes u8[m], names u8[len], zero padding to 8
//! crc32        u32 over every byte before it
//! ```
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::baseline::Baseline;
use crate::calibration::Calibration;
use crate::combine::{Combiner, Detector, FitInfo};

pub const SIDECAR_MAGIC: &[u8; 8] = b"IPSBASE\0";
pub const SIDECAR_VERSION: u32 = 1;

#[derive(Debug, Error)]
pub enum SidecarError {
    #[error("not an ipsight baseline sidecar (bad magic bytes)")]
    BadMagic,
    #[error("baseline sidecar format version {found} is not supported (this build reads version {supported})")]
    UnsupportedVersion { found: u32, supported: u32 },
    #[error("baseline sidecar is truncated (ended while reading {0})")]
    Truncated(&'static str),
    #[error("baseline sidecar is corrupt: {part} checksum mismatch (stored {stored:#010x}, computed {computed:#010x})")]
    Checksum {
        part: &'static str,
        stored: u32,
        computed: u32,
    },
    #[error("baseline sidecar is corrupt: {0}")]
    Corrupt(String),
    #[error("baseline sidecar is of entity definition {found:?}, but the model (or configuration) uses {expected:?}: rebuild it with `ipsight train` on tuples of that definition")]
    EntityDefinition { found: String, expected: String },
    #[error("baseline sidecar was fitted to another model (fingerprint {found:#010x}, this model {expected:#010x}): retrain so model and sidecar come from the same run")]
    OtherModel { found: u32, expected: u32 },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// `model.ipsm` → `model.ipsb`; a name without extension gets `.ipsb` appended.
pub fn sidecar_path(model: &Path) -> PathBuf {
    if model.extension().is_some() {
        model.with_extension("ipsb")
    } else {
        let mut s = model.as_os_str().to_owned();
        s.push(".ipsb");
        PathBuf::from(s)
    }
}

/// The S3 key of the sidecar beside a model key (same rule as [`sidecar_path`]).
pub fn sidecar_key(model_key: &str) -> String {
    sidecar_path(Path::new(model_key))
        .to_string_lossy()
        .into_owned()
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    entity_definition: String,
    has_times: bool,
    first_day: Option<u32>,
    last_day: Option<u32>,
    observations: u64,
    events: u64,
    entities: u64,
    entries: u64,
    names_bytes: u64,
    combiner: Combiner,
    combined_calibration: Calibration,
    /// IPv6's own (sidecars before it: none, one calibration for both families).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    combined_calibration_v6: Option<Calibration>,
    embedding_calibration: Calibration,
    fit: FitInfo,
}

/// Bytes before the header: magic, version, length, header checksum.
const HEADER_AT: usize = 20;

fn padding(len: usize) -> usize {
    (8 - len % 8) % 8
}

impl Detector {
    /// Writes the sidecar to a temporary file beside `path` and renames it, so a reader never sees
    /// half a file.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), SidecarError> {
        let path = path.as_ref();
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir)?;
        let mut w = BufWriter::with_capacity(1 << 20, tmp);
        self.write_to(&mut w)?;
        let tmp = w.into_inner().map_err(|e| e.into_error())?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        Ok(())
    }

    pub fn write_to(&self, w: &mut impl Write) -> Result<(), SidecarError> {
        let b = &self.baseline;
        let header = Header {
            format:
                "ipsight baseline sidecar: per-entity history, combiner, held-back calibrations"
                    .into(),
            entity_definition: b.entity_definition.clone(),
            has_times: b.has_times,
            first_day: b.first_day,
            last_day: b.last_day,
            observations: b.observations,
            events: b.events,
            entities: b.entities() as u64,
            entries: b.entries() as u64,
            names_bytes: b.names.len() as u64,
            combiner: self.combiner.clone(),
            combined_calibration: self.combined_calibration.clone(),
            combined_calibration_v6: self.combined_calibration_v6.clone(),
            embedding_calibration: self.embedding_calibration.clone(),
            fit: self.fit.clone(),
        };
        let header =
            serde_json::to_vec(&header).map_err(|e| SidecarError::Corrupt(e.to_string()))?;
        let mut crc = crc32fast::Hasher::new();
        let mut put = |w: &mut dyn Write, bytes: &[u8]| -> Result<(), SidecarError> {
            crc.update(bytes);
            w.write_all(bytes)?;
            Ok(())
        };
        put(w, SIDECAR_MAGIC)?;
        put(w, &SIDECAR_VERSION.to_le_bytes())?;
        put(w, &(header.len() as u32).to_le_bytes())?;
        put(w, &crc32fast::hash(&header).to_le_bytes())?;
        put(w, &header)?;
        put(w, &[0u8; 8][..padding(HEADER_AT + header.len())])?;
        let mut le = |w: &mut dyn Write, bytes: Vec<u8>| put(w, &bytes);
        le(w, to_le(&b.name_ends, u64::to_le_bytes))?;
        le(w, to_le(&b.entry_ends, u64::to_le_bytes))?;
        le(w, to_le(&b.keys, u64::to_le_bytes))?;
        le(w, to_le(&b.counts, u64::to_le_bytes))?;
        le(w, to_le(&b.first, u32::to_le_bytes))?;
        le(w, to_le(&b.last, u32::to_le_bytes))?;
        le(w, to_le(&b.days, u32::to_le_bytes))?;
        put(w, &b.codes)?;
        put(w, &b.names)?;
        put(
            w,
            &[0u8; 8][..padding(b.codes.len() + b.names.len() + 4 * (b.first.len() * 3))],
        )?;
        w.write_all(&crc.finalize().to_le_bytes())?;
        Ok(())
    }

    /// Reads a sidecar file; see [`Detector::read_from`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, SidecarError> {
        let file = std::fs::File::open(path.as_ref())?;
        Self::read_from(&mut std::io::BufReader::with_capacity(1 << 16, file))
    }

    /// Reads a sidecar, refusing another format version, a truncated or corrupt file. Arrays grow as
    /// bytes arrive, so a hostile header costs at most the file's own size.
    pub fn read_from(r: &mut impl Read) -> Result<Self, SidecarError> {
        let mut crc = crc32fast::Hasher::new();
        let mut get =
            |r: &mut dyn Read, buf: &mut [u8], what: &'static str| -> Result<(), SidecarError> {
                r.read_exact(buf).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => SidecarError::Truncated(what),
                    _ => SidecarError::Io(e),
                })?;
                crc.update(buf);
                Ok(())
            };
        let mut magic = [0u8; 8];
        get(r, &mut magic, "magic")?;
        if &magic != SIDECAR_MAGIC {
            return Err(SidecarError::BadMagic);
        }
        let mut word = [0u8; 4];
        get(r, &mut word, "format version")?;
        let version = u32::from_le_bytes(word);
        if version != SIDECAR_VERSION {
            return Err(SidecarError::UnsupportedVersion {
                found: version,
                supported: SIDECAR_VERSION,
            });
        }
        get(r, &mut word, "header length")?;
        let header_len = u32::from_le_bytes(word) as usize;
        if header_len > 64 << 20 {
            return Err(SidecarError::Corrupt(format!(
                "header length {header_len} is implausible"
            )));
        }
        get(r, &mut word, "header checksum")?;
        let header_crc = u32::from_le_bytes(word);
        let mut header = vec![0u8; header_len];
        get(r, &mut header, "header")?;
        let computed = crc32fast::hash(&header);
        if computed != header_crc {
            return Err(SidecarError::Checksum {
                part: "header",
                stored: header_crc,
                computed,
            });
        }
        let mut pad = [0u8; 8];
        get(r, &mut pad[..padding(HEADER_AT + header_len)], "padding")?;
        let h: Header = serde_json::from_slice(&header)
            .map_err(|e| SidecarError::Corrupt(format!("header is not valid JSON ({e})")))?;
        let (n, m, nb) = (
            h.entities as usize,
            h.entries as usize,
            h.names_bytes as usize,
        );
        let mut bytes = |len: usize, what: &'static str| -> Result<Vec<u8>, SidecarError> {
            const STEP: usize = 64 << 20;
            let mut v = Vec::new();
            while v.len() < len {
                let at = v.len();
                v.resize(at + (len - at).min(STEP), 0);
                get(r, &mut v[at..], what)?;
            }
            Ok(v)
        };
        let u64s = |b: Vec<u8>| -> Vec<u64> {
            b.chunks_exact(8)
                .map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes")))
                .collect()
        };
        let u32s = |b: Vec<u8>| -> Vec<u32> {
            b.chunks_exact(4)
                .map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes")))
                .collect()
        };
        let name_ends = u64s(bytes(n * 8, "entity names")?);
        let entry_ends = u64s(bytes(n * 8, "entity entries")?);
        let keys = u64s(bytes(m * 8, "prefixes")?);
        let counts = u64s(bytes(m * 8, "event counts")?);
        let first = u32s(bytes(m * 4, "first-seen days")?);
        let last = u32s(bytes(m * 4, "last-seen days")?);
        let days = u32s(bytes(m * 4, "active days")?);
        let codes = bytes(m, "levels")?;
        let names = bytes(nb, "names")?;
        bytes(padding(m + nb + 12 * m), "padding")?;
        let computed = crc.finalize();
        let mut stored = [0u8; 4];
        r.read_exact(&mut stored)
            .map_err(|_| SidecarError::Truncated("checksum"))?;
        let stored = u32::from_le_bytes(stored);
        if stored != computed {
            return Err(SidecarError::Checksum {
                part: "file",
                stored,
                computed,
            });
        }
        let mut extra = [0u8; 1];
        if r.read(&mut extra)? != 0 {
            return Err(SidecarError::Corrupt(
                "trailing bytes after the checksum".into(),
            ));
        }
        // The lookups index with these without further checks: verify them once here.
        let monotone = |v: &[u64], end: usize| {
            v.windows(2).all(|w| w[0] <= w[1]) && v.last().is_none_or(|&x| x as usize == end)
        };
        if !monotone(&name_ends, nb) || !monotone(&entry_ends, m) {
            return Err(SidecarError::Corrupt(
                "entity offsets are inconsistent".into(),
            ));
        }
        if codes
            .iter()
            .any(|&c| c as usize >= crate::baseline::LEVEL_CODES)
        {
            return Err(SidecarError::Corrupt("unknown level code".into()));
        }
        if std::str::from_utf8(&names).is_err() {
            return Err(SidecarError::Corrupt("entity names are not UTF-8".into()));
        }
        let mut baseline = Baseline {
            entity_definition: h.entity_definition,
            has_times: h.has_times,
            first_day: h.first_day,
            last_day: h.last_day,
            observations: h.observations,
            events: h.events,
            names,
            name_ends,
            entry_ends,
            codes,
            keys,
            counts,
            first,
            last,
            days,
            address_keys: Vec::new(),
            address_entities: Vec::new(),
            slots: Vec::new(),
        };
        baseline.build_index();
        baseline.build_address_users();
        Ok(Detector {
            baseline,
            combiner: h.combiner,
            combined_calibration: h.combined_calibration,
            combined_calibration_v6: h.combined_calibration_v6,
            embedding_calibration: h.embedding_calibration,
            fit: h.fit,
        })
    }

    /// Refuses a sidecar of another entity definition or fitted to another embedded model
    /// (`model_fingerprint` None: an external model such as a SageMaker endpoint, not checked).
    pub fn check_compatible(
        &self,
        entity_definition: &str,
        model_fingerprint: Option<u32>,
    ) -> Result<(), SidecarError> {
        if self.baseline.entity_definition() != entity_definition {
            return Err(SidecarError::EntityDefinition {
                found: self.baseline.entity_definition().to_owned(),
                expected: entity_definition.to_owned(),
            });
        }
        if let (Some(found), Some(expected)) = (self.fit.model_fingerprint, model_fingerprint) {
            if found != expected {
                return Err(SidecarError::OtherModel { found, expected });
            }
        }
        Ok(())
    }
}

fn to_le<T: Copy, const N: usize>(v: &[T], f: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * N);
    for &x in v {
        out.extend_from_slice(&f(x));
    }
    out
}
