//! Training: mini-batch SGD with Adam on binary cross-entropy of sigmoid(entity · ip), with random
//! and shuffled negatives, as SageMaker IP Insights does.
//!
//! Performance notes (the target is one epoch of ~2.1 M pairs with the tutorial's settings in under
//! 45 s on 2 cores):
//! - each distinct IP in a batch (positives and random negatives) is encoded once, and the dense
//!   layers run as row-parallel GEMMs over all of them;
//! - shuffled negatives reuse the positives' entity and IP vectors: they cost one dot product each;
//! - Adam is *lazy* on embedding tables: only the rows a batch touched get a moment/weight update
//!   (a dense Adam step over 10^5–10^6 rows would dwarf the forward/backward pass on a CPU);
//! - all per-batch buffers live in a reused [`BatchBuffers`], so the inner loop does not allocate.
use std::net::IpAddr;
use std::time::Instant;

use rand::rngs::{SmallRng, StdRng};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rayon::prelude::*;

use crate::calibration::Calibration;
use crate::error::ModelError;
use crate::gemm::{gemm, Mat};
use crate::hashing::{entity_bucket_of_hash, fnv1a64, splitmix64, IpKey, RowLayout};
use crate::hyper::{Hyperparameters, IpEncoderLayout, TrainOptions};
use crate::model::{dot, Dense, Model, TrainingInfo};

/// Training (or validation) pairs, entities kept as their 64-bit hash so the data does not depend on
/// `num_entity_vectors`, IPv4 and IPv6 addresses as their [`IpKey`]: 16 bytes a pair.
#[derive(Debug, Clone, Default)]
pub struct TrainingData {
    pub entity_hashes: Vec<u64>,
    /// [`IpKey`]s.
    pub ips: Vec<u64>,
}

impl TrainingData {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn push(&mut self, entity: &str, ip: impl Into<IpAddr>) {
        self.entity_hashes.push(fnv1a64(entity.as_bytes()));
        self.ips.push(IpKey::from(ip.into()).0);
    }
    /// How many of the pairs are IPv6.
    pub fn ipv6_pairs(&self) -> usize {
        self.ips.iter().filter(|&&k| !IpKey(k).is_ipv4()).count()
    }
    /// `copies` samples of one pair (a weighted pair-file line).
    pub fn push_copies(&mut self, entity: &str, ip: impl Into<IpAddr>, copies: u32) {
        let h = fnv1a64(entity.as_bytes());
        let n = copies as usize;
        self.entity_hashes.extend(std::iter::repeat_n(h, n));
        self.ips
            .extend(std::iter::repeat_n(IpKey::from(ip.into()).0, n));
    }
    pub fn len(&self) -> usize {
        self.ips.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ips.is_empty()
    }
}

impl<S: AsRef<str>, A: Into<IpAddr>> FromIterator<(S, A)> for TrainingData {
    fn from_iter<I: IntoIterator<Item = (S, A)>>(iter: I) -> Self {
        let mut d = Self::new();
        for (e, ip) in iter {
            d.push(e.as_ref(), ip);
        }
        d
    }
}

/// A random negative for a positive pair's address, from the same family. IPv4: uniform over all
/// of IPv4, as SageMaker's random negatives are. IPv6 (ipsight's own choice; SageMaker has no IPv6):
/// half uniform over global unicast `2000::/3`, half inside the positive's own /32 with a random
/// /33–/64 part, so that the model learns that another customer's prefix at the principal's own
/// ISP is not the principal's (the hard case), not only that a random network is not.
#[inline]
pub fn random_negative(positive: IpKey, rng: &mut impl Rng) -> IpKey {
    if positive.is_ipv4() {
        return IpKey::from(std::net::Ipv4Addr::from(rng.random::<u32>()));
    }
    let r: u64 = rng.random();
    if r & 1 == 0 {
        IpKey(0x2000_0000_0000_0000 | (r >> 4))
    } else {
        IpKey((positive.0 & !0xffff_ffff) | (r >> 32))
    }
}

/// Reported after every batch.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    /// 1-based.
    pub epoch: u32,
    pub epochs: u32,
    /// 1-based batch number within the epoch.
    pub batch: usize,
    pub batches_per_epoch: usize,
    /// Positive pairs processed so far, all epochs.
    pub pairs_done: u64,
    pub pairs_total: u64,
    /// Exponential moving average of the batch loss (mean BCE per pair, negatives included).
    pub loss: f64,
    pub elapsed_secs: f64,
    /// True every `batch_metrics_publish_interval` batches (SageMaker's Speedometer cadence).
    pub publish: bool,
}

#[derive(Debug, Clone, Copy)]
pub struct EpochSummary {
    pub epoch: u32,
    pub mean_loss: f64,
    pub seconds: f64,
    /// Positive pairs per second over the epoch.
    pub pairs_per_sec: f64,
    /// `validation:discriminator_auc` when validation data was given.
    pub validation_discriminator_auc: Option<f64>,
}

#[derive(Debug, Clone, Copy)]
pub enum TrainEvent {
    Batch(Progress),
    Epoch(EpochSummary),
}

/// Trains a model. Uses `opts.threads` threads (all cores by default); with `threads = Some(1)` and a
/// fixed seed the result is reproducible bit for bit.
pub fn train(
    hp: &Hyperparameters,
    opts: &TrainOptions,
    data: &TrainingData,
    validation: Option<&TrainingData>,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<Model, ModelError> {
    hp.validate()?;
    opts.layout.validate()?;
    if data.is_empty() {
        return Err(ModelError::NoTrainingData);
    }
    if opts.layout.ipv6_buckets == 0 {
        for d in std::iter::once(data).chain(validation) {
            if let Some(&k) = d.ips.iter().find(|&&k| !IpKey(k).is_ipv4()) {
                return Err(ModelError::Ipv4Only {
                    ip: std::net::Ipv6Addr::from((k as u128) << 64),
                    why: "the IP encoder layout has ipv6_buckets = 0 (IPv4-only); give it IPv6 \
                          rows or leave IPv6 pairs out"
                        .into(),
                });
            }
        }
    }
    let threads = opts
        .threads
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .max(1);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| ModelError::ThreadPool(e.to_string()))?;
    pool.install(|| train_in_pool(hp, opts, data, validation, on_event))
}

fn train_in_pool(
    hp: &Hyperparameters,
    opts: &TrainOptions,
    data: &TrainingData,
    validation: Option<&TrainingData>,
    on_event: &mut (dyn FnMut(TrainEvent) + Send),
) -> Result<Model, ModelError> {
    let start = Instant::now();
    let mut trainer = Trainer::new(hp, opts.layout, opts.seed)?;
    let n = data.len();
    let bsz = (hp.mini_batch_size as usize).min(n);
    let batches = n.div_ceil(bsz);
    let buckets: Vec<u32> = data
        .entity_hashes
        .par_iter()
        .map(|&h| entity_bucket_of_hash(h, hp.num_entity_vectors))
        .collect();
    let mut order: Vec<u32> = (0..n as u32).collect();
    let mut batch_ents = Vec::with_capacity(bsz);
    let mut batch_ips = Vec::with_capacity(bsz);
    let mut ema = f64::NAN;
    let mut last_epoch_loss = f64::NAN;
    let mut last_auc = None;
    let pairs_total = n as u64 * hp.epochs as u64;
    let mut pairs_done = 0u64;
    for epoch in 1..=hp.epochs {
        let epoch_start = Instant::now();
        let mut rng = SmallRng::seed_from_u64(splitmix64(opts.seed ^ (epoch as u64) << 32));
        order.shuffle(&mut rng);
        let mut loss_sum = 0.0;
        for (bi, chunk) in order.chunks(bsz).enumerate() {
            batch_ents.clear();
            batch_ips.clear();
            batch_ents.extend(chunk.iter().map(|&i| buckets[i as usize]));
            batch_ips.extend(chunk.iter().map(|&i| data.ips[i as usize]));
            let batch_seed = splitmix64(
                opts.seed
                    .wrapping_add((epoch as u64) << 40)
                    .wrapping_add(bi as u64),
            );
            let loss = trainer.forward_backward(&batch_ents, &batch_ips, batch_seed);
            trainer.apply();
            loss_sum += loss;
            ema = if ema.is_nan() {
                loss
            } else {
                0.98 * ema + 0.02 * loss
            };
            pairs_done += chunk.len() as u64;
            on_event(TrainEvent::Batch(Progress {
                epoch,
                epochs: hp.epochs,
                batch: bi + 1,
                batches_per_epoch: batches,
                pairs_done,
                pairs_total,
                loss: ema,
                elapsed_secs: start.elapsed().as_secs_f64(),
                publish: (bi as u64 + 1).is_multiple_of(hp.batch_metrics_publish_interval),
            }));
        }
        let seconds = epoch_start.elapsed().as_secs_f64();
        last_epoch_loss = loss_sum / batches as f64;
        let auc = match validation {
            Some(v) if !v.is_empty() => {
                let model = trainer.to_model(Calibration::default(), TrainingInfo::default());
                Some(crate::eval::discriminator_auc_data(
                    &model,
                    v,
                    opts.seed ^ epoch as u64,
                ))
            }
            _ => None,
        };
        last_auc = auc;
        on_event(TrainEvent::Epoch(EpochSummary {
            epoch,
            mean_loss: last_epoch_loss,
            seconds,
            pairs_per_sec: n as f64 / seconds,
            validation_discriminator_auc: auc,
        }));
    }
    let mut model = trainer.to_model(Calibration::default(), TrainingInfo::default());
    // Calibrate on (an evenly strided sample of) the training pairs themselves.
    let step = n.div_ceil(opts.calibration_sample.max(1)).max(1);
    let mut scores: Vec<f32> = (0..n)
        .into_par_iter()
        .step_by(step)
        .map(|i| model.score_bucket(buckets[i], data.ips[i]))
        .collect();
    model.calibration = Calibration::from_scores(&mut scores);
    model.info = TrainingInfo {
        pairs: n as u64,
        epochs: hp.epochs,
        seconds: start.elapsed().as_secs_f64(),
        final_loss: last_epoch_loss,
        validation_discriminator_auc: last_auc,
        entity: opts.entity.clone(),
    };
    Ok(model)
}

/// A parameter tensor with its Adam moments.
struct Param {
    w: Vec<f32>,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl Param {
    fn uniform(len: usize, scale: f32, rng: &mut StdRng) -> Self {
        Self {
            w: (0..len).map(|_| rng.random_range(-scale..=scale)).collect(),
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }
    fn zeros(len: usize) -> Self {
        Self {
            w: vec![0.0; len],
            m: vec![0.0; len],
            v: vec![0.0; len],
        }
    }
}

struct Layer {
    w: Param,
    b: Param,
}

/// An embedding table with its Adam moments interleaved per row as `[w | m | v]`: a sparse update
/// then touches one contiguous 3·d block instead of three rows in three distant arrays, which is
/// kinder to the prefetcher and the TLB (these updates are memory-bound).
struct Table {
    data: Vec<f32>,
    d: usize,
}

impl Table {
    fn uniform(rows: usize, d: usize, scale: f32, rng: &mut StdRng) -> Result<Self, ModelError> {
        let len = rows
            .checked_mul(3 * d)
            .ok_or(ModelError::OutOfMemory { bytes: u64::MAX })?;
        // try_reserve turns "num_entity_vectors too large for this machine" into an error instead
        // of an allocation abort.
        let mut data = Vec::new();
        data.try_reserve_exact(len)
            .map_err(|_| ModelError::OutOfMemory {
                bytes: len as u64 * 4,
            })?;
        data.resize(len, 0.0f32);
        advise_huge_pages(&mut data);
        for block in data.chunks_exact_mut(3 * d) {
            for w in &mut block[..d] {
                *w = rng.random_range(-scale..=scale);
            }
        }
        Ok(Self { data, d })
    }
    #[inline]
    fn w(&self, row: usize) -> &[f32] {
        &self.data[row * 3 * self.d..][..self.d]
    }
    fn rows(&self) -> usize {
        self.data.len() / (3 * self.d)
    }
    /// The weights as a strided matrix (row stride 3·d) for GEMM.
    fn weights_mat(&self) -> Mat<'_> {
        Mat {
            data: &self.data,
            rs: 3 * self.d as isize,
            cs: 1,
        }
    }
    fn weights(&self) -> Vec<f32> {
        self.data
            .chunks_exact(3 * self.d)
            .flat_map(|b| &b[..self.d])
            .copied()
            .collect()
    }
}

/// Asks Linux for transparent huge pages on a large table: random row access over tens of MB
/// otherwise misses the TLB on nearly every row. Purely advisory; ignored elsewhere or on failure.
fn advise_huge_pages(v: &mut [f32]) {
    #[cfg(target_os = "linux")]
    {
        extern "C" {
            fn madvise(addr: *mut std::ffi::c_void, len: usize, advice: i32) -> i32;
        }
        const MADV_HUGEPAGE: i32 = 14;
        const PAGE: usize = 4096;
        let start = v.as_mut_ptr() as usize;
        let end = start + std::mem::size_of_val(v);
        let aligned = start.div_ceil(PAGE) * PAGE;
        if end > aligned + (2 << 20) {
            // SAFETY: the range lies inside our own allocation; MADV_HUGEPAGE changes no contents.
            unsafe {
                madvise(
                    aligned as *mut std::ffi::c_void,
                    (end - aligned) / PAGE * PAGE,
                    MADV_HUGEPAGE,
                );
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = v;
}

/// Adam coefficients for one step (bias correction folded into the step size).
#[derive(Clone, Copy)]
struct Adam {
    lr_t: f32,
    b1: f32,
    b2: f32,
    eps: f32,
    wd: f32,
}

impl Adam {
    #[inline]
    fn update(&self, w: &mut [f32], m: &mut [f32], v: &mut [f32], g: &[f32]) {
        // Zipped iterators: no bounds checks, so the loop vectorises.
        for (((w, m), v), &g) in w.iter_mut().zip(m.iter_mut()).zip(v.iter_mut()).zip(g) {
            // L2 weight decay enters the gradient, as in MXNet's Adam (which SageMaker's algorithm uses).
            let gi = g + self.wd * *w;
            *m = self.b1 * *m + (1.0 - self.b1) * gi;
            *v = self.b2 * *v + (1.0 - self.b2) * gi * gi;
            *w -= self.lr_t * *m / (v.sqrt() + self.eps);
        }
    }
}

/// A raw pointer that may cross threads: the sparse updates write disjoint rows of one table.
#[derive(Clone, Copy)]
struct RowsPtr(*mut f32);
unsafe impl Send for RowsPtr {}
unsafe impl Sync for RowsPtr {}
impl RowsPtr {
    /// # Safety
    /// No other thread may access the same row concurrently, and the row must be in bounds.
    #[inline]
    unsafe fn row<'a>(self, row: usize, d: usize) -> &'a mut [f32] {
        std::slice::from_raw_parts_mut(self.0.add(row * d), d)
    }
}

/// Per-batch buffers, reused across batches.
#[derive(Default)]
struct BatchBuffers {
    b: usize,
    rnd: Vec<u64>,
    perm: Vec<u32>,
    sort: Vec<(u64, u32)>,
    uips: Vec<u64>,
    slot_u: Vec<u32>,
    pair_u: Vec<u32>,
    x: Vec<f32>,
    acts: Vec<Vec<f32>>,
    g: Vec<f32>,
    de: Vec<f32>,
    dv: Vec<f32>,
    dtmp: Vec<f32>,
    dx: Vec<f32>,
    csr_off: Vec<u32>,
    csr: Vec<u32>,
    dw: Vec<Vec<f32>>,
    db: Vec<Vec<f32>>,
    ents: Vec<u32>,
    ent_groups: Vec<(u32, u32)>,
    ent_bounds: Vec<u32>,
    row_groups: [Vec<(u32, u32)>; 4],
    row_bounds: [Vec<u32>; 4],
}

pub(crate) struct Trainer {
    hp: Hyperparameters,
    layout: IpEncoderLayout,
    row_layout: RowLayout,
    d: usize,
    r: usize,
    s: usize,
    step: u64,
    entity: Table,
    tables: [Table; 4],
    layers: Vec<Layer>,
    ws: BatchBuffers,
}

/// Resizes a reused buffer without shrinking its allocation.
fn fit<T: Clone + Default>(v: &mut Vec<T>, len: usize) {
    v.clear();
    v.resize(len, T::default());
}

/// Hints the CPU to start loading `bytes` from `p` into cache: the sparse updates and the encoder
/// gather hop between random rows of large tables, so each row's first touch is a cache (and often
/// TLB) miss; issuing the next rows' loads early overlaps those misses.
/// Takes a raw pointer (never dereferenced) so it may name rows another thread is updating.
#[inline(always)]
fn prefetch(p: *const f32, floats: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let mut off = 0;
        while off < floats {
            // SAFETY: a prefetch is a hint with no architectural effect and cannot fault;
            // `wrapping_add` keeps the pointer arithmetic itself defined.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(off).cast()) };
            off += 16;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (p, floats);
}

/// Resizes a reused buffer whose every element the caller overwrites: no zeroing pass (several MB
/// a batch otherwise).
fn fit_overwrite<T: Clone + Default>(v: &mut Vec<T>, len: usize) {
    if v.len() > len {
        v.truncate(len);
    } else {
        v.resize(len, T::default());
    }
}

/// Sorts (key, item) pairs and records where each key's run starts (plus the end).
fn group(pairs: &mut [(u32, u32)], bounds: &mut Vec<u32>) {
    pairs.sort_unstable();
    bounds.clear();
    for (i, p) in pairs.iter().enumerate() {
        if i == 0 || p.0 != pairs[i - 1].0 {
            bounds.push(i as u32);
        }
    }
    bounds.push(pairs.len() as u32);
}

#[inline]
fn softplus(x: f32) -> f32 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

#[inline]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

impl Trainer {
    pub(crate) fn new(
        hp: &Hyperparameters,
        layout: IpEncoderLayout,
        seed: u64,
    ) -> Result<Self, ModelError> {
        let d = hp.vector_dim as usize;
        let mut rng = StdRng::seed_from_u64(seed);
        let rows = layout.rows().table_rows();
        // Small initial scores (std ≈ 0.04 at d = 128) keep the first sigmoids near 0.5.
        let entity = Table::uniform(hp.num_entity_vectors as usize, d, 0.1, &mut rng)?;
        let [t8, t16, t24, t32] = rows.map(|r| Table::uniform(r, d, 0.05, &mut rng));
        let tables = [t8?, t16?, t24?, t32?];
        let xavier = (6.0 / (2.0 * d as f32)).sqrt();
        let layers = (0..hp.num_ip_encoder_layers)
            .map(|_| Layer {
                w: Param::uniform(d * d, xavier, &mut rng),
                b: Param::zeros(d),
            })
            .collect();
        Ok(Self {
            hp: hp.clone(),
            layout,
            row_layout: layout.rows(),
            d,
            r: hp.random_negative_sampling_rate as usize,
            s: hp.shuffled_negative_sampling_rate as usize,
            step: 0,
            entity,
            tables,
            layers,
            ws: BatchBuffers::default(),
        })
    }

    #[inline]
    fn rows(&self, ip: u64) -> [u32; 4] {
        self.row_layout.rows(IpKey(ip))
    }

    /// Forward and backward pass over one batch of positives; leaves the gradients in the workspace
    /// and returns the mean BCE per pair (positives and negatives).
    pub(crate) fn forward_backward(&mut self, ents: &[u32], ips: &[u64], seed: u64) -> f64 {
        let (d, r, s) = (self.d, self.r, self.s);
        let b = ents.len();
        let k = 1 + r + s;
        let nl = self.layers.len();
        let mut ws = std::mem::take(&mut self.ws);
        ws.b = b;
        ws.ents.clear();
        ws.ents.extend_from_slice(ents);

        // Negatives. Random IPs follow the positive's family ([`random_negative`]).
        let mut rng = SmallRng::seed_from_u64(seed);
        fit_overwrite(&mut ws.rnd, b * r);
        for (i, v) in ws.rnd.iter_mut().enumerate() {
            *v = random_negative(IpKey(ips[i / r]), &mut rng).0;
        }
        fit_overwrite(&mut ws.perm, b * s);
        for chunk in ws.perm.chunks_mut(b.max(1)) {
            for (i, p) in chunk.iter_mut().enumerate() {
                *p = i as u32;
            }
            chunk.shuffle(&mut rng);
        }

        // Distinct IPs among positives and random negatives.
        let slots = b * (1 + r);
        ws.sort.clear();
        ws.sort.extend(
            ips.iter()
                .copied()
                .chain(ws.rnd.iter().copied())
                .enumerate()
                .map(|(i, ip)| (ip, i as u32)),
        );
        ws.sort.sort_unstable();
        fit_overwrite(&mut ws.slot_u, slots);
        ws.uips.clear();
        for &(ip, slot) in &ws.sort {
            if ws.uips.last() != Some(&ip) {
                ws.uips.push(ip);
            }
            ws.slot_u[slot as usize] = (ws.uips.len() - 1) as u32;
        }
        let u = ws.uips.len();
        fit_overwrite(&mut ws.pair_u, b * k);
        for i in 0..b {
            let p = &mut ws.pair_u[i * k..(i + 1) * k];
            p[0] = ws.slot_u[i];
            for j in 0..r {
                p[1 + j] = ws.slot_u[b + i * r + j];
            }
            for j in 0..s {
                p[1 + r + j] = ws.slot_u[ws.perm[j * b + i] as usize];
            }
        }

        // Encoder input: sum of the four prefix embeddings.
        fit_overwrite(&mut ws.x, u * d);
        {
            let uips = &ws.uips;
            ws.x.par_chunks_mut(d)
                .with_min_len(64)
                .enumerate()
                .for_each(|(ui, x)| {
                    if let Some(&ahead) = uips.get(ui + 4) {
                        for (table, &r) in self.tables.iter().zip(&self.rows(ahead)) {
                            prefetch(table.w(r as usize).as_ptr(), d);
                        }
                    }
                    let rows = self.rows(uips[ui]);
                    x.copy_from_slice(self.tables[0].w(rows[0] as usize));
                    for (table, &r) in self.tables.iter().zip(&rows).skip(1) {
                        let row = table.w(r as usize);
                        for (a, b) in x.iter_mut().zip(row) {
                            *a += b;
                        }
                    }
                });
        }
        // Dense layers, ReLU between them (not after the last: the output is an embedding).
        ws.acts.resize_with(nl, Vec::new);
        for l in 0..nl {
            let (before, rest) = ws.acts.split_at_mut(l);
            let input: &[f32] = if l == 0 { &ws.x } else { &before[l - 1] };
            let out = &mut rest[0];
            fit_overwrite(out, u * d);
            let layer = &self.layers[l];
            gemm(
                u,
                d,
                d,
                1.0,
                Mat::rows(input, d),
                Mat::transposed(&layer.w.w, d),
                0.0,
                out,
            );
            let hidden = l + 1 < nl;
            out.par_chunks_mut(d).with_min_len(256).for_each(|row| {
                for (o, bias) in row.iter_mut().zip(&layer.b.w) {
                    *o += bias;
                    if hidden {
                        *o = o.max(0.0);
                    }
                }
            });
        }
        let v: &[f32] = if nl == 0 { &ws.x } else { &ws.acts[nl - 1] };

        // Scores, loss, dL/dscore, and each positive's entity gradient.
        fit_overwrite(&mut ws.g, b * k);
        fit_overwrite(&mut ws.de, b * d);
        let inv = 1.0 / (b * k) as f32;
        let entity = &self.entity;
        let pair_u = &ws.pair_u;
        let loss: f64 =
            ws.g.par_chunks_mut(k)
                .zip(ws.de.par_chunks_mut(d))
                .enumerate()
                .with_min_len(16)
                .map(|(i, (g, de))| {
                    de.fill(0.0);
                    let e = entity.w(ents[i] as usize);
                    let mut loss = 0.0f64;
                    for (j, gj) in g.iter_mut().enumerate() {
                        let ui = pair_u[i * k + j] as usize;
                        let vr = &v[ui * d..][..d];
                        let score = dot(e, vr);
                        let positive = j == 0;
                        loss += if positive {
                            softplus(-score)
                        } else {
                            softplus(score)
                        } as f64;
                        let grad = (sigmoid(score) - if positive { 1.0 } else { 0.0 }) * inv;
                        *gj = grad;
                        for (a, &bv) in de.iter_mut().zip(vr) {
                            *a += grad * bv;
                        }
                    }
                    loss
                })
                .sum();

        // dL/dV per distinct IP, via an inverted index from IP to the pairs that use it.
        fit(&mut ws.csr_off, u + 1);
        for &ui in pair_u.iter() {
            ws.csr_off[ui as usize + 1] += 1;
        }
        for i in 0..u {
            ws.csr_off[i + 1] += ws.csr_off[i];
        }
        fit_overwrite(&mut ws.csr, b * k);
        {
            let mut fill = ws.csr_off.clone();
            for (p, &ui) in pair_u.iter().enumerate() {
                ws.csr[fill[ui as usize] as usize] = p as u32;
                fill[ui as usize] += 1;
            }
        }
        fit_overwrite(&mut ws.dv, u * d);
        {
            let (csr, off, g, ents) = (&ws.csr, &ws.csr_off, &ws.g, &ws.ents);
            ws.dv
                .par_chunks_mut(d)
                .with_min_len(64)
                .enumerate()
                .for_each(|(ui, dv)| {
                    dv.fill(0.0);
                    for &p in &csr[off[ui] as usize..off[ui + 1] as usize] {
                        let gp = g[p as usize];
                        let e = entity.w(ents[p as usize / k] as usize);
                        for (a, &ev) in dv.iter_mut().zip(e) {
                            *a += gp * ev;
                        }
                    }
                });
        }

        // Back through the dense layers: dW = dZᵀ·input, db = Σ dZ, d(input) = dZ·W.
        let mut cur = std::mem::take(&mut ws.dv);
        ws.dw.resize_with(nl, Vec::new);
        ws.db.resize_with(nl, Vec::new);
        for l in (0..nl).rev() {
            let input: &[f32] = if l == 0 { &ws.x } else { &ws.acts[l - 1] };
            let w = &self.layers[l].w.w;
            fit_overwrite(&mut ws.dw[l], d * d);
            gemm(
                d,
                u,
                d,
                1.0,
                Mat::transposed(&cur, d),
                Mat::rows(input, d),
                0.0,
                &mut ws.dw[l],
            );
            fit(&mut ws.db[l], d);
            for row in cur.chunks_exact(d) {
                for (a, &x) in ws.db[l].iter_mut().zip(row) {
                    *a += x;
                }
            }
            fit_overwrite(&mut ws.dtmp, u * d);
            gemm(
                u,
                d,
                d,
                1.0,
                Mat::rows(&cur, d),
                Mat::rows(w, d),
                0.0,
                &mut ws.dtmp,
            );
            if l > 0 {
                let act = &ws.acts[l - 1];
                ws.dtmp
                    .par_chunks_mut(d)
                    .zip(act.par_chunks(d))
                    .with_min_len(256)
                    .for_each(|(dh, a)| {
                        for (g, &av) in dh.iter_mut().zip(a) {
                            if av <= 0.0 {
                                *g = 0.0;
                            }
                        }
                    });
            }
            std::mem::swap(&mut cur, &mut ws.dtmp);
        }
        // `cur` is now dL/dx; keep both it and (for nl > 0) a buffer for next time's dv.
        if nl > 0 {
            ws.dv = std::mem::take(&mut ws.dtmp);
        }
        ws.dx = cur;

        // Which table rows each distinct IP touched, grouped by row, for the sparse updates. The
        // four sorts are independent: one task each.
        {
            let uips = &ws.uips;
            ws.row_groups
                .par_iter_mut()
                .zip(ws.row_bounds.par_iter_mut())
                .enumerate()
                .for_each(|(t, (groups, bounds))| {
                    groups.clear();
                    groups.extend(
                        uips.iter()
                            .enumerate()
                            .map(|(ui, &ip)| (self.rows(ip)[t], ui as u32)),
                    );
                    group(groups, bounds);
                });
        }
        ws.ent_groups.clear();
        ws.ent_groups
            .extend(ents.iter().enumerate().map(|(i, &e)| (e, i as u32)));
        group(&mut ws.ent_groups, &mut ws.ent_bounds);

        self.ws = ws;
        loss / (b * k) as f64
    }

    /// One Adam step with the gradients left by [`Trainer::forward_backward`]: dense on the encoder
    /// layers, lazy (touched rows only) on the entity and IP tables.
    pub(crate) fn apply(&mut self) {
        self.step += 1;
        let t = self.step as i32;
        let (b1, b2) = (0.9f32, 0.999f32);
        let lr = self.hp.learning_rate as f32;
        let adam = Adam {
            lr_t: lr * (1.0 - b2.powi(t)).sqrt() / (1.0 - b1.powi(t)),
            b1,
            b2,
            eps: 1e-8,
            wd: self.hp.weight_decay as f32,
        };
        let d = self.d;
        let ws = &self.ws;
        sparse_update(
            &mut self.entity,
            d,
            &ws.ent_groups,
            &ws.ent_bounds,
            &ws.de,
            adam,
        );
        for t in 0..4 {
            sparse_update(
                &mut self.tables[t],
                d,
                &ws.row_groups[t],
                &ws.row_bounds[t],
                &ws.dx,
                adam,
            );
        }
        for (l, layer) in self.layers.iter_mut().enumerate() {
            let w = &mut layer.w;
            adam.update(&mut w.w, &mut w.m, &mut w.v, &ws.dw[l]);
            let bp = &mut layer.b;
            adam.update(&mut bp.w, &mut bp.m, &mut bp.v, &ws.db[l]);
        }
    }

    /// The inference form (see [`crate::model`]): the first dense layer folded into the tables.
    pub(crate) fn to_model(&self, calibration: Calibration, info: TrainingInfo) -> Model {
        let d = self.d;
        let tables = std::array::from_fn(|t| {
            let raw = &self.tables[t];
            match self.layers.first() {
                None => raw.weights(),
                Some(first) => {
                    let rows = raw.rows();
                    let mut out = vec![0.0; rows * d];
                    gemm(
                        rows,
                        d,
                        d,
                        1.0,
                        raw.weights_mat(),
                        Mat::transposed(&first.w.w, d),
                        0.0,
                        &mut out,
                    );
                    if t == 0 {
                        for row in out.chunks_exact_mut(d) {
                            for (o, bias) in row.iter_mut().zip(&first.b.w) {
                                *o += bias;
                            }
                        }
                    }
                    out
                }
            }
        });
        let layers = self
            .layers
            .iter()
            .skip(1)
            .map(|l| Dense {
                w: l.w.w.clone(),
                b: l.b.w.clone(),
                inputs: d,
                outputs: d,
            })
            .collect();
        Model {
            hyper: self.hp.clone(),
            layout: self.layout,
            dim: d,
            entity: self.entity.weights(),
            tables,
            layers,
            calibration,
            info,
            format_version: crate::model::FORMAT_VERSION,
        }
    }
}

/// Lazy Adam over the rows named by `groups` (key = table row, item = row of `grads` to add in).
fn sparse_update(
    table: &mut Table,
    d: usize,
    groups: &[(u32, u32)],
    bounds: &[u32],
    grads: &[f32],
    adam: Adam,
) {
    let rows = table.rows();
    let base = RowsPtr(table.data.as_mut_ptr());
    (0..bounds.len().saturating_sub(1))
        .into_par_iter()
        .with_min_len(64)
        .for_each_init(
            || vec![0.0f32; d],
            |gbuf, gi| {
                if let Some(&ahead) = bounds.get(gi + 3) {
                    if let Some(&(r, _)) = groups.get(ahead as usize) {
                        prefetch(base.0.wrapping_add(r as usize * 3 * d), 3 * d);
                    }
                }
                let run = &groups[bounds[gi] as usize..bounds[gi + 1] as usize];
                let row = run[0].0 as usize;
                assert!(row < rows);
                gbuf.fill(0.0);
                for &(_, src) in run {
                    for (a, &g) in gbuf.iter_mut().zip(&grads[src as usize * d..][..d]) {
                        *a += g;
                    }
                }
                // SAFETY: `group` made the keys of distinct runs distinct, so every row block is
                // written by exactly one task; `row < rows` keeps it in bounds; `table` is
                // exclusively borrowed for the whole call.
                let block = unsafe { base.row(row, 3 * d) };
                let (w, mv) = block.split_at_mut(d);
                let (m, v) = mv.split_at_mut(d);
                adam.update(w, m, v, gbuf);
            },
        );
}

impl Model {
    /// Score by precomputed entity bucket and numeric IP (training-side helper).
    pub(crate) fn score_bucket(&self, bucket: u32, ip: u64) -> f32 {
        let d = self.dim;
        self.score_key(&self.entity[bucket as usize * d..][..d], IpKey(ip))
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Access to raw gradients and parameters for the gradient check.
    use super::*;

    pub struct Probe {
        pub trainer: Trainer,
    }

    impl Probe {
        pub fn new(hp: &Hyperparameters, layout: IpEncoderLayout, seed: u64) -> Self {
            Self {
                trainer: Trainer::new(hp, layout, seed).unwrap(),
            }
        }
        pub fn loss(&mut self, ents: &[u32], ips: &[u64], seed: u64) -> f64 {
            self.trainer.forward_backward(ents, ips, seed)
        }
        /// Analytic gradient of the loss w.r.t. entity row `row`, element `i` (after `loss`).
        pub fn entity_grad(&self, row: u32, i: usize) -> f32 {
            let ws = &self.trainer.ws;
            let d = self.trainer.d;
            (0..ws.b)
                .filter(|&p| ws.ents[p] == row)
                .map(|p| ws.de[p * d + i])
                .sum()
        }
        /// Analytic gradient w.r.t. table `t`, row `row`, element `i`.
        pub fn table_grad(&self, t: usize, row: u32, i: usize) -> f32 {
            let ws = &self.trainer.ws;
            let d = self.trainer.d;
            ws.uips
                .iter()
                .enumerate()
                .filter(|(_, &ip)| self.trainer.rows(ip)[t] == row)
                .map(|(ui, _)| ws.dx[ui * d + i])
                .sum()
        }
        pub fn layer_w_grad(&self, l: usize, idx: usize) -> f32 {
            self.trainer.ws.dw[l][idx]
        }
        pub fn layer_b_grad(&self, l: usize, idx: usize) -> f32 {
            self.trainer.ws.db[l][idx]
        }
        pub fn entity_param(&mut self, row: u32, i: usize) -> &mut f32 {
            let d = self.trainer.d;
            &mut self.trainer.entity.data[row as usize * 3 * d + i]
        }
        pub fn table_param(&mut self, t: usize, row: u32, i: usize) -> &mut f32 {
            let d = self.trainer.d;
            &mut self.trainer.tables[t].data[row as usize * 3 * d + i]
        }
        pub fn layer_w(&mut self, l: usize, idx: usize) -> &mut f32 {
            &mut self.trainer.layers[l].w.w[idx]
        }
        pub fn layer_b(&mut self, l: usize, idx: usize) -> &mut f32 {
            &mut self.trainer.layers[l].b.w[idx]
        }
        pub fn rows(&self, ip: u64) -> [u32; 4] {
            self.trainer.rows(ip)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::Probe;
    use super::*;

    /// Central finite differences of the batch loss against the analytic gradients, for entity rows,
    /// every IP table, both dense layers' weights and biases.
    #[test]
    fn gradient_check() {
        let mut hp = Hyperparameters::new(5, 8);
        hp.num_ip_encoder_layers = 2;
        hp.random_negative_sampling_rate = 2;
        hp.shuffled_negative_sampling_rate = 1;
        let layout = IpEncoderLayout {
            prefix24_buckets: 16,
            address_buckets: 16,
            ipv6_buckets: 16,
        };
        let mut probe = Probe::new(&hp, layout, 7);
        // Scale parameters up so gradients are well above f32 rounding noise.
        for l in 0..2 {
            for i in 0..64 {
                *probe.layer_w(l, i) *= 3.0;
            }
        }
        let ents = [0u32, 1, 2, 1, 0];
        // IPv4 and IPv6 positives (the latter draw IPv6 random negatives).
        let ips: Vec<u64> = [
            "10.0.0.1",
            "2a01:e0a:3c8:7b0::1",
            "192.168.7.9",
            "10.0.0.1",
            "2a01:e0a:3c8:7b1::2",
        ]
        .iter()
        .map(|s| IpKey::from(s.parse::<IpAddr>().unwrap()).0)
        .collect();
        let mut scaled = std::collections::HashSet::new();
        for &ip in &ips {
            for (t, row) in probe.rows(ip).into_iter().enumerate() {
                if scaled.insert((t, row)) {
                    for i in 0..8 {
                        *probe.table_param(t, row, i) *= 5.0;
                    }
                }
            }
        }
        let seed = 99;
        let center = probe.loss(&ents, &ips, seed);
        let eps = 2e-3f32;
        let check =
            |name: &str, analytic: f32, probe: &mut Probe, get: &dyn Fn(&mut Probe) -> &mut f32| {
                let orig = *get(probe);
                *get(probe) = orig + eps;
                let up = probe.loss(&ents, &ips, seed);
                *get(probe) = orig - eps;
                let down = probe.loss(&ents, &ips, seed);
                *get(probe) = orig;
                // A ReLU kink inside [orig-eps, orig+eps] makes the one-sided slopes disagree; such a
                // point says nothing about the analytic gradient, so it is skipped (and counted).
                let (right, left) = ((up - center) / eps as f64, (center - down) / eps as f64);
                if (right - left).abs() > 0.05 * right.abs().max(left.abs()) + 1e-3 {
                    eprintln!("{name}: kink, skipped");
                    return 0.0;
                }
                let numeric = ((up - down) / (2.0 * eps as f64)) as f32;
                let tol = 2e-5 + 2e-2 * numeric.abs().max(analytic.abs());
                assert!(
                    (numeric - analytic).abs() <= tol,
                    "{name}: analytic {analytic} vs numeric {numeric}"
                );
                numeric
            };
        let mut nonzero = 0;
        for (row, i) in [(0u32, 0usize), (1, 3), (2, 7)] {
            let a = probe.entity_grad(row, i);
            let n = check("entity", a, &mut probe, &|p| p.entity_param(row, i));
            nonzero += (n.abs() > 1e-4) as usize;
            probe.loss(&ents, &ips, seed);
        }
        let rows: Vec<(usize, u32)> = [ips[0], ips[1]]
            .iter()
            .flat_map(|&ip| probe.rows(ip).into_iter().enumerate())
            .collect();
        for &(t, row) in &rows {
            for i in [1usize, 5] {
                let a = probe.table_grad(t, row, i);
                let n = check(&format!("table{t}"), a, &mut probe, &|p| {
                    p.table_param(t, row, i)
                });
                nonzero += (n.abs() > 1e-4) as usize;
                probe.loss(&ents, &ips, seed);
            }
        }
        for l in 0..2 {
            for idx in [0usize, 9, 63] {
                let a = probe.layer_w_grad(l, idx);
                let n = check(&format!("W{l}"), a, &mut probe, &|p| p.layer_w(l, idx));
                nonzero += (n.abs() > 1e-4) as usize;
                probe.loss(&ents, &ips, seed);
            }
            for idx in [2usize, 6] {
                let a = probe.layer_b_grad(l, idx);
                check(&format!("b{l}"), a, &mut probe, &|p| p.layer_b(l, idx));
                probe.loss(&ents, &ips, seed);
            }
        }
        // Guard against a vacuous pass (all gradients zero).
        assert!(nonzero >= 10, "only {nonzero} non-negligible gradients");
    }
}
