//! The trained model in its inference form, scoring, and the model file.
//!
//! Inference form: when the IP encoder has at least one dense layer, the first layer is linear on
//! the *sum* of the four prefix embeddings, so it is folded into the tables at the end of training
//! (`table · W₁ᵀ`, with the bias added to the /8 table, which every address hits exactly once).
//! Scoring an address is then four row look-ups and, with the tutorial's single layer, no matrix
//! product at all: `score = Σₜ entity · folded_tableₜ[rowₜ(ip)]`.
//!
//! IPv6: each of the four tables has `ipv6_buckets` more rows after its IPv4 rows, for an IPv6
//! address's /32, /48, /56 and /64 ([`crate::hashing::RowLayout::rows`]); every address still hits
//! each table once, so the folding above holds for both families and one model scores both.
//!
//! File layout (all integers and floats little-endian):
//! ```text
//! magic        8 bytes  "IPSIGHT\0"
//! version      u32      FORMAT_VERSION
//! header_len   u32
//! header       JSON: hyperparameters, layout, hash scheme, table shapes, calibration, training info
//! padding      zero bytes up to a multiple of 8 from the start of the file
//! tables       f32: entity, ip/8, ip/16, ip/24, ip/32, then each remaining layer's W (out×in) and b
//! crc32        u32 over every byte before it
//! ```
//! Version 2 added the IPv6 rows (`layout.ipv6_buckets`, the IPv6 part of the hash scheme).
//! Version 1 files still load, as IPv4-only models: scoring an IPv6 address with one is an error
//! that says so ([`ModelError::Ipv4Only`]).
use std::io::{BufWriter, Read, Write};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::calibration::Calibration;
use crate::error::ModelError;
use crate::hashing::{entity_bucket, IpKey, HASH_SCHEME, HASH_SCHEME_V1};
use crate::hyper::{Hyperparameters, IpEncoderLayout};

pub const MAGIC: &[u8; 8] = b"IPSIGHT\0";
pub const FORMAT_VERSION: u32 = 2;
/// The entity definition of a model that records none.
pub const DEFAULT_ENTITY: &str = "principal";

/// A dense layer `out = W·in + b`, W row-major out×in.
#[derive(Clone, PartialEq)]
pub struct Dense {
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub inputs: usize,
    pub outputs: usize,
}

/// Facts about the training run, kept in the header for humans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct TrainingInfo {
    pub pairs: u64,
    pub epochs: u32,
    pub seconds: f64,
    pub final_loss: f64,
    pub validation_discriminator_auc: Option<f64>,
    /// What the entities are (`principal`, `principal+event_source`, … as the edges name them).
    /// Absent in files written before the field existed: those are `principal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entity: Option<String>,
}

/// A trained IP Insights-compatible model, ready to score.
#[derive(Clone, PartialEq)]
pub struct Model {
    pub(crate) hyper: Hyperparameters,
    pub(crate) layout: IpEncoderLayout,
    pub(crate) dim: usize,
    pub(crate) entity: Vec<f32>,
    /// /8, /16, /24, /32 tables (IPv6 /32, /48, /56, /64 rows after the IPv4 ones), first dense
    /// layer folded in when there is one.
    pub(crate) tables: [Vec<f32>; 4],
    /// Dense layers after the folded first one (ReLU before each).
    pub(crate) layers: Vec<Dense>,
    pub(crate) calibration: Calibration,
    pub(crate) info: TrainingInfo,
    /// The file format version it was read from (this build's when trained here).
    pub(crate) format_version: u32,
}

/// Dot product; uses AVX2+FMA when the CPU has them (checked once, cached by std), since the
/// portable build targets baseline x86-64 (SSE2) and scoring is dominated by these 4×d products.
#[inline]
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            // SAFETY: the features this function needs were just detected.
            return unsafe { dot_avx2(a, b) };
        }
    }
    dot_portable(a, b)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn dot_avx2(a: &[f32], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len().min(b.len());
    let (pa, pb) = (a.as_ptr(), b.as_ptr());
    let mut acc = [_mm256_setzero_ps(); 4];
    let mut i = 0;
    // Four independent accumulators hide the FMA latency.
    while i + 32 <= n {
        for (j, acc) in acc.iter_mut().enumerate() {
            let x = _mm256_loadu_ps(pa.add(i + 8 * j));
            let y = _mm256_loadu_ps(pb.add(i + 8 * j));
            *acc = _mm256_fmadd_ps(x, y, *acc);
        }
        i += 32;
    }
    while i + 8 <= n {
        acc[0] = _mm256_fmadd_ps(
            _mm256_loadu_ps(pa.add(i)),
            _mm256_loadu_ps(pb.add(i)),
            acc[0],
        );
        i += 8;
    }
    let s = _mm256_add_ps(_mm256_add_ps(acc[0], acc[1]), _mm256_add_ps(acc[2], acc[3]));
    let hi = _mm256_extractf128_ps(s, 1);
    let q = _mm_add_ps(_mm256_castps256_ps128(s), hi);
    let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    let mut total = _mm_cvtss_f32(q);
    while i < n {
        total += *pa.add(i) * *pb.add(i);
        i += 1;
    }
    total
}

#[inline]
fn dot_portable(a: &[f32], b: &[f32]) -> f32 {
    // Eight independent accumulators let the compiler vectorise without reassociation flags.
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            acc[i] += x[i] * y[i];
        }
    }
    let mut s = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    for (x, y) in ra.iter().zip(rb) {
        s += x * y;
    }
    s
}

/// Shapes and metadata only: the tables are tens of MB of floats.
impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("hyperparameters", &self.hyper)
            .field("layout", &self.layout)
            .field("entity_rows", &(self.entity.len() / self.dim.max(1)))
            .field("remaining_layers", &self.layers.len())
            .field("calibration_pairs", &self.calibration.pairs)
            .field("info", &self.info)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn dot_kernels_agree() {
        for n in [0usize, 3, 8, 31, 32, 33, 128, 130] {
            let a: Vec<f32> = (0..n).map(|i| (i % 7) as f32 - 3.0).collect();
            let b: Vec<f32> = (0..n).map(|i| (i % 5) as f32 * 0.5).collect();
            let want: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(super::dot(&a, &b), want, "n={n}");
            assert_eq!(super::dot_portable(&a, &b), want, "n={n}");
        }
    }
}

impl Model {
    pub fn hyperparameters(&self) -> &Hyperparameters {
        &self.hyper
    }
    pub fn layout(&self) -> &IpEncoderLayout {
        &self.layout
    }
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }
    /// The entity definition the model was trained on (`principal` unless recorded otherwise).
    pub fn entity_definition(&self) -> &str {
        self.info.entity.as_deref().unwrap_or(DEFAULT_ENTITY)
    }

    /// Record the entity definition (the trainer does not know what the strings it learnt mean).
    pub fn set_entity_definition(&mut self, definition: impl Into<String>) {
        self.info.entity = Some(definition.into());
    }

    pub fn training_info(&self) -> &TrainingInfo {
        &self.info
    }
    /// `vector_dim`.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// The entity's embedding (its hash bucket's row; unseen entities share a bucket with others).
    #[inline]
    pub fn entity_vector(&self, entity: &str) -> &[f32] {
        let row = entity_bucket(entity, self.hyper.num_entity_vectors) as usize;
        &self.entity[row * self.dim..(row + 1) * self.dim]
    }

    #[inline]
    fn table_row(&self, t: usize, row: u32) -> &[f32] {
        let d = self.dim;
        &self.tables[t][row as usize * d..(row as usize + 1) * d]
    }

    #[inline]
    fn rows(&self, key: IpKey) -> [u32; 4] {
        self.layout.rows().rows(key)
    }

    /// True when the model has IPv6 rows (format 2 and `ipv6_buckets > 0`).
    pub fn scores_ipv6(&self) -> bool {
        self.layout.ipv6_buckets > 0
    }

    /// The file format version the model was read from (this build's for a model trained here).
    pub fn format_version(&self) -> u32 {
        self.format_version
    }

    /// The key of an address this model can score, or why not.
    fn key(&self, ip: IpAddr) -> Result<IpKey, ModelError> {
        match ip {
            IpAddr::V6(v6) if !self.scores_ipv6() => Err(ModelError::Ipv4Only {
                ip: v6,
                why: if self.format_version < 2 {
                    format!(
                        "the model file is format version {} (IPv4-only, written before ipsight \
                         scored IPv6); retrain it with this ipsight (format {FORMAT_VERSION}) to \
                         score IPv6",
                        self.format_version
                    )
                } else {
                    "the model was trained with ipv6_buckets = 0 (IPv4-only)".into()
                },
            }),
            ip => Ok(IpKey::from(ip)),
        }
    }

    /// The IP's embedding (the encoder's output), written into `out` (length `dim`).
    pub fn ip_vector_into(&self, ip: Ipv4Addr, out: &mut [f32]) {
        self.key_vector_into(IpKey::from(ip), out)
    }

    fn key_vector_into(&self, key: IpKey, out: &mut [f32]) {
        let d = self.dim;
        let r = self.rows(key);
        out[..d].copy_from_slice(self.table_row(0, r[0]));
        for (t, &row) in r.iter().enumerate().skip(1) {
            for (o, v) in out.iter_mut().zip(self.table_row(t, row)) {
                *o += v;
            }
        }
        if !self.layers.is_empty() {
            let mut h = vec![0.0f32; d];
            for layer in &self.layers {
                for (hv, &x) in h.iter_mut().zip(out.iter()) {
                    *hv = x.max(0.0);
                }
                for (o, (wrow, b)) in out
                    .iter_mut()
                    .zip(layer.w.chunks_exact(layer.inputs).zip(&layer.b))
                {
                    *o = dot(wrow, &h) + b;
                }
            }
        }
    }

    /// The IP's embedding as a new vector.
    pub fn ip_vector(&self, ip: Ipv4Addr) -> Vec<f32> {
        self.key_vector(IpKey::from(ip))
    }

    /// The embedding of an IPv4 or IPv6 address (an error for IPv6 on an IPv4-only model).
    pub fn ip_vector_of(&self, ip: IpAddr) -> Result<Vec<f32>, ModelError> {
        Ok(self.key_vector(self.key(ip)?))
    }

    pub(crate) fn key_vector(&self, key: IpKey) -> Vec<f32> {
        let mut v = vec![0.0; self.dim];
        self.key_vector_into(key, &mut v);
        v
    }

    /// SageMaker's `dot_product` for one IPv4 pair: higher = more normal.
    #[inline]
    pub fn score(&self, entity: &str, ip: Ipv4Addr) -> f32 {
        self.score_key(self.entity_vector(entity), IpKey::from(ip))
    }

    /// `dot_product` for an IPv4 or IPv6 pair; an IPv6 address on an IPv4-only model (format 1
    /// files) is an error that says so.
    #[inline]
    pub fn score_ip(&self, entity: &str, ip: IpAddr) -> Result<f32, ModelError> {
        Ok(self.score_key(self.entity_vector(entity), self.key(ip)?))
    }

    #[inline]
    pub(crate) fn score_key(&self, e: &[f32], key: IpKey) -> f32 {
        if self.layers.is_empty() {
            // Linear encoder: the dot product distributes over the four summed rows, so no
            // intermediate vector is built.
            let r = self.rows(key);
            (dot(e, self.table_row(0, r[0])) + dot(e, self.table_row(1, r[1])))
                + (dot(e, self.table_row(2, r[2])) + dot(e, self.table_row(3, r[3])))
        } else {
            dot(e, &self.key_vector(key))
        }
    }

    /// Scores many IPv4 pairs on the rayon pool; same order in and out.
    pub fn score_pairs<S: AsRef<str> + Sync>(&self, pairs: &[(S, Ipv4Addr)]) -> Vec<f32> {
        pairs
            .par_iter()
            .with_min_len(4096)
            .map(|(e, ip)| self.score(e.as_ref(), *ip))
            .collect()
    }

    /// Scores many IPv4 and IPv6 pairs on the rayon pool; same order in and out. Fails as a whole,
    /// naming the first IPv6 pair, when the model is IPv4-only.
    pub fn score_ip_pairs<S: AsRef<str> + Sync>(
        &self,
        pairs: &[(S, IpAddr)],
    ) -> Result<Vec<f32>, ModelError> {
        if !self.scores_ipv6() {
            if let Some((_, ip)) = pairs.iter().find(|(_, ip)| ip.is_ipv6()) {
                self.key(*ip)?;
            }
        }
        Ok(pairs
            .par_iter()
            .with_min_len(4096)
            .map(|(e, ip)| self.score_key(self.entity_vector(e.as_ref()), IpKey::from(*ip)))
            .collect())
    }

    /// Percentile rank of a score among the training pairs (0–100; low = unusual). See
    /// [`Calibration::percentile`].
    pub fn percentile(&self, score: f32) -> f64 {
        self.calibration.percentile(score)
    }

    /// Score threshold that flags about `fpr` (0–1) of known-normal activity.
    pub fn threshold_for_fpr(&self, fpr: f64) -> f32 {
        self.calibration.threshold_for_fpr(fpr)
    }

    fn table_shapes(&self) -> Vec<TableShape> {
        let d = self.dim;
        let mut v = vec![
            TableShape::new("entity", self.entity.len() / d, d),
            TableShape::new("ip_prefix8", self.tables[0].len() / d, d),
            TableShape::new("ip_prefix16", self.tables[1].len() / d, d),
            TableShape::new("ip_prefix24_hashed", self.tables[2].len() / d, d),
            TableShape::new("ip_address_hashed", self.tables[3].len() / d, d),
        ];
        for (i, l) in self.layers.iter().enumerate() {
            v.push(TableShape::new(
                &format!("encoder_layer{}_weight", i + 2),
                l.outputs,
                l.inputs,
            ));
            v.push(TableShape::new(
                &format!("encoder_layer{}_bias", i + 2),
                l.outputs,
                1,
            ));
        }
        v
    }

    fn all_tables(&self) -> Vec<&[f32]> {
        let mut v: Vec<&[f32]> = vec![
            &self.entity,
            &self.tables[0],
            &self.tables[1],
            &self.tables[2],
            &self.tables[3],
        ];
        for l in &self.layers {
            v.push(&l.w);
            v.push(&l.b);
        }
        v
    }

    /// A CRC-32 over every table: identifies the trained weights (not the file format), so a
    /// baseline sidecar fitted to this model's scores can refuse to be paired with another.
    pub fn fingerprint(&self) -> u32 {
        let mut crc = crc32fast::Hasher::new();
        for t in self.all_tables() {
            for chunk in t.chunks(1 << 16) {
                if cfg!(target_endian = "little") {
                    crc.update(bytemuck::cast_slice(chunk));
                } else {
                    let bytes: Vec<u8> = chunk.iter().flat_map(|f| f.to_le_bytes()).collect();
                    crc.update(&bytes);
                }
            }
        }
        crc.finalize()
    }

    /// Writes the model file (see the module docs for the layout).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<(), ModelError> {
        let file = std::fs::File::create(path.as_ref())?;
        let mut w = BufWriter::with_capacity(1 << 20, file);
        self.write_to(&mut w)?;
        w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        Ok(())
    }

    /// Writes the model to any writer.
    pub fn write_to(&self, w: &mut impl Write) -> Result<(), ModelError> {
        let header = Header {
            format: "ipsight IP Insights-compatible model".into(),
            hyperparameters: self.hyper.clone(),
            layout: self.layout,
            hash_scheme: HASH_SCHEME.into(),
            inference_form: "first encoder layer folded into the IP tables; bias in ip_prefix8; \
                             ReLU before each remaining layer"
                .into(),
            tables: self.table_shapes(),
            calibration: self.calibration.clone(),
            training: self.info.clone(),
        };
        let header = serde_json::to_vec(&header).map_err(|e| ModelError::Corrupt(e.to_string()))?;
        let mut crc = crc32fast::Hasher::new();
        let mut put = |w: &mut dyn Write, bytes: &[u8]| -> Result<(), ModelError> {
            crc.update(bytes);
            w.write_all(bytes)?;
            Ok(())
        };
        put(w, MAGIC)?;
        put(w, &FORMAT_VERSION.to_le_bytes())?;
        put(w, &(header.len() as u32).to_le_bytes())?;
        put(w, &header)?;
        let pad = padding(16 + header.len());
        put(w, &[0u8; 8][..pad])?;
        for t in self.all_tables() {
            if cfg!(target_endian = "little") {
                put(w, bytemuck::cast_slice(t))?;
            } else {
                let bytes: Vec<u8> = t.iter().flat_map(|f| f.to_le_bytes()).collect();
                put(w, &bytes)?;
            }
        }
        let sum = crc.finalize();
        w.write_all(&sum.to_le_bytes())?;
        Ok(())
    }

    /// Reads a model file. Tables are read straight into their final buffers (no per-float parsing);
    /// a file of another format version, a truncated or a corrupted one is refused.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ModelError> {
        let file = std::fs::File::open(path.as_ref())?;
        // Tables are read with large read_exact calls; a small buffer only helps the header.
        let mut r = std::io::BufReader::with_capacity(1 << 16, file);
        Self::read_from(&mut r)
    }

    /// Reads a model from any reader (see [`Model::load`]).
    pub fn read_from(r: &mut impl Read) -> Result<Self, ModelError> {
        let mut crc = crc32fast::Hasher::new();
        let mut get =
            |r: &mut dyn Read, buf: &mut [u8], what: &'static str| -> Result<(), ModelError> {
                r.read_exact(buf).map_err(|e| match e.kind() {
                    std::io::ErrorKind::UnexpectedEof => ModelError::Truncated(what),
                    _ => ModelError::Io(e),
                })?;
                crc.update(buf);
                Ok(())
            };
        let mut magic = [0u8; 8];
        get(r, &mut magic, "magic")?;
        if &magic != MAGIC {
            return Err(ModelError::BadMagic);
        }
        let mut word = [0u8; 4];
        get(r, &mut word, "format version")?;
        let version = u32::from_le_bytes(word);
        if !(1..=FORMAT_VERSION).contains(&version) {
            return Err(ModelError::UnsupportedVersion {
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        get(r, &mut word, "header length")?;
        let header_len = u32::from_le_bytes(word) as usize;
        if header_len > 64 << 20 {
            return Err(ModelError::Corrupt(format!(
                "header length {header_len} is implausible"
            )));
        }
        let mut header = vec![0u8; header_len];
        get(r, &mut header, "header")?;
        let mut pad = [0u8; 8];
        get(r, &mut pad[..padding(16 + header_len)], "padding")?;
        let header: Header = serde_json::from_slice(&header).map_err(|e| {
            ModelError::Corrupt(format!(
                "header is not valid JSON ({e}); is the checksum intact?"
            ))
        })?;
        header.hyperparameters.validate()?;
        header.layout.validate()?;
        let scheme = if version == 1 {
            HASH_SCHEME_V1
        } else {
            HASH_SCHEME
        };
        if header.hash_scheme != scheme {
            return Err(ModelError::Corrupt(format!(
                "unknown hash scheme {:?} for format version {version} (this build uses {scheme:?})",
                header.hash_scheme
            )));
        }
        if version == 1 && header.layout.ipv6_buckets != 0 {
            return Err(ModelError::Corrupt(
                "a format-1 file with IPv6 rows (format 1 is IPv4-only)".into(),
            ));
        }
        let hp = &header.hyperparameters;
        let d = hp.vector_dim as usize;
        let l = &header.layout;
        // The shapes are fully determined by the hyperparameters and layout; anything else is corrupt.
        let expected = {
            let layers = hp.num_ip_encoder_layers.saturating_sub(1) as usize;
            let mut v = vec![(hp.num_entity_vectors as usize, d)];
            v.extend(l.rows().table_rows().map(|rows| (rows, d)));
            for _ in 0..layers {
                v.push((d, d));
                v.push((d, 1));
            }
            v
        };
        let shapes: Vec<(usize, usize)> = header.tables.iter().map(|t| (t.rows, t.cols)).collect();
        if shapes != expected {
            return Err(ModelError::Corrupt(format!(
                "table shapes {shapes:?} do not match the hyperparameters (expected {expected:?})"
            )));
        }
        let mut tables = Vec::with_capacity(expected.len());
        for (rows, cols) in expected {
            // The header alone can claim 250M × 4096 floats (4 TB): allocating that up front aborts
            // the process before the missing data is noticed. Grow the table as bytes arrive, so a
            // truncated or hostile file costs at most its own size (found writing the model_file fuzz target).
            const STEP: usize = 16 << 20; // floats per read (64 MiB)
            let len = rows * cols;
            let mut t: Vec<f32> = Vec::new();
            while t.len() < len {
                let n = (len - t.len()).min(STEP);
                let at = t.len();
                t.resize(at + n, 0.0);
                get(r, bytemuck::cast_slice_mut(&mut t[at..]), "tables")?;
            }
            if cfg!(target_endian = "big") {
                for v in &mut t {
                    *v = f32::from_bits(u32::from_le(v.to_bits()));
                }
            }
            tables.push(t);
        }
        let computed = crc.finalize();
        let mut stored = [0u8; 4];
        r.read_exact(&mut stored)
            .map_err(|_| ModelError::Truncated("checksum"))?;
        let stored = u32::from_le_bytes(stored);
        if stored != computed {
            return Err(ModelError::Checksum { stored, computed });
        }
        let mut extra = [0u8; 1];
        if r.read(&mut extra)? != 0 {
            return Err(ModelError::Corrupt(
                "trailing bytes after the checksum".into(),
            ));
        }
        let mut it = tables.into_iter();
        let mut next = || it.next().expect("shape list checked above");
        let entity = next();
        let t = [next(), next(), next(), next()];
        let mut layers = Vec::new();
        for _ in 0..hp.num_ip_encoder_layers.saturating_sub(1) {
            layers.push(Dense {
                w: next(),
                b: next(),
                inputs: d,
                outputs: d,
            });
        }
        Ok(Model {
            hyper: header.hyperparameters,
            layout: header.layout,
            dim: d,
            entity,
            tables: t,
            layers,
            calibration: header.calibration,
            info: header.training,
            format_version: version,
        })
    }
}

fn padding(len: usize) -> usize {
    (8 - len % 8) % 8
}

#[derive(Debug, Serialize, Deserialize)]
struct TableShape {
    name: String,
    rows: usize,
    cols: usize,
}

impl TableShape {
    fn new(name: &str, rows: usize, cols: usize) -> Self {
        Self {
            name: name.into(),
            rows,
            cols,
        }
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct Header {
    format: String,
    hyperparameters: Hyperparameters,
    layout: IpEncoderLayout,
    hash_scheme: String,
    inference_form: String,
    tables: Vec<TableShape>,
    calibration: Calibration,
    training: TrainingInfo,
}
