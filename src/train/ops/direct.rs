//! Direct stride-1 convolution for few input or output channels (an image's 3 channels in or
//! out, e.g. the 9×9 first and last layers of the Johnson net and VGG16's first layer), where a
//! matrix product has too small a side to run well and the im2col matrix is large: the output
//! is accumulated 16 positions × 4 channels at a time in registers from the zero-padded input,
//! one input channel after the other, and the kernel gradient is a dot product per kernel
//! weight. Compiled for AVX2 + FMA and used
//! where the CPU has them (checked at run time); elsewhere [`super::conv`] uses its products.

use rayon::prelude::*;

/// Whether the CPU runs the direct kernels.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Sizes of a stride-1 convolution over an already zero-padded input: `n` samples of `c` planes
/// of `hp`×`wp` in, `o` planes of `ho`×`wo` out, kernel `k`×`k`.
#[derive(Clone, Copy, Debug)]
pub struct Padded {
    pub n: usize,
    pub c: usize,
    pub hp: usize,
    pub wp: usize,
    pub o: usize,
    pub k: usize,
}

impl Padded {
    fn out(&self) -> (usize, usize) {
        (self.hp - self.k + 1, self.wp - self.k + 1)
    }
}

#[derive(Clone, Copy)]
struct Shared(*mut f32);
// SAFETY: tasks write disjoint elements through it.
unsafe impl Send for Shared {}
unsafe impl Sync for Shared {}

/// Output channels accumulated together.
const OB: usize = 4;

/// `y (n, o, ho, wo)` of padded input `xp` and kernel `w (o, c, k, k)`. Needs [`available`].
pub fn forward(xp: &[f32], w: &[f32], s: Padded) -> Vec<f32> {
    assert!(available(), "direct convolution needs AVX2 and FMA");
    let (ho, wo) = s.out();
    let mut y = vec![0f32; s.n * s.o * ho * wo];
    let yp = Shared(y.as_mut_ptr());
    let blocks = s.o.div_ceil(OB);
    let tasks = 4 * rayon::current_num_threads();
    let rows = (ho * s.n * blocks).div_ceil(tasks).clamp(1, ho);
    let tiles = ho.div_ceil(rows);
    (0..s.n * blocks * tiles).into_par_iter().for_each(|task| {
        let yp = &yp; // the whole wrapper (Sync), not its raw pointer field
        let (b, rest) = (task / (blocks * tiles), task % (blocks * tiles));
        let (o0, r0) = (rest / tiles * OB, rest % tiles * rows);
        let r1 = (r0 + rows).min(ho);
        let xb = &xp[b * s.c * s.hp * s.wp..][..s.c * s.hp * s.wp];
        // SAFETY: AVX2 and FMA were checked; the task writes rows r0..r1 of output planes
        // o0..o0 + OB of sample b, which no other task writes; reads stay inside xb and w.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            forward_fma(xb, w, s, o0, r0..r1, yp.0.add(b * s.o * ho * wo))
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (xb, o0, r1);
    });
    y
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn forward_fma(
    xb: &[f32],
    w: &[f32],
    s: Padded,
    o0: usize,
    rows: std::ops::Range<usize>,
    yb: *mut f32,
) {
    // SAFETY: forwarded from the caller.
    unsafe {
        match (s.o - o0).min(OB) {
            4 => rows_of::<4>(xb, w, s, o0, rows, yb),
            3 => rows_of::<3>(xb, w, s, o0, rows, yb),
            2 => rows_of::<2>(xb, w, s, o0, rows, yb),
            _ => rows_of::<1>(xb, w, s, o0, rows, yb),
        }
    }
}

/// Output rows `rows` of channels `o0..o0 + Q`, in bands of a few rows. A band is summed input
/// channel by input channel in a buffer that stays in the L1 cache, so the input is read as one
/// run of consecutive rows per channel (which the prefetcher follows) rather than a few values
/// from every channel at a time.
#[inline(always)]
unsafe fn rows_of<const Q: usize>(
    xb: &[f32],
    w: &[f32],
    s: Padded,
    o0: usize,
    rows: std::ops::Range<usize>,
    yb: *mut f32,
) {
    let (ho, wo) = s.out();
    let band = (4096 / (Q * wo)).clamp(1, 8);
    let mut acc = vec![0f32; Q * band * wo];
    let mut r0 = rows.start;
    while r0 < rows.end {
        let r1 = (r0 + band).min(rows.end);
        let qs = (r1 - r0) * wo;
        acc[..Q * qs].fill(0.0);
        for ci in 0..s.c {
            for oy in r0..r1 {
                let at = (oy - r0) * wo;
                let mut x0 = 0;
                while x0 + 16 <= wo {
                    chunk::<16, Q>(xb, w, s, o0, ci, oy, x0, &mut acc[at + x0..], qs);
                    x0 += 16;
                }
                while x0 < wo {
                    chunk::<1, Q>(xb, w, s, o0, ci, oy, x0, &mut acc[at + x0..], qs);
                    x0 += 1;
                }
            }
        }
        for q in 0..Q {
            // SAFETY: the caller's rows and channels.
            unsafe {
                std::ptr::copy_nonoverlapping(
                    acc[q * qs..].as_ptr(),
                    yb.add((o0 + q) * ho * wo + r0 * wo),
                    qs,
                )
            };
        }
        r0 = r1;
    }
}

/// Adds input channel `ci`'s share of output positions `x0..x0 + N` of row `oy`, channels
/// `o0..o0 + Q`, to `acc[q·qs..][..N]`.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn chunk<const N: usize, const Q: usize>(
    xb: &[f32],
    w: &[f32],
    s: Padded,
    o0: usize,
    ci: usize,
    oy: usize,
    x0: usize,
    acc: &mut [f32],
    qs: usize,
) {
    let k = s.k;
    let ckk = s.c * k * k;
    let mut sum = [[0f32; N]; Q];
    for (q, a) in sum.iter_mut().enumerate() {
        a.copy_from_slice(&acc[q * qs..][..N]);
    }
    for ky in 0..k {
        let row = &xb[(ci * s.hp + oy + ky) * s.wp + x0..][..N + k - 1];
        let taps = (ci * k + ky) * k;
        for kx in 0..k {
            let v: &[f32; N] = row[kx..kx + N].try_into().expect("N values");
            for (q, a) in sum.iter_mut().enumerate() {
                let wv = w[(o0 + q) * ckk + taps + kx];
                for i in 0..N {
                    a[i] = v[i].mul_add(wv, a[i]);
                }
            }
        }
    }
    for (q, a) in sum.iter().enumerate() {
        acc[q * qs..][..N].copy_from_slice(a);
    }
}

/// Kernel gradient `(o, c, k, k)`: `Σ_{b, y, x} g[b, o, y, x] · xp[b, c, y + ky, x + kx]`, one
/// task per (o, c) pair, summed in a fixed order. Needs [`available`].
pub fn kernel_grad(xp: &[f32], g: &[f32], s: Padded) -> Vec<f32> {
    assert!(available(), "direct convolution needs AVX2 and FMA");
    let kk = s.k * s.k;
    let mut dw = vec![0f32; s.o * s.c * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(oc, taps)| {
        let (oq, ci) = (oc / s.c, oc % s.c);
        // SAFETY: AVX2 and FMA were checked; reads stay inside xp and g.
        #[cfg(target_arch = "x86_64")]
        unsafe {
            kernel_grad_fma(xp, g, s, oq, ci, taps)
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (oq, ci, taps);
    });
    dw
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn kernel_grad_fma(xp: &[f32], g: &[f32], s: Padded, oq: usize, ci: usize, out: &mut [f32]) {
    let (ho, wo) = s.out();
    let k = s.k;
    for ky in 0..k {
        for kx in 0..k {
            let mut acc = [0f32; 32];
            let mut tail = 0f32;
            for b in 0..s.n {
                let gp = &g[(b * s.o + oq) * ho * wo..][..ho * wo];
                let xc = &xp[(b * s.c + ci) * s.hp * s.wp..][..s.hp * s.wp];
                for oy in 0..ho {
                    let gr = &gp[oy * wo..][..wo];
                    let xr = &xc[(oy + ky) * s.wp + kx..][..wo];
                    let mut gc = gr.chunks_exact(32);
                    let mut xc32 = xr.chunks_exact(32);
                    for (a, bb) in (&mut gc).zip(&mut xc32) {
                        for i in 0..32 {
                            acc[i] = a[i].mul_add(bb[i], acc[i]);
                        }
                    }
                    for (a, bb) in gc.remainder().iter().zip(xc32.remainder()) {
                        tail = a.mul_add(*bb, tail);
                    }
                }
            }
            out[ky * k + kx] = acc.iter().sum::<f32>() + tail;
        }
    }
}
