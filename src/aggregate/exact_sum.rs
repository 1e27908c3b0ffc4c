//! Sums of `f64` values that do not depend on the order of the additions.
//!
//! A unit's events arrive in whatever order the reader threads finish their files, and
//! floating-point addition is not associative: summed as `f64`, a unit's revenue could differ
//! in the last bit from run to run. Integer addition is associative, so each value is turned
//! into a 192-bit fixed-point number (three `u64` words, two's complement, in units of
//! 2^-96), the words are added with wrap-around, and the total is rounded to the nearest `f64`
//! once, at the end. The result is the exact sum, correctly rounded, in any order.
//!
//! Exact for every value whose magnitude is 0 or lies in [2^-44, 2^62), about 5.7e-14 to
//! 4.6e18. Smaller magnitudes are first rounded to the nearest multiple of 2^-96 (an error
//! below 1.3e-29 per value), larger ones count as ±2^62, so that up to 2^32 values (a unit's
//! event count is a `u32`) can never overflow the 2^95 range. Both stay independent of order.
//!
//! No IO; pure functions on the words of a unit's accumulator row.

/// Words of one sum.
pub(super) const WORDS: usize = 3;

/// The fixed point's fraction bits: the lowest bit is worth 2^-96.
const FRACTION_BITS: i32 = 96;

/// Magnitudes from 2^62 up count as 2^62.
const LIMIT_EXPONENT: i32 = 62;

/// Adds the finite `value` to the sum in `words` (`WORDS` long).
#[inline]
pub(super) fn add(words: &mut [u64], value: f64) {
    let [a0, a1, a2] = fixed(value);
    let (w0, carry0) = words[0].overflowing_add(a0);
    let (w1, carry1) = words[1].overflowing_add(a1);
    // At most one of the two carries into the top word is set: a sum that wrapped is at most
    // 2^64 - 2 before the carry is added.
    let (w1, carry2) = w1.overflowing_add(u64::from(carry0));
    words[0] = w0;
    words[1] = w1;
    words[2] = words[2].wrapping_add(a2).wrapping_add(u64::from(carry1 | carry2));
}

/// The sum in `words`, rounded to the nearest `f64` (ties to even).
pub(super) fn total(words: &[u64]) -> f64 {
    let mut w = [words[0], words[1], words[2]];
    let negative = w[2] >> 63 == 1;
    if negative {
        w = negate(w);
    }
    let low = (u128::from(w[1]) << 64) | u128::from(w[0]);
    let magnitude = if w[2] == 0 {
        // Rust rounds integer-to-float conversions to nearest, ties to even.
        low as f64
    } else {
        // Shift the top word's bits into a u128 and keep whether any bit fell off (a sticky
        // bit far below the 53 kept), so the one rounding to f64 is still correct.
        let k = 64 - w[2].leading_zeros();
        let shifted = (u128::from(w[2]) << (128 - k)) | (low >> k);
        let sticky = u128::from(low & ((1u128 << k) - 1) != 0);
        (shifted | sticky) as f64 * f64::from(2u32).powi(k as i32)
    };
    // Scaling by a power of two is exact in this range.
    let value = magnitude * f64::from(2u32).powi(-FRACTION_BITS);
    if negative { -value } else { value }
}

/// `value` as a 192-bit two's complement fixed-point number (see the module docs).
#[inline]
fn fixed(value: f64) -> [u64; 3] {
    let bits = value.to_bits();
    let biased = ((bits >> 52) & 0x7ff) as i32;
    let fraction = bits & ((1u64 << 52) - 1);
    // |value| = mantissa × 2^exponent
    let (mantissa, exponent) = if biased == 0 { (fraction, -1074) } else { (fraction | 1 << 52, biased - 1075) };
    let magnitude = if mantissa == 0 {
        [0, 0, 0]
    } else if exponent + 52 >= LIMIT_EXPONENT {
        [0, 0, 1 << (LIMIT_EXPONENT + FRACTION_BITS - 128)]
    } else {
        let shift = exponent + FRACTION_BITS;
        if shift >= 64 {
            // At most 2^62 over 2^-96 needs bits up to 157: the mantissa goes to words 1 and 2.
            let high = u128::from(mantissa) << (shift - 64);
            [0, high as u64, (high >> 64) as u64]
        } else if shift >= 0 {
            let low = u128::from(mantissa) << shift;
            [low as u64, (low >> 64) as u64, 0]
        } else {
            [round_shift(mantissa, (-shift) as u32), 0, 0]
        }
    };
    if bits >> 63 == 1 { negate(magnitude) } else { magnitude }
}

/// `mantissa / 2^by`, rounded to nearest, ties to even.
fn round_shift(mantissa: u64, by: u32) -> u64 {
    if by >= 64 {
        return 0; // mantissa < 2^53, far below half of 2^64
    }
    let quotient = mantissa >> by;
    let remainder = mantissa & ((1u64 << by) - 1);
    let half = 1u64 << (by - 1);
    if remainder > half || (remainder == half && quotient & 1 == 1) { quotient + 1 } else { quotient }
}

fn negate(w: [u64; 3]) -> [u64; 3] {
    let (w0, carry0) = (!w[0]).overflowing_add(1);
    let (w1, carry1) = (!w[1]).overflowing_add(u64::from(carry0));
    [w0, w1, (!w[2]).wrapping_add(u64::from(carry1))]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(values: &[f64]) -> f64 {
        let mut words = [0u64; WORDS];
        for &v in values {
            add(&mut words, v);
        }
        total(&words)
    }

    #[test]
    fn single_values_come_back_unchanged() {
        for v in [0.0, 1.0, -1.0, 0.1, -0.1, 12.34, 1e-13, 6e-14, 3.5e18, -3.5e18, 2f64.powi(61), 1.0 / 3.0] {
            assert_eq!(sum(&[v]), v, "{v}");
        }
    }

    #[test]
    fn the_sum_is_the_exact_sum_rounded_once() {
        // 0.1 + 0.2 in f64 is 0.30000000000000004; the exact sum of the two doubles rounds
        // to the same double (Python: float(Fraction(0.1) + Fraction(0.2))).
        assert_eq!(sum(&[0.1, 0.2]), 0.30000000000000004);
        // 1e16 + 1 - 1e16 is 0 left to right in f64; exactly it is 1.
        assert_eq!(sum(&[1e16, 1.0, -1e16]), 1.0);
        // Python: float(sum(map(Fraction, [0.1] * 10))) == 1.0; naive f64 gives 0.9999999999999999.
        assert_eq!(sum(&[0.1; 10]), 1.0);
        assert_eq!(sum(&[2.5, -2.5]), 0.0);
        assert_eq!(sum(&[-0.0, -0.0]).to_bits(), 0.0f64.to_bits());
        assert_eq!(sum(&[-1.5, -2.25]), -3.75);
    }

    #[test]
    fn the_order_of_the_values_does_not_matter() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut values: Vec<f64> = (0..500)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let magnitude = 10f64.powi((state % 25) as i32 - 12);
                let sign = if state & 1 == 0 { 1.0 } else { -1.0 };
                sign * magnitude * ((state >> 11) as f64 / (1u64 << 53) as f64)
            })
            .collect();
        let forward = sum(&values);
        values.reverse();
        assert_eq!(sum(&values).to_bits(), forward.to_bits());
        values.sort_by(f64::total_cmp);
        assert_eq!(sum(&values).to_bits(), forward.to_bits());
        // Naive f64 sums of these values differ with the order (that is the point).
        let naive = |v: &[f64]| v.iter().sum::<f64>();
        let sorted = naive(&values);
        values.reverse();
        assert_ne!(naive(&values).to_bits(), sorted.to_bits());
    }

    #[test]
    fn tiny_values_round_to_the_fixed_point_and_huge_ones_are_capped() {
        // Below 2^-96 / 2 a value contributes nothing; 2^-96 itself is kept.
        assert_eq!(sum(&[2f64.powi(-98)]), 0.0);
        assert_eq!(sum(&[2f64.powi(-96)]), 2f64.powi(-96));
        assert_eq!(sum(&[f64::MIN_POSITIVE]), 0.0);
        assert_eq!(sum(&[1e300]), 2f64.powi(62));
        assert_eq!(sum(&[-1e300, 1.0]), -(2f64.powi(62)) + 1.0);
        // Many capped values add up without overflowing (2^32 of them would reach 2^94).
        let mut words = [0u64; WORDS];
        for _ in 0..1000 {
            add(&mut words, 1e300);
        }
        assert_eq!(total(&words), 1000.0 * 2f64.powi(62));
    }

    #[test]
    fn totals_with_a_top_word_round_correctly() {
        // 2^62 + 1 needs 53+ bits at 2^-96 resolution: the top word is in use, and the
        // result rounds to 2^62 (ties to even), as f64 addition would.
        assert_eq!(sum(&[2f64.powi(61), 2f64.powi(61), 1.0]), 2f64.powi(62));
        assert_eq!(sum(&[2f64.powi(61), 2f64.powi(61), 1024.0, 1.0]), 2f64.powi(62) + 1024.0);
        assert_eq!(sum(&[3e18, 3e18, -1e-10]), 6e18);
    }
}
