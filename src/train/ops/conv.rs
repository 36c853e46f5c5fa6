//! 2-D convolution (groups 1, dilation 1, zero padding) and its gradients as matrix products
//! (the `gemm` crate, the one candle uses), cut into cache-sized tiles that the cores share.
//!
//! Convolutions with at most 4 input or output channels run [`direct`]ly; stride-1 3×3 ones
//! with at least 8 input channels by [`winograd`] F(2×2, 3×3) (forward and input gradient);
//! others are built from products in one of two ways:
//! - **shifted views** (stride 1, enough channels): over the zero-padded input `Xp` (C planes of
//!   Hp×Wp), the output on a "wide" grid of Ho rows of Wp columns is
//!   `Σ_{ky,kx} W[:, :, ky, kx] · Xp[:, ky·Wp + kx + j]` — one product per kernel tap reading
//!   the input in place, no column matrix (the last k−1 columns of each wide row are dropped);
//!   the kernel gradient is the same sum the other way round, `Σ_j G[:, j] · Xp[:, j + shift]ᵀ`.
//! - **im2col** (any stride, few channels): the input's k×k windows of a tile of output positions
//!   as the columns of a (C·k·k)×T matrix, then one product.
//!
//! The input gradient of a stride-1 convolution is the output gradient, zero-padded by k−1−p,
//! convolved with the flipped, transposed kernel; of a strided one, `Wᵀ·G` scattered back to the
//! windows (col2im). Gradients are computed only for inputs that need one: VGG16's frozen kernels
//! get none.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, Layout, Result, Shape, Tensor};
use gemm::Parallelism;
use rayon::prelude::*;

use super::{direct, slice, tensor, wants_grad, winograd, with_data};

/// Convolution of contiguous f32 NCHW `x` with kernel `w` `(O, C, k, k)`.
pub fn conv2d(x: &Tensor, w: &Tensor, padding: usize, stride: usize) -> Result<Tensor> {
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        Conv {
            padding,
            stride,
            prepared: None,
        },
    )
}

/// [`conv2d`] with a kernel that does not change, whose [`Prepared`] transforms `prepared` holds
/// (from [`prepare`] of the same `w`).
pub fn conv2d_prepared(
    x: &Tensor,
    w: &Tensor,
    prepared: &Arc<Prepared>,
    padding: usize,
    stride: usize,
) -> Result<Tensor> {
    x.contiguous()?.apply_op2(
        &w.contiguous()?,
        Conv {
            padding,
            stride,
            prepared: Some(prepared.clone()),
        },
    )
}

/// What a constant kernel's convolutions can compute once instead of on every call: the
/// [`winograd`] transforms of the kernel (forward) and of its flipped transpose (input
/// gradient), where those passes use Winograd.
pub struct Prepared {
    /// `(o, c)` of the kernel it was made from.
    oc: (usize, usize),
    forward: Option<Vec<f32>>,
    input_grad: Option<Vec<f32>>,
}

/// The [`Prepared`] transforms of contiguous f32 kernel `w` `(O, C, k, k)`.
pub fn prepare(w: &Tensor) -> Result<Arc<Prepared>> {
    let &[o, c, k, _] = w.dims() else {
        candle_core::bail!("conv2d: expected a 4-D kernel, got {:?}", w.dims());
    };
    // Whether a stride-1 pass with `c` channels in and `o` out uses Winograd (any padding).
    let winograd = |c, o| {
        let d = Dims {
            n: 1,
            c,
            h: k,
            w: k,
            o,
            k,
            pad: 1,
            stride: 1,
        };
        d.method() == Method::Winograd
    };
    with_data(w, |wd| {
        Ok(Arc::new(Prepared {
            oc: (o, c),
            forward: winograd(c, o).then(|| winograd::transform_kernel(wd, c)),
            input_grad: winograd(o, c)
                .then(|| winograd::transform_kernel(&flip_transpose(wd, o, c, k), o)),
        }))
    })
}

/// Shape of one convolution: input `(n, c, h, w)`, kernel `(o, c, k, k)`.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    o: usize,
    k: usize,
    pad: usize,
    stride: usize,
}

impl Dims {
    fn out(&self) -> (usize, usize) {
        (
            (self.h + 2 * self.pad - self.k) / self.stride + 1,
            (self.w + 2 * self.pad - self.k) / self.stride + 1,
        )
    }

    fn padded(&self) -> (usize, usize) {
        (self.h + 2 * self.pad, self.w + 2 * self.pad)
    }

    /// Rows of the im2col matrix.
    fn ckk(&self) -> usize {
        self.c * self.k * self.k
    }

    /// How to compute this convolution.
    fn method(&self) -> Method {
        if self.stride != 1 {
            Method::Im2col
        } else if (self.o <= 4 || self.c <= 4) && direct::available() {
            Method::Direct
        } else if self.c >= 8 && self.k == 3 {
            Method::Winograd
        } else if self.c >= 8 {
            Method::Shifted
        } else {
            Method::Im2col
        }
    }

    /// Whether the kernel gradient is computed over shifted views (the forward pass of
    /// [`Method::Winograd`] layers too).
    fn shifted(&self) -> bool {
        matches!(self.method(), Method::Shifted | Method::Winograd)
    }

    /// The sizes [`winograd`] works with.
    fn conv3x3(&self) -> winograd::Conv3x3 {
        winograd::Conv3x3 {
            n: self.n,
            c: self.c,
            h: self.h,
            w: self.w,
            o: self.o,
            pad: self.pad,
        }
    }

    /// The sizes [`direct`] works with.
    fn padded_sizes(&self) -> direct::Padded {
        let (hp, wp) = self.padded();
        direct::Padded {
            n: self.n,
            c: self.c,
            hp,
            wp,
            o: self.o,
            k: self.k,
        }
    }
}

/// The three ways to compute a convolution (see the module's documentation).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Method {
    /// [`direct`]: stride 1, at most 4 input or output channels, AVX2 + FMA.
    Direct,
    /// Products over shifted views of the padded input: stride 1, at least 8 input channels.
    Shifted,
    /// [`winograd`] F(2×2, 3×3): stride 1, 3×3, at least 8 input channels (forward and input
    /// gradient; the kernel gradient over shifted views).
    Winograd,
    /// Products over tiles of the im2col matrix.
    Im2col,
}

/// A row-major-or-not matrix view for `gemm`: element (i, j) at `ptr + i·rs + j·cs`.
#[derive(Clone, Copy)]
pub(super) struct View {
    pub ptr: *const f32,
    pub rs: isize,
    pub cs: isize,
}

/// `dst (m×n) = [dst +] lhs (m×k) · rhs (k×n)` on the calling thread.
///
/// # Safety
/// Every element the views address for these sizes must be inside live buffers, and `dst`'s
/// writable and not aliased by the others.
#[allow(clippy::too_many_arguments)]
pub(super) unsafe fn matmul(
    m: usize,
    n: usize,
    k: usize,
    dst: View,
    acc: bool,
    lhs: View,
    rhs: View,
) {
    if m == 0 || n == 0 {
        return;
    }
    // SAFETY: the caller's promise; gemm computes dst = alpha·dst + beta·lhs·rhs.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.ptr as *mut f32,
            dst.cs,
            dst.rs,
            acc,
            lhs.ptr,
            lhs.cs,
            lhs.rs,
            rhs.ptr,
            rhs.cs,
            rhs.rs,
            1.0,
            1.0,
            false,
            false,
            false,
            Parallelism::None,
        )
    }
}

/// A pointer that tasks writing disjoint parts of one buffer share.
#[derive(Clone, Copy)]
pub(super) struct Shared(pub *mut f32);
// SAFETY: only used where tasks write disjoint elements.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Rows of `ho` per tile so that an `o`-row tile of wide rows holds about 64 K floats, with
/// enough tiles for every core.
fn rows_per_tile(o: usize, rows: usize, cols: usize, samples: usize) -> usize {
    let by_cache = (65536 / (o * cols).max(1)).max(1);
    let tasks = 4 * rayon::current_num_threads();
    let by_tasks = (rows * samples).div_ceil(tasks).max(1);
    by_cache.min(by_tasks).min(rows).max(1)
}

/// `x` zero-padded by `p` on each side (a copy), or `x` itself when `p` is 0.
fn zero_pad(x: &[f32], d: Dims) -> std::borrow::Cow<'_, [f32]> {
    if d.pad == 0 {
        return x.into();
    }
    let (hp, wp) = d.padded();
    let p = d.pad;
    let mut out = vec![0f32; d.n * d.c * hp * wp];
    out.par_chunks_mut(hp * wp)
        .zip(x.par_chunks(d.h * d.w))
        .for_each(|(dst, src)| {
            for (row, s) in dst[p * wp..].chunks_mut(wp).zip(src.chunks(d.w)) {
                row[p..p + d.w].copy_from_slice(s);
            }
        });
    out.into()
}

/// Forward convolution: `(n, o, ho, wo)` values.
fn forward(x: &[f32], w: &[f32], d: Dims) -> Vec<f32> {
    match d.method() {
        Method::Direct => direct::forward(&zero_pad(x, d), w, d.padded_sizes()),
        Method::Shifted => forward_shifted(x, w, d),
        Method::Winograd => winograd::forward(x, w, d.conv3x3()),
        Method::Im2col => forward_im2col(x, w, d),
    }
}

/// The kernel `(o, c, k, k)` tap-major, `(k·k, o, c)`: each tap's O×C matrix contiguous.
fn by_tap(w: &[f32], o: usize, c: usize, kk: usize) -> Vec<f32> {
    let mut t = vec![0f32; w.len()];
    for (i, v) in w.iter().enumerate() {
        let (oc, tap) = (i / kk, i % kk);
        t[tap * o * c + oc] = *v;
    }
    t
}

fn forward_shifted(x: &[f32], w: &[f32], d: Dims) -> Vec<f32> {
    let w = by_tap(w, d.o, d.c, d.k * d.k);
    let xp = zero_pad(x, d);
    let (hp, wp) = d.padded();
    let (ho, wo) = d.out();
    let (k, o, c) = (d.k, d.o, d.c);
    let plane = hp * wp;
    let mut y = vec![0f32; d.n * o * ho * wo];
    let yp = Shared(y.as_mut_ptr());
    let rows = rows_per_tile(o, ho, wp, d.n);
    let tiles = ho.div_ceil(rows);
    (0..d.n * tiles).into_par_iter().for_each(|task| {
        let yp = &yp; // the whole wrapper (Sync), not its raw pointer field
        let (b, r0) = (task / tiles, task % tiles * rows);
        let r1 = (r0 + rows).min(ho);
        // Wide columns r0·wp .. (r1−1)·wp + wo of this sample.
        let len = (r1 - r0 - 1) * wp + wo;
        let mut tile = vec![0f32; o * len];
        let xb = &xp[b * c * plane..(b + 1) * c * plane];
        for ky in 0..k {
            for kx in 0..k {
                let start = (r0 + ky) * wp + kx;
                debug_assert!((c - 1) * plane + start + len <= xb.len());
                // SAFETY: lhs is tap (ky, kx) of w (o × c); rhs reads xb[ci·plane + start + j]
                // for j < len, inside the plane (checked above).
                unsafe {
                    matmul(
                        o,
                        len,
                        c,
                        View {
                            ptr: tile.as_mut_ptr(),
                            rs: len as isize,
                            cs: 1,
                        },
                        ky + kx > 0,
                        View {
                            ptr: w[(ky * k + kx) * o * c..].as_ptr(),
                            rs: c as isize,
                            cs: 1,
                        },
                        View {
                            ptr: xb.as_ptr().add(start),
                            rs: plane as isize,
                            cs: 1,
                        },
                    )
                }
            }
        }
        for oi in 0..o {
            for r in r0..r1 {
                let src = &tile[oi * len + (r - r0) * wp..][..wo];
                // SAFETY: (b, oi, r) rows are written by this task only.
                unsafe {
                    let dst = yp.0.add(((b * o + oi) * ho + r) * wo);
                    std::ptr::copy_nonoverlapping(src.as_ptr(), dst, wo);
                }
            }
        }
    });
    y
}

/// Calls `f(segment, iy, ix0)` for each piece of output positions `t0..t1` (row-major) that lies
/// in one output row, for kernel tap (ky, kx): `segment` is the positions' range relative to
/// `t0`, `iy` the input row they read (maybe outside the input) and `ix0` the input column of the
/// segment's first position.
fn for_each_segment(
    d: Dims,
    t0: usize,
    t1: usize,
    ky: usize,
    kx: usize,
    mut f: impl FnMut(std::ops::Range<usize>, isize, isize),
) {
    let (_, wo) = d.out();
    let mut p = t0;
    while p < t1 {
        let (oy, ox) = (p / wo, p % wo);
        let seg = (wo - ox).min(t1 - p);
        let iy = (oy * d.stride + ky) as isize - d.pad as isize;
        let ix0 = (ox * d.stride + kx) as isize - d.pad as isize;
        f(p - t0..p - t0 + seg, iy, ix0);
        p += seg;
    }
}

/// The columns `t0..t1` (output positions, row-major) of sample `xb`'s im2col matrix into `cols`
/// (`ckk × (t1 − t0)`), zero outside the input.
fn im2col_tile(xb: &[f32], d: Dims, t0: usize, t1: usize, cols: &mut [f32]) {
    let t = t1 - t0;
    let (h, w, s) = (d.h as isize, d.w as isize, d.stride as isize);
    for ci in 0..d.c {
        let src = &xb[ci * d.h * d.w..][..d.h * d.w];
        for ky in 0..d.k {
            for kx in 0..d.k {
                let row = &mut cols[((ci * d.k + ky) * d.k + kx) * t..][..t];
                for_each_segment(d, t0, t1, ky, kx, |seg, iy, ix0| {
                    let out = &mut row[seg];
                    if iy < 0 || iy >= h {
                        out.fill(0.0);
                        return;
                    }
                    let src_row = &src[iy as usize * d.w..][..d.w];
                    for (j, v) in out.iter_mut().enumerate() {
                        let ix = ix0 + j as isize * s;
                        *v = if ix >= 0 && ix < w {
                            src_row[ix as usize]
                        } else {
                            0.0
                        };
                    }
                });
            }
        }
    }
}

/// The transpose of [`im2col_tile`]: adds each column value back to the input position it
/// was read from.
fn col2im_tile(cols: &[f32], d: Dims, t0: usize, t1: usize, dxb: &mut [f32]) {
    let t = t1 - t0;
    let (h, w, s) = (d.h as isize, d.w as isize, d.stride as isize);
    for ci in 0..d.c {
        let dst = &mut dxb[ci * d.h * d.w..][..d.h * d.w];
        for ky in 0..d.k {
            for kx in 0..d.k {
                let row = &cols[((ci * d.k + ky) * d.k + kx) * t..][..t];
                for_each_segment(d, t0, t1, ky, kx, |seg, iy, ix0| {
                    if iy < 0 || iy >= h {
                        return;
                    }
                    let dst_row = &mut dst[iy as usize * d.w..][..d.w];
                    for (j, &v) in row[seg].iter().enumerate() {
                        let ix = ix0 + j as isize * s;
                        if ix >= 0 && ix < w {
                            dst_row[ix as usize] += v;
                        }
                    }
                });
            }
        }
    }
}

/// Output positions per im2col tile: a column matrix of about 256 K floats, enough tiles for
/// every core.
fn positions_per_tile(d: Dims, positions: usize) -> usize {
    let by_cache = (262144 / d.ckk()).max(64);
    let tasks = 4 * rayon::current_num_threads();
    let by_tasks = (positions * d.n).div_ceil(tasks).max(64);
    by_cache.min(by_tasks).min(positions)
}

fn forward_im2col(x: &[f32], w: &[f32], d: Dims) -> Vec<f32> {
    let (ho, wo) = d.out();
    let (o, ckk, hw) = (d.o, d.ckk(), ho * wo);
    let mut y = vec![0f32; d.n * o * hw];
    let yp = Shared(y.as_mut_ptr());
    let per = positions_per_tile(d, hw);
    let tiles = hw.div_ceil(per);
    (0..d.n * tiles).into_par_iter().for_each(|task| {
        let yp = &yp; // the whole wrapper (Sync), not its raw pointer field
        let (b, t0) = (task / tiles, task % tiles * per);
        let t1 = (t0 + per).min(hw);
        let mut cols = vec![0f32; ckk * (t1 - t0)];
        im2col_tile(&x[b * d.c * d.h * d.w..], d, t0, t1, &mut cols);
        // SAFETY: dst is y[b, :, t0..t1] (this task's), lhs w (o × ckk), rhs cols.
        unsafe {
            matmul(
                o,
                t1 - t0,
                ckk,
                View {
                    ptr: yp.0.add(b * o * hw + t0),
                    rs: hw as isize,
                    cs: 1,
                },
                false,
                View {
                    ptr: w.as_ptr(),
                    rs: ckk as isize,
                    cs: 1,
                },
                View {
                    ptr: cols.as_ptr(),
                    rs: (t1 - t0) as isize,
                    cs: 1,
                },
            )
        }
    });
    y
}

/// Kernel `w` `(o, c, k, k)` flipped in both spatial axes and transposed: `(c, o, k, k)`.
fn flip_transpose(w: &[f32], o: usize, c: usize, k: usize) -> Vec<f32> {
    let mut flipped = vec![0f32; w.len()];
    for oi in 0..o {
        for ci in 0..c {
            for ky in 0..k {
                for kx in 0..k {
                    flipped[((ci * o + oi) * k + ky) * k + kx] =
                        w[((oi * c + ci) * k + (k - 1 - ky)) * k + (k - 1 - kx)];
                }
            }
        }
    }
    flipped
}

/// Gradient of the input: `(n, c, h, w)` values; `prepared`, the kernel's transform for a
/// Winograd pass, if there is one.
fn input_grad(g: &[f32], w: &[f32], d: Dims, prepared: Option<&[f32]>) -> Vec<f32> {
    let (ho, wo) = d.out();
    if d.stride == 1 && d.pad < d.k {
        // Full correlation of the output gradient with the flipped, transposed kernel.
        let gd = Dims {
            n: d.n,
            c: d.o,
            h: ho,
            w: wo,
            o: d.c,
            k: d.k,
            pad: d.k - 1 - d.pad,
            stride: 1,
        };
        if let (Method::Winograd, Some(u)) = (gd.method(), prepared) {
            return winograd::forward_transformed(g, u, gd.conv3x3());
        }
        return forward(g, &flip_transpose(w, d.o, d.c, d.k), gd);
    }
    // col2im: per sample, Wᵀ·G tile by tile, scattered back to the windows.
    let (o, ckk, hw) = (d.o, d.ckk(), ho * wo);
    let mut dx = vec![0f32; d.n * d.c * d.h * d.w];
    let per = positions_per_tile(d, hw);
    dx.par_chunks_mut(d.c * d.h * d.w)
        .enumerate()
        .for_each(|(b, dxb)| {
            let mut cols = vec![0f32; ckk * per];
            for t0 in (0..hw).step_by(per) {
                let t = (t0 + per).min(hw) - t0;
                // SAFETY: dst cols (ckk × t), lhs wᵀ (ckk × o), rhs g[b, :, t0..t0+t].
                unsafe {
                    matmul(
                        ckk,
                        t,
                        o,
                        View {
                            ptr: cols.as_mut_ptr(),
                            rs: t as isize,
                            cs: 1,
                        },
                        false,
                        View {
                            ptr: w.as_ptr(),
                            rs: 1,
                            cs: ckk as isize,
                        },
                        View {
                            ptr: g.as_ptr().add(b * o * hw + t0),
                            rs: hw as isize,
                            cs: 1,
                        },
                    )
                }
                col2im_tile(&cols, d, t0, t0 + t, dxb);
            }
        });
    dx
}

/// Gradient of the kernel: `(o, c, k, k)` values, summed over the batch. Each sample's share is
/// summed on one thread and the shares in sample order, so the result does not depend on how
/// the work was scheduled (a resumed run repeats an uninterrupted one exactly).
fn kernel_grad(x: &[f32], g: &[f32], d: Dims) -> Vec<f32> {
    let (ho, wo) = d.out();
    let (o, c, k, ckk) = (d.o, d.c, d.k, d.ckk());
    if d.method() == Method::Direct {
        return direct::kernel_grad(&zero_pad(x, d), g, d.padded_sizes());
    }
    let shares: Vec<Vec<f32>> = if d.shifted() {
        let xp = zero_pad(x, d);
        let (hp, wp) = d.padded();
        let plane = hp * wp;
        let rows = rows_per_tile(o, ho, wp, 1);
        (0..d.n)
            .into_par_iter()
            .map(|b| {
                let mut acc = vec![0f32; o * ckk];
                let xb = &xp[b * c * plane..(b + 1) * c * plane];
                for r0 in (0..ho).step_by(rows) {
                    let r1 = (r0 + rows).min(ho);
                    let len = (r1 - r0 - 1) * wp + wo;
                    // The output gradient on the wide grid, zero in the dropped columns.
                    let mut gw = vec![0f32; o * len];
                    for oi in 0..o {
                        for r in r0..r1 {
                            let src = &g[((b * o + oi) * ho + r) * wo..][..wo];
                            gw[oi * len + (r - r0) * wp..][..wo].copy_from_slice(src);
                        }
                    }
                    for ky in 0..k {
                        for kx in 0..k {
                            let start = (r0 + ky) * wp + kx;
                            // SAFETY: dst is tap (ky, kx) of the tap-major acc (o × c); lhs
                            // gw (o × len); rhs xb[ci·plane + start + j] (len × c), inside the
                            // plane.
                            unsafe {
                                matmul(
                                    o,
                                    c,
                                    len,
                                    View {
                                        ptr: acc[(ky * k + kx) * o * c..].as_mut_ptr(),
                                        rs: c as isize,
                                        cs: 1,
                                    },
                                    true,
                                    View {
                                        ptr: gw.as_ptr(),
                                        rs: len as isize,
                                        cs: 1,
                                    },
                                    View {
                                        ptr: xb.as_ptr().add(start),
                                        rs: 1,
                                        cs: plane as isize,
                                    },
                                )
                            }
                        }
                    }
                }
                acc
            })
            .collect()
    } else {
        let hw = ho * wo;
        let per = positions_per_tile(d, hw);
        (0..d.n)
            .into_par_iter()
            .map(|b| {
                let mut acc = vec![0f32; o * ckk];
                let mut cols = vec![0f32; ckk * per];
                for t0 in (0..hw).step_by(per) {
                    let t = (t0 + per).min(hw) - t0;
                    im2col_tile(&x[b * c * d.h * d.w..], d, t0, t0 + t, &mut cols);
                    // SAFETY: dst acc (o × ckk); lhs g[b, :, t0..t0+t]; rhs colsᵀ.
                    unsafe {
                        matmul(
                            o,
                            ckk,
                            t,
                            View {
                                ptr: acc.as_mut_ptr(),
                                rs: ckk as isize,
                                cs: 1,
                            },
                            true,
                            View {
                                ptr: g.as_ptr().add(b * o * hw + t0),
                                rs: hw as isize,
                                cs: 1,
                            },
                            View {
                                ptr: cols.as_ptr(),
                                rs: 1,
                                cs: t as isize,
                            },
                        )
                    }
                }
                acc
            })
            .collect()
    };
    let sum = shares
        .into_iter()
        .reduce(|mut a, b| {
            for (x, y) in a.iter_mut().zip(&b) {
                *x += y;
            }
            a
        })
        .unwrap_or_else(|| vec![0f32; o * ckk]);
    if !d.shifted() {
        return sum;
    }
    // Tap-major (k·k, o, c) back to (o, c, k, k).
    let kk = k * k;
    let mut out = vec![0f32; sum.len()];
    for (i, v) in out.iter_mut().enumerate() {
        let (oc, tap) = (i / kk, i % kk);
        *v = sum[tap * o * c + oc];
    }
    out
}

struct Conv {
    padding: usize,
    stride: usize,
    /// The kernel's transforms, for a kernel that does not change.
    prepared: Option<Arc<Prepared>>,
}

impl Conv {
    /// One of the prepared transforms, if there is one for a kernel of these sizes.
    fn transform(&self, d: Dims, which: fn(&Prepared) -> &Option<Vec<f32>>) -> Option<&[f32]> {
        let p = self.prepared.as_deref()?;
        (p.oc == (d.o, d.c) && d.k == 3)
            .then(|| which(p).as_deref())
            .flatten()
    }

    fn dims(&self, x: &[usize], w: &[usize]) -> Result<Dims> {
        let (&[n, c, h, wd], &[o, cw, kh, kw]) = (x, w) else {
            candle_core::bail!("conv2d: expected 4-D input and kernel, got {x:?} and {w:?}");
        };
        if cw != c || kh != kw {
            candle_core::bail!("conv2d: kernel {w:?} does not fit input {x:?}");
        }
        if h + 2 * self.padding < kh || wd + 2 * self.padding < kw {
            candle_core::bail!("conv2d: {h}×{wd} input is smaller than the {kh}×{kw} kernel");
        }
        if self.stride == 0 {
            candle_core::bail!("conv2d: stride 0");
        }
        Ok(Dims {
            n,
            c,
            h,
            w: wd,
            o,
            k: kh,
            pad: self.padding,
            stride: self.stride,
        })
    }
}

impl CustomOp2 for Conv {
    fn name(&self) -> &'static str {
        "conv2d"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let d = self.dims(l1.dims(), l2.dims())?;
        let (x, w) = (slice(s1, l1, "conv2d")?, slice(s2, l2, "conv2d")?);
        let y = match (d.method(), self.transform(d, |p| &p.forward)) {
            (Method::Winograd, Some(u)) => winograd::forward_transformed(x, u, d.conv3x3()),
            _ => forward(x, w, d),
        };
        let (ho, wo) = d.out();
        Ok((CpuStorage::F32(y), Shape::from((d.n, d.o, ho, wo))))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _y: &Tensor,
        g: &Tensor,
    ) -> Result<(Option<Tensor>, Option<Tensor>)> {
        let d = self.dims(x.dims(), w.dims())?;
        with_data(g, |gd| {
            let dx = if wants_grad(x) {
                let u = self.transform(d, |p| &p.input_grad);
                let v = with_data(w, |wd| Ok(input_grad(gd, wd, d, u)))?;
                Some(tensor(v, x.shape())?)
            } else {
                None
            };
            let dw = if wants_grad(w) {
                let v = with_data(x, |xd| Ok(kernel_grad(xd, gd, d)))?;
                Some(tensor(v, w.shape())?)
            } else {
                None
            };
            Ok((dx, dw))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{check_gradients, random};
    use super::*;

    #[test]
    fn gradients_match_finite_differences_of_candles_conv() {
        // Every method (direct: ≤ 4 channels in or out; Winograd: 3×3 and ≥ 8 in; shifted
        // views: other sizes and ≥ 8 in; im2col: strided or 5–7 in) for the output and both
        // gradients, zero and some padding, odd sizes.
        for (c, o, k, pad, stride, h, w) in [
            (8, 6, 5, 2, 1, 6, 7),
            (6, 5, 3, 0, 1, 5, 6),
            // Direct with several blocks of 4 output channels, and rows long enough for its
            // 16-wide (output) and 32-wide (kernel gradient) steps plus a remainder.
            (3, 6, 3, 1, 1, 5, 6),
            (4, 9, 5, 2, 1, 6, 7),
            (2, 5, 3, 1, 1, 3, 35),
            (8, 3, 3, 1, 1, 5, 6),
            (8, 2, 3, 0, 1, 6, 5),
            (8, 8, 3, 1, 1, 4, 5),
            // Winograd forward and input gradient, odd sizes, paddings 0 (input gradient 2) and 1.
            (8, 10, 3, 0, 1, 6, 5),
            (12, 9, 3, 1, 1, 7, 9),
            (9, 2, 5, 2, 1, 5, 7),
            (2, 3, 3, 1, 1, 5, 4),
            (2, 3, 3, 1, 2, 7, 6),
            (3, 2, 4, 1, 2, 6, 7),
            (2, 2, 9, 4, 1, 6, 5),
        ] {
            let x = random(&[2, c, h, w], 1);
            let kernel = (random(&[o, c, k, k], 2) * 0.3).unwrap();
            check_gradients(
                &[x, kernel],
                |t| conv2d(&t[0], &t[1], pad, stride).unwrap(),
                |t| t[0].conv2d(&t[1], pad, stride, 1, 1).unwrap(),
                1e-4,
            );
        }
    }

    #[test]
    fn a_prepared_kernel_gives_the_same_output_and_input_gradient() {
        // Winograd both ways (a square kernel, where swapping the two transforms would still
        // fit), Winograd forward only (5 outputs: the input gradient has 5 channels in), and a
        // 5×5 kernel (nothing to prepare).
        let f32 = candle_core::DType::F32;
        for (c, o, k, pad) in [(8, 8, 3, 1), (12, 9, 3, 0), (12, 5, 3, 1), (8, 8, 5, 2)] {
            let x = candle_core::Var::from_tensor(&random(&[2, c, 7, 6], 1).to_dtype(f32).unwrap())
                .unwrap();
            let w = (random(&[o, c, k, k], 2) * 0.3)
                .unwrap()
                .to_dtype(f32)
                .unwrap();
            let p = prepare(&w).unwrap();
            assert_eq!(p.forward.is_some(), k == 3, "{c} → {o}");
            assert_eq!(p.input_grad.is_some(), k == 3 && o >= 8, "{c} → {o}");
            let weights = random(&[2, o, 7 + 2 * pad - k + 1, 6 + 2 * pad - k + 1], 3)
                .to_dtype(f32)
                .unwrap();
            let run = |y: Tensor| {
                let g = (&y * &weights)
                    .unwrap()
                    .sum_all()
                    .unwrap()
                    .backward()
                    .unwrap();
                let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert!(g.get(&w).is_none());
                (flat(&y), flat(g.get(x.as_tensor()).unwrap()))
            };
            let plain = run(conv2d(&x, &w, pad, 1).unwrap());
            let prepared = run(conv2d_prepared(&x, &w, &p, pad, 1).unwrap());
            assert_eq!(plain, prepared, "{c} → {o}, {k}×{k}");
        }
    }

    #[test]
    fn no_gradient_for_a_constant_kernel_or_input() {
        let dev = candle_core::Device::Cpu;
        let x = candle_core::Var::new(&[[[[1f32, 2.], [3., 4.]]]], &dev).unwrap();
        let w = Tensor::new(&[[[[1f32, 0.5], [0.25, 2.]]]], &dev).unwrap();
        let y = conv2d(&x, &w, 0, 1).unwrap();
        assert_eq!(
            y.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            vec![10.75]
        );
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&w).is_none());
        let g: Vec<f32> = grads
            .get(&x)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(g, vec![1., 0.5, 0.25, 2.]);
    }
}
