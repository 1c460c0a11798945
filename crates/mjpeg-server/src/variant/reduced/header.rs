//! The markers before the scan, and the scan decoded block by block into
//! reduced planes.

use super::entropy::{Bits, Huffman};
use super::weights::Weights;
use std::sync::Arc;

/// Zigzag position → natural (row-major) position in a block.
pub(super) const NATURAL: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

#[derive(Debug, Clone, Copy)]
struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant: usize,
    dc: usize,
    ac: usize,
}

/// What the markers before the scan say.
pub(super) struct Header {
    pub(super) width: usize,
    pub(super) height: usize,
    components: Vec<Component>,
    /// Quantisation tables, in zigzag order.
    quant: [Option<[u16; 64]>; 4],
    dc: [Option<Arc<Huffman>>; 4],
    ac: [Option<Arc<Huffman>>; 4],
    /// MCUs between restart markers, 0 for none.
    restart: usize,
    /// Where the entropy-coded data begins.
    pub(super) scan: usize,
}

fn be16(data: &[u8], at: usize) -> Result<usize, String> {
    match data.get(at..at + 2) {
        Some(b) => Ok(usize::from(u16::from_be_bytes([b[0], b[1]]))),
        None => Err("the JPEG ends inside a marker".into()),
    }
}

impl Header {
    /// The header, or `None` if the JPEG is of a kind left to the general
    /// decoder.
    pub(super) fn read(data: &[u8]) -> Result<Option<Header>, String> {
        let mut header = Header {
            width: 0,
            height: 0,
            components: Vec::new(),
            quant: [None; 4],
            dc: [None, None, None, None],
            ac: [None, None, None, None],
            restart: 0,
            scan: 0,
        };
        if !data.starts_with(&[0xFF, 0xD8]) {
            return Err("not a JPEG: no start-of-image marker".into());
        }
        let mut at = 2;
        loop {
            // Fill bytes (FF) may come before a marker.
            while data.get(at) == Some(&0xFF) && data.get(at + 1) == Some(&0xFF) {
                at += 1;
            }
            let (Some(0xFF), Some(&marker)) = (data.get(at), data.get(at + 1)) else {
                return Err(format!("no marker at byte {at} before the scan"));
            };
            let len = be16(data, at + 2)?;
            let body = data
                .get(at + 4..at + 2 + len)
                .filter(|_| len >= 2)
                .ok_or_else(|| format!("marker FF{marker:02X} at byte {at} runs past the end"))?;
            match marker {
                // Baseline and extended sequential, Huffman-coded.
                0xC0 | 0xC1 => {
                    if !header.components.is_empty() {
                        return Err("two frame headers".into());
                    }
                    if body.len() < 6 || body[0] != 8 {
                        return Ok(None);
                    }
                    header.height = be16(body, 1)?;
                    header.width = be16(body, 3)?;
                    let n = usize::from(body[5]);
                    if body.len() < 6 + 3 * n || !(n == 1 || n == 3) || header.height == 0 {
                        return Ok(None);
                    }
                    for c in body[6..6 + 3 * n].chunks_exact(3) {
                        header.components.push(Component {
                            id: c[0],
                            h: usize::from(c[1] >> 4),
                            v: usize::from(c[1] & 15),
                            quant: usize::from(c[2]),
                            dc: 0,
                            ac: 0,
                        });
                    }
                    if header.width == 0 || !header.sampling_is_simple() {
                        return Ok(None);
                    }
                }
                // Progressive, lossless, hierarchical or arithmetic-coded.
                0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => return Ok(None),
                0xC4 => header.read_huffman(body)?,
                0xDB => header.read_quant(body)?,
                0xDD => header.restart = be16(body, 0)?,
                // Adobe's marker may say the three components are RGB or
                // YCCK, not YCbCr.
                0xEE if body.starts_with(b"Adobe") => return Ok(None),
                0xDA => {
                    if header.components.is_empty() {
                        return Err("a scan before the frame header".into());
                    }
                    let n = usize::from(*body.first().unwrap_or(&0));
                    // One scan with every component (or a later scan would
                    // hold the rest).
                    if n != header.components.len() || body.len() < 1 + 2 * n + 3 {
                        return Ok(None);
                    }
                    for (i, sel) in body[1..1 + 2 * n].chunks_exact(2).enumerate() {
                        let c = &mut header.components[i];
                        if c.id != sel[0] {
                            return Ok(None);
                        }
                        c.dc = usize::from(sel[1] >> 4);
                        c.ac = usize::from(sel[1] & 15);
                    }
                    let ss = body[1 + 2 * n];
                    let se = body[2 + 2 * n];
                    if ss != 0 || se != 63 {
                        return Ok(None);
                    }
                    for c in &header.components {
                        let tables = header.quant.get(c.quant).is_some_and(Option::is_some)
                            && header.dc.get(c.dc).is_some_and(Option::is_some)
                            && header.ac.get(c.ac).is_some_and(Option::is_some);
                        if !tables {
                            return Err(format!(
                                "component {} has a table that is not defined",
                                c.id
                            ));
                        }
                    }
                    header.scan = at + 2 + len;
                    return Ok(Some(header));
                }
                0xD9 => return Err("the image ends before its scan".into()),
                _ => {}
            }
            at += 2 + len;
        }
    }

    /// Grey, or YCbCr with chroma sampled once and luma once or twice
    /// across and down.
    fn sampling_is_simple(&self) -> bool {
        match self.components.as_slice() {
            [_] => true,
            [y, cb, cr] => {
                (1..=2).contains(&y.h)
                    && (1..=2).contains(&y.v)
                    && [cb, cr].iter().all(|c| c.h == 1 && c.v == 1)
            }
            _ => false,
        }
    }

    fn read_quant(&mut self, mut body: &[u8]) -> Result<(), String> {
        while let Some(&pq_tq) = body.first() {
            let (precision, id) = (pq_tq >> 4, usize::from(pq_tq & 15));
            let size = if precision == 0 { 64 } else { 128 };
            let values = body
                .get(1..1 + size)
                .filter(|_| id < 4 && precision < 2)
                .ok_or("a bad quantisation table")?;
            let mut table = [0u16; 64];
            for (i, q) in table.iter_mut().enumerate() {
                *q = if precision == 0 {
                    u16::from(values[i])
                } else {
                    u16::from_be_bytes([values[2 * i], values[2 * i + 1]])
                };
            }
            self.quant[id] = Some(table);
            body = &body[1 + size..];
        }
        Ok(())
    }

    fn read_huffman(&mut self, mut body: &[u8]) -> Result<(), String> {
        while let Some(&tc_th) = body.first() {
            let (class, id) = (tc_th >> 4, usize::from(tc_th & 15));
            let counts = body.get(1..17).ok_or("a bad Huffman table")?;
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            let values = body
                .get(17..17 + total)
                .filter(|_| id < 4 && class < 2)
                .ok_or("a bad Huffman table")?;
            let table = Huffman::cached(counts, values, class == 1)?;
            if class == 0 {
                self.dc[id] = Some(table);
            } else {
                self.ac[id] = Some(table);
            }
            body = &body[17 + total..];
        }
        Ok(())
    }

    pub(super) fn max_h(&self) -> usize {
        self.components.iter().map(|c| c.h).max().unwrap_or(1)
    }

    pub(super) fn max_v(&self) -> usize {
        self.components.iter().map(|c| c.v).max().unwrap_or(1)
    }

    /// Each component's plane at 1/8 × `side` of its size, whole blocks.
    pub(super) fn decode_planes(&self, data: &[u8], side: usize) -> Result<Vec<Plane>, String> {
        let (hmax, vmax) = (self.max_h(), self.max_v());
        let single = self.components.len() == 1;
        // One component alone is coded block by block, whatever its
        // sampling; several are coded in MCUs of h×v blocks each.
        let (mcus_x, mcus_y) = if single {
            (self.width.div_ceil(8), self.height.div_ceil(8))
        } else {
            (
                self.width.div_ceil(8 * hmax),
                self.height.div_ceil(8 * vmax),
            )
        };
        // A block takes two bits at the least (a DC and an end-of-block
        // code), so the data bounds the blocks, and what a small bad file
        // can make this allocate and decode.
        let per_mcu: usize = if single {
            1
        } else {
            self.components.iter().map(|c| c.h * c.v).sum()
        };
        let most = 4 * data.len().saturating_sub(self.scan);
        if mcus_x.saturating_mul(mcus_y).saturating_mul(per_mcu) > most {
            return Err("the entropy-coded data is too short for the picture's size".into());
        }
        let mut planes: Vec<Plane> = self
            .components
            .iter()
            .map(|c| {
                let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
                let width = mcus_x * bh * side;
                Plane {
                    width,
                    data: vec![0; width * mcus_y * bv * side],
                }
            })
            .collect();
        let coders: Vec<Coder> = self
            .components
            .iter()
            .map(|c| {
                let q = self.quant[c.quant].as_ref().expect("checked by read");
                Coder {
                    dc: self.dc[c.dc].as_ref().expect("checked by read"),
                    ac: self.ac[c.ac].as_ref().expect("checked by read"),
                    weights: Weights::new(q, side),
                    blocks: if single { (1, 1) } else { (c.h, c.v) },
                }
            })
            .collect();
        let mut bits = Bits::new(data, self.scan);
        let mut predictors = vec![0i32; coders.len()];
        let limit = match side {
            1 => 1,
            2 => 5,
            _ => 25,
        };
        let mut coefs = [0i32; 25];
        let mut left = self.restart;
        for my in 0..mcus_y {
            // Data cut short is found by the row, not after every block.
            bits.check_not_short()?;
            for mx in 0..mcus_x {
                if self.restart > 0 {
                    if left == 0 {
                        bits = bits.restart()?;
                        predictors.iter_mut().for_each(|p| *p = 0);
                        left = self.restart;
                    }
                    left -= 1;
                }
                for ((coder, plane), pred) in coders.iter().zip(&mut planes).zip(&mut predictors) {
                    let (bh, bv) = coder.blocks;
                    for by in 0..bv {
                        for bx in 0..bh {
                            let coefs = &mut coefs[..limit];
                            coefs.fill(0);
                            let ac = bits.block(coder, pred, coefs)?;
                            let x = (mx * bh + bx) * side;
                            let y = (my * bv + by) * side;
                            coder.weights.pixels(coefs, ac, plane, x, y);
                        }
                    }
                }
            }
        }
        bits.finish()?;
        Ok(planes)
    }
}

/// One component's samples.
pub(super) struct Plane {
    pub(super) width: usize,
    pub(super) data: Vec<u8>,
}

/// What decoding one component's blocks needs.
pub(super) struct Coder<'a> {
    pub(super) dc: &'a Huffman,
    pub(super) ac: &'a Huffman,
    pub(super) weights: Weights,
    /// Blocks across and down in an MCU.
    pub(super) blocks: (usize, usize),
}
