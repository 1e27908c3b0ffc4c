//! Numbers in words: the formatting shared by decision reasons and reports, so a figure reads
//! the same everywhere.

/// `0.0412` -> `+4.12%` with `decimals` after the point, signed.
pub fn signed_percent(x: f64, decimals: usize) -> String {
    let text = format!("{:+.*}%", decimals, x * 100.0);
    text.replace('-', "−")
}

/// `0.0412` -> `4.1%` (one decimal by default in tables).
pub fn percent(x: f64, decimals: usize) -> String {
    format!("{:.*}%", decimals, x * 100.0)
}

/// 12345 -> `12,345`.
pub fn count(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// 12400 -> `12.4k`, 3_200_000 -> `3.2M`, 950 -> `950`.
pub fn compact(x: f64) -> String {
    let magnitude = x.abs();
    if magnitude >= 1e6 {
        format!("{:.1}M", x / 1e6)
    } else if magnitude >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

/// A p-value: four significant digits, scientific below 0.0001.
pub fn pvalue(p: f64) -> String {
    if p >= 1.0 {
        // An always-valid p-value is capped at 1: "1.0000" would claim precision it lacks.
        "1".to_string()
    } else if p < 1e-4 {
        format!("{p:.1e}")
    } else {
        format!("{p:.4}")
    }
}

/// A p-value as a reader of a report wants it: `< 0.001`, `0.047`, `> 0.999` (an always-valid
/// p-value is capped at 1, and neither `1.0000` nor `1.1e-10` means more to a reader than
/// "beyond doubt" or "no evidence"). Reasons and the fixed-horizon audit table keep
/// [`pvalue`]'s digits.
pub fn pvalue_short(p: f64) -> String {
    if p < 0.001 {
        "< 0.001".into()
    } else if p > 0.999 {
        "> 0.999".into()
    } else {
        format!("{p:.3}")
    }
}

/// A probability that reads as such: `> 99.9%` and `< 0.1%` at the ends, where one decimal
/// would round to a certainty the model does not claim; else one decimal.
pub fn chance(x: f64) -> String {
    if x > 0.999 {
        "> 99.9%".into()
    } else if x < 0.001 {
        "< 0.1%".into()
    } else {
        percent(x, 1)
    }
}

/// A difference of two proportions in percentage points: `0.0296` -> `+2.96 pp`.
pub fn signed_points(x: f64, decimals: usize) -> String {
    format!("{:+.*} pp", decimals, x * 100.0).replace('-', "−")
}

/// A confidence level or a threshold as a short percentage: `0.95` -> `95%`, `0.975` ->
/// `97.5%`, `0.98333` -> `98.33%`.
pub fn level(x: f64) -> String {
    let text = format!("{:.2}", x * 100.0);
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// A significance threshold: `0.05`, `0.0125`, `0.008333` -> `0.0083`, `1.2e-5`.
pub fn threshold(x: f64) -> String {
    if x < 1e-4 {
        return format!("{x:.1e}");
    }
    let text = format!("{x:.4}");
    text.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// A metric value with about four significant digits.
pub fn value(x: f64) -> String {
    let magnitude = x.abs();
    let decimals = if magnitude == 0.0 || magnitude >= 1000.0 {
        0
    } else if magnitude >= 100.0 {
        1
    } else if magnitude >= 1.0 {
        2
    } else {
        (4.0 - magnitude.log10().floor() - 1.0).clamp(2.0, 8.0) as usize
    };
    let text = format!("{x:.decimals$}");
    text.replace('-', "−")
}

/// An interval of relative effects: `[−1.2%, +3.4%]`.
pub fn percent_interval(ci: [f64; 2], decimals: usize) -> String {
    format!("[{}, {}]", signed_percent(ci[0], decimals), signed_percent(ci[1], decimals))
}

/// Days, rounded up to a whole number for plans: `about 6 days`.
pub fn days(d: f64) -> String {
    let whole = d.ceil().max(1.0) as u64;
    if whole == 1 { "about 1 day".into() } else { format!("about {whole} days") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(signed_percent(0.0412, 1), "+4.1%");
        assert_eq!(signed_percent(-0.0412, 1), "−4.1%");
        assert_eq!(count(1234567), "1,234,567");
        assert_eq!(count(999), "999");
        assert_eq!(pvalue(0.0312), "0.0312");
        assert_eq!(pvalue(0.0000012), "1.2e-6");
        assert_eq!(pvalue(1.0), "1");
        assert_eq!(value(0.10234), "0.1023");
        assert_eq!(value(52.345), "52.34");
        assert_eq!(value(-3.0), "−3.00");
        assert_eq!(days(5.2), "about 6 days");
        assert_eq!(compact(12_400.0), "12.4k");
        assert_eq!(compact(950.0), "950");
        assert_eq!(level(0.95), "95%");
        assert_eq!(level(0.975), "97.5%");
        assert_eq!(level(1.0 - 0.05 / 3.0), "98.33%");
        assert_eq!(threshold(0.05), "0.05");
        assert_eq!(threshold(0.0125), "0.0125");
        assert_eq!(threshold(0.05 / 6.0), "0.0083");
    }

    #[test]
    fn reader_formats_never_claim_certainty_or_false_precision() {
        assert_eq!(pvalue_short(1.1e-10), "< 0.001");
        assert_eq!(pvalue_short(0.000999), "< 0.001");
        assert_eq!(pvalue_short(0.001), "0.001");
        assert_eq!(pvalue_short(0.04712), "0.047");
        assert_eq!(pvalue_short(1.0), "> 0.999");
        assert_eq!(chance(0.99996), "> 99.9%");
        assert_eq!(chance(0.00004), "< 0.1%");
        assert_eq!(chance(0.8271), "82.7%");
        assert_eq!(signed_points(0.0296, 2), "+2.96 pp");
        assert_eq!(signed_points(-0.0041, 2), "−0.41 pp");
    }
}
