//! Huffman tables and the bit reader: the entropy-coded data, block by
//! block, reading past what the reduction drops.

use super::header::Coder;
use std::cell::RefCell;
use std::sync::Arc;

/// Bits of a lookup: a Huffman code this long or shorter is found with one
/// table read.
pub(super) const LOOKUP: u32 = 10;

/// Bits of a skip lookup: a noisy picture's codes and extra bits take
/// about five bits each, so one read passes two or three coefficients.
pub(super) const SKIP: u32 = 13;

/// A [`Huffman::skip`] entry ends at the block's end.
const END: u16 = 1 << 15;

/// One Huffman table, canonical codes of 1 to 16 bits.
pub(super) struct Huffman {
    /// By the next [`LOOKUP`] bits: the code's length << 8 | its symbol, or
    /// 0 for a longer code.
    lookup: Box<[u16; 1 << LOOKUP]>,
    /// By the next [`LOOKUP`] bits: when a code and the coefficient's
    /// extra bits both fit, value << 16 | run << 8 | the bits they take;
    /// else 0 (and for an AC table's end-of-block and run of 16 zeros).
    fast: Box<[i32; 1 << LOOKUP]>,
    /// AC tables, by the next [`SKIP`] bits: the whole codes (and extra
    /// bits) among them, for reading past coefficients the reduction
    /// drops: the bits they take | the coefficients they pass << 4 |
    /// [`END`] if the last is end-of-block; 0 if no code fits.
    skip: Box<[u16; 1 << SKIP]>,
    /// By length: the largest code of that length, or -1.
    max_code: [i32; 18],
    /// By length: index in `values` of the first code of that length,
    /// minus that code.
    offset: [i32; 17],
    values: Vec<u8>,
}

impl Huffman {
    /// The table of these counts and values: one built for an earlier frame
    /// on this thread if there is one, as a stream's frames all carry the
    /// same tables, and building the skip table takes a twentieth of a
    /// frame's decode.
    pub(super) fn cached(counts: &[u8], values: &[u8], ac: bool) -> Result<Arc<Huffman>, String> {
        /// Tables a thread keeps: enough for a few streams' luma and chroma,
        /// DC and AC.
        const KEPT: usize = 16;
        thread_local! {
            static TABLES: RefCell<Vec<(Vec<u8>, Arc<Huffman>)>> = const { RefCell::new(Vec::new()) };
        }
        let key: Vec<u8> = [u8::from(ac)]
            .iter()
            .chain(counts)
            .chain(values)
            .copied()
            .collect();
        TABLES.with_borrow_mut(|tables| {
            if let Some(i) = tables.iter().position(|(k, _)| *k == key) {
                // Most recently used last, so that the oldest goes first.
                let found = tables.remove(i);
                let table = Arc::clone(&found.1);
                tables.push(found);
                return Ok(table);
            }
            let table = Arc::new(Huffman::new(counts, values, ac)?);
            if tables.len() == KEPT {
                tables.remove(0);
            }
            tables.push((key, Arc::clone(&table)));
            Ok(table)
        })
    }

    fn new(counts: &[u8], values: &[u8], ac: bool) -> Result<Huffman, String> {
        let mut lookup = Box::new([0u16; 1 << LOOKUP]);
        let mut fast = Box::new([0i32; 1 << LOOKUP]);
        let mut max_code = [-1i32; 18];
        let mut offset = [0i32; 17];
        let mut code = 0u32;
        let mut index = 0usize;
        for len in 1..=16u32 {
            let count = usize::from(counts[len as usize - 1]);
            offset[len as usize] = index as i32 - code as i32;
            for _ in 0..count {
                if code >= 1 << len {
                    return Err("a Huffman table with more codes than fit".into());
                }
                let symbol = values[index];
                if len <= LOOKUP {
                    let shift = LOOKUP - len;
                    let first = (code << shift) as usize;
                    for peek in first..first + (1 << shift) {
                        lookup[peek] = (len as u16) << 8 | u16::from(symbol);
                        let (run, size) = (u32::from(symbol >> 4), u32::from(symbol & 15));
                        // A DC symbol is a size alone (run 0); 0 is a value.
                        let coefficient = if ac { size != 0 } else { run == 0 };
                        if coefficient && len + size <= LOOKUP {
                            let extra = (peek as u32 >> (LOOKUP - len - size)) & ((1 << size) - 1);
                            let value = extend(extra as i32, size);
                            fast[peek] = value << 16 | (run << 8 | (len + size)) as i32;
                        }
                    }
                }
                code += 1;
                index += 1;
            }
            if count > 0 {
                max_code[len as usize] = code as i32 - 1;
            }
            code <<= 1;
        }
        let skip = if ac {
            skip_table(&lookup)
        } else {
            Box::new([0; 1 << SKIP])
        };
        Ok(Huffman {
            lookup,
            fast,
            skip,
            max_code,
            offset,
            values: values.to_vec(),
        })
    }
}

/// [`Huffman::skip`] of an AC table whose [`Huffman::lookup`] is `lookup`.
///
/// Built for every window of 1 to [`SKIP`] bits, shortest first: a window
/// is its first code (and extra bits) followed by the shorter window of
/// the bits after it, already built. Each entry is then a step, where
/// walking every window code by code would be several.
fn skip_table(lookup: &[u16; 1 << LOOKUP]) -> Box<[u16; 1 << SKIP]> {
    // The window of `w` bits `v` at (1 << w) | v; that of no bits is empty.
    let mut windows = vec![0u16; 2 << SKIP];
    for w in 1..=SKIP {
        for v in 0..1u32 << w {
            // The code at the top of the window, zeros past its end: one
            // that fits in the window is found whole.
            let top = if w >= LOOKUP {
                v >> (w - LOOKUP)
            } else {
                v << (LOOKUP - w)
            };
            let found = lookup[top as usize];
            let len = u32::from(found >> 8);
            let (run, size) = (u32::from(found as u8 >> 4), u32::from(found as u8 & 15));
            let used = len + size;
            let entry = if found == 0 || used > w {
                0
            } else if (run, size) == (0, 0) {
                used as u16 | END
            } else {
                let passed = if (run, size) == (15, 0) { 16 } else { run + 1 };
                let rest_bits = w - used;
                let rest = windows[(1 << rest_bits | (v & ((1 << rest_bits) - 1))) as usize];
                let rest_passed = u32::from(rest >> 4) & 63;
                // Passed coefficients take six bits.
                if rest != 0 && passed + rest_passed < 64 {
                    ((used + u32::from(rest & 15)) | ((passed + rest_passed) << 4)) as u16
                        | (rest & END)
                } else {
                    (used | passed << 4) as u16
                }
            };
            windows[(1 << w | v) as usize] = entry;
        }
    }
    let mut skip = Box::new([0u16; 1 << SKIP]);
    skip.copy_from_slice(&windows[1 << SKIP..]);
    skip
}

/// The `size`-bit value `bits` as JPEG codes it: the lower half of the
/// range stands for negative numbers.
#[inline]
fn extend(bits: i32, size: u32) -> i32 {
    if size == 0 {
        0
    } else if bits < 1 << (size - 1) {
        bits - (1 << size) + 1
    } else {
        bits
    }
}

/// The high bit of each byte of `word` that is FF, and perhaps of FE bytes
/// just before one (a borrow carries into them): none of the bytes above
/// the highest bit set is FF, and zero means none is.
#[inline(always)]
fn ff_bytes(word: u64) -> u64 {
    let not = !word;
    not.wrapping_sub(0x0101_0101_0101_0101) & word & 0x8080_8080_8080_8080
}

/// The entropy-coded data, read most significant bit first. `Copy`, so
/// that a block is decoded with the reader in a local, in registers.
#[derive(Clone, Copy)]
pub(super) struct Bits<'a> {
    data: &'a [u8],
    /// The next byte to load.
    at: usize,
    /// Loaded bits, the next one highest; below the `count` loaded bits
    /// may lie copies of the bits that follow (see [`Bits::refill`]).
    word: u64,
    count: u32,
    /// Zero bits made up past a marker (the data ended): reading them
    /// means the data was cut short.
    made_up: u32,
}

impl<'a> Bits<'a> {
    pub(super) fn new(data: &'a [u8], at: usize) -> Bits<'a> {
        Bits {
            data,
            at,
            word: 0,
            count: 0,
            made_up: 0,
        }
    }

    /// Loads bits until at least 56 (and at most 63) are loaded. Called
    /// before every code rather than when too few are left: a test of the
    /// count would be a branch the processor guesses wrong every few codes.
    #[inline(always)]
    fn refill(&mut self) {
        if let Some(next) = self.data.get(self.at..self.at + 8) {
            let next = u64::from_be_bytes(next.try_into().expect("8 bytes"));
            // No FF byte among the eight: they are all data, as they are.
            // Past a marker, the next eight hold its FF.
            if ff_bytes(next) == 0 {
                // Whole bytes are counted; the bits of the byte loaded in
                // part lie below them, and are loaded again (the same bits,
                // at the same place) by the next refill.
                self.word |= next >> self.count;
                self.at += (63 - self.count as usize) >> 3;
                self.count |= 56;
                return;
            }
        }
        *self = self.refill_slow();
    }

    /// Byte by byte: unstuffs `FF 00`, and stops at a marker, making up
    /// zero bits past it.
    ///
    /// By value, so that the reader of [`Bits::block`] never has an address
    /// and stays in registers.
    #[cold]
    #[inline(never)]
    fn refill_slow(mut self) -> Self {
        // Clear what lies below the counted bits, which byte-by-byte
        // loading ORs over.
        self.word &= !(u64::MAX.checked_shr(self.count).unwrap_or(0));
        // The bytes before the first FF, at once: in a busy picture's data
        // one refill in twenty or so meets an FF.
        if let Some(next) = self.data.get(self.at..self.at + 8) {
            let next = u64::from_be_bytes(next.try_into().expect("8 bytes"));
            let before = (ff_bytes(next).leading_zeros() / 8).min((64 - self.count) / 8);
            if before > 0 {
                let bytes = next & !(u64::MAX.checked_shr(8 * before).unwrap_or(0));
                self.word |= bytes >> self.count;
                self.count += 8 * before;
                self.at += before as usize;
            }
        }
        while self.count < 56 {
            let byte = match self.data.get(self.at) {
                Some(0xFF) if self.data.get(self.at + 1) == Some(&0) => {
                    self.at += 2;
                    0xFF
                }
                Some(0xFF) | None => {
                    self.made_up += 8;
                    0
                }
                Some(&b) => {
                    self.at += 1;
                    b
                }
            };
            self.word |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
        self
    }

    #[inline(always)]
    fn consume(&mut self, n: u32) {
        self.word <<= n;
        self.count -= n;
    }

    #[inline(always)]
    fn symbol(&mut self, table: &Huffman) -> Result<u8, &'static str> {
        let entry = table.lookup[(self.word >> (64 - LOOKUP)) as usize];
        if entry != 0 {
            self.consume(u32::from(entry >> 8));
            return Ok(entry as u8);
        }
        for len in LOOKUP + 1..=16 {
            let code = (self.word >> (64 - len)) as i32;
            if code <= table.max_code[len as usize] {
                self.consume(len);
                return table
                    .values
                    .get((table.offset[len as usize] + code) as usize)
                    .copied()
                    .ok_or("a bad Huffman code");
            }
        }
        Err("a bad Huffman code")
    }

    /// One AC code on its own, with the bits it may need: the zeros before
    /// the next coefficient and the size of its extra bits, still to read;
    /// `None` at the block's end. A run of 16 zeros is 15 and a
    /// coefficient of no bits, which is zero.
    #[inline]
    fn code(&mut self, ac: &Huffman) -> Result<Option<(usize, u32)>, &'static str> {
        self.refill();
        let rs = self.symbol(ac)?;
        let (run, size) = (usize::from(rs >> 4), u32::from(rs & 15));
        Ok((size != 0 || run == 15).then_some((run, size)))
    }

    /// The next `size` bits as a coefficient (`size` ≤ 16).
    #[inline(always)]
    fn value(&mut self, size: u32) -> i32 {
        if size == 0 {
            return 0;
        }
        let bits = (self.word >> (64 - size)) as i32;
        self.consume(size);
        extend(bits, size)
    }

    /// Decodes one block: its DC (through `pred`, the component's last DC)
    /// and its AC coefficients, keeping the first `coefs.len()` in zigzag
    /// order; says whether any AC coefficient kept is not zero.
    #[inline]
    pub(super) fn block(
        &mut self,
        coder: &Coder,
        pred: &mut i32,
        coefs: &mut [i32],
    ) -> Result<bool, &'static str> {
        let limit = coefs.len();
        let mut any = false;
        // A code and its extra bits take at most 16 + 16 bits, fewer
        // than a refill leaves.
        self.refill();
        let fast = coder.dc.fast[(self.word >> (64 - LOOKUP)) as usize];
        let difference = if fast != 0 {
            self.consume((fast & 0xFF) as u32);
            fast >> 16
        } else {
            let size = u32::from(self.symbol(coder.dc)?);
            if size > 16 {
                return Err("a bad DC coefficient");
            }
            self.value(size)
        };
        *pred = pred.wrapping_add(difference);
        coefs[0] = *pred;
        let ac = coder.ac;
        let (fast_ac, skip) = (&*ac.fast, &*ac.skip);
        let mut k = 1;
        // The coefficients kept, worked out: five reads of at most LOOKUP
        // bits to a refill's 56.
        'kept: while k < limit {
            self.refill();
            for _ in 0..56 / LOOKUP {
                let fast = fast_ac[(self.word >> (64 - LOOKUP)) as usize];
                if fast != 0 {
                    self.consume((fast & 0xFF) as u32);
                    k += ((fast >> 8) & 0xFF) as usize;
                    if k < limit {
                        coefs[k] = fast >> 16;
                        any = true;
                    }
                    k += 1;
                    if k >= limit {
                        break 'kept;
                    }
                    continue;
                }
                // A long code, an end of block or a run of zeros.
                let Some((run, size)) = self.code(ac)? else {
                    return Ok(any);
                };
                k += run;
                if k < limit {
                    coefs[k] = self.value(size);
                    any = true;
                } else {
                    self.consume(size);
                }
                k += 1;
                continue 'kept;
            }
        }
        // The rest, read past, a few codes at a time: four reads of SKIP
        // bits to a refill's 56.
        'block: while k < 64 {
            self.refill();
            for _ in 0..56 / SKIP {
                let entry = skip[(self.word >> (64 - SKIP)) as usize];
                let passed = usize::from(entry >> 4) & 63;
                // Not past the block's end, where the next block's DC
                // code begins: up to the last coefficient, or short of it
                // with an end-of-block.
                if entry != 0 && k + passed + usize::from(entry >> 15) <= 64 {
                    self.consume(u32::from(entry & 15));
                    k += passed;
                    if entry & END != 0 || k == 64 {
                        break 'block;
                    }
                    continue;
                }
                // A long code, or one at the block's end.
                let Some((run, size)) = self.code(ac)? else {
                    break 'block;
                };
                k += run + 1;
                self.consume(size);
                continue 'block;
            }
        }
        Ok(any)
    }

    /// At a restart interval's end: what is left of the byte is padding,
    /// and a restart marker follows, which resets the reader.
    ///
    /// By value, as [`Bits::refill_slow`].
    pub(super) fn restart(mut self) -> Result<Self, String> {
        self.check_not_short()?;
        // Bits loaded and not read are only the padding in a good stream,
        // which stops `at` at the marker. Otherwise data is left over: it
        // is skipped to the next restart marker, as libjpeg resynchronises.
        let from = self.at;
        let found = self.data[from.min(self.data.len())..]
            .windows(2)
            .position(|w| w[0] == 0xFF && w[1] != 0 && w[1] != 0xFF);
        match found.map(|i| (from + i, self.data[from + i + 1])) {
            Some((at, 0xD0..=0xD7)) => {
                self.at = at + 2;
                self.word = 0;
                self.count = 0;
                self.made_up = 0;
                Ok(self)
            }
            _ => Err(format!("no restart marker after byte {from}")),
        }
    }

    pub(super) fn check_not_short(self) -> Result<(), String> {
        if self.made_up > self.count {
            Err("the entropy-coded data ends before the last block".into())
        } else {
            Ok(())
        }
    }

    pub(super) fn finish(self) -> Result<(), String> {
        self.check_not_short()
    }
}
