//! What a chart holds: its series in time order, kept within the window
//! and the limits, and the thinned copy of them that is drawn.

use std::collections::VecDeque;

use super::samples::{short, Sample, SampleError};
use super::{MAX_AHEAD, MAX_POINTS, MAX_SERIES};

/// One series: its name, colour slot and samples `(t, value)` in time order.
pub(super) struct Series {
    pub(super) name: String,
    pub(super) slot: usize,
    pub(super) points: VecDeque<(f64, f64)>,
}

/// Everything a chart holds.
#[derive(Default)]
pub(super) struct Data {
    pub(super) series: Vec<Series>,
    /// Time of the newest sample: where the x axis ends.
    pub(super) newest: Option<f64>,
    /// Counts changes, so the renderer can tell whether it is behind.
    pub(super) version: u64,
}

impl Data {
    /// Takes `samples` (all checked) at `now`, or refuses all of them.
    pub(super) fn apply(
        &mut self,
        samples: &[Sample],
        now: f64,
        window: f64,
    ) -> Result<(), SampleError> {
        // Refuse before changing anything if a time is too far ahead (see
        // MAX_AHEAD) or the names would not fit.
        let latest = now + MAX_AHEAD.as_secs_f64();
        if let Some(t) = samples.iter().filter_map(|s| s.t).find(|&t| t > latest) {
            return Err(SampleError::TooFarAhead {
                value: short(&t.to_string()),
                ahead: t - now,
            });
        }
        let mut names: Vec<&str> = self.series.iter().map(|s| s.name.as_str()).collect();
        for (name, _) in samples.iter().flat_map(|s| &s.values) {
            if !names.contains(&name.as_str()) {
                if names.len() >= MAX_SERIES {
                    return Err(SampleError::TooManySeries {
                        field: name.clone(),
                    });
                }
                names.push(name);
            }
        }
        // New points per series (index as in `self.series`), merged in
        // below: one merge per series however the batch is ordered, so
        // that a large batch of late samples costs a sort, not an insert
        // in the middle of the series for each.
        let mut fresh: Vec<Vec<(f64, f64)>> = vec![Vec::new(); self.series.len()];
        for sample in samples {
            let t = sample.t.unwrap_or(now);
            if self.newest.is_some_and(|newest| t < newest - window) {
                continue; // Already out of the window.
            }
            self.newest = Some(self.newest.map_or(t, |n| n.max(t)));
            for (name, value) in &sample.values {
                let i = match self.series.iter().position(|s| &s.name == name) {
                    Some(i) => i,
                    None => {
                        // The lowest colour not in use, so that a series
                        // keeps its colour when another one disappears.
                        let slot = (0..)
                            .find(|slot| self.series.iter().all(|s| s.slot != *slot))
                            .unwrap_or(0);
                        self.series.push(Series {
                            name: name.clone(),
                            slot,
                            points: VecDeque::new(),
                        });
                        fresh.push(Vec::new());
                        self.series.len() - 1
                    }
                };
                fresh[i].push((t, *value));
            }
        }
        for (series, mut new) in self.series.iter_mut().zip(fresh) {
            if new.is_empty() {
                continue;
            }
            // Stable: samples with the same time keep their order.
            new.sort_by(|a, b| a.0.total_cmp(&b.0));
            let points = &mut series.points;
            if points.back().is_none_or(|&(last, _)| last <= new[0].0) {
                points.extend(new);
            } else {
                // Late samples: merge, keeping the series in time order.
                let mut all: Vec<(f64, f64)> = points.drain(..).collect();
                all.extend(new);
                all.sort_by(|a, b| a.0.total_cmp(&b.0));
                *points = all.into();
            }
        }
        if let Some(newest) = self.newest {
            let cutoff = newest - window;
            for s in &mut self.series {
                while s.points.front().is_some_and(|&(t, _)| t < cutoff) {
                    s.points.pop_front();
                }
                while s.points.len() > MAX_POINTS {
                    s.points.pop_front();
                }
            }
            self.series.retain(|s| !s.points.is_empty());
        }
        self.version += 1;
        Ok(())
    }
}

/// What the renderer draws: a copy of the data, thinned to what the
/// picture can show, with times relative to the newest sample.
#[derive(Debug, Clone, Default)]
pub(super) struct Snapshot {
    pub(super) series: Vec<SeriesSnapshot>,
    pub(super) newest: Option<f64>,
    pub(super) version: u64,
}

#[derive(Debug, Clone)]
pub(super) struct SeriesSnapshot {
    pub(super) name: String,
    pub(super) slot: usize,
    /// `(seconds before the newest sample (≤ 0), value)`.
    pub(super) points: Vec<(f64, f64)>,
}

/// Points of `points` (in time order) in the window, with times relative to
/// `newest`, thinned to first/min/max/last per pixel column when there are
/// more than four per column.
pub(super) fn thin(
    points: &VecDeque<(f64, f64)>,
    newest: f64,
    window: f64,
    columns: usize,
) -> Vec<(f64, f64)> {
    let start = newest - window;
    let visible = points.iter().filter(|&&(t, _)| t >= start);
    if points.len() <= 4 * columns {
        return visible.map(|&(t, v)| (t - newest, v)).collect();
    }
    let width = window / columns as f64;
    let mut out = Vec::with_capacity(4 * columns);
    // first, min, max, last of the current column
    let mut bucket: Option<(usize, [(f64, f64); 4])> = None;
    let flush = |out: &mut Vec<(f64, f64)>, b: [(f64, f64); 4]| {
        let [first, lo, hi, last] = b;
        let (a, b) = if lo.0 <= hi.0 { (lo, hi) } else { (hi, lo) };
        for p in [first, a, b, last] {
            if out.last() != Some(&p) {
                out.push(p);
            }
        }
    };
    for &(t, v) in visible {
        let p = (t - newest, v);
        let col = (((t - start) / width) as usize).min(columns - 1);
        match &mut bucket {
            Some((c, b)) if *c == col => {
                if v < b[1].1 {
                    b[1] = p;
                }
                if v > b[2].1 {
                    b[2] = p;
                }
                b[3] = p;
            }
            _ => {
                if let Some((_, b)) = bucket.take() {
                    flush(&mut out, b);
                }
                bucket = Some((col, [p; 4]));
            }
        }
    }
    if let Some((_, b)) = bucket {
        flush(&mut out, b);
    }
    out
}
