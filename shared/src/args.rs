//! Value parsers for the numbers both programs take on their command lines: a bad value (NaN,
//! infinity, out of range) is refused by clap, which names the option and exits 2, instead of
//! reaching code that would panic on it (a `Duration` from 1e30 seconds, a frame rate of 1e-30).

/// A finite number in `[low, high]`.
fn bounded(s: &str, low: f64, high: f64) -> Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|_| format!("'{s}' is not a number"))?;
    if !v.is_finite() || v < low || v > high {
        return Err(format!("{s} is outside {low}..={high}"));
    }
    Ok(v)
}

/// A probability: `[0, 1]` (`--min-confidence`).
pub fn probability(s: &str) -> Result<f32, String> {
    bounded(s, 0.0, 1.0).map(|v| v as f32)
}

/// An open-set score threshold: finite, within the scores' range
/// ([`crate::manifest::UNKNOWN_SCORE_RANGE`], about `[-0.2, 2]`; `--unknown-threshold`).
pub fn score_threshold(s: &str) -> Result<f32, String> {
    let range = crate::manifest::UNKNOWN_SCORE_RANGE;
    let to_the_thousandth = |v: f32| (v as f64 * 1000.0).round() / 1000.0;
    bounded(s, to_the_thousandth(*range.start()), to_the_thousandth(*range.end())).map(|v| v as f32)
}

/// Frames per second: `(0, 1000]`, at least one frame an hour (`--fps`).
pub fn frames_per_second(s: &str) -> Result<f32, String> {
    bounded(s, 1.0 / 3600.0, 1000.0).map(|v| v as f32)
}

/// An interval in seconds: `[0.1, 86400]` (`--status-every`).
pub fn seconds(s: &str) -> Result<f32, String> {
    bounded(s, 0.1, 86_400.0).map(|v| v as f32)
}

/// `--max-pixels`: a whole number of pixels, 1 to [`crate::preprocess::LARGEST_MAX_PIXELS`].
pub fn max_pixels(s: &str) -> Result<u64, String> {
    let largest = crate::preprocess::LARGEST_MAX_PIXELS;
    match s.trim().parse::<u64>() {
        Ok(v) if (1..=largest).contains(&v) => Ok(v),
        _ => Err(format!("'{s}': a whole number of pixels from 1 to {largest} (a gigapixel image alone takes 3 GB decoded)")),
    }
}

/// A frame size `WIDTHxHEIGHT`, each side in `1..=16384` (`--resolution`).
pub fn resolution(s: &str) -> Result<(u32, u32), String> {
    let parse = |side: &str| side.trim().parse::<u32>().ok().filter(|v| (1..=16_384).contains(v));
    s.split_once(['x', 'X'])
        .and_then(|(w, h)| Some((parse(w)?, parse(h)?)))
        .ok_or_else(|| format!("'{s}': expected WIDTHxHEIGHT with sides 1-16384, e.g. 640x480"))
}

/// A size such as `500MB`, `2GB`, `800k` or plain bytes, in binary units (`2GB` is 2 GiB), at
/// least 1 MB (`--save-cap`, `--check-memory`).
pub fn size(s: &str) -> Result<u64, String> {
    let t = s.trim().to_ascii_lowercase();
    let digits = t.find(|c: char| !c.is_ascii_digit() && c != '.').unwrap_or(t.len());
    let (number, unit) = t.split_at(digits);
    let number: f64 = number.parse().map_err(|_| format!("'{s}': expected a size like 500MB or 2GB"))?;
    let scale = match unit.trim().trim_end_matches("ib").trim_end_matches('b') {
        "" => 1.0,
        "k" => 1024.0,
        "m" => 1024.0 * 1024.0,
        "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("'{s}': unknown unit (use k, MB or GB)")),
    };
    let bytes = number * scale;
    (bytes.is_finite() && bytes >= 1024.0 * 1024.0).then_some(bytes as u64).ok_or_else(|| format!("'{s}': at least 1MB"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_and_out_of_range_values_are_refused() {
        for bad in ["NaN", "nan", "inf", "-inf", "1e-30", "0", "-1", "1e30", "", "five"] {
            assert!(frames_per_second(bad).is_err(), "fps {bad}");
        }
        assert_eq!(frames_per_second("15").unwrap(), 15.0);
        for bad in ["inf", "NaN", "0", "0.01", "1e9"] {
            assert!(seconds(bad).is_err(), "seconds {bad}");
        }
        assert_eq!(seconds("5").unwrap(), 5.0);
        assert!(probability("1.5").is_err() && probability("NaN").is_err() && probability("-0.1").is_err());
        assert_eq!(probability("0.9").unwrap(), 0.9);
        assert!(score_threshold("NaN").is_err() && score_threshold("3").is_err());
        assert_eq!(score_threshold("0.25").unwrap(), 0.25);
        assert_eq!(score_threshold("-0.1").unwrap(), -0.1, "a score lowered by the head's evidence");
        assert!(score_threshold("-0.5").is_err());
    }

    #[test]
    fn resolutions_need_two_positive_sides() {
        assert_eq!(resolution("640x480").unwrap(), (640, 480));
        assert_eq!(resolution("1280X720").unwrap(), (1280, 720));
        for bad in ["0x0", "640x0", "640", "x480", "-1x5", "99999x2", "axb"] {
            let err = resolution(bad).unwrap_err();
            assert!(err.contains(bad), "{bad}: {err}");
        }
    }

    #[test]
    fn sizes_parse_in_binary_units_and_bad_ones_are_named() {
        assert_eq!(size("500MB"), Ok(500 << 20));
        assert_eq!(size("2gb"), Ok(2 << 30));
        assert_eq!(size("1.5M"), Ok(3 << 19));
        assert!(size("10k").is_err(), "under 1MB");
        assert!(size("5 parsecs").is_err());
    }
}
