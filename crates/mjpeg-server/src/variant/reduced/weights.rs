//! From a block's kept coefficients to its pixels, averaged.

use super::header::{Plane, NATURAL};

/// From a block's kept coefficients to its `side`×`side` pixels.
///
/// Pixel (i, j) is the mean of the block's 8×8 picture over its area:
/// `Σ W[v][j]·W[u][i]·F(v, u)`, with `W[u][i]` the 1-D inverse DCT's basis
/// function u averaged over pixels 8i/side … 8(i+1)/side − 1: exact for
/// the kept coefficients, where a smaller inverse DCT would sample the
/// picture rather than average it. Integers, W scaled by 2^[`FRACTION`].
pub(super) struct Weights {
    side: usize,
    /// `[u][i]` for u, i < side.
    basis: [[i32; 4]; 4],
    /// The coefficients kept, the side×side corner: zigzag position, v,
    /// u and quantiser; `side * side` of them.
    kept: [(usize, usize, usize, i32); 16],
}

/// Fraction bits of the weights.
pub(super) const FRACTION: u32 = 11;

/// A dequantised coefficient is at most 2^14 in a good 8-bit JPEG; bad
/// data is held to 2^15, so that no sum overflows.
const MAX_COEFFICIENT: i32 = 1 << 15;

impl Weights {
    pub(super) fn new(quant: &[u16; 64], side: usize) -> Weights {
        let mut basis = [[0i32; 4]; 4];
        let span = 8 / side;
        for (u, row) in basis.iter_mut().enumerate().take(side) {
            let scale = if u == 0 { (1.0f64 / 8.0).sqrt() } else { 0.5 };
            for (i, w) in row.iter_mut().enumerate().take(side) {
                let sum: f64 = (i * span..(i + 1) * span)
                    .map(|x| ((2 * x + 1) as f64 * u as f64 * std::f64::consts::PI / 16.0).cos())
                    .sum();
                *w = (scale * sum / span as f64 * f64::from(1 << FRACTION)).round() as i32;
            }
        }
        let mut kept = [(0, 0, 0, 0); 16];
        let corner = NATURAL.iter().enumerate().filter_map(|(zz, &natural)| {
            let (v, u) = (usize::from(natural) / 8, usize::from(natural) % 8);
            (v < side && u < side).then(|| (zz, v, u, i32::from(quant[zz])))
        });
        for (slot, c) in kept.iter_mut().zip(corner) {
            *slot = c;
        }
        Weights { side, basis, kept }
    }

    /// Writes at (`x`, `y`) of `plane` the block whose first coefficients
    /// in zigzag order, not yet dequantised, are `coefs`; `ac` says
    /// whether any but the first is not zero.
    #[inline]
    pub(super) fn pixels(&self, coefs: &[i32], ac: bool, plane: &mut Plane, x: usize, y: usize) {
        let side = self.side;
        let at = |j: usize| (y + j) * plane.width + x;
        let dequantise =
            |c: i32, q: i32| c.saturating_mul(q).clamp(-MAX_COEFFICIENT, MAX_COEFFICIENT);
        if !ac {
            let q = self.kept[0].3;
            let w = self.basis[0][0];
            // Both weights: (c·w·w) / 2^FRACTION, rounded.
            let value = ((dequantise(coefs[0], q) * w + (1 << (FRACTION - 1))) >> FRACTION) * w;
            let value = to_sample(value);
            for j in 0..side {
                plane.data[at(j)..at(j) + side].fill(value);
            }
            return;
        }
        if side == 2 {
            // Four coefficients, four pixels: each pixel adds or takes each
            // term, as the basis function u = 1 is +w then -w.
            let mut s = [[0i32; 2]; 2];
            for &(zz, v, u, q) in &self.kept[..4] {
                let pair =
                    (self.basis[v][0] * self.basis[u][0] + (1 << (FRACTION - 1))) >> FRACTION;
                s[v][u] = dequantise(coefs[zz], q) * pair;
            }
            let [[s00, s01], [s10, s11]] = s;
            let (top, bottom) = (at(0), at(1));
            plane.data[top] = to_sample(s00 + s01 + s10 + s11);
            plane.data[top + 1] = to_sample(s00 - s01 + s10 - s11);
            plane.data[bottom] = to_sample(s00 + s01 - s10 - s11);
            plane.data[bottom + 1] = to_sample(s00 - s01 - s10 + s11);
            return;
        }
        // Rows first: t[v][i] = Σ_u W[u][i]·F(v, u), back to whole units.
        let mut t = [[0i32; 4]; 4];
        // Every kept coefficient, zero or not: a test would be a branch
        // guessed wrong half the time in a busy picture.
        for &(zz, v, u, q) in &self.kept[..side * side] {
            let f = dequantise(coefs[zz], q);
            for (ti, w) in t[v].iter_mut().zip(&self.basis[u]) {
                *ti += w * f;
            }
        }
        for tv in &mut t {
            for ti in tv {
                *ti = (*ti + (1 << (FRACTION - 1))) >> FRACTION;
            }
        }
        for j in 0..side {
            let mut out = [0i32; 4];
            for (tv, wv) in t.iter().zip(&self.basis).take(side) {
                let w = wv[j];
                for (o, ti) in out.iter_mut().zip(tv) {
                    *o += w * ti;
                }
            }
            let row = at(j);
            for (p, o) in plane.data[row..row + side].iter_mut().zip(out) {
                *p = to_sample(o);
            }
        }
    }
}

/// A sample from a value scaled by 2^[`FRACTION`], level-shifted.
#[inline]
pub(super) fn to_sample(v: i32) -> u8 {
    ((v + (1 << (FRACTION - 1))) >> FRACTION)
        .wrapping_add(128)
        .clamp(0, 255) as u8
}
