//! Progressive JPEGs at 1/8, 1/4 or 1/2 of their size, from the coefficients that scale needs.
//!
//! libjpeg Huffman-decodes every scan of a progressive file into a coefficient buffer for
//! the whole image (64 coefficients a block) before the first pixel comes out. Reduced to
//! N/8, each 8x8 block becomes N x N samples, and this decoder keeps only each block's N x
//! N lowest frequencies (1, 4 or 16 of 64), whose inverse DCT it averages over the pixels
//! each sample stands for:
//! - at 1/8 that is the block's DC coefficient, which a progressive file sends in scans of
//!   their own: those are read, and the AC scans' data passed over without decoding;
//! - at 1/4 and 1/2, every scan is still decoded, because a refinement scan can only be
//!   parsed knowing which coefficients of its band are already non-zero; that history is
//!   one 64-bit mask a block, and a refinement's correction bits for a run of coefficients
//!   are counted and read at once rather than one coefficient at a time. Last refinements
//!   whose bits leave less than a level of error in the samples (at quality 100 and 1/4,
//!   say) are passed over.
//!
//! Chroma is then interpolated onto the luma grid and converted to RGB with libjpeg's own
//! YCbCr equations. What it does not handle (baseline or arithmetic-coded files, other than
//! 8 bits, more than three components, an incomplete or damaged stream) it refuses, and the
//! caller leaves to libjpeg.

use std::f64::consts::{FRAC_1_SQRT_2, PI, SQRT_2};

use super::raster::Raster;

/// Why a file was left to libjpeg.
pub type Refused = &'static str;

/// The pixels of the YCbCr or grayscale progressive JPEG `bytes` at `numerator`/8 (1, 2 or
/// 4) of its size, rounded up as libjpeg rounds it (RGB, even for grayscale).
pub fn decode_reduced(bytes: &[u8], numerator: u8) -> Result<Raster, Refused> {
    if !matches!(numerator, 1 | 2 | 4) {
        return Err("a scale other than 1/8, 1/4 or 1/2");
    }
    let mut decoder = Decoder::new(usize::from(numerator));
    if bytes.get(..2) != Some(&[0xFF, 0xD8]) {
        return Err("not a JPEG");
    }
    let mut pos = 2;
    loop {
        let marker = next_marker(bytes, &mut pos)?;
        match marker {
            0xD9 => break,
            0xDA => {
                let header = segment(bytes, &mut pos)?;
                let end = entropy_end(bytes, pos);
                decoder.scan(header, &bytes[pos..end])?;
                pos = end;
                if decoder.band_complete() {
                    break;
                }
            }
            0xD0..=0xD7 => return Err("a restart marker outside a scan"),
            _ => {
                let data = segment(bytes, &mut pos)?;
                match marker {
                    0xC2 => decoder.frame(data)?,
                    0xC0 | 0xC1 | 0xC3 | 0xC5..=0xC7 | 0xC9..=0xCB | 0xCD..=0xCF => {
                        return Err("not a progressive Huffman-coded JPEG");
                    }
                    0xC4 => decoder.huffman_tables(data)?,
                    0xDB => decoder.quantisation_tables(data)?,
                    0xDD => decoder.restart_interval = usize::from(be16(data, 0)?),
                    _ => {}
                }
            }
        }
    }
    decoder.into_raster()
}

/// What a scale needs of each block. Reduced to N/8, each 8x8 block becomes N x N samples:
/// the 8-point inverse DCT of its N x N lowest frequencies, averaged over the 8/N x 8/N
/// pixels each sample stands for. libjpeg's reduced IDCTs (`jidctred.c`) average the whole
/// series, so at 1/4 they also read frequencies 3, 5 and 7 and at 1/2 frequencies 5 to 7;
/// against a Lanczos resize of the whole source that makes no difference (36.63 dB with
/// them on one photo, 36.64 without), and keeping them cost a fifth more time and five
/// times the memory.
#[derive(Clone, Copy)]
struct Band {
    size: usize,
    /// The frequencies kept (of 0 to 7), along rows and down columns alike.
    frequencies: &'static [usize],
    kept: usize,
    /// By zigzag position: where a block's coefficient is stored, or in slot `kept`, which
    /// is never read, if it is not kept (so that storing needs no branch).
    slots: [u8; 64],
    /// The zigzag positions kept.
    mask: u64,
    /// By output sample and kept frequency, along rows and down columns: the averaged
    /// basis, with the 8-point IDCT's factor 1/4 C(u) C(v) (C(0) = 1/sqrt(2)) split
    /// between the two as (sqrt(2)/4) C(u) and (1/sqrt(2)) C(v), so that a DC coefficient's
    /// 1/8 is exact and at 1/8 the levels are libjpeg's own.
    across: [[f32; 8]; 8],
    down: [[f32; 8]; 8],
}

impl Band {
    /// The band of a block reduced to `size` x `size` samples.
    fn new(size: usize) -> Result<Band, Refused> {
        let frequencies: &'static [usize] = match size {
            1 => &[0],
            2 => &[0, 1],
            4 => &[0, 1, 2, 3],
            8 => &[0, 1, 2, 3, 4, 5, 6, 7],
            _ => return Err("a block reduced to other than 1, 2, 4 or 8 samples across"),
        };
        let kept = frequencies.len() * frequencies.len();
        let (mut slots, mut mask) = ([kept as u8; 64], 0);
        for (j, &v) in frequencies.iter().enumerate() {
            for (i, &u) in frequencies.iter().enumerate() {
                let k = zigzag_position(v, u);
                slots[k] = (j * frequencies.len() + i) as u8;
                mask |= 1 << k;
            }
        }
        let group = 8 / size;
        let basis = |scale: f64| {
            let mut basis = [[0f32; 8]; 8];
            for (x, row) in basis.iter_mut().enumerate().take(size) {
                for (b, &u) in row.iter_mut().zip(frequencies) {
                    let c = if u == 0 { FRAC_1_SQRT_2 } else { 1.0 };
                    let pixels = x * group..(x + 1) * group;
                    let sum: f64 = pixels
                        .map(|p| (((2 * p + 1) * u) as f64 * PI / 16.0).cos())
                        .sum();
                    *b = (scale * c * sum / group as f64) as f32;
                }
            }
            basis
        };
        Ok(Band {
            size,
            frequencies,
            kept,
            slots,
            mask,
            across: basis(SQRT_2 / 4.0),
            down: basis(FRAC_1_SQRT_2),
        })
    }

    /// Values stored for each block: the kept ones and the slot that is never read.
    fn stored(&self) -> usize {
        self.kept + 1
    }

    /// The quantisation steps `steps` (in zigzag order) of the kept coefficients, by slot.
    fn steps_by_slot(&self, steps: &[u16; 64]) -> [f32; 64] {
        let mut by_slot = [0.0; 64];
        for (k, &step) in steps.iter().enumerate() {
            if self.mask >> k & 1 == 1 {
                by_slot[usize::from(self.slots[k])] = f32::from(step);
            }
        }
        by_slot
    }

    /// Whether the AC coefficients' bits below `high`, dequantised by `steps`, leave less
    /// than one level of error in the samples, root-mean-square: then the refinement scans
    /// that bring them (the last ones, often the largest, of a high-quality file) need not
    /// be read. Each missing part is taken as evenly spread over the values its bits can
    /// hold, as the low bits of quantised coefficients are (for n values, a mean square of
    /// (n - 1)(2n - 1) / 6 steps squared), on every coefficient, zero or not; and the
    /// errors of different coefficients as independent, as quantisation errors are. Where
    /// the steps are 1, as at quality 100, the last three bits of a 1/4 decode's
    /// coefficients leave 0.80 of a level, the last two at 1/2 0.79; with libjpeg's
    /// quality-90 luma steps, the last bit at 1/2 0.94.
    fn negligible(&self, steps: &[u16; 64], high: u8) -> bool {
        let mean_square = |basis: &[[f32; 8]; 8], i: usize| {
            let sum: f32 = basis[..self.size].iter().map(|row| row[i] * row[i]).sum();
            sum / self.size as f32
        };
        let values = f32::from(1u16 << high);
        // The mean square of the missing part, in steps squared.
        let missing = (values - 1.0) * (2.0 * values - 1.0) / 6.0;
        let steps = self.steps_by_slot(steps);
        let size = self.frequencies.len();
        // Slot 0 is the DC coefficient, which refinements of the AC ones leave alone.
        let variance: f32 = (1..self.kept)
            .map(|slot| {
                let (j, i) = (slot / size, slot % size);
                let step = steps[slot];
                mean_square(&self.across, i) * mean_square(&self.down, j) * step * step * missing
            })
            .sum();
        variance < 1.0
    }
}

/// The zigzag position of the frequency in row `v`, column `u` of a block.
fn zigzag_position(v: usize, u: usize) -> usize {
    let natural = (v * 8 + u) as u8;
    ZIGZAG.iter().position(|&z| z == natural).unwrap_or(0)
}

/// JPEG's zigzag order: the natural (row * 8 + column) index of each zigzag position.
const ZIGZAG: [u8; 64] = [
    0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5, 12, 19, 26, 33, 40, 48, 41, 34, 27, 20,
    13, 6, 7, 14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51, 58, 59,
    52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
];

/// The marker at `pos`, skipping fill bytes; `pos` moves past it.
fn next_marker(bytes: &[u8], pos: &mut usize) -> Result<u8, Refused> {
    if bytes.get(*pos) != Some(&0xFF) {
        return Err("no marker where one belongs");
    }
    while bytes.get(*pos) == Some(&0xFF) {
        *pos += 1;
    }
    let marker = *bytes.get(*pos).ok_or("the file ends early")?;
    *pos += 1;
    Ok(marker)
}

/// A marker segment's data; `pos` moves past it.
fn segment<'a>(bytes: &'a [u8], pos: &mut usize) -> Result<&'a [u8], Refused> {
    let length = usize::from(be16(bytes, *pos)?);
    let data = bytes
        .get(*pos + 2..*pos + length)
        .ok_or("a segment runs past the end of the file")?;
    *pos += length.max(2);
    Ok(data)
}

fn be16(bytes: &[u8], at: usize) -> Result<u16, Refused> {
    match bytes.get(at..at + 2) {
        Some(&[a, b]) => Ok(u16::from_be_bytes([a, b])),
        _ => Err("the file ends early"),
    }
}

/// Where the entropy-coded data starting at `start` ends: at the first marker other than
/// a restart marker (a 0xFF byte in the data is followed by a stuffed 0).
fn entropy_end(bytes: &[u8], start: usize) -> usize {
    let mut pos = start;
    while let Some(offset) = memchr::memchr(0xFF, &bytes[pos..]) {
        pos += offset;
        match bytes.get(pos + 1) {
            Some(0x00 | 0xD0..=0xD7) => pos += 2,
            _ => return pos,
        }
    }
    bytes.len()
}

/// One component of the frame, with the kept coefficients of each of its blocks.
struct Component {
    id: u8,
    h: usize,
    v: usize,
    table: usize,
    /// The blocks that hold image data (the rest pads the last MCUs).
    blocks_wide: usize,
    blocks_high: usize,
    /// Blocks a row of `coefficients`: whole MCUs.
    stride: usize,
    /// The AC coefficients of each block that its band keeps, in `Band::slots`.
    coefficients: Vec<i16>,
    /// Each block's DC coefficient, apart: DC scans then run over dense memory.
    dc: Vec<i16>,
    /// Each block's coefficients that are non-zero so far, by zigzag position: what a
    /// refinement scan's parsing depends on.
    nonzero: Vec<u64>,
    /// The quantisation steps in zigzag order, read when the component's first scan starts.
    steps: Option<[u16; 64]>,
    /// By zigzag position, the bit its coefficients are known down to (0: complete), or
    /// None before any scan of it: libjpeg's `coef_bits`.
    known: [Option<u8>; 64],
    /// Whether its AC refinement scans are passed over from here on ([`Band::negligible`]).
    settled: bool,
    /// What it is decoded to: subsampled chroma at a larger scale than luma where libjpeg
    /// does so (see [`Decoder::frame`]).
    band: Band,
}

impl Component {
    /// The blocks that hold image data, row by row: the order of a scan of this component
    /// alone (counted along, rather than divided out of a unit number, block by block).
    fn scan_order(&self) -> impl Iterator<Item = usize> + use<> {
        let (wide, stride) = (self.blocks_wide, self.stride);
        (0..self.blocks_high).flat_map(move |row| (row * stride..).take(wide))
    }

    /// The kept coefficients and the non-zero mask of block number `block`.
    fn block(&mut self, block: usize) -> (&mut [i16], &mut u64) {
        let stored = self.band.stored();
        (
            &mut self.coefficients[block * stored..][..stored],
            &mut self.nonzero[block],
        )
    }
}

struct Decoder {
    /// The scale, as a numerator of 8.
    scale: usize,
    width: usize,
    height: usize,
    hmax: usize,
    vmax: usize,
    mcus_wide: usize,
    mcus_high: usize,
    components: Vec<Component>,
    quantisation: [Option<[u16; 64]>; 4],
    dc_tables: [Option<Huffman>; 4],
    ac_tables: [Option<Huffman>; 4],
    restart_interval: usize,
}

impl Decoder {
    fn new(scale: usize) -> Decoder {
        Decoder {
            scale,
            width: 0,
            height: 0,
            hmax: 1,
            vmax: 1,
            mcus_wide: 0,
            mcus_high: 0,
            components: Vec::new(),
            quantisation: [None; 4],
            dc_tables: Default::default(),
            ac_tables: Default::default(),
            restart_interval: 0,
        }
    }

    fn frame(&mut self, data: &[u8]) -> Result<(), Refused> {
        if !self.components.is_empty() {
            return Err("a second frame");
        }
        let (&precision, rest) = data.split_first().ok_or("a short frame header")?;
        if precision != 8 {
            return Err("not an 8-bit JPEG");
        }
        self.height = usize::from(be16(rest, 0)?);
        self.width = usize::from(be16(rest, 2)?);
        let count = usize::from(*rest.get(4).ok_or("a short frame header")?);
        let specs = rest.get(5..5 + 3 * count).ok_or("a short frame header")?;
        if self.width == 0 || self.height == 0 || !matches!(count, 1 | 3) {
            return Err("not a grayscale or three-component image");
        }
        let sampling: Vec<(usize, usize)> = specs
            .chunks_exact(3)
            .map(|s| (usize::from(s[1] >> 4), usize::from(s[1] & 15)))
            .collect();
        if sampling
            .iter()
            .any(|&(h, v)| !(1..=4).contains(&h) || !(1..=4).contains(&v))
        {
            return Err("a sampling factor out of range");
        }
        self.hmax = sampling.iter().map(|s| s.0).max().unwrap_or(1);
        self.vmax = sampling.iter().map(|s| s.1).max().unwrap_or(1);
        if sampling
            .iter()
            .any(|&(h, v)| !self.hmax.is_multiple_of(h) || !self.vmax.is_multiple_of(v))
        {
            return Err("sampling factors that do not divide each other");
        }
        self.mcus_wide = self.width.div_ceil(8 * self.hmax);
        self.mcus_high = self.height.div_ceil(8 * self.vmax);
        for (spec, &(h, v)) in specs.chunks_exact(3).zip(&sampling) {
            // As libjpeg does, a subsampled component is decoded at twice the scale (four
            // times...) where that is still at most 1 and its samples then line up with the
            // luma ones across and down: 4:2:0 chroma at 1/4 as 4x4 samples a block, rather
            // than 2x2 upsampled. At 1/8 its DC alone is read all the same.
            let mut size = self.scale;
            while self.scale > 1
                && size < 8
                && (self.hmax * self.scale).is_multiple_of(h * size * 2)
                && (self.vmax * self.scale).is_multiple_of(v * size * 2)
            {
                size *= 2;
            }
            let band = Band::new(size)?;
            let (stored, ac) = (band.stored(), band.kept > 1);
            let table = usize::from(spec[2]);
            if table > 3 {
                return Err("a quantisation table number out of range");
            }
            let (stride, rows) = (self.mcus_wide * h, self.mcus_high * v);
            self.components.push(Component {
                id: spec[0],
                h,
                v,
                table,
                blocks_wide: (self.width * h).div_ceil(self.hmax).div_ceil(8),
                blocks_high: (self.height * v).div_ceil(self.vmax).div_ceil(8),
                stride,
                coefficients: if ac {
                    vec![0; stride * rows * stored]
                } else {
                    Vec::new()
                },
                dc: vec![0; stride * rows],
                nonzero: if ac {
                    vec![0; stride * rows]
                } else {
                    Vec::new()
                },
                steps: None,
                known: [None; 64],
                settled: false,
                band,
            });
        }
        Ok(())
    }

    fn huffman_tables(&mut self, mut data: &[u8]) -> Result<(), Refused> {
        while let Some((&class_and_slot, rest)) = data.split_first() {
            let counts: &[u8; 16] = rest
                .get(..16)
                .and_then(|c| c.try_into().ok())
                .ok_or("a short Huffman table")?;
            let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
            let symbols = rest.get(16..16 + total).ok_or("a short Huffman table")?;
            let slot = usize::from(class_and_slot & 15);
            if slot > 3 {
                return Err("a Huffman table number out of range");
            }
            let table = Some(Huffman::new(counts, symbols)?);
            match class_and_slot >> 4 {
                0 => self.dc_tables[slot] = table,
                1 => self.ac_tables[slot] = table,
                _ => return Err("a Huffman table of unknown class"),
            }
            data = &rest[16 + total..];
        }
        Ok(())
    }

    fn quantisation_tables(&mut self, mut data: &[u8]) -> Result<(), Refused> {
        while let Some((&precision_and_slot, rest)) = data.split_first() {
            let slot = usize::from(precision_and_slot & 15);
            let wide = match precision_and_slot >> 4 {
                0 => false,
                1 => true,
                _ => return Err("a quantisation table of unknown precision"),
            };
            let size = if wide { 128 } else { 64 };
            if slot > 3 || rest.len() < size {
                return Err("a bad quantisation table");
            }
            let mut steps = [0u16; 64];
            for (k, step) in steps.iter_mut().enumerate() {
                *step = if wide {
                    u16::from_be_bytes([rest[2 * k], rest[2 * k + 1]])
                } else {
                    u16::from(rest[k])
                };
            }
            self.quantisation[slot] = Some(steps);
            data = &rest[size..];
        }
        Ok(())
    }

    /// One scan: checked against the progression so far, then decoded.
    fn scan(&mut self, header: &[u8], data: &[u8]) -> Result<(), Refused> {
        if self.components.is_empty() {
            return Err("a scan before the frame header");
        }
        let count = usize::from(*header.first().ok_or("a short scan header")?);
        let specs = header.get(1..1 + 2 * count).ok_or("a short scan header")?;
        let [start, end, approximation]: [u8; 3] = header
            .get(1 + 2 * count..4 + 2 * count)
            .and_then(|s| s.try_into().ok())
            .ok_or("a short scan header")?;
        let (start, end) = (usize::from(start), usize::from(end));
        let (high, low) = (approximation >> 4, approximation & 15);
        let dc = start == 0;
        if (dc && end != 0) || (!dc && (end < start || end > 63 || count != 1)) || low > 13 {
            return Err("a scan with bad progression parameters");
        }
        let mut members = Vec::with_capacity(count);
        for spec in specs.chunks_exact(2) {
            let index = self
                .components
                .iter()
                .position(|c| c.id == spec[0])
                .ok_or("a scan of an unknown component")?;
            let component = &mut self.components[index];
            if !dc && component.known[0].is_none() {
                return Err("an AC scan before the component's DC");
            }
            let expected = if high == 0 { None } else { Some(high) };
            let sequence = &mut component.known[start..=end];
            if sequence.iter().any(|&k| k != expected) || (high != 0 && low + 1 != high) {
                return Err("scans out of sequence");
            }
            sequence.fill(Some(low));
            if component.steps.is_none() {
                let steps = self.quantisation[component.table];
                component.steps = Some(steps.ok_or("no quantisation table")?);
            }
            let table = usize::from(if dc { spec[1] >> 4 } else { spec[1] & 15 });
            if table > 3 {
                return Err("a Huffman table number out of range");
            }
            members.push((index, table));
        }
        if members.is_empty() {
            return Err("a scan of no component");
        }
        // AC scans are passed over at 1/8. Otherwise they are all decoded, even those of
        // frequencies above the band: a refinement scan that reaches into the band can
        // only be parsed knowing which of its coefficients are non-zero.
        if !dc && self.scale == 1 {
            return Ok(());
        }
        if !dc && high != 0 {
            let c = &mut self.components[members[0].0];
            let steps = c.steps.unwrap_or([1; 64]);
            c.settled = c.settled || c.band.negligible(&steps, high);
            if c.settled {
                return Ok(());
            }
        }
        let units = self.units(&members);
        let mut scan = Scan {
            bits: Bits::new(data),
            restart_interval: self.restart_interval,
            left: self.restart_interval,
            low,
        };
        if dc {
            let tables = &self.dc_tables;
            if high == 0 && members.iter().any(|&(_, t)| tables[t].is_none()) {
                return Err("no DC Huffman table");
            }
            scan.dc(&mut self.components, &members, units, tables, high != 0)
        } else {
            let (index, table) = members[0];
            let huffman = self.ac_tables[table]
                .as_ref()
                .ok_or("no AC Huffman table")?;
            let component = &mut self.components[index];
            if high == 0 {
                scan.ac_first(component, huffman, start, end)
            } else {
                scan.ac_refine(component, huffman, start, end)
            }
        }
    }

    /// A scan's units across and down: the blocks of its one component, or MCUs of h x v
    /// blocks of each component when it interleaves several.
    fn units(&self, members: &[(usize, usize)]) -> (usize, usize) {
        match members {
            [(index, _)] => {
                let c = &self.components[*index];
                (c.blocks_wide, c.blocks_high)
            }
            _ => (self.mcus_wide, self.mcus_high),
        }
    }

    /// Whether every component's kept coefficients are known to the last bit, after which
    /// no later scan matters at this scale.
    fn band_complete(&self) -> bool {
        !self.components.is_empty()
            && self
                .components
                .iter()
                .all(|c| (0..64).all(|k| c.band.mask >> k & 1 == 0 || c.known[k] == Some(0)))
    }

    fn into_raster(self) -> Result<Raster, Refused> {
        if !self.band_complete() {
            return Err("a component's coefficients are incomplete");
        }
        let n = self.scale;
        let (width, height) = ((self.width * n).div_ceil(8), (self.height * n).div_ceil(8));
        let planes: Vec<Plane> = self
            .components
            .iter()
            .map(|c| self.plane(c, width, height))
            .collect();
        let mut rgb = vec![0; width * height * 3];
        for (row, pixels) in rgb.chunks_exact_mut(width * 3).enumerate() {
            match planes.as_slice() {
                [gray] => {
                    let gray = gray.row(row, width);
                    pixels
                        .chunks_exact_mut(3)
                        .zip(gray)
                        .for_each(|(p, &y)| p.fill(y));
                }
                [y, cb, cr] => ycbcr_to_rgb(
                    y.row(row, width),
                    cb.row(row, width),
                    cr.row(row, width),
                    pixels,
                ),
                _ => return Err("not a grayscale or three-component image"),
            }
        }
        Ok(Raster::new(width as u32, height as u32, false, rgb))
    }

    /// A component's levels on the output grid: its own samples where it has as many as
    /// the component with the most, interpolated linearly between sample centres where it
    /// has fewer (libjpeg's "fancy" upsampling for a factor of 2).
    fn plane(&self, c: &Component, width: usize, height: usize) -> Plane {
        let samples = self.samples(c);
        let n = c.band.size;
        let samples_wide = c.stride * n;
        // Output pixels a sample spans.
        let (hf, vf) = (
            self.hmax * self.scale / (c.h * n),
            self.vmax * self.scale / (c.v * n),
        );
        if (hf, vf) == (1, 1) {
            return Plane {
                levels: samples,
                stride: samples_wide,
            };
        }
        // The samples that hold image data, as libjpeg counts them at this scale.
        let valid = |size: usize, factor: usize, max: usize| (size * factor).div_ceil(max) * n;
        let columns = taps(width, hf, valid(self.width, c.h, self.hmax).div_ceil(8));
        let rows = taps(height, vf, valid(self.height, c.v, self.vmax).div_ceil(8));
        // Down the columns first, into one row of 16-bit-weighted levels, then across.
        let mut blended = vec![0u32; samples_wide];
        let mut levels = Vec::with_capacity(width * height);
        for &(y0, y1, wy) in &rows {
            let top = &samples[y0 * samples_wide..][..samples_wide];
            let bottom = &samples[y1 * samples_wide..][..samples_wide];
            for ((b, &t), &u) in blended.iter_mut().zip(top).zip(bottom) {
                *b = u32::from(t) * (256 - wy) + u32::from(u) * wy;
            }
            levels.extend(columns.iter().map(|&(x0, x1, wx)| {
                ((blended[x0] * (256 - wx) + blended[x1] * wx + (1 << 15)) >> 16) as u8
            }));
        }
        Plane {
            levels,
            stride: width,
        }
    }

    /// A component's samples, N x N a block: the averaged inverse DCT of each block's N x N
    /// lowest frequencies, dequantised, levelled and clamped as libjpeg's IDCTs do.
    fn samples(&self, c: &Component) -> Vec<u8> {
        match c.band.size {
            1 => inverse_dct::<1>(c, SumOfImages::new(c)),
            2 => inverse_dct::<2>(c, SumOfImages::new(c)),
            4 => inverse_dct::<4>(c, SumOfImages::new(c)),
            _ => inverse_dct::<8>(c, Separable::new(c)),
        }
    }
}

/// [`Decoder::samples`] for N x N samples a block (a constant, so that the loops unroll),
/// each block that is not flat summed by `kernel`.
fn inverse_dct<const N: usize>(c: &Component, kernel: impl Kernel<N>) -> Vec<u8> {
    let band = &c.band;
    let stored = band.stored();
    let dc_step = i32::from(c.steps.map_or(1, |steps| steps[0]));
    let samples_wide = c.stride * N;
    let mut samples = vec![0u8; c.dc.len() * N * N];
    for (r, out) in samples.chunks_exact_mut(samples_wide * N).enumerate() {
        for bx in 0..c.stride {
            let block = r * c.stride + bx;
            let dc = c.dc[block];
            let nonzero = c.nonzero.get(block).copied().unwrap_or(0) & band.mask & !1;
            let at = |y: usize| y * samples_wide + bx * N;
            if nonzero == 0 {
                // A flat block (often, in chroma): 1/8 of the DC, rounded as libjpeg does.
                let level = ((i32::from(dc) * dc_step + 4) >> 3) + 128;
                let level = level.clamp(0, 255) as u8;
                for y in 0..N {
                    out[at(y)..][..N].fill(level);
                }
                continue;
            }
            let ac = &c.coefficients[block * stored..][..stored];
            kernel.sum(dc, ac, nonzero, |y, row| {
                out[at(y)..][..N].copy_from_slice(&row.map(level));
            });
        }
    }
    samples
}

/// How the levels of a block that is not flat are summed.
trait Kernel<const N: usize> {
    /// Hands `row` each row of levels of the block of DC coefficient `dc` and kept AC
    /// coefficients `ac` (in [`Band::slots`]), of which those in `nonzero` (never none) are
    /// non-zero.
    fn sum(&self, dc: i16, ac: &[i16], nonzero: u64, row: impl FnMut(usize, [f32; N]));
}

/// Up to 4 x 4 samples a block: the sum of the basis images of its non-zero coefficients
/// (averaged and dequantised), each a few vector registers, so that a coefficient costs a
/// few multiply-adds and nothing depends on which rows hold them.
struct SumOfImages<const N: usize> {
    slots: [u8; 64],
    /// By slot.
    images: Vec<[[f32; N]; N]>,
}

impl<const N: usize> SumOfImages<N> {
    fn new(c: &Component) -> Self {
        let band = &c.band;
        let steps = band.steps_by_slot(&c.steps.unwrap_or([1; 64]));
        let size = band.frequencies.len();
        let images = (0..band.kept)
            .map(|slot| {
                let (j, i) = (slot / size, slot % size);
                std::array::from_fn(|y| {
                    std::array::from_fn(|x| steps[slot] * band.down[y][j] * band.across[x][i])
                })
            })
            .collect();
        SumOfImages {
            slots: band.slots,
            images,
        }
    }
}

impl<const N: usize> Kernel<N> for SumOfImages<N> {
    fn sum(&self, dc: i16, ac: &[i16], mut nonzero: u64, mut row: impl FnMut(usize, [f32; N])) {
        let mut values = [[128.0 + f32::from(dc) * self.images[0][0][0]; N]; N];
        while nonzero != 0 {
            let slot = usize::from(self.slots[nonzero.trailing_zeros() as usize]);
            nonzero &= nonzero - 1;
            let f = f32::from(ac[slot]);
            for (values, basis) in values.iter_mut().zip(&self.images[slot]) {
                for (value, b) in values.iter_mut().zip(basis) {
                    *value += f * b;
                }
            }
        }
        for (y, values) in values.into_iter().enumerate() {
            row(y, values);
        }
    }
}

/// 8 x 8 samples a block, where a basis image would fill every register: the 8-point
/// inverse DCT along the rows of frequencies that hold a non-zero coefficient, then down
/// the columns.
struct Separable {
    slots: [u8; 64],
    /// By slot, the quantisation step.
    steps: [f32; 64],
    /// By frequency, the basis along a row; by output row, the basis down the columns.
    across: [[f32; 8]; 8],
    down: [[f32; 8]; 8],
}

impl Separable {
    fn new(c: &Component) -> Self {
        let band = &c.band;
        Separable {
            slots: band.slots,
            steps: band.steps_by_slot(&c.steps.unwrap_or([1; 64])),
            across: std::array::from_fn(|i| std::array::from_fn(|x| band.across[x][i])),
            down: band.down,
        }
    }
}

impl Kernel<8> for Separable {
    fn sum(&self, dc: i16, ac: &[i16], mut nonzero: u64, mut row: impl FnMut(usize, [f32; 8])) {
        let mut along = [[0f32; 8]; 8];
        along[0] = self.across[0].map(|b| f32::from(dc) * self.steps[0] * b);
        let mut used = 1u32;
        while nonzero != 0 {
            let slot = usize::from(self.slots[nonzero.trailing_zeros() as usize]);
            nonzero &= nonzero - 1;
            let (j, i) = (slot / 8, slot % 8);
            let f = f32::from(ac[slot]) * self.steps[slot];
            for (a, b) in along[j].iter_mut().zip(&self.across[i]) {
                *a += f * b;
            }
            used |= 1 << j;
        }
        for (y, down) in self.down.iter().enumerate() {
            let mut values = [128.0f32; 8];
            for (j, a) in along.iter().enumerate() {
                if used >> j & 1 == 1 {
                    for (value, a) in values.iter_mut().zip(a) {
                        *value += down[j] * a;
                    }
                }
            }
            row(y, values);
        }
    }
}

/// A sample's level: `value` clamped to 0..=255 and rounded, by adding 2^23, after which the
/// low bits of the float are the integer (this vectorises, where a float-to-integer
/// conversion does not).
#[inline]
fn level(value: f32) -> u8 {
    (value.clamp(0.0, 255.0) + 8_388_608.0).to_bits() as u8
}

/// The entropy-coded data of one scan, with its restart intervals and its point transform.
struct Scan<'a> {
    bits: Bits<'a>,
    restart_interval: usize,
    /// Units left before the next restart marker.
    left: usize,
    /// The bit position the scan's values are shifted to (Al).
    low: u8,
}

impl Scan<'_> {
    /// Before each unit: at the end of a restart interval, moves past its marker and
    /// returns true (DC predictions and end-of-band runs start again).
    fn next_unit(&mut self) -> Result<bool, Refused> {
        if self.restart_interval == 0 {
            return Ok(false);
        }
        let restarted = self.left == 0;
        if restarted {
            self.bits.restart()?;
            self.left = self.restart_interval;
        }
        self.left -= 1;
        Ok(restarted)
    }

    /// A DC scan of the components `members` (index, DC table): the first scan of each
    /// (`refine` false) or one refinement bit per block.
    fn dc(
        &mut self,
        components: &mut [Component],
        members: &[(usize, usize)],
        (units_wide, units_high): (usize, usize),
        tables: &[Option<Huffman>; 4],
        refine: bool,
    ) -> Result<(), Refused> {
        let single = members.len() == 1;
        let low = self.low;
        let mut predictions = [0i32; 3];
        for unit in 0..units_wide * units_high {
            if self.next_unit()? {
                predictions = [0; 3];
            }
            let (ux, uy) = (unit % units_wide, unit / units_wide);
            for (slot, &(index, table)) in members.iter().enumerate() {
                let c = &mut components[index];
                let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
                for y in uy * bv..(uy + 1) * bv {
                    for x in ux * bh..(ux + 1) * bh {
                        let coefficient = &mut c.dc[y * c.stride + x];
                        self.bits.fill();
                        if refine {
                            if self.bits.take(1) == 1 {
                                *coefficient |= 1 << low;
                            }
                        } else {
                            let huffman = tables[table].as_ref().ok_or("no DC table")?;
                            let size = huffman.decode(&mut self.bits)?;
                            if size > 11 {
                                return Err("a DC difference out of range");
                            }
                            predictions[slot] += extend(self.bits.take(size), size);
                            *coefficient = i16::try_from(predictions[slot] << low)
                                .map_err(|_| "a DC coefficient out of range")?;
                        }
                    }
                }
            }
        }
        self.bits.check()
    }

    /// The first scan of coefficients `start..=end` of one component: run-length coded
    /// values, and end-of-band runs that span blocks.
    fn ac_first(
        &mut self,
        c: &mut Component,
        huffman: &Huffman,
        start: usize,
        end: usize,
    ) -> Result<(), Refused> {
        let low = self.low;
        let band = c.band;
        let mut run = 0u32;
        for block in c.scan_order() {
            if self.next_unit()? {
                run = 0;
            }
            if run > 0 {
                run -= 1;
                continue;
            }
            let (coefficients, mask) = c.block(block);
            let mut nonzero = *mask;
            let mut k = start;
            while k <= end {
                self.bits.fill();
                let symbol = huffman.decode(&mut self.bits)?;
                let (r, s) = (symbol >> 4, symbol & 15);
                if s != 0 {
                    k += r as usize;
                    if k > end || s > 10 {
                        return Err("an AC coefficient out of range");
                    }
                    let value = extend(self.bits.take(s), s) << low;
                    coefficients[usize::from(band.slots[k])] =
                        i16::try_from(value).map_err(|_| "an AC coefficient out of range")?;
                    nonzero |= 1 << k;
                    k += 1;
                } else if r == 15 {
                    k += 16;
                } else {
                    run = (1 << r) + self.bits.take(r) - 1;
                    break;
                }
            }
            *mask = nonzero;
        }
        self.bits.check()
    }

    /// A refinement scan of coefficients `start..=end` of one component: one more bit of
    /// each coefficient already non-zero (a correction bit, read in the order of the
    /// coefficients), and the coefficients that become non-zero (+1 or -1 at this bit).
    fn ac_refine(
        &mut self,
        c: &mut Component,
        huffman: &Huffman,
        start: usize,
        end: usize,
    ) -> Result<(), Refused> {
        let one = 1i16 << self.low;
        let band = c.band;
        let mut run = 0u32;
        for block in c.scan_order() {
            if self.next_unit()? {
                run = 0;
            }
            let (coefficients, mask) = c.block(block);
            let mut nonzero = *mask;
            let mut k = start;
            if run == 0 {
                // The block's coefficients that were zero before this scan, and how many of
                // them lie behind k: a landing is found from these counts, made once.
                let zeros = Ranked::new(!nonzero & between(start, end));
                let mut passed = 0;
                while k <= end {
                    self.bits.fill();
                    let symbol = huffman.decode(&mut self.bits)?;
                    let (r, s) = (symbol >> 4, symbol & 15);
                    let new = match s {
                        0 if r != 15 => {
                            run = (1 << r) + self.bits.take(r);
                            break;
                        }
                        0 => None,
                        1 => Some((2 * self.bits.take(1) as i16 - 1) * one),
                        _ => return Err("a refinement value other than 1"),
                    };
                    // Past r coefficients that are still zero (and the non-zero ones among
                    // them, each with its correction bit) to the next zero one: where the
                    // new coefficient goes, or the last of a run of 16.
                    let Some(landing) = zeros.nth(passed + r) else {
                        if new.is_some() {
                            return Err("a refinement runs past the band");
                        }
                        self.correct(&band, coefficients, nonzero & between(k, end), one);
                        k = end + 1;
                        break;
                    };
                    self.correct(&band, coefficients, nonzero & between(k, landing), one);
                    if let Some(value) = new {
                        coefficients[usize::from(band.slots[landing])] = value;
                        nonzero |= 1 << landing;
                    }
                    k = landing + 1;
                    passed += r + 1;
                }
            }
            if run > 0 {
                self.correct(&band, coefficients, nonzero & between(k, end), one);
                run -= 1;
            }
            *mask = nonzero;
        }
        self.bits.check()
    }

    /// Reads the correction bits of the non-zero coefficients `which` (a mask by zigzag
    /// position), one each in the order of the positions, and applies those of the kept
    /// coefficients: a 1 adds this scan's bit to the magnitude. Always inlined: out of line,
    /// the bit buffer of each of its three callers would go through memory.
    #[inline(always)]
    fn correct(&mut self, band: &Band, coefficients: &mut [i16], which: u64, one: i16) {
        if which == 0 {
            return;
        }
        // The bits, left-aligned: the first 32 (as many as a fill guarantees), then the rest.
        let ranked = Ranked::new(which);
        let count = ranked.count();
        self.bits.fill();
        let first = count.min(32);
        let mut word = u64::from(self.bits.take(first)) << (64 - first);
        if count > 32 {
            self.bits.fill();
            word |= u64::from(self.bits.take(count - 32)) << (64 - count);
        }
        let mut mine = which & band.mask;
        while mine != 0 {
            let k = mine.trailing_zeros() as usize;
            mine &= mine - 1;
            let bit = (word << ranked.below(k) >> 63) as i16;
            let coefficient = &mut coefficients[usize::from(band.slots[k])];
            // A 1 adds the bit unless it is there already (a damaged stream).
            let add = (bit * one) & !*coefficient;
            *coefficient += add * coefficient.signum();
        }
    }
}

/// The mask of zigzag positions `from..=to` (empty if `from` > `to`).
fn between(from: usize, to: usize) -> u64 {
    if from > to {
        0
    } else {
        (u64::MAX << from) & (u64::MAX >> (63 - to))
    }
}

/// A mask's set bits, counted so that the position of any one of them, and how many lie
/// below any position, are found without a branch that depends on which: the byte from the
/// bytes' running counts, compared all at once, and what lies within the byte from a table.
struct Ranked {
    mask: u64,
    /// Byte i: the set bits of bytes 0 to i (at most 64, so no byte carries into the next).
    running: u64,
}

const ONES: u64 = 0x0101_0101_0101_0101;

impl Ranked {
    #[inline]
    fn new(mask: u64) -> Ranked {
        let mut counts = mask - ((mask >> 1) & 0x5555_5555_5555_5555);
        counts = (counts & 0x3333_3333_3333_3333) + ((counts >> 2) & 0x3333_3333_3333_3333);
        counts = (counts + (counts >> 4)) & 0x0F0F_0F0F_0F0F_0F0F;
        Ranked {
            mask,
            running: counts.wrapping_mul(ONES),
        }
    }

    /// How many bits are set.
    #[inline]
    fn count(&self) -> u32 {
        (self.running >> 56) as u32
    }

    /// How many bits are set below position `k`.
    #[inline]
    fn below(&self, k: usize) -> u32 {
        let byte = k / 8;
        let before = (self.running << 8 >> (8 * byte)) as u8;
        let within = (self.mask >> (8 * byte)) as u8 & ((1 << (k % 8)) - 1);
        u32::from(before + ONES_IN_BYTE[usize::from(within)])
    }

    /// The position of the bit after the first `n` set bits, if there are that many.
    #[inline]
    fn nth(&self, n: u32) -> Option<usize> {
        if n >= 64 {
            return None;
        }
        // High bit of byte i: its running count exceeds n.
        let past = ((self.running | 0x8080_8080_8080_8080) - u64::from(n + 1) * ONES)
            & 0x8080_8080_8080_8080;
        if past == 0 {
            return None;
        }
        let byte = past.trailing_zeros() / 8;
        let before = (self.running << 8 >> (8 * byte)) as u8;
        let within = (self.mask >> (8 * byte)) as u8;
        let bit = NTH_IN_BYTE[usize::from(within)][usize::from(n as u8 - before)];
        Some(8 * byte as usize + usize::from(bit))
    }
}

/// By byte value: how many of its bits are set.
static ONES_IN_BYTE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut value = 0;
    while value < 256 {
        table[value] = (value as u8).count_ones() as u8;
        value += 1;
    }
    table
};

/// By byte value and n: the position of its bit after its first n set bits.
static NTH_IN_BYTE: [[u8; 8]; 256] = {
    let mut table = [[0u8; 8]; 256];
    let mut value = 0;
    while value < 256 {
        let (mut bit, mut found) = (0, 0);
        while bit < 8 {
            if value >> bit & 1 == 1 {
                table[value][found] = bit as u8;
                found += 1;
            }
            bit += 1;
        }
        value += 1;
    }
    table
};

/// For each of `out` pixels, the two samples (of `samples`) it lies between and the second
/// one's weight out of 256, where each sample spans `factor` pixels: linear interpolation
/// between sample centres, libjpeg's "fancy" upsampling for a factor of 2.
fn taps(out: usize, factor: usize, samples: usize) -> Vec<(usize, usize, u32)> {
    (0..out)
        .map(|i| {
            let at = (i as f64 + 0.5) / factor as f64 - 0.5;
            let first = at.floor();
            let weight = ((at - first) * 256.0).round() as u32;
            let clamp = |b: f64| (b.max(0.0) as usize).min(samples - 1);
            (clamp(first), clamp(first + 1.0), weight)
        })
        .collect()
}

/// A component's levels on the output grid, `stride` a row (its samples as the inverse DCT
/// left them, where they need no interpolation).
struct Plane {
    levels: Vec<u8>,
    stride: usize,
}

impl Plane {
    fn row(&self, y: usize, width: usize) -> &[u8] {
        &self.levels[y * self.stride..][..width]
    }
}

/// JFIF's YCbCr to RGB over a row of pixels, in libjpeg's fixed point (16 fraction bits,
/// rounded).
fn ycbcr_to_rgb(y: &[u8], cb: &[u8], cr: &[u8], rgb: &mut [u8]) {
    for (p, ((&y, &cb), &cr)) in rgb.chunks_exact_mut(3).zip(y.iter().zip(cb).zip(cr)) {
        let (y, cb, cr) = (i32::from(y), i32::from(cb) - 128, i32::from(cr) - 128);
        let half = 1 << 15;
        let r = y + ((91_881 * cr + half) >> 16);
        let g = y + ((-22_554 * cb - 46_802 * cr + half) >> 16);
        let b = y + ((116_130 * cb + half) >> 16);
        p.copy_from_slice(&[r, g, b].map(|v| v.clamp(0, 255) as u8));
    }
}

/// A value of `size` bits: the JPEG "extend" of its raw bits (a leading 0 means negative),
/// without a branch on the data.
#[inline]
fn extend(raw: u32, size: u32) -> i32 {
    let negative = i32::from(raw < (1 << size >> 1));
    raw as i32 - negative * ((1 << size) - 1)
}

/// A Huffman table: codes of up to 11 bits by lookup, longer ones by their first code.
struct Huffman {
    /// By the next 11 bits: code length << 8 | symbol, 0 for longer codes.
    fast: Vec<u16>,
    /// For lengths 1 to 16: the largest code of that length (-1: none), and the index in
    /// `symbols` of its first code minus that code.
    max_code: [i32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

const FAST_BITS: u32 = 11;

impl Huffman {
    fn new(counts: &[u8; 16], symbols: &[u8]) -> Result<Huffman, Refused> {
        let mut fast = vec![0u16; 1 << FAST_BITS];
        let mut max_code = [-1i32; 17];
        let mut offset = [0i32; 17];
        let (mut code, mut index) = (0i32, 0i32);
        for length in 1..=16u32 {
            let count = i32::from(counts[length as usize - 1]);
            if code + count > 1 << length {
                return Err("a Huffman table with too many codes");
            }
            offset[length as usize] = index - code;
            for k in 0..count {
                let symbol = symbols[(index + k) as usize];
                let this = code + k;
                if length <= FAST_BITS {
                    let shift = FAST_BITS - length;
                    let first = (this as usize) << shift;
                    fast[first..first + (1 << shift)]
                        .fill((length as u16) << 8 | u16::from(symbol));
                }
            }
            code += count;
            index += count;
            if count > 0 {
                max_code[length as usize] = code - 1;
            }
            code <<= 1;
        }
        Ok(Huffman {
            fast,
            max_code,
            offset,
            symbols: symbols.to_vec(),
        })
    }

    /// The next symbol; `bits` holds at least 16 bits.
    #[inline]
    fn decode(&self, bits: &mut Bits) -> Result<u32, Refused> {
        let look = bits.peek(16);
        let entry = self.fast[(look >> (16 - FAST_BITS)) as usize];
        if entry != 0 {
            bits.skip(u32::from(entry >> 8));
            return Ok(u32::from(entry & 0xFF));
        }
        for length in FAST_BITS + 1..=16 {
            let code = (look >> (16 - length)) as i32;
            if code <= self.max_code[length as usize] {
                bits.skip(length);
                let index = usize::try_from(code + self.offset[length as usize]);
                let symbol = index.ok().and_then(|i| self.symbols.get(i));
                return symbol.map(|&s| u32::from(s)).ok_or("a bad Huffman code");
            }
        }
        Err("a bad Huffman code")
    }
}

/// Reads entropy-coded data a bit at a time, most significant first, unstuffing 0xFF 0x00.
/// At a marker it supplies zeros, and counts them so that reading past the data is noticed.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// The next bits, left-aligned.
    buffer: u64,
    count: u32,
    /// Zero bits supplied past a marker or the end, at the low end of `buffer`.
    padding: u32,
}

impl<'a> Bits<'a> {
    fn new(data: &'a [u8]) -> Self {
        Bits {
            data,
            pos: 0,
            buffer: 0,
            count: 0,
            padding: 0,
        }
    }

    /// Makes sure the buffer holds at least 32 bits: a Huffman code and the bits that
    /// follow it, or 32 correction bits.
    #[inline]
    fn fill(&mut self) {
        if self.count < 32 {
            self.refill();
        }
    }

    /// Tops the buffer up to at least 57 bits.
    #[inline(never)]
    fn refill(&mut self) {
        // Whole bytes at once where the next eight hold no 0xFF (no stuffing, no marker).
        if let Some(&chunk) = self.data.get(self.pos..).and_then(|d| d.first_chunk::<8>())
            && self.padding == 0
        {
            let word = u64::from_be_bytes(chunk);
            let inverted = !word;
            let ff = inverted.wrapping_sub(0x0101_0101_0101_0101) & word & 0x8080_8080_8080_8080;
            if ff == 0 {
                let room = (64 - self.count) / 8;
                let bytes = word & !u64::MAX.checked_shr(8 * room).unwrap_or(0);
                self.buffer |= bytes >> self.count;
                self.pos += room as usize;
                self.count += 8 * room;
                return;
            }
        }
        while self.count <= 56 {
            let byte = match self.data.get(self.pos..) {
                Some(&[0xFF, 0x00, ..]) => {
                    self.pos += 2;
                    0xFF
                }
                Some(&[byte, ..]) if byte != 0xFF && self.padding == 0 => {
                    self.pos += 1;
                    byte
                }
                _ => {
                    self.padding += 8;
                    0
                }
            };
            self.buffer |= u64::from(byte) << (56 - self.count);
            self.count += 8;
        }
    }

    fn peek(&self, n: u32) -> u32 {
        (self.buffer >> (64 - n)) as u32
    }

    fn skip(&mut self, n: u32) {
        self.buffer <<= n;
        self.count -= n;
    }

    /// The next `n` bits (up to 32; none for 0), without a branch on `n`.
    #[inline]
    fn take(&mut self, n: u32) -> u32 {
        let value = (self.buffer >> 1 >> (63 - n)) as u32;
        self.skip(n);
        value
    }

    /// Whether only supplied zeros were read past the data.
    fn check(&self) -> Result<(), Refused> {
        if self.count < self.padding {
            Err("the scan's data ends early")
        } else {
            Ok(())
        }
    }

    /// Moves past the restart marker that ends an interval, dropping its last bits.
    fn restart(&mut self) -> Result<(), Refused> {
        self.check()?;
        let marker = memchr::memchr(0xFF, &self.data[self.pos..])
            .map(|offset| self.pos + offset)
            .ok_or("a restart marker is missing")?;
        if !matches!(self.data.get(marker + 1), Some(0xD0..=0xD7)) {
            return Err("a restart marker is missing");
        }
        self.pos = marker + 2;
        self.buffer = 0;
        self.count = 0;
        self.padding = 0;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use mozjpeg::decompress::DecompressBuilder;
    use mozjpeg::{ColorSpace, Compress};

    use super::*;

    /// Width and height not multiples of 8 or 16, so that the last blocks and MCUs are
    /// partly padding.
    const SIZE: (usize, usize) = (1001, 667);

    /// A photo-like picture: smooth colour gradients, a few edges and some grain.
    fn picture(channels: usize) -> Vec<u8> {
        let (w, h) = SIZE;
        let mut seed = 0x2545_F491_u32;
        let mut out = Vec::with_capacity(w * h * channels);
        for y in 0..h {
            for x in 0..w {
                seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
                let grain = (seed >> 28) as f64 - 8.0;
                let wave = 40.0 * ((x as f64 / 37.0).sin() + (y as f64 / 23.0).cos());
                let edge = if (x / 97 + y / 61) % 2 == 0 {
                    50.0
                } else {
                    0.0
                };
                for c in 0..channels {
                    let ramp = [x * 200 / w, y * 200 / h, (x + y) * 100 / (w + h)][c] as f64;
                    out.push((ramp + wave + edge + grain).clamp(0.0, 255.0) as u8);
                }
            }
        }
        out
    }

    /// A JPEG of `picture` at quality 90: progressive with libjpeg's standard script, or
    /// baseline; `chroma` is the pixel size of a chroma sample, None for grayscale.
    fn jpeg(chroma: Option<(u8, u8)>, progressive: bool) -> Vec<u8> {
        jpeg_at(90.0, chroma, progressive)
    }

    fn jpeg_at(quality: f32, chroma: Option<(u8, u8)>, progressive: bool) -> Vec<u8> {
        let space = if chroma.is_some() {
            ColorSpace::JCS_RGB
        } else {
            ColorSpace::JCS_GRAYSCALE
        };
        let mut c = Compress::new(space);
        c.set_fastest_defaults();
        c.set_size(SIZE.0, SIZE.1);
        c.set_quality(quality);
        if let Some(size) = chroma {
            c.set_chroma_sampling_pixel_sizes(size, size);
        }
        if progressive {
            c.set_progressive_mode();
        }
        let mut started = c.start_compress(Vec::new()).unwrap();
        started
            .write_scanlines(&picture(if chroma.is_some() { 3 } else { 1 }))
            .unwrap();
        started.finish().unwrap()
    }

    /// `bytes` rewritten by jpegtran with `args`, the coefficients unchanged.
    fn jpegtran(bytes: &[u8], args: &[&str]) -> Vec<u8> {
        let mut child = Command::new("jpegtran")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("jpegtran runs (apt-get install libjpeg-turbo-progs)");
        child.stdin.take().unwrap().write_all(bytes).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "jpegtran {args:?} failed");
        out.stdout
    }

    /// libjpeg's own decode at `numerator`/8, as RGB.
    fn libjpeg_reduced(bytes: &[u8], numerator: u8) -> Raster {
        let mut d = DecompressBuilder::new().from_mem(bytes).unwrap();
        d.scale(numerator);
        let mut started = d.rgb().unwrap();
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels = started.read_scanlines().unwrap();
        Raster::new(w, h, false, pixels)
    }

    fn psnr(a: &[u8], b: &[u8]) -> f64 {
        let squares: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        10.0 * (255.0f64.powi(2) / (squares / a.len() as f64)).log10()
    }

    /// Ours against libjpeg's decode of the same file at the same scale: the same size,
    /// and the PSNR.
    fn against_libjpeg(bytes: &[u8], numerator: u8) -> f64 {
        let ours = decode_reduced(bytes, numerator).unwrap();
        let theirs = libjpeg_reduced(bytes, numerator);
        assert_eq!((ours.width, ours.height), (theirs.width, theirs.height));
        psnr(&ours.data, &theirs.data)
    }

    /// Where no chroma is subsampled, libjpeg's 1/8 decode reads only DC too: the same
    /// pixels, to the level.
    #[test]
    fn grayscale_and_full_chroma_are_libjpegs_own_eighth_scale() {
        for chroma in [None, Some((1, 1))] {
            let bytes = jpeg(chroma, true);
            let ours = decode_reduced(&bytes, 1).unwrap();
            assert!(ours.data == libjpeg_reduced(&bytes, 1).data, "{chroma:?}");
        }
    }

    /// Ours reads fewer frequencies than libjpeg's reduced IDCTs, so the pixels differ a
    /// little; against a Lanczos resize of the whole source the responses are as good
    /// (components/README.md).
    #[test]
    fn reduced_decodes_are_close_to_libjpegs() {
        for numerator in [1, 2, 4] {
            for (name, chroma) in [
                ("grayscale", None),
                ("4:4:4", Some((1, 1))),
                ("4:2:2", Some((2, 1))),
                ("4:2:0", Some((2, 2))),
            ] {
                let db = against_libjpeg(&jpeg(chroma, true), numerator);
                // At 1/8, 46-50 dB with subsampled chroma (equal otherwise): libjpeg reads
                // its AC coefficients for a 2x2 IDCT. At 1/4, 45.7-47.7 dB (the last bits
                // are passed over), at 1/2, 44 dB: libjpeg's averages also read the higher
                // odd frequencies.
                let least = if numerator == 1 { 45.0 } else { 42.0 };
                assert!(
                    db >= least,
                    "{numerator}/8 {name}: {db:.1} dB against libjpeg"
                );
            }
        }
    }

    #[test]
    fn reads_restart_intervals_and_other_scan_scripts() {
        let baseline = jpeg(Some((2, 2)), false);
        for numerator in [1, 2, 4] {
            let standard = decode_reduced(&jpegtran(&baseline, &["-progressive"]), numerator);
            for args in [
                &["-progressive", "-restart", "1"][..],
                &["-progressive", "-restart", "7B"],
            ] {
                let other = decode_reduced(&jpegtran(&baseline, args), numerator);
                assert!(other == standard, "{numerator}/8, {args:?}");
            }
        }
    }

    /// `bytes` with the entropy-coded data of its last scan replaced by other data.
    fn last_scan_garbled(bytes: &[u8]) -> Vec<u8> {
        let header = bytes.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
        let data = header + 2 + usize::from(be16(bytes, header + 2).unwrap());
        let mut garbled = bytes.to_vec();
        garbled[data..bytes.len() - 2].fill(0x55);
        garbled
    }

    /// At quality 100 (every quantisation step 1) the last refinement bits of a 1/4
    /// decode's band leave less than a level of error, so their scans are not read: garbling
    /// the last one changes nothing, and the pixels stay close to libjpeg's (46.5 dB). At
    /// quality 60 it is read, and garbling it shows.
    #[test]
    fn passes_over_refinements_that_leave_less_than_a_level() {
        let finest = jpegtran(&jpeg_at(100.0, Some((2, 2)), false), &["-progressive"]);
        let ours = decode_reduced(&finest, 2).unwrap();
        assert!(decode_reduced(&last_scan_garbled(&finest), 2).unwrap() == ours);
        let db = against_libjpeg(&finest, 2);
        assert!(db >= 42.0, "{db:.1} dB against libjpeg");
        let fine = jpegtran(&jpeg_at(60.0, Some((2, 2)), false), &["-progressive"]);
        let read = decode_reduced(&fine, 2).unwrap();
        assert!(decode_reduced(&last_scan_garbled(&fine), 2) != Ok(read));
    }

    #[test]
    fn counts_and_finds_set_bits() {
        let mut seed = 0x9E37_79B9_7F4A_7C15_u64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            // Sparse and dense masks alike.
            let mask = if seed & 1 == 0 {
                seed
            } else {
                seed & seed.rotate_left(23)
            };
            let ranked = Ranked::new(mask);
            assert_eq!(ranked.count(), mask.count_ones(), "{mask:#x}");
            for n in 0..66 {
                let mut rest = mask;
                for _ in 0..n {
                    rest &= rest.wrapping_sub(1);
                }
                let expected = (rest != 0).then(|| rest.trailing_zeros() as usize);
                assert_eq!(ranked.nth(n), expected, "{mask:#x}, {n}");
            }
            for k in 0..64 {
                let expected = (mask & ((1 << k) - 1)).count_ones();
                assert_eq!(ranked.below(k), expected, "{mask:#x}, {k}");
            }
        }
    }

    /// The bound behind passing over refinements, at the figures `Band::negligible` gives:
    /// at quality 100 (every step 1) and at libjpeg's quality-85 luma steps, of which a 1/4
    /// decode keeps three.
    #[test]
    fn a_refinement_is_negligible_under_a_level_of_error() {
        let (quarter, half) = (Band::new(2).unwrap(), Band::new(4).unwrap());
        let finest = [1; 64];
        assert!(quarter.negligible(&finest, 3) && !quarter.negligible(&finest, 4));
        assert!(half.negligible(&finest, 2) && !half.negligible(&finest, 3));
        // Frequencies (0, 1), (1, 0) and (1, 1), at zigzag positions 1, 2 and 4.
        let mut luma85 = [1; 64];
        (luma85[1], luma85[2], luma85[4]) = (3, 4, 4);
        assert!(quarter.negligible(&luma85, 1) && !quarter.negligible(&luma85, 2));
    }

    #[test]
    fn refuses_scales_it_does_not_reduce_to() {
        let bytes = jpeg(Some((2, 2)), true);
        for numerator in [0, 3, 8] {
            let refused = decode_reduced(&bytes, numerator).unwrap_err();
            assert_eq!(refused, "a scale other than 1/8, 1/4 or 1/2");
        }
    }

    #[test]
    fn leaves_baseline_files_to_libjpeg() {
        assert_eq!(
            decode_reduced(&jpeg(Some((2, 2)), false), 2).unwrap_err(),
            "not a progressive Huffman-coded JPEG"
        );
    }

    /// Cut short or damaged anywhere, a file is refused or decoded, never a panic.
    #[test]
    fn survives_truncated_and_damaged_files() {
        let bytes = jpeg(Some((2, 2)), true);
        for numerator in [1, 2, 4] {
            // Every byte (at 1/8) or every twentieth (where every scan is decoded) of the
            // headers and the start of the first DC scan, then a sample.
            let step = if numerator == 1 { 1 } else { 20 };
            let places = || {
                (0..1000)
                    .step_by(step)
                    .chain((1000..bytes.len()).step_by(997))
            };
            for end in places() {
                let _ = decode_reduced(&bytes[..end], numerator);
            }
            let mut damaged = bytes.clone();
            for at in places() {
                damaged[at] ^= 0x5A;
                let _ = decode_reduced(&damaged, numerator);
                damaged[at] = bytes[at];
            }
        }
    }
}
