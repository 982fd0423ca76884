//! Row-parallel single-precision GEMM on top of `matrixmultiply`: C (m×n, row-major, contiguous) =
//! alpha·A·B + beta·C, with A and B given by arbitrary strides. Rows of C are split across the rayon
//! pool; each element is computed by one thread, so the result does not depend on the split.
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
