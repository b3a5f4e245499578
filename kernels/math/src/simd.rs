//! Four-lane `f32` and two-lane `f64` vectors with one API and two backends: wasm SIMD128
//! (with relaxed-SIMD fused multiply-add where the target enables it) and portable arrays
//! that LLVM vectorises for the native target. The kernels are written once against this.

#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod imp {
    use core::arch::wasm32::*;

    #[derive(Clone, Copy)]
    pub struct F32x4(v128);
    #[derive(Clone, Copy)]
    pub struct F64x2(v128);

    impl F32x4 {
        #[inline(always)]
        pub fn splat(x: f32) -> Self {
            Self(f32x4_splat(x))
        }
        /// Loads `s[i..i + 4]`.
        #[inline(always)]
        pub fn load(s: &[f32], i: usize) -> Self {
            let s = &s[i..i + 4];
            // SAFETY: the slice above holds four f32s; v128_load allows unaligned reads.
            Self(unsafe { v128_load(s.as_ptr() as *const v128) })
        }
        #[inline(always)]
        pub fn store(self, s: &mut [f32], i: usize) {
            let s = &mut s[i..i + 4];
            // SAFETY: as in `load`.
            unsafe { v128_store(s.as_mut_ptr() as *mut v128, self.0) }
        }
        /// `a * b + c`, fused where relaxed SIMD is enabled.
        #[inline(always)]
        pub fn madd(a: Self, b: Self, c: Self) -> Self {
            #[cfg(target_feature = "relaxed-simd")]
            {
                Self(f32x4_relaxed_madd(a.0, b.0, c.0))
            }
            #[cfg(not(target_feature = "relaxed-simd"))]
            {
                Self(f32x4_add(f32x4_mul(a.0, b.0), c.0))
            }
        }
        #[inline(always)]
        pub fn min(self, o: Self) -> Self {
            Self(f32x4_pmin(self.0, o.0))
        }
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            Self(f32x4_pmax(self.0, o.0))
        }
        /// The smallest lane and the second smallest (equal to it when it occurs twice), by a
        /// sorting network on lane pairs: no masks, no branches.
        #[inline(always)]
        pub fn two_min(self) -> (f32, f32) {
            let sh = i32x4_shuffle::<2, 3, 0, 1>(self.0, self.0);
            let (p, q) = (f32x4_pmin(self.0, sh), f32x4_pmax(self.0, sh));
            let (p1, q1) = (i32x4_shuffle::<1, 0, 3, 2>(p, p), i32x4_shuffle::<1, 0, 3, 2>(q, q));
            let second = f32x4_pmin(f32x4_pmax(p, p1), f32x4_pmin(q, q1));
            (f32x4_extract_lane::<0>(f32x4_pmin(p, p1)), f32x4_extract_lane::<0>(second))
        }
        /// Bit `l` is set when lane `l` of `self` is at most that of `o`.
        #[inline(always)]
        pub fn le_mask(self, o: Self) -> u32 {
            i32x4_bitmask(f32x4_le(self.0, o.0)) as u32
        }
        #[inline(always)]
        pub fn hmin(self) -> f32 {
            let s = f32x4_pmin(self.0, i32x4_shuffle::<2, 3, 0, 1>(self.0, self.0));
            let s = f32x4_pmin(s, i32x4_shuffle::<1, 0, 3, 2>(s, s));
            f32x4_extract_lane::<0>(s)
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            [
                f32x4_extract_lane::<0>(self.0),
                f32x4_extract_lane::<1>(self.0),
                f32x4_extract_lane::<2>(self.0),
                f32x4_extract_lane::<3>(self.0),
            ]
        }
        #[inline(always)]
        pub fn to_f64(self) -> (F64x2, F64x2) {
            let hi = i64x2_shuffle::<1, 1>(self.0, self.0);
            (F64x2(f64x2_promote_low_f32x4(self.0)), F64x2(f64x2_promote_low_f32x4(hi)))
        }
    }

    impl F64x2 {
        #[inline(always)]
        pub fn splat(x: f64) -> Self {
            Self(f64x2_splat(x))
        }
        #[inline(always)]
        pub fn new(a: f64, b: f64) -> Self {
            Self(f64x2(a, b))
        }
        #[inline(always)]
        pub fn to_array(self) -> [f64; 2] {
            [f64x2_extract_lane::<0>(self.0), f64x2_extract_lane::<1>(self.0)]
        }
        #[inline(always)]
        pub fn abs(self) -> Self {
            Self(f64x2_abs(self.0))
        }
        #[inline(always)]
        pub fn negated(self) -> Self {
            Self(f64x2_neg(self.0))
        }
        /// Per lane `self < o ? o : self` (wasm's `pmax`).
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            Self(f64x2_pmax(self.0, o.0))
        }
        /// Per lane `self < o ? a : b`.
        #[inline(always)]
        pub fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
            Self(v128_bitselect(a.0, b.0, f64x2_lt(self.0, o.0)))
        }
        /// Per lane the f64 whose bits are `(bits(self) − c) << 52`.
        #[inline(always)]
        pub fn int_sub_shl52(self, c: i64) -> Self {
            Self(i64x2_shl(i64x2_sub(self.0, i64x2_splat(c)), 52))
        }
        #[inline(always)]
        pub(super) fn ops(a: Self, b: Self, op: super::Op) -> Self {
            Self(match op {
                super::Op::Add => f64x2_add(a.0, b.0),
                super::Op::Sub => f64x2_sub(a.0, b.0),
                super::Op::Mul => f64x2_mul(a.0, b.0),
                super::Op::Div => f64x2_div(a.0, b.0),
            })
        }
        #[inline(always)]
        pub fn load(s: &[f64], i: usize) -> Self {
            let s = &s[i..i + 2];
            // SAFETY: two f64s; unaligned load.
            Self(unsafe { v128_load(s.as_ptr() as *const v128) })
        }
        #[inline(always)]
        pub fn store(self, s: &mut [f64], i: usize) {
            let s = &mut s[i..i + 2];
            // SAFETY: as in `load`.
            unsafe { v128_store(s.as_mut_ptr() as *mut v128, self.0) }
        }
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // one name in both backends, used as a method
        pub fn add(self, o: Self) -> Self {
            Self(f64x2_add(self.0, o.0))
        }
        /// `a * b + c`, never fused, so that f64 results match the native build bit for bit.
        #[inline(always)]
        pub fn mul_add(a: Self, b: Self, c: Self) -> Self {
            Self(f64x2_add(f64x2_mul(a.0, b.0), c.0))
        }
        #[inline(always)]
        pub fn hsum(self) -> f64 {
            f64x2_extract_lane::<0>(self.0) + f64x2_extract_lane::<1>(self.0)
        }
    }
}

#[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
mod imp {
    #[derive(Clone, Copy)]
    pub struct F32x4([f32; 4]);
    #[derive(Clone, Copy)]
    pub struct F64x2([f64; 2]);

    impl F32x4 {
        #[inline(always)]
        pub fn splat(x: f32) -> Self {
            Self([x; 4])
        }
        #[inline(always)]
        pub fn load(s: &[f32], i: usize) -> Self {
            Self(s[i..i + 4].try_into().unwrap())
        }
        #[inline(always)]
        pub fn store(self, s: &mut [f32], i: usize) {
            s[i..i + 4].copy_from_slice(&self.0)
        }
        #[inline(always)]
        pub fn madd(a: Self, b: Self, c: Self) -> Self {
            Self(core::array::from_fn(|l| a.0[l] * b.0[l] + c.0[l]))
        }
        #[inline(always)]
        pub fn min(self, o: Self) -> Self {
            // Same semantics as wasm's pmin: `o < self ? o : self`.
            Self(core::array::from_fn(|l| if o.0[l] < self.0[l] { o.0[l] } else { self.0[l] }))
        }
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            // Same semantics as wasm's pmax: `self < o ? o : self`.
            Self(core::array::from_fn(|l| if self.0[l] < o.0[l] { o.0[l] } else { self.0[l] }))
        }
        /// The smallest lane and the second smallest (equal to it when it occurs twice), by the
        /// same sorting network as the wasm backend's.
        #[inline(always)]
        pub fn two_min(self) -> (f32, f32) {
            let v = self.0;
            let sh = Self([v[2], v[3], v[0], v[1]]);
            let (p, q) = (self.min(sh), self.max(sh));
            let (p1, q1) = (Self([p.0[1], p.0[0], p.0[3], p.0[2]]), Self([q.0[1], q.0[0], q.0[3], q.0[2]]));
            (p.min(p1).0[0], p.max(p1).min(q.min(q1)).0[0])
        }
        #[inline(always)]
        pub fn le_mask(self, o: Self) -> u32 {
            (0..4).fold(0, |m, l| m | (((self.0[l] <= o.0[l]) as u32) << l))
        }
        #[inline(always)]
        pub fn hmin(self) -> f32 {
            let s = self.min(Self([self.0[2], self.0[3], self.0[0], self.0[1]]));
            let s = s.min(Self([s.0[1], s.0[0], s.0[3], s.0[2]]));
            s.0[0]
        }
        #[inline(always)]
        pub fn to_array(self) -> [f32; 4] {
            self.0
        }
        #[inline(always)]
        pub fn to_f64(self) -> (F64x2, F64x2) {
            let v = self.0;
            (F64x2([v[0] as f64, v[1] as f64]), F64x2([v[2] as f64, v[3] as f64]))
        }
    }

    impl F64x2 {
        #[inline(always)]
        pub fn splat(x: f64) -> Self {
            Self([x; 2])
        }
        #[inline(always)]
        pub fn new(a: f64, b: f64) -> Self {
            Self([a, b])
        }
        #[inline(always)]
        pub fn to_array(self) -> [f64; 2] {
            self.0
        }
        #[inline(always)]
        pub fn abs(self) -> Self {
            Self(self.0.map(f64::abs))
        }
        #[inline(always)]
        pub fn negated(self) -> Self {
            Self(self.0.map(|v| -v))
        }
        #[inline(always)]
        pub fn max(self, o: Self) -> Self {
            Self(core::array::from_fn(|l| if self.0[l] < o.0[l] { o.0[l] } else { self.0[l] }))
        }
        #[inline(always)]
        pub fn select_lt(self, o: Self, a: Self, b: Self) -> Self {
            Self(core::array::from_fn(|l| if self.0[l] < o.0[l] { a.0[l] } else { b.0[l] }))
        }
        #[inline(always)]
        pub fn int_sub_shl52(self, c: i64) -> Self {
            Self(self.0.map(|v| f64::from_bits(((v.to_bits() as i64).wrapping_sub(c) << 52) as u64)))
        }
        #[inline(always)]
        pub(super) fn ops(a: Self, b: Self, op: super::Op) -> Self {
            Self(core::array::from_fn(|l| match op {
                super::Op::Add => a.0[l] + b.0[l],
                super::Op::Sub => a.0[l] - b.0[l],
                super::Op::Mul => a.0[l] * b.0[l],
                super::Op::Div => a.0[l] / b.0[l],
            }))
        }
        #[inline(always)]
        pub fn load(s: &[f64], i: usize) -> Self {
            Self(s[i..i + 2].try_into().unwrap())
        }
        #[inline(always)]
        pub fn store(self, s: &mut [f64], i: usize) {
            s[i..i + 2].copy_from_slice(&self.0)
        }
        #[inline(always)]
        #[allow(clippy::should_implement_trait)] // one name in both backends, used as a method
        pub fn add(self, o: Self) -> Self {
            Self([self.0[0] + o.0[0], self.0[1] + o.0[1]])
        }
        #[inline(always)]
        pub fn mul_add(a: Self, b: Self, c: Self) -> Self {
            Self([a.0[0] * b.0[0] + c.0[0], a.0[1] * b.0[1] + c.0[1]])
        }
        #[inline(always)]
        pub fn hsum(self) -> f64 {
            self.0[0] + self.0[1]
        }
    }
}

pub use imp::{F32x4, F64x2};

/// The arithmetic operators of [`F64x2`] (lane by lane, never fused), so that code generic
/// over `f64` and `F64x2` (the logistic step's `e^t`) is written once.
#[derive(Clone, Copy)]
enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

macro_rules! f64x2_op {
    ($tr:ident, $f:ident, $op:ident) => {
        impl core::ops::$tr for F64x2 {
            type Output = Self;
            #[inline(always)]
            fn $f(self, o: Self) -> Self {
                F64x2::ops(self, o, Op::$op)
            }
        }
    };
}
f64x2_op!(Add, add, Add);
f64x2_op!(Sub, sub, Sub);
f64x2_op!(Mul, mul, Mul);
f64x2_op!(Div, div, Div);

/// `a.min(b)` as one compare and select (equal to it unless `b` is NaN; a NaN `a` gives `b`).
/// On wasm32, Rust's NaN-ignoring `f32::min` and `f64::max` compile to calls of
/// compiler-builtins' `fminf`/`fmax`, which cranelift cannot inline, and a call inside a
/// per-row loop makes it spill every live vector register around it.
#[inline(always)]
pub fn min_f32(a: f32, b: f32) -> f32 {
    if a < b {
        a
    } else {
        b
    }
}

/// `a.max(b)` as one compare and select (equal to it unless `b` is NaN; a NaN `a` gives
/// `b`). See [`min_f32`].
#[inline(always)]
pub fn max_f64(a: f64, b: f64) -> f64 {
    if a > b {
        a
    } else {
        b
    }
}

/// `acc[..] += x[..]` with `x` widened to f64; `x.len() == acc.len()`.
#[inline(always)]
pub fn add_widened(acc: &mut [f64], x: &[f32]) {
    let d = x.len();
    // Same length as `x`, so that the compiler drops the bounds checks below.
    let acc = &mut acc[..d];
    let mut c = 0;
    while c + 4 <= d {
        let (lo, hi) = F32x4::load(x, c).to_f64();
        F64x2::load(acc, c).add(lo).store(acc, c);
        F64x2::load(acc, c + 2).add(hi).store(acc, c + 2);
        c += 4;
    }
    while c < d {
        acc[c] += x[c] as f64;
        c += 1;
    }
}

/// `acc[..] += x[i·d..(i + 1)·d]` widened to f64 for each row `i` of `rows` in order, over
/// the row-major `x` (`d = acc.len()` columns): each element the same sum, bit for bit, as
/// one [`add_widened`] per row, but 16 (then 8, then 4) columns at a time are held in
/// registers across the rows instead of being loaded and stored for every row.
#[inline(always)]
pub fn add_rows_widened(acc: &mut [f64], x: &[f32], rows: &[u32]) {
    let d = acc.len();
    let mut c = 0;
    while c + 16 <= d {
        add_rows_columns::<8>(acc, x, rows, c);
        c += 16;
    }
    if c + 8 <= d {
        add_rows_columns::<4>(acc, x, rows, c);
        c += 8;
    }
    if c + 4 <= d {
        add_rows_columns::<2>(acc, x, rows, c);
        c += 4;
    }
    if c < d {
        for &i in rows {
            let i = i as usize;
            add_widened(&mut acc[c..], &x[i * d + c..(i + 1) * d]);
        }
    }
}

/// [`add_rows_widened`] of the `2·V` columns from `c` (`V` even), in `V` registers.
#[inline(always)]
fn add_rows_columns<const V: usize>(acc: &mut [f64], x: &[f32], rows: &[u32], c: usize) {
    let d = acc.len();
    let acc = &mut acc[c..c + 2 * V];
    let mut a: [F64x2; V] = core::array::from_fn(|v| F64x2::load(acc, 2 * v));
    for &i in rows {
        let at = i as usize * d + c;
        let xs = &x[at..at + 2 * V];
        for q in 0..V / 2 {
            let (lo, hi) = F32x4::load(xs, 4 * q).to_f64();
            a[2 * q] = a[2 * q].add(lo);
            a[2 * q + 1] = a[2 * q + 1].add(hi);
        }
    }
    for (v, a) in a.iter().enumerate() {
        a.store(acc, 2 * v);
    }
}

/// `acc[..] += r * x[..]` with `x` widened to f64.
#[inline(always)]
pub fn axpy_widened(acc: &mut [f64], r: f64, x: &[f32]) {
    let d = x.len();
    let acc = &mut acc[..d];
    let rv = F64x2::splat(r);
    let mut c = 0;
    while c + 4 <= d {
        let (lo, hi) = F32x4::load(x, c).to_f64();
        F64x2::mul_add(rv, lo, F64x2::load(acc, c)).store(acc, c);
        F64x2::mul_add(rv, hi, F64x2::load(acc, c + 2)).store(acc, c + 2);
        c += 4;
    }
    while c < d {
        acc[c] += r * x[c] as f64;
        c += 1;
    }
}

/// `acc[c] += Σ_i r[i] * x[i·d + c]` over the rows of a row-major block `x` (`r.len()` rows
/// of `d = acc.len()` columns), with `x` widened to f64. Each element sums the rows in order,
/// exactly as `r.len()` calls of [`axpy_widened`] would, but 16 (then 8) columns at a time
/// are kept in registers across the block instead of being loaded and stored for every row.
/// (16 columns per pass: the wasm build's row loop ran 30 instructions per 8 columns, a third
/// of them the row's address and `r[i]`'s broadcast, which 16 columns pay half as often.)
#[inline(always)]
pub fn axpy_block_widened(acc: &mut [f64], r: &[f64], x: &[f32]) {
    let d = acc.len();
    if d == 0 {
        return;
    }
    let mut c = 0;
    while c + 16 <= d {
        axpy_block_columns::<8>(acc, r, x, c);
        c += 16;
    }
    if c + 8 <= d {
        axpy_block_columns::<4>(acc, r, x, c);
        c += 8;
    }
    if c < d {
        for (row, &ri) in x.chunks_exact(d).zip(r) {
            axpy_widened(&mut acc[c..], ri, &row[c..]);
        }
    }
}

/// [`axpy_block_widened`] of the `2·V` columns from `c` (`V` even), in `V` registers.
#[inline(always)]
fn axpy_block_columns<const V: usize>(acc: &mut [f64], r: &[f64], x: &[f32], c: usize) {
    let d = acc.len();
    let acc = &mut acc[c..c + 2 * V];
    let mut a: [F64x2; V] = core::array::from_fn(|v| F64x2::load(acc, 2 * v));
    for (row, &ri) in x.chunks_exact(d).zip(r) {
        // One bounds check per row; the loads below are then in range.
        let xs = &row[c..c + 2 * V];
        let rv = F64x2::splat(ri);
        for q in 0..V / 2 {
            let (lo, hi) = F32x4::load(xs, 4 * q).to_f64();
            a[2 * q] = F64x2::mul_add(rv, lo, a[2 * q]);
            a[2 * q + 1] = F64x2::mul_add(rv, hi, a[2 * q + 1]);
        }
    }
    for (v, a) in a.iter().enumerate() {
        a.store(acc, 2 * v);
    }
}

/// `Σ w[c] * x[c]` in f64 with `x` widened, in a fixed order (two lanes, then tail).
#[inline(always)]
pub fn dot_widened(w: &[f64], x: &[f32]) -> f64 {
    dot_widened_rows(w, [x])[0]
}

/// [`dot_widened`] of `R` rows of the same length at once, each row's sum in the same order
/// as alone (so bit for bit the same): the rows share each load of `w`.
#[inline(always)]
pub fn dot_widened_rows<const R: usize>(w: &[f64], xs: [&[f32]; R]) -> [f64; R] {
    let d = xs[0].len();
    let w = &w[..d];
    let xs: [&[f32]; R] = core::array::from_fn(|r| &xs[r][..d]);
    let mut a = [F64x2::splat(0.0); R];
    let mut b = [F64x2::splat(0.0); R];
    // Exact chunks, so the loads need no bounds checks (the indexed loop kept two per four
    // columns), eight columns per trip (cranelift does not unroll). Lanes 0-1 of every four
    // columns go to `a` and lanes 2-3 to `b`, in column order, whatever the chunk size.
    let (w8s, w4s) = (w.chunks_exact(8), w.chunks_exact(8).remainder().chunks_exact(4));
    let tail = w4s.remainder().len();
    for (c, w8) in w8s.enumerate() {
        let (w0, w1, w2, w3) = (F64x2::load(w8, 0), F64x2::load(w8, 2), F64x2::load(w8, 4), F64x2::load(w8, 6));
        for r in 0..R {
            let x8 = &xs[r][8 * c..8 * c + 8];
            let (l0, h0) = F32x4::load(x8, 0).to_f64();
            let (l1, h1) = F32x4::load(x8, 4).to_f64();
            a[r] = F64x2::mul_add(w0, l0, a[r]);
            b[r] = F64x2::mul_add(w1, h0, b[r]);
            a[r] = F64x2::mul_add(w2, l1, a[r]);
            b[r] = F64x2::mul_add(w3, h1, b[r]);
        }
    }
    let c4 = d - tail - 4 * w4s.len();
    for w4 in w4s {
        let (w0, w1) = (F64x2::load(w4, 0), F64x2::load(w4, 2));
        for r in 0..R {
            let (lo, hi) = F32x4::load(&xs[r][c4..c4 + 4], 0).to_f64();
            a[r] = F64x2::mul_add(w0, lo, a[r]);
            b[r] = F64x2::mul_add(w1, hi, b[r]);
        }
    }
    core::array::from_fn(|r| {
        let mut s = a[r].add(b[r]).hsum();
        for (&xc, &wc) in xs[r][d - tail..].iter().zip(&w[d - tail..]) {
            s += wc * xc as f64;
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two rows at once give each row's single-row sum bit for bit (so that a row's score
    /// does not depend on the row it is paired with), and that sum is the f64 dot product
    /// within its rounding bound, for widths around the 8- and 4-column chunks.
    #[test]
    fn dot_of_two_rows_is_each_rows_dot_bit_for_bit() {
        let mut rng = crate::rng::SplitMix64::new(11);
        for d in 0..27 {
            let w: Vec<f64> = (0..d).map(|_| rng.next_f64() * 4.0 - 2.0).collect();
            let x: Vec<f32> = (0..2 * d).map(|_| (rng.next_f64() * 6.0 - 3.0) as f32).collect();
            let (x0, x1) = (&x[..d], &x[d..]);
            let [a, b] = dot_widened_rows(&w, [x0, x1]);
            for (got, row) in [(a, x0), (b, x1)] {
                assert_eq!(got.to_bits(), dot_widened(&w, row).to_bits(), "d = {d}");
                let exact: f64 = w.iter().zip(row).map(|(&w, &x)| w * x as f64).sum();
                let scale: f64 = w.iter().zip(row).map(|(&w, &x)| (w * x as f64).abs()).sum();
                assert!((got - exact).abs() <= 1e-15 * (d as f64 + 1.0) * scale, "d = {d}: {got} vs {exact}");
            }
        }
    }

    /// The block form sums each column over the rows in row order, bit for bit as one
    /// `axpy_widened` per row, for widths that take the 16-, 8-column and tail paths.
    #[test]
    fn block_axpy_is_row_by_row_axpy_bit_for_bit() {
        let mut rng = crate::rng::SplitMix64::new(12);
        for d in 0..41 {
            let rows = 9;
            let x: Vec<f32> = (0..rows * d).map(|_| (rng.next_f64() * 6.0 - 3.0) as f32).collect();
            let r: Vec<f64> = (0..rows).map(|_| rng.next_f64() - 0.5).collect();
            let start: Vec<f64> = (0..d).map(|_| rng.next_f64()).collect();
            let mut block = start.clone();
            axpy_block_widened(&mut block, &r, &x);
            let mut each = start.clone();
            for (i, &ri) in r.iter().enumerate() {
                axpy_widened(&mut each, ri, &x[i * d..(i + 1) * d]);
            }
            let (b, e): (Vec<u64>, Vec<u64>) =
                (block.iter().map(|v| v.to_bits()).collect(), each.iter().map(|v| v.to_bits()).collect());
            assert_eq!(b, e, "d = {d}");
            for c in 0..d {
                let want: f64 = start[c] + (0..rows).map(|i| r[i] * x[i * d + c] as f64).sum::<f64>();
                assert!((block[c] - want).abs() < 1e-12, "d = {d} column {c}");
            }
        }
    }
}
