//! Progressive JPEGs at 1/8 of their size, decoded from their DC scans alone.
//!
//! At 1/8 each 8x8 block becomes one pixel, its DC coefficient (the block's mean), and a
//! progressive file sends the DC coefficients in scans of their own, a few percent of the
//! file. libjpeg Huffman-decodes every scan into a coefficient buffer for the whole image
//! before the first pixel comes out; this reads the DC scans (the first ones and their
//! successive-approximation refinements), passes over the AC scans' data without decoding
//! it, and keeps one value per block per component. Chroma is then interpolated onto the
//! luma block grid and converted to RGB with libjpeg's own YCbCr equations.
//!
//! What it does not handle (baseline or arithmetic-coded files, other than 8 bits, more
//! than three components, a damaged stream) it refuses, and the caller leaves to libjpeg.

use super::raster::Raster;

/// Why a file was left to libjpeg.
pub type Refused = &'static str;

/// The pixels of the YCbCr or grayscale progressive JPEG `bytes` at 1/8 of its size,
/// rounded up as libjpeg rounds it (RGB, even for grayscale).
pub fn decode_eighth(bytes: &[u8]) -> Result<Raster, Refused> {
    let mut decoder = Decoder::default();
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
                if decoder.dc_complete() {
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

/// One component of the frame, with the DC coefficient of each of its blocks.
struct Component {
    id: u8,
    h: usize,
    v: usize,
    table: usize,
    /// The blocks that hold image data (the rest pads the last MCUs).
    blocks_wide: usize,
    blocks_high: usize,
    /// Row length of `dc`: whole MCUs.
    stride: usize,
    dc: Vec<i16>,
    /// The DC quantisation step, read when the component's first DC scan starts.
    step: Option<u16>,
    /// The bit position the DC coefficients are known down to (0: complete), once a DC
    /// scan has been read.
    known_to: Option<u8>,
}

#[derive(Default)]
struct Decoder {
    width: usize,
    height: usize,
    hmax: usize,
    vmax: usize,
    mcus_wide: usize,
    mcus_high: usize,
    components: Vec<Component>,
    dc_steps: [Option<u16>; 4],
    dc_tables: [Option<Huffman>; 4],
    restart_interval: usize,
}

impl Decoder {
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
                dc: vec![0; stride * rows],
                step: None,
                known_to: None,
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
            if class_and_slot >> 4 == 0 {
                self.dc_tables[slot] = Some(Huffman::new(counts, symbols)?);
            }
            data = &rest[16 + total..];
        }
        Ok(())
    }

    fn quantisation_tables(&mut self, mut data: &[u8]) -> Result<(), Refused> {
        while let Some((&precision_and_slot, rest)) = data.split_first() {
            let slot = usize::from(precision_and_slot & 15);
            let (step, size) = match precision_and_slot >> 4 {
                0 => (
                    u16::from(*rest.first().ok_or("a short quantisation table")?),
                    64,
                ),
                1 => (be16(rest, 0)?, 128),
                _ => return Err("a quantisation table of unknown precision"),
            };
            if slot > 3 || rest.len() < size {
                return Err("a bad quantisation table");
            }
            self.dc_steps[slot] = Some(step);
            data = &rest[size..];
        }
        Ok(())
    }

    /// One scan: DC scans are decoded, AC scans passed over.
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
        if start != 0 {
            return Ok(());
        }
        if end != 0 {
            return Err("a DC scan with AC coefficients");
        }
        let (high, low) = (approximation >> 4, approximation & 15);
        let mut members = Vec::with_capacity(count);
        for spec in specs.chunks_exact(2) {
            let index = self
                .components
                .iter()
                .position(|c| c.id == spec[0])
                .ok_or("a scan of an unknown component")?;
            let component = &mut self.components[index];
            let expected = if high == 0 { None } else { Some(high) };
            if component.known_to != expected || (high != 0 && low + 1 != high) || low > 10 {
                return Err("DC scans out of sequence");
            }
            let table = usize::from(spec[1] >> 4);
            if high == 0 {
                component.step =
                    Some(self.dc_steps[component.table].ok_or("no quantisation table")?);
                if self.dc_tables.get(table).and_then(Option::as_ref).is_none() {
                    return Err("no DC Huffman table");
                }
            }
            component.known_to = Some(low);
            members.push((index, table));
        }
        if members.is_empty() {
            return Err("a scan of no component");
        }
        self.dc_scan(&members, data, high != 0, low)
    }

    /// Decodes a DC scan of the components `members` (index, DC table): the first scan of
    /// each (`refine` false) or one refinement bit per block.
    fn dc_scan(
        &mut self,
        members: &[(usize, usize)],
        data: &[u8],
        refine: bool,
        low: u8,
    ) -> Result<(), Refused> {
        // A scan of one component runs over its blocks one by one, an interleaved scan over
        // MCUs of h x v blocks of each component.
        let single = members.len() == 1;
        let (units_wide, units_high) = if single {
            let c = &self.components[members[0].0];
            (c.blocks_wide, c.blocks_high)
        } else {
            (self.mcus_wide, self.mcus_high)
        };
        let mut bits = Bits::new(data);
        let mut predictions = [0i32; 3];
        let mut left = self.restart_interval;
        for unit in 0..units_wide * units_high {
            if self.restart_interval > 0 {
                if left == 0 {
                    bits.restart()?;
                    predictions = [0; 3];
                    left = self.restart_interval;
                }
                left -= 1;
            }
            let (ux, uy) = (unit % units_wide, unit / units_wide);
            for (slot, &(index, table)) in members.iter().enumerate() {
                let c = &mut self.components[index];
                let (bh, bv) = if single { (1, 1) } else { (c.h, c.v) };
                for y in uy * bv..(uy + 1) * bv {
                    for x in ux * bh..(ux + 1) * bh {
                        let coefficient = &mut c.dc[y * c.stride + x];
                        bits.fill();
                        if refine {
                            if bits.take(1) == 1 {
                                *coefficient |= 1 << low;
                            }
                        } else {
                            let huffman = self.dc_tables[table].as_ref().ok_or("no DC table")?;
                            let size = huffman.decode(&mut bits)?;
                            if size > 11 {
                                return Err("a DC difference out of range");
                            }
                            predictions[slot] += extend(bits.take(size), size);
                            *coefficient = i16::try_from(predictions[slot] << low)
                                .map_err(|_| "a DC coefficient out of range")?;
                        }
                    }
                }
            }
        }
        bits.check()
    }

    /// Whether every component's DC coefficients are known to the last bit, after which no
    /// later scan matters at 1/8.
    fn dc_complete(&self) -> bool {
        !self.components.is_empty() && self.components.iter().all(|c| c.known_to == Some(0))
    }

    fn into_raster(self) -> Result<Raster, Refused> {
        if self.components.is_empty() || self.components.iter().any(|c| c.known_to.is_none()) {
            return Err("a component without DC coefficients");
        }
        let (width, height) = (self.width.div_ceil(8), self.height.div_ceil(8));
        let planes: Vec<Vec<u8>> = self
            .components
            .iter()
            .map(|c| self.plane(c, width, height))
            .collect();
        let mut rgb = Vec::with_capacity(width * height * 3);
        match planes.as_slice() {
            [gray] => rgb.extend(gray.iter().flat_map(|&y| [y, y, y])),
            [y, cb, cr] => {
                for ((&y, &cb), &cr) in y.iter().zip(cb).zip(cr) {
                    rgb.extend(ycbcr_to_rgb(y, cb, cr));
                }
            }
            _ => return Err("not a grayscale or three-component image"),
        }
        Ok(Raster::new(width as u32, height as u32, false, rgb))
    }

    /// A component's levels on the output grid (one pixel per block of the component with
    /// the most samples), interpolated linearly between block centres where it has fewer.
    fn plane(&self, c: &Component, width: usize, height: usize) -> Vec<u8> {
        let step = i32::from(c.step.unwrap_or(1));
        // Eighths of a level, 128 added: libjpeg's 1x1 IDCT is (DC * step + 4) / 8 + 128.
        let eighths =
            |x: usize, y: usize| (i32::from(c.dc[y * c.stride + x]) * step + 1024).clamp(0, 2040);
        let columns = taps(width, self.hmax / c.h, c.blocks_wide);
        let rows = taps(height, self.vmax / c.v, c.blocks_high);
        let mut plane = Vec::with_capacity(width * height);
        for &(y0, y1, wy) in &rows {
            for &(x0, x1, wx) in &columns {
                let top = eighths(x0, y0) * (256 - wx) + eighths(x1, y0) * wx;
                let bottom = eighths(x0, y1) * (256 - wx) + eighths(x1, y1) * wx;
                let sum = top * (256 - wy) + bottom * wy;
                plane.push(((sum + (4 << 16)) >> 19) as u8);
            }
        }
        plane
    }
}

/// For each of `out` pixels, the two blocks (of `blocks`) it lies between and the second
/// one's weight out of 256, where each block spans `factor` pixels: linear interpolation
/// between block centres, libjpeg's "fancy" upsampling for a factor of 2.
fn taps(out: usize, factor: usize, blocks: usize) -> Vec<(usize, usize, i32)> {
    (0..out)
        .map(|i| {
            let at = (i as f64 + 0.5) / factor as f64 - 0.5;
            let first = at.floor();
            let weight = ((at - first) * 256.0).round() as i32;
            let clamp = |b: f64| (b.max(0.0) as usize).min(blocks - 1);
            (clamp(first), clamp(first + 1.0), weight)
        })
        .collect()
}

/// JFIF's YCbCr to RGB, in libjpeg's fixed point (16 fraction bits, rounded).
fn ycbcr_to_rgb(y: u8, cb: u8, cr: u8) -> [u8; 3] {
    let (y, cb, cr) = (i32::from(y), i32::from(cb) - 128, i32::from(cr) - 128);
    let half = 1 << 15;
    let r = y + ((91_881 * cr + half) >> 16);
    let g = y + ((-22_554 * cb - 46_802 * cr + half) >> 16);
    let b = y + ((116_130 * cb + half) >> 16);
    [r, g, b].map(|v| v.clamp(0, 255) as u8)
}

/// A DC difference of `size` bits: the JPEG "extend" of its raw bits.
fn extend(raw: u32, size: u32) -> i32 {
    if size == 0 {
        0
    } else if raw < 1 << (size - 1) {
        raw as i32 - (1 << size) + 1
    } else {
        raw as i32
    }
}

/// A Huffman table: codes of up to 9 bits by lookup, longer ones by their first code.
struct Huffman {
    /// By the next 9 bits: code length << 8 | symbol, 0 for longer codes.
    fast: Vec<u16>,
    /// For lengths 1 to 16: the largest code of that length (-1: none), and the index in
    /// `symbols` of its first code minus that code.
    max_code: [i32; 17],
    offset: [i32; 17],
    symbols: Vec<u8>,
}

const FAST_BITS: u32 = 9;

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

    /// Tops the buffer up to at least 57 bits.
    fn fill(&mut self) {
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

    fn take(&mut self, n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let value = self.peek(n);
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
        let space = if chroma.is_some() {
            ColorSpace::JCS_RGB
        } else {
            ColorSpace::JCS_GRAYSCALE
        };
        let mut c = Compress::new(space);
        c.set_fastest_defaults();
        c.set_size(SIZE.0, SIZE.1);
        c.set_quality(90.0);
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

    /// libjpeg's own decode at 1/8, as RGB.
    fn libjpeg_eighth(bytes: &[u8]) -> Raster {
        let mut d = DecompressBuilder::new().from_mem(bytes).unwrap();
        d.scale(1);
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

    /// Ours against libjpeg's 1/8 decode of the same file: the same size, and the PSNR.
    fn against_libjpeg(bytes: &[u8]) -> f64 {
        let ours = decode_eighth(bytes).unwrap();
        let theirs = libjpeg_eighth(bytes);
        assert_eq!((ours.width, ours.height), (theirs.width, theirs.height));
        psnr(&ours.data, &theirs.data)
    }

    /// Where no chroma is subsampled, libjpeg's 1/8 decode reads only DC too: the same
    /// pixels, to the level.
    #[test]
    fn grayscale_and_full_chroma_are_libjpegs_own_eighth_scale() {
        for chroma in [None, Some((1, 1))] {
            let bytes = jpeg(chroma, true);
            let ours = decode_eighth(&bytes).unwrap();
            assert!(ours.data == libjpeg_eighth(&bytes).data, "{chroma:?}");
        }
    }

    /// Subsampled chroma differs where libjpeg's 2x2 IDCTs read AC coefficients this
    /// decoder skips (46.7 dB at 4:2:0, 49.3 dB at 4:2:2 on this picture).
    #[test]
    fn subsampled_colour_is_close_to_libjpegs_eighth_scale() {
        for (name, chroma) in [("4:2:2", (2, 1)), ("4:2:0", (2, 2))] {
            let db = against_libjpeg(&jpeg(Some(chroma), true));
            assert!(db >= 45.0, "{name}: {db:.1} dB against libjpeg");
        }
    }

    #[test]
    fn reads_restart_intervals_and_other_scan_scripts() {
        let baseline = jpeg(Some((2, 2)), false);
        let standard = against_libjpeg(&jpegtran(&baseline, &["-progressive"]));
        for args in [
            &["-progressive", "-restart", "1"][..],
            &["-progressive", "-restart", "7B"],
        ] {
            let db = against_libjpeg(&jpegtran(&baseline, args));
            assert!(
                (db - standard).abs() < 1e-9,
                "{args:?}: {db} dB, {standard} dB without"
            );
        }
    }

    #[test]
    fn leaves_baseline_files_to_libjpeg() {
        assert_eq!(
            decode_eighth(&jpeg(Some((2, 2)), false)).unwrap_err(),
            "not a progressive Huffman-coded JPEG"
        );
    }

    /// Cut short or damaged anywhere, a file is refused or decoded, never a panic.
    #[test]
    fn survives_truncated_and_damaged_files() {
        let bytes = jpeg(Some((2, 2)), true);
        // Every byte of the headers and the start of the first DC scan, then a sample.
        let places = || (0..1000).chain((1000..bytes.len()).step_by(997));
        for end in places() {
            let _ = decode_eighth(&bytes[..end]);
        }
        let mut damaged = bytes.clone();
        for at in places() {
            damaged[at] ^= 0x5A;
            let _ = decode_eighth(&damaged);
            damaged[at] = bytes[at];
        }
    }
}
