//! Row-parallel single-precision GEMM: C (m×n, row-major, contiguous) = alpha·A·B + beta·C, with A
//! and B given by arbitrary strides. Rows of C are split across the rayon pool; each element is
//! computed by one thread, so the result does not depend on the split.
//!
//! Release builds use `matrixmultiply`'s SIMD kernels. Debug builds (tests) use the simple kernel
//! below instead: the workspace optimises this crate in dev builds but not its dependencies, and an
//! unoptimised `matrixmultiply` makes the training tests about ten times slower. Both kernels are
//! checked against a naive product in the tests.
use rayon::prelude::*;

#[derive(Clone, Copy)]
pub struct Mat<'a> {
    pub data: &'a [f32],
    pub rs: isize,
    pub cs: isize,
}

impl<'a> Mat<'a> {
    /// Row-major matrix with `cols` columns.
    pub fn rows(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: cols as isize,
            cs: 1,
        }
    }
    /// The transpose of a row-major matrix with `cols` columns.
    pub fn transposed(data: &'a [f32], cols: usize) -> Self {
        Self {
            data,
            rs: 1,
            cs: cols as isize,
        }
    }
}

/// C (m×n) = alpha·A (m×k) · B (k×n) + beta·C.
#[allow(clippy::too_many_arguments)]
pub fn gemm(m: usize, k: usize, n: usize, alpha: f32, a: Mat, b: Mat, beta: f32, c: &mut [f32]) {
    assert!(c.len() >= m * n);
    if m == 0 || n == 0 {
        return;
    }
    // Bounds: the last element each operand's strides reach must lie inside its slice.
    let last = |mat: &Mat, r: usize, cc: usize| {
        (r.saturating_sub(1) as isize * mat.rs + cc.saturating_sub(1) as isize * mat.cs) as usize
    };
    if k > 0 {
        assert!(last(&a, m, k) < a.data.len());
        assert!(last(&b, k, n) < b.data.len());
    }
    let threads = rayon::current_num_threads().max(1);
    // Small products are not worth a fork.
    let rows_per = if m * n * k < 1 << 18 {
        m
    } else {
        m.div_ceil(threads).max(8)
    };
    c[..m * n]
        .par_chunks_mut(rows_per * n)
        .enumerate()
        .for_each(|(chunk, c_chunk)| {
            let r0 = chunk * rows_per;
            let mm = c_chunk.len() / n;
            if cfg!(debug_assertions) {
                simple_kernel(mm, k, n, alpha, a, r0, b, beta, c_chunk);
                return;
            }
            // SAFETY: the asserts above bound every element A and B are read at; the chunk of C is
            // exclusively ours and contiguous with row stride n.
            unsafe {
                matrixmultiply::sgemm(
                    mm,
                    k,
                    n,
                    alpha,
                    a.data.as_ptr().offset(r0 as isize * a.rs),
                    a.rs,
                    a.cs,
                    b.data.as_ptr(),
                    b.rs,
                    b.cs,
                    beta,
                    c_chunk.as_mut_ptr(),
                    n as isize,
                    1,
                );
            }
        });
}

/// Rows `r0..r0+m` of alpha·A·B + beta·C into `c` (m×n). Two loop orders cover our shapes with
/// contiguous inner loops: "dot" when A's rows and B's columns are contiguous, "axpy" when B's rows
/// are; anything else falls back to the naive order.
#[allow(clippy::too_many_arguments)]
fn simple_kernel(
    m: usize,
    k: usize,
    n: usize,
    alpha: f32,
    a: Mat,
    r0: usize,
    b: Mat,
    beta: f32,
    c: &mut [f32],
) {
    let at = |i: usize, t: usize| a.data[((r0 + i) as isize * a.rs + t as isize * a.cs) as usize];
    for v in c.iter_mut() {
        *v = if beta == 0.0 { 0.0 } else { *v * beta };
    }
    if a.cs == 1 && b.rs == 1 {
        for i in 0..m {
            let arow = &a.data[((r0 + i) as isize * a.rs) as usize..][..k];
            for j in 0..n {
                let bcol = &b.data[(j as isize * b.cs) as usize..][..k];
                c[i * n + j] += alpha * crate::model::dot(arow, bcol);
            }
        }
    } else if b.cs == 1 {
        for i in 0..m {
            let crow = &mut c[i * n..][..n];
            for t in 0..k {
                let s = alpha * at(i, t);
                let brow = &b.data[(t as isize * b.rs) as usize..][..n];
                for (cv, &bv) in crow.iter_mut().zip(brow) {
                    *cv += s * bv;
                }
            }
        }
    } else {
        for i in 0..m {
            for j in 0..n {
                let mut acc = 0.0;
                for t in 0..k {
                    acc += at(i, t) * b.data[(t as isize * b.rs + j as isize * b.cs) as usize];
                }
                c[i * n + j] += alpha * acc;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_naive_product_with_transposes() {
        let (m, k, n) = (37, 19, 23);
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32) - 6.0).collect();
        let bt: Vec<f32> = (0..n * k).map(|i| ((i * 5 % 11) as f32) - 5.0).collect(); // n×k
        let mut c = vec![1.0; m * n];
        gemm(
            m,
            k,
            n,
            1.0,
            Mat::rows(&a, k),
            Mat::transposed(&bt, k),
            0.0,
            &mut c,
        );
        for i in 0..m {
            for j in 0..n {
                let want: f32 = (0..k).map(|t| a[i * k + t] * bt[j * k + t]).sum();
                assert_eq!(c[i * n + j], want);
            }
        }
    }
}
