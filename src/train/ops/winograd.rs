//! Stride-1 3×3 convolution by Winograd's minimal filtering algorithm F(2×2, 3×3) (Lavin & Gray,
//! "Fast Algorithms for Convolutional Neural Networks", CVPR 2016): each 2×2 block of output
//! (a *tile*) is `Aᵀ·[(G·g·Gᵀ) ⊙ (Bᵀ·d·B)]·A` of the tile's 4×4 input patch `d` and the 3×3
//! kernel `g`, so summed over the input channels it is 16 matrix products
//! `M[ξ] (O×T) = U[ξ] (O×C) · V[ξ] (C×T)` over T tiles, one per position ξ of the 4×4
//! transformed patch: 16 multiplies per tile and channel pair where the direct sum needs 36.
//!
//! The transforms are additions only (and halves in `G`), so the result differs from the direct
//! sum by a few float32 rounding steps. The work is cut into bands of tile rows of one sample,
//! sized so that a band's transformed input and products stay near the cache, and the bands
//! run on all cores.

use rayon::prelude::*;

use super::conv::{Shared, View, matmul};

/// A stride-1 3×3 convolution: input `(n, c, h, w)`, zero-padded by `pad` on every side,
/// kernel `(o, c, 3, 3)`.
#[derive(Clone, Copy, Debug)]
pub struct Conv3x3 {
    pub n: usize,
    pub c: usize,
    pub h: usize,
    pub w: usize,
    pub o: usize,
    pub pad: usize,
}

impl Conv3x3 {
    /// Output rows and columns.
    pub fn out(&self) -> (usize, usize) {
        (self.h + 2 * self.pad - 2, self.w + 2 * self.pad - 2)
    }
}

/// The transformed kernel into `u`: for each output channel, 16 rows of C, `U[ξ] = (G·g·Gᵀ)[ξ]`
/// (ξ = 4·row + column) with `G = [[1, 0, 0], [½, ½, ½], [½, −½, ½], [0, 0, 1]]`; so `U[ξ]` is
/// the O×C matrix at offset `ξ·C` with row stride `16·C`.
fn kernel_transform(w: &[f32], c: usize, u: &mut [f32]) {
    debug_assert_eq!(w.len() * 16, u.len() * 9);
    let g_times = |a: f32, b: f32, c: f32| [a, 0.5 * (a + b + c), 0.5 * (a - b + c), c];
    u.par_chunks_mut(16 * c)
        .zip(w.par_chunks(9 * c))
        .for_each(|(uo, wo)| {
            for (ci, g) in wo.chunks_exact(9).enumerate() {
                // G·g column by column (4×3), then (G·g)·Gᵀ row by row.
                let cols = [0, 1, 2].map(|j| g_times(g[j], g[3 + j], g[6 + j]));
                for r in 0..4 {
                    let row = g_times(cols[0][r], cols[1][r], cols[2][r]);
                    for (s, v) in row.into_iter().enumerate() {
                        uo[(4 * r + s) * c + ci] = v;
                    }
                }
            }
        });
}

thread_local! {
    /// A buffer each thread reuses for transformed kernels, inputs and products, so that large
    /// scratch space is not mapped and zeroed afresh on every call.
    static SCRATCH: std::cell::Cell<Vec<f32>> = const { std::cell::Cell::new(Vec::new()) };
}

/// Calls `f` with this thread's scratch buffer resized to `len` (contents unspecified: `f` must
/// write before it reads).
fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    let mut buf = SCRATCH.take();
    buf.resize(len, 0.0);
    let r = f(&mut buf);
    SCRATCH.set(buf);
    r
}

/// The transformed kernel of `w` `(o, c, 3, 3)` that [`forward_transformed`] takes (16·o·c
/// values), for a kernel used many times.
pub fn transform_kernel(w: &[f32], c: usize) -> Vec<f32> {
    let mut u = vec![0f32; w.len() / 9 * 16];
    kernel_transform(w, c, &mut u);
    u
}

/// Tile rows per band: the band's transformed input or products (the larger) about 256 K
/// floats, with enough bands for every core.
fn band_rows(d: Conv3x3, th: usize, tw: usize) -> usize {
    let per_row = 16 * d.c.max(d.o) * tw;
    let by_cache = (1 << 18) / per_row.max(1);
    let by_tasks = (th * d.n).div_ceil(4 * rayon::current_num_threads());
    by_cache.min(by_tasks).min(th).max(1)
}

/// Forward convolution: `(n, o, ho, wo)` values of input `x` `(n, c, h, w)` and kernel `w`
/// `(o, c, 3, 3)`, both contiguous.
///
/// # Panics
/// If `w` does not hold `o·c·9` values (or `x` `n·c·h·w`).
pub fn forward(x: &[f32], w: &[f32], d: Conv3x3) -> Vec<f32> {
    let (o, c) = (d.o, d.c);
    assert_eq!(w.len(), o * c * 9, "winograd: kernel size");
    with_scratch(16 * o * c, |u| {
        kernel_transform(w, c, u);
        forward_transformed(x, u, d)
    })
}

/// [`forward`] with the kernel already transformed by [`transform_kernel`] (`u`: 16·o·c values).
///
/// # Panics
/// If `u` does not hold `16·o·c` values or `x` `n·c·h·w` (the products read `u` in place).
pub fn forward_transformed(x: &[f32], u: &[f32], d: Conv3x3) -> Vec<f32> {
    let (ho, wo) = d.out();
    let (th, tw) = (ho.div_ceil(2), wo.div_ceil(2));
    let (o, c) = (d.o, d.c);
    assert_eq!(u.len(), 16 * o * c, "winograd: transformed kernel size");
    assert_eq!(x.len(), d.n * c * d.h * d.w, "winograd: input size");
    let mut y = vec![0f32; d.n * o * ho * wo];
    let yp = Shared(y.as_mut_ptr());
    let rows = band_rows(d, th, tw);
    let bands = th.div_ceil(rows);
    (0..d.n * bands).into_par_iter().for_each(|task| {
        let yp = &yp; // the whole wrapper (Sync), not its raw pointer field
        let (b, ty0) = (task / bands, task % bands * rows);
        let ty1 = (ty0 + rows).min(th);
        let t = (ty1 - ty0) * tw;
        with_scratch(16 * (c + o) * t, |buf| {
            let (v, m) = buf.split_at_mut(16 * c * t);
            input_transform(&x[b * c * d.h * d.w..][..c * d.h * d.w], d, ty0..ty1, tw, v);
            for xi in 0..16 {
                // SAFETY: dst m[ξ] (o × t) and rhs v[ξ] (c × t) row-major inside their
                // buffers; lhs U[ξ] (o × c) at ξ·c with row stride 16·c inside u.
                unsafe {
                    matmul(
                        o,
                        t,
                        c,
                        View {
                            ptr: m[xi * o * t..].as_mut_ptr(),
                            rs: t as isize,
                            cs: 1,
                        },
                        false,
                        View {
                            ptr: u[xi * c..].as_ptr(),
                            rs: 16 * c as isize,
                            cs: 1,
                        },
                        View {
                            ptr: v[xi * c * t..].as_ptr(),
                            rs: t as isize,
                            cs: 1,
                        },
                    )
                }
            }
            for oi in 0..o {
                // SAFETY: output rows 2·ty0 .. 2·ty1 (clipped to ho) of plane (b, oi) are this
                // task's only.
                let plane = unsafe {
                    std::slice::from_raw_parts_mut(yp.0.add((b * o + oi) * ho * wo), ho * wo)
                };
                output_transform(m, oi, o, t, ty0..ty1, tw, (ho, wo), plane);
            }
        })
    });
    y
}

/// `Bᵀ·d·B` of every tile in tile rows `tys` of one sample `xb` `(c, h, w)` into `v`
/// (`16 × c × t`, t = tile rows · `tw`), with `Bᵀ = [[1, 0, −1, 0], [0, 1, 1, 0],
/// [0, −1, 1, 0], [0, 1, 0, −1]]`. Tile (ty, tx) reads input rows `2·ty − pad ..+4` and
/// columns `2·tx − pad ..+4`, zero outside the input.
fn input_transform(xb: &[f32], d: Conv3x3, tys: std::ops::Range<usize>, tw: usize, v: &mut [f32]) {
    let (c, t) = (d.c, tys.len() * tw);
    // The four input rows of a tile row, zero-padded to the tiles' columns (≥ pad + w).
    let wp = 2 * tw + 2;
    let mut rows = vec![0f32; 4 * wp];
    let mut vert = vec![0f32; 4 * wp];
    for ci in 0..c {
        let plane = &xb[ci * d.h * d.w..][..d.h * d.w];
        for ty in tys.clone() {
            for (a, row) in rows.chunks_exact_mut(wp).enumerate() {
                let iy = (2 * ty + a) as isize - d.pad as isize;
                if iy < 0 || iy >= d.h as isize {
                    row.fill(0.0);
                } else {
                    row[..d.pad].fill(0.0);
                    row[d.pad..d.pad + d.w].copy_from_slice(&plane[iy as usize * d.w..][..d.w]);
                    row[d.pad + d.w..].fill(0.0);
                }
            }
            // Bᵀ·d down each column.
            let (r0, rest) = rows.split_at(wp);
            let (r1, rest) = rest.split_at(wp);
            let (r2, r3) = rest.split_at(wp);
            let (v0, rest) = vert.split_at_mut(wp);
            let (v1, rest) = rest.split_at_mut(wp);
            let (v2, v3) = rest.split_at_mut(wp);
            for j in 0..wp {
                v0[j] = r0[j] - r2[j];
                v1[j] = r1[j] + r2[j];
                v2[j] = r2[j] - r1[j];
                v3[j] = r1[j] - r3[j];
            }
            // (Bᵀ·d)·B along each row, tile by tile.
            let base = (ty - tys.start) * tw;
            for (i, s) in vert.chunks_exact(wp).enumerate() {
                let at = |j: usize| ((4 * i + j) * c + ci) * t + base;
                let (a0, a1, a2, a3) = (at(0), at(1), at(2), at(3));
                for tx in 0..tw {
                    let s = &s[2 * tx..2 * tx + 4];
                    v[a0 + tx] = s[0] - s[2];
                    v[a1 + tx] = s[1] + s[2];
                    v[a2 + tx] = s[2] - s[1];
                    v[a3 + tx] = s[1] - s[3];
                }
            }
        }
    }
}

/// `Aᵀ·m·A` of output channel `oi`'s tiles in tile rows `tys` (products `m`, `16 × o × t`) into
/// its output plane (`ho × wo`), with `Aᵀ = [[1, 1, 1, 0], [0, 1, −1, −1]]`; the last row or
/// column of a tile is dropped where it falls outside an odd-sized output.
#[allow(clippy::too_many_arguments)]
fn output_transform(
    m: &[f32],
    oi: usize,
    o: usize,
    t: usize,
    tys: std::ops::Range<usize>,
    tw: usize,
    (ho, wo): (usize, usize),
    plane: &mut [f32],
) {
    for ty in tys.clone() {
        let base = (ty - tys.start) * tw;
        let p = |xi: usize| &m[(xi * o + oi) * t + base..][..tw];
        let mp: [&[f32]; 16] = std::array::from_fn(p);
        for a in 0..2 {
            let oy = 2 * ty + a;
            if oy >= ho {
                break;
            }
            let row = &mut plane[oy * wo..][..wo];
            for tx in 0..tw {
                // Aᵀ·m down each column j, then along the row.
                let s = |j: usize| {
                    if a == 0 {
                        mp[j][tx] + mp[4 + j][tx] + mp[8 + j][tx]
                    } else {
                        mp[4 + j][tx] - mp[8 + j][tx] - mp[12 + j][tx]
                    }
                };
                let (s0, s1, s2, s3) = (s(0), s(1), s(2), s(3));
                row[2 * tx] = s0 + s1 + s2;
                if 2 * tx + 1 < wo {
                    row[2 * tx + 1] = s1 - s2 - s3;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The direct sum of the convolution in f64, for reference.
    fn direct(x: &[f32], w: &[f32], d: Conv3x3) -> Vec<f64> {
        let (ho, wo) = d.out();
        let mut y = vec![0f64; d.n * d.o * ho * wo];
        for b in 0..d.n {
            for oi in 0..d.o {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut s = 0f64;
                        for ci in 0..d.c {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let iy = (oy + ky) as isize - d.pad as isize;
                                    let ix = (ox + kx) as isize - d.pad as isize;
                                    if iy < 0 || ix < 0 || iy >= d.h as isize || ix >= d.w as isize
                                    {
                                        continue;
                                    }
                                    let xv =
                                        x[((b * d.c + ci) * d.h + iy as usize) * d.w + ix as usize];
                                    let wv = w[((oi * d.c + ci) * 3 + ky) * 3 + kx];
                                    s += xv as f64 * wv as f64;
                                }
                            }
                        }
                        y[((b * d.o + oi) * ho + oy) * wo + ox] = s;
                    }
                }
            }
        }
        y
    }

    #[test]
    fn matches_the_direct_sum_for_odd_and_even_sizes_and_paddings() {
        let mut rng = crate::train::rng::Rng::new(3);
        for (n, c, h, w, o, pad) in [
            (2, 8, 6, 7, 9, 1),
            (1, 3, 5, 5, 2, 0),
            (3, 5, 9, 4, 4, 2),
            (1, 16, 3, 3, 1, 1),
            (2, 8, 17, 33, 8, 1),
        ] {
            let d = Conv3x3 { n, c, h, w, o, pad };
            let x: Vec<f32> = (0..n * c * h * w)
                .map(|_| 2.0 * rng.uniform() - 1.0)
                .collect();
            let k: Vec<f32> = (0..o * c * 9).map(|_| rng.uniform() - 0.5).collect();
            let got = forward(&x, &k, d);
            let want = direct(&x, &k, d);
            assert_eq!(got.len(), want.len(), "{d:?}");
            for (i, (g, r)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (*g as f64 - r).abs() < 1e-5 * (1.0 + r.abs()) * c as f64,
                    "{d:?}: element {i} is {g}, the direct sum {r}"
                );
            }
        }
    }
}
