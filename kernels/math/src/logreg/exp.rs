//! `e^t` for `t ≤ 0`, one value or two lanes at a time, by one polynomial: `t = k ln 2 + r`
//! with `|r| ≤ ln 2 / 2`, `e^r` by its Taylor polynomial of degree 13 (truncation below 1e-17
//! relative), scaled by `2^k`. Below `t = −708` (where `2^k` would be subnormal) the result is
//! 0: the true value is under 4e-308. NaN gives NaN.
//!
//! Branch-free apart from that cut-off (a lane select in the two-lane form): `k` is read from
//! the bits of the rounding sum rather than converted with a (saturating, hence checked)
//! float-to-int cast, and the polynomial is evaluated by Estrin's scheme, four dependent
//! multiply-adds deep instead of Horner's 13, so that the rows of a block overlap.

use core::ops::{Add, Mul, Sub};

use crate::simd::F64x2;

// fdlibm's split of ln 2: the high part has trailing zero bits, so `k · LN2_HI` is exact.
const LN2_HI: f64 = f64::from_bits(0x3FE6_2E42_FEE0_0000);
const LN2_LO: f64 = f64::from_bits(0x3DEA_39EF_3579_3C76);
const INV_LN2: f64 = core::f64::consts::LOG2_E;
// Adding 1.5·2^52 rounds to the nearest integer (no SSE4.1 `round` needed), and leaves that
// integer in the low bits: every sum here lies in [2^52, 2^53), where the ulp is 1.
const SHIFT: f64 = 6_755_399_441_055_744.0;
/// 1/n! for n = 0..=13.
const C: [f64; 14] = [
    1.0,
    1.0,
    1.0 / 2.0,
    1.0 / 6.0,
    1.0 / 24.0,
    1.0 / 120.0,
    1.0 / 720.0,
    1.0 / 5040.0,
    1.0 / 40320.0,
    1.0 / 362880.0,
    1.0 / 3628800.0,
    1.0 / 39916800.0,
    1.0 / 479001600.0,
    1.0 / 6227020800.0,
];
/// Subtracted from the bits of `y = t / ln 2 + SHIFT` and shifted into the exponent field:
/// the bits of `2^k` (`k` in the low bits of `y`, plus the exponent bias 1023).
const SCALE_BIAS: i64 = SHIFT.to_bits() as i64 - 1023;

/// `e^t` for `t ≤ 0` (see the module's doc).
#[inline(always)]
pub fn exp_nonpositive(t: f64) -> f64 {
    if t < -708.0 {
        return 0.0;
    }
    let (e, y) = reduced(t, |c| c);
    e * f64::from_bits(((y.to_bits() as i64).wrapping_sub(SCALE_BIAS) << 52) as u64)
}

/// [`exp_nonpositive`] of both lanes, bit for bit.
#[inline(always)]
pub fn exp_nonpositive_x2(t: F64x2) -> F64x2 {
    let (e, y) = reduced(t, F64x2::splat);
    t.select_lt(F64x2::splat(-708.0), F64x2::splat(0.0), e * y.int_sub_shl52(SCALE_BIAS))
}

/// `e^r` of `t`'s reduced argument `r`, and `y = t / ln 2 + SHIFT` (`k` in its low bits).
/// `c` makes a constant of the lane type.
#[inline(always)]
fn reduced<T>(t: T, c: impl Fn(f64) -> T) -> (T, T)
where
    T: Copy + Add<Output = T> + Sub<Output = T> + Mul<Output = T>,
{
    let y = t * c(INV_LN2) + c(SHIFT);
    let kf = y - c(SHIFT);
    let r = (t - kf * c(LN2_HI)) - kf * c(LN2_LO);
    let (r2, r4) = (r * r, (r * r) * (r * r));
    let r8 = r4 * r4;
    let p = |i: usize| c(C[i]) + c(C[i + 1]) * r;
    let q0 = p(0) + p(2) * r2;
    let q1 = p(4) + p(6) * r2;
    let q2 = p(8) + p(10) * r2;
    let q3 = p(12);
    ((q0 + q1 * r4) + (q2 + q3 * r4) * r8, y)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_nonpositive_is_within_two_ulp_of_libm() {
        let mut t = 0.0f64;
        let mut worst = 0.0f64;
        while t > -720.0 {
            let (got, want) = (exp_nonpositive(t), t.exp());
            if t >= -708.0 {
                worst = worst.max((got - want).abs() / want);
            } else {
                assert!(got == 0.0 && want < 4e-308, "t = {t}: {got} vs {want}");
            }
            t -= 0.000_731_3;
        }
        assert!(worst <= 4.5e-16, "worst relative error {worst:e}");
        assert_eq!(exp_nonpositive(0.0), 1.0);
        assert!(exp_nonpositive(f64::NAN).is_nan());
    }

    /// The two-lane form against the scalar one, bit for bit, on both lanes (each lane paired
    /// with a different value, so that a lane mix-up shows), across the cut-off, at −0, −∞
    /// and NaN.
    #[test]
    fn two_lanes_match_the_scalar_form_bit_for_bit() {
        let mut ts: Vec<f64> = (0..20_000).map(|i| -(i as f64) * 0.0373).collect();
        ts.extend([-0.0, -707.9, -708.0, -708.1, f64::NEG_INFINITY, f64::NAN, -1e-300]);
        for (i, &a) in ts.iter().enumerate() {
            let b = ts[(i * 7 + 3) % ts.len()];
            let got = exp_nonpositive_x2(F64x2::new(a, b)).to_array();
            for (g, t) in got.into_iter().zip([a, b]) {
                let want = exp_nonpositive(t);
                assert!(g.to_bits() == want.to_bits() || (g.is_nan() && want.is_nan()), "t = {t}: {g} vs {want}");
            }
        }
    }
}
