//! The numbers a chart shows: ticks on round numbers, and how tick
//! labels, latest values and times are written.

/// At most `max` ticks on round numbers (1, 2 or 5 times a power of ten)
/// from `lo` to `hi`, and their step.
pub(super) fn nice_ticks(lo: f64, hi: f64, max: usize) -> (Vec<f64>, f64) {
    let span = hi - lo;
    if !(span > 0.0 && span.is_finite()) {
        return (vec![lo], 1.0);
    }
    let raw = span / max.max(1) as f64;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|&s| s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude);
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last.min(first + 50))
        .map(|i| {
            let v = i as f64 * step;
            if v.abs() < step * 1e-9 {
                0.0
            } else {
                v
            }
        })
        .collect();
    (ticks, step)
}

/// How the y labels of one axis are written: the decimals the step needs,
/// with k/M/G for large numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) struct TickFormat {
    div: f64,
    suffix: &'static str,
    decimals: usize,
}

impl TickFormat {
    pub(super) fn new(magnitude: f64, step: f64) -> TickFormat {
        let (div, suffix) = if magnitude >= 1e9 {
            (1e9, "G")
        } else if magnitude >= 1e6 {
            (1e6, "M")
        } else if magnitude >= 1e4 {
            (1e3, "k")
        } else {
            (1.0, "")
        };
        let decimals = (-(step / div).log10().floor()).clamp(0.0, 9.0) as usize;
        TickFormat {
            div,
            suffix,
            decimals,
        }
    }

    pub(super) fn fmt(&self, v: f64) -> String {
        format!(
            "{}{}",
            trim_number(v / self.div, self.decimals),
            self.suffix
        )
    }
}

/// The unit for x labels: seconds up to 3 minutes, minutes up to 3 hours,
/// then hours. Ticks fall on round numbers of it.
pub(super) fn time_unit(window: f64) -> (f64, &'static str) {
    if window <= 180.0 {
        (1.0, "s")
    } else if window <= 3.0 * 3600.0 {
        (60.0, "m")
    } else {
        (3600.0, "h")
    }
}

pub(super) fn fmt_time(x: f64, suffix: &str) -> String {
    format!("{}{suffix}", trim_number(x, 3))
}

/// The latest value for the legend: about 4 significant digits.
pub(super) fn fmt_latest(v: f64) -> String {
    if !v.is_finite() {
        return String::new();
    }
    let a = v.abs();
    if a >= 1e5 {
        return TickFormat::new(a, a / 1000.0).fmt(v);
    }
    let decimals = if a >= 1.0 {
        3usize.saturating_sub(a.log10().floor() as usize)
    } else {
        4
    };
    trim_number(v, decimals)
}

/// `v` with at most `decimals` decimals, trailing zeros and "-0" removed.
fn trim_number(v: f64, decimals: usize) -> String {
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        s = s.trim_end_matches('0').trim_end_matches('.').to_string();
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// `HH:MM:SS UTC` of Unix time `t`: the server knows no time zone.
pub(super) fn clock(t: f64) -> String {
    let secs = t as u64;
    format!(
        "{:02}:{:02}:{:02} UTC",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    )
}
