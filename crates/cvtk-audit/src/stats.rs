//! numpy's median and percentile, to the bit: the thresholds of cleanlab and
//! CleanVision are defined on them.

/// numpy's `_lerp`: `a + (b - a) t`, computed from the nearer end.
pub fn lerp(a: f64, b: f64, t: f64) -> f64 {
    let d = b - a;
    if t >= 0.5 {
        b - d * (1.0 - t)
    } else {
        a + d * t
    }
}

/// `np.percentile(values, q)` (linear method); 0 for none.
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut v = values.to_vec();
    percentile_unsorted(&mut v, q)
}

/// The same, reordering `values` (a selection, not a sort).
pub fn percentile_unsorted(values: &mut [f64], q: f64) -> f64 {
    let n = values.len();
    if n == 0 {
        return 0.0;
    }
    let h = (n - 1) as f64 * (q / 100.0);
    let lo = (h.floor() as usize).min(n - 1);
    let (_, &mut a, above) = values.select_nth_unstable_by(lo, f64::total_cmp);
    let b = above.iter().copied().min_by(f64::total_cmp).unwrap_or(a);
    lerp(a, b, h - lo as f64)
}

/// `np.median`: the middle value, or the mean of the middle two; 0 for none.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n % 2 == 1 => sorted[n / 2],
        _ => (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_and_medians_as_numpy_gives_them() {
        let v = [4.0, 1.0, 3.0, 2.0];
        assert_eq!(median(&v), 2.5);
        assert_eq!(percentile(&v, 25.0), 1.75);
        assert_eq!(percentile(&v, 75.0), 3.25);
        assert_eq!(percentile(&v, 100.0), 4.0);
        assert_eq!(percentile(&[7.0], 75.0), 7.0);
        assert_eq!(median(&[]), 0.0);
    }
}
