//! The loops of the means, written once in safe scalar Rust and compiled twice: for the build's
//! target (x86-64 with SSE2 by default: 2 `f64` lanes) and, chosen at run time on x86-64 CPUs
//! that have it, with AVX2 (4 `f64` lanes). Both copies do the same IEEE operations in the same
//! order on every coordinate — LLVM only vectorises across coordinates and never contracts a
//! multiply and an add into an FMA without fast-math flags, which Rust does not set — so they
//! give identical bits (tested below). The sums stay in `f64`.

/// Coordinates per block of the one-shot means: the `f64` accumulator (8 KiB) stays in L1.
const BLOCK: usize = 1024;

/// An update as the kernels see it: its values and, for a weighted mean, its weight.
pub(super) trait Update {
    /// The values.
    fn values(&self) -> &[f32];
    /// The weight (never read by the unweighted kernels).
    fn weight(&self) -> f64;
}

impl Update for (&[f32], f64) {
    #[inline(always)]
    fn values(&self) -> &[f32] {
        self.0
    }
    #[inline(always)]
    fn weight(&self) -> f64 {
        self.1
    }
}

impl Update for &[f32] {
    #[inline(always)]
    fn values(&self) -> &[f32] {
        self
    }
    #[inline(always)]
    fn weight(&self) -> f64 {
        1.0
    }
}

/// Whether this CPU runs the AVX2 copies (detected once by std, then a cached load).
#[inline(always)]
fn has_avx2() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Generates `$name` (dispatching), `$name_portable` and, on x86-64, `$name_avx2` from one
/// `#[inline(always)]` body `$body`, so that the AVX2 copy is the same source compiled with
/// AVX2 enabled.
macro_rules! dispatched {
    (
        $(#[$doc:meta])*
        fn $name:ident / $portable:ident / $avx2:ident
            < $($g:ident : $bound:path),* ; $(const $c:ident : $ct:ty),* >
            ( $($arg:ident : $ty:ty),* ) => $body:ident
    ) => {
        $(#[$doc])*
        pub(super) fn $name<$($g: $bound,)* $(const $c: $ct,)*>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if has_avx2() {
                // SAFETY: `has_avx2` checked that this CPU supports AVX2, the only feature the
                // function enables; it is otherwise the safe body compiled for a wider target.
                return unsafe { $avx2::<$($g,)* $($c,)*>($($arg),*) };
            }
            $portable::<$($g,)* $($c,)*>($($arg),*)
        }

        /// The build target's copy (SSE2 on default x86-64).
        pub(super) fn $portable<$($g: $bound,)* $(const $c: $ct,)*>($($arg: $ty),*) {
            $body::<$($g,)* $($c,)*>($($arg),*)
        }

        /// The AVX2 copy; call only where AVX2 is present.
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2")]
        pub(super) fn $avx2<$($g: $bound,)* $(const $c: $ct,)*>($($arg: $ty),*) {
            $body::<$($g,)* $($c,)*>($($arg),*)
        }
    };
}

dispatched! {
    /// `out = (Σ wᵢ·xᵢ) · inv` (weights used only if `W`), block by block through an `f64`
    /// accumulator in L1. The caller checked every length against `out` and that `updates` is
    /// not empty.
    fn mean / mean_portable / mean_avx2 <U: Update; const W: bool>
        (updates: &[U], inv: f64, out: &mut [f32]) => mean_body
}

dispatched! {
    /// `sum += Σ wᵢ·xᵢ` (weights used only if `W`), block by block. The caller checked every
    /// length against `sum`.
    fn add / add_portable / add_avx2 <U: Update; const W: bool>
        (updates: &[U], sum: &mut [f64]) => add_body
}

dispatched! {
    /// `out = sum · inv`, narrowed to `f32`. The caller checked the lengths.
    fn scale / scale_portable / scale_avx2 < ; >
        (sum: &[f64], inv: f64, out: &mut [f32]) => scale_body
}

/// What a pass over one block does with the sum `g` of its group of updates.
#[derive(Clone, Copy)]
enum Pass {
    /// `acc = 0 + g` (the first of several groups).
    First,
    /// `acc += g`.
    Middle,
    /// `out = (acc + g) · inv` (the last of several groups).
    Last,
    /// `out = (0 + g) · inv` (the only group).
    Only,
}

#[inline(always)]
fn mean_body<U: Update, const W: bool>(updates: &[U], inv: f64, out: &mut [f32]) {
    let mut acc = [0.0f64; BLOCK];
    let groups = updates.len().div_ceil(4);
    for (start, out_block) in (0..).step_by(BLOCK).zip(out.chunks_mut(BLOCK)) {
        let acc = &mut acc[..out_block.len()];
        // Four updates per pass, as many passes as groups, the last one writing `out`: the
        // same additions in the same order as `acc = 0; acc += group…; out = acc · inv`.
        for (k, group) in updates.chunks(4).enumerate() {
            let pass = match (k == 0, k + 1 == groups) {
                (true, true) => Pass::Only,
                (true, false) => Pass::First,
                (false, false) => Pass::Middle,
                (false, true) => Pass::Last,
            };
            group_pass::<U, W>(group, start, pass, acc, out_block, inv);
        }
    }
}

#[inline(always)]
fn add_body<U: Update, const W: bool>(updates: &[U], sum: &mut [f64]) {
    for (start, block) in (0..).step_by(BLOCK).zip(sum.chunks_mut(BLOCK)) {
        for group in updates.chunks(4) {
            group_pass::<U, W>(group, start, Pass::Middle, block, &mut [], 1.0);
        }
    }
}

#[inline(always)]
fn scale_body(sum: &[f64], inv: f64, out: &mut [f32]) {
    for (o, s) in out.iter_mut().zip(sum) {
        *o = (*s * inv) as f32;
    }
}

/// One pass of a group of one to four updates over `acc` (coordinates `start..`), as `pass`
/// says. `out` is read only by `Last` and `Only` and then has `acc`'s length.
#[inline(always)]
fn group_pass<U: Update, const W: bool>(
    group: &[U],
    start: usize,
    pass: Pass,
    acc: &mut [f64],
    out: &mut [f32],
    inv: f64,
) {
    let n = acc.len();
    let x = |k: usize| &group[k].values()[start..start + n];
    match group {
        [u0] => run::<W, 1>(pass, [x(0)], [u0.weight()], acc, out, inv),
        [u0, u1] => run::<W, 2>(
            pass,
            [x(0), x(1)],
            [u0.weight(), u1.weight()],
            acc,
            out,
            inv,
        ),
        [u0, u1, u2] => run::<W, 3>(
            pass,
            [x(0), x(1), x(2)],
            [u0.weight(), u1.weight(), u2.weight()],
            acc,
            out,
            inv,
        ),
        [u0, u1, u2, u3] => run::<W, 4>(
            pass,
            [x(0), x(1), x(2), x(3)],
            [u0.weight(), u1.weight(), u2.weight(), u3.weight()],
            acc,
            out,
            inv,
        ),
        _ => unreachable!("chunks(4) yields one to four updates"),
    }
}

/// `wᵢ·xᵢ` (or `xᵢ` unweighted) widened to `f64`.
#[inline(always)]
fn term<const W: bool>(x: f32, w: f64) -> f64 {
    if W { w * f64::from(x) } else { f64::from(x) }
}

/// The group's sum at coordinate `i`, paired as the earlier single-copy loops paired it.
#[inline(always)]
fn group_at<const W: bool, const K: usize>(xs: &[&[f32]; K], ws: &[f64; K], i: usize) -> f64 {
    let t = |k: usize| term::<W>(xs[k][i], ws[k]);
    match K {
        1 => t(0),
        2 => t(0) + t(1),
        3 => (t(0) + t(1)) + t(2),
        _ => (t(0) + t(1)) + (t(2) + t(3)),
    }
}

#[inline(always)]
fn run<const W: bool, const K: usize>(
    pass: Pass,
    xs: [&[f32]; K],
    ws: [f64; K],
    acc: &mut [f64],
    out: &mut [f32],
    inv: f64,
) {
    let n = acc.len();
    // Equal lengths, visible to LLVM: no bounds checks in the loops.
    let xs = xs.map(|x| &x[..n]);
    match pass {
        Pass::First => {
            for (i, a) in acc.iter_mut().enumerate() {
                *a = 0.0 + group_at::<W, K>(&xs, &ws, i);
            }
        }
        Pass::Middle => {
            for (i, a) in acc.iter_mut().enumerate() {
                *a += group_at::<W, K>(&xs, &ws, i);
            }
        }
        Pass::Last => {
            let out = &mut out[..n];
            for (i, (o, a)) in out.iter_mut().zip(acc.iter()).enumerate() {
                *o = ((*a + group_at::<W, K>(&xs, &ws, i)) * inv) as f32;
            }
        }
        Pass::Only => {
            let out = &mut out[..n];
            for (i, o) in out.iter_mut().enumerate() {
                *o = ((0.0 + group_at::<W, K>(&xs, &ws, i)) * inv) as f32;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A xorshift stream of `f32` over many magnitudes and both signs, zeros and
    /// subnormals included, so that rounding differences would show.
    fn values(seed: u64, n: usize) -> Vec<f32> {
        let mut s = seed | 1;
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 7;
                s ^= s << 17;
                match s % 23 {
                    0 => 0.0,
                    1 => -0.0,
                    2 => f32::from_bits((s >> 40) as u32 & 0x007f_ffff), // subnormal
                    _ => {
                        let m = (s >> 11) as f64 / (1u64 << 53) as f64 - 0.5;
                        (m * 10f64.powi((s % 13) as i32 - 6)) as f32
                    }
                }
            })
            .collect()
    }

    /// The means as the single-copy loops computed them before the fused, dispatched kernels:
    /// `acc = 0; acc += quad…; acc += remainder; out = acc · inv`.
    fn reference(updates: &[(&[f32], f64)], weighted: bool, inv: f64, out: &mut [f32]) {
        let t = |k: usize, i: usize| {
            let (x, w) = updates[k];
            if weighted {
                w * f64::from(x[i])
            } else {
                f64::from(x[i])
            }
        };
        for (i, o) in out.iter_mut().enumerate() {
            let mut a = 0.0f64;
            let mut k = 0;
            while k < updates.len() {
                a += match updates.len() - k {
                    1 => t(k, i),
                    2 => t(k, i) + t(k + 1, i),
                    3 => (t(k, i) + t(k + 1, i)) + t(k + 2, i),
                    _ => (t(k, i) + t(k + 1, i)) + (t(k + 2, i) + t(k + 3, i)),
                };
                k += 4;
            }
            *o = (a * inv) as f32;
        }
    }

    fn bits(v: &[f32]) -> Vec<u32> {
        v.iter().map(|x| x.to_bits()).collect()
    }

    #[test]
    fn portable_and_avx2_kernels_give_identical_bits_and_the_old_order() {
        // Lengths around the block size and vector widths; 1 to 11 updates (every group shape,
        // one to three groups).
        for (case, len) in [1usize, 7, 1023, 1024, 2500].into_iter().enumerate() {
            for n in 1..=11usize {
                let seed = (case * 100 + n) as u64;
                let data: Vec<Vec<f32>> =
                    (0..n).map(|k| values(seed * 31 + k as u64, len)).collect();
                let ws: Vec<f64> = values(seed + 7, n)
                    .iter()
                    .map(|w| f64::from(w.abs()) * 1e3 + 1.0)
                    .collect();
                let weighted: Vec<(&[f32], f64)> = data
                    .iter()
                    .map(|u| &u[..])
                    .zip(ws.iter().copied())
                    .collect();
                let plain: Vec<&[f32]> = data.iter().map(|u| &u[..]).collect();
                let inv_w = 1.0 / ws.iter().sum::<f64>();
                let inv_p = 1.0 / n as f64;

                let mut want_w = vec![0.0f32; len];
                reference(&weighted, true, inv_w, &mut want_w);
                let mut want_p = vec![0.0f32; len];
                reference(&weighted, false, inv_p, &mut want_p);

                let mut got = vec![f32::NAN; len];
                mean_portable::<_, true>(&weighted, inv_w, &mut got);
                assert_eq!(
                    bits(&got),
                    bits(&want_w),
                    "portable weighted, n {n}, len {len}"
                );
                mean_portable::<_, false>(&plain, inv_p, &mut got);
                assert_eq!(
                    bits(&got),
                    bits(&want_p),
                    "portable plain, n {n}, len {len}"
                );
                let mut sum = vec![0.0f64; len];
                add_portable::<_, true>(&weighted, &mut sum);
                scale_portable(&sum, inv_w, &mut got);
                assert_eq!(
                    bits(&got),
                    bits(&want_w),
                    "portable add+scale, n {n}, len {len}"
                );

                #[cfg(target_arch = "x86_64")]
                if has_avx2() {
                    let mut got = vec![f32::NAN; len];
                    // SAFETY: AVX2 is present (checked just above).
                    unsafe { mean_avx2::<_, true>(&weighted, inv_w, &mut got) };
                    assert_eq!(bits(&got), bits(&want_w), "avx2 weighted, n {n}, len {len}");
                    // SAFETY: as above.
                    unsafe { mean_avx2::<_, false>(&plain, inv_p, &mut got) };
                    assert_eq!(bits(&got), bits(&want_p), "avx2 plain, n {n}, len {len}");
                    let mut sum_avx2 = vec![0.0f64; len];
                    // SAFETY: as above.
                    unsafe { add_avx2::<_, true>(&weighted, &mut sum_avx2) };
                    let sum_bits = |s: &[f64]| s.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
                    assert_eq!(
                        sum_bits(&sum_avx2),
                        sum_bits(&sum),
                        "avx2 add, n {n}, len {len}"
                    );
                    // SAFETY: as above.
                    unsafe { scale_avx2(&sum_avx2, inv_w, &mut got) };
                    assert_eq!(bits(&got), bits(&want_w), "avx2 scale, n {n}, len {len}");
                }
            }
        }
    }
}
