//! What "the same answer" means between the trainer and a device: the same class, and every
//! probability within a tolerance ([`PROBABILITY_TOLERANCE`](crate::PROBABILITY_TOLERANCE) for a
//! float32 export). The export's parity gate and `edge selftest` both judge by these functions.

/// Index of the largest value (the first on ties).
pub fn argmax(values: &[f32]) -> usize {
    values.iter().enumerate().fold(0, |best, (i, &v)| if v > values[best] { i } else { best })
}

/// Largest |a - b|; a NaN anywhere counts as infinitely different.
pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, |m, d| if d.is_nan() { f32::INFINITY } else { m.max(d) })
}

/// Same class and every probability within `tolerance`.
pub fn agrees(got: &[f32], expected: &[f32], tolerance: f32) -> bool {
    got.len() == expected.len() && max_abs_diff(got, expected) <= tolerance && argmax(got) == argmax(expected)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn judges_class_tolerance_and_nan() {
        assert_eq!(argmax(&[0.1, 0.7, 0.2]), 1);
        let tol = crate::PROBABILITY_TOLERANCE;
        assert!(agrees(&[0.3, 0.7], &[0.30005, 0.69995], tol));
        assert!(!agrees(&[0.3, 0.7], &[0.31, 0.69], tol), "beyond tolerance");
        assert!(agrees(&[0.3, 0.7], &[0.31, 0.69], crate::INT8_PROBABILITY_TOLERANCE), "within the int8 tolerance");
        assert!(!agrees(&[0.50004, 0.49996], &[0.49996, 0.50004], tol), "within tolerance but another class");
        assert_eq!(max_abs_diff(&[f32::NAN], &[0.0]), f32::INFINITY);
        assert!(!agrees(&[0.5], &[0.5, 0.5], tol));
    }
}
