//! Reading raster sources: their header first (size and format, so that oversized sources
//! are refused before a single pixel is allocated), then the pixels. JPEG is decoded by
//! libjpeg-turbo's code (through mozjpeg) with DCT-domain scaling, so a large photo asked
//! for as a thumbnail is decoded at 1/2, 1/4 or 1/8 of its size straight away.

use std::io::Cursor;

use image::{ImageFormat, ImageReader, Limits};
use mozjpeg::{ColorSpace, Decompress};

use super::libjpeg;
use super::raster::Raster;

/// A source's format and size, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: ImageFormat,
    pub width: u32,
    pub height: u32,
}

impl Header {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    pub fn format_name(&self) -> &'static str {
        match self.format {
            ImageFormat::Jpeg => "jpeg",
            ImageFormat::Png => "png",
            ImageFormat::WebP => "webp",
            ImageFormat::Gif => "gif",
            ImageFormat::Tiff => "tiff",
            _ => "unknown",
        }
    }
}

/// Formats read from catalogs.
const SUPPORTED: [ImageFormat; 5] = [
    ImageFormat::Jpeg,
    ImageFormat::Png,
    ImageFormat::WebP,
    ImageFormat::Gif,
    ImageFormat::Tiff,
];

/// Reads only the header of `bytes`.
pub fn read_header(bytes: &[u8]) -> Result<Header, String> {
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| SUPPORTED.contains(f))
        .ok_or("not a JPEG, PNG, WebP, GIF or TIFF image")?;
    let (width, height) = if format == ImageFormat::Jpeg {
        libjpeg::guard(|| {
            let d = Decompress::new_mem(bytes)?;
            Ok((d.width() as u32, d.height() as u32))
        })?
    } else {
        ImageReader::with_format(Cursor::new(bytes), format)
            .into_dimensions()
            .map_err(|e| e.to_string())?
    };
    if width == 0 || height == 0 {
        return Err("the image has no pixels".into());
    }
    Ok(Header {
        format,
        width,
        height,
    })
}

/// Decoded pixels, possibly reduced while decoding.
#[derive(Debug)]
pub struct Decoded {
    pub raster: Raster,
    /// Source pixel x is pixel x * `reduction` of `raster`: 1/8, 1/4, 1/2 or 1 for JPEG's
    /// DCT scaling (whose size is rounded up: 1333 rows at 1/4 give 334), 1 otherwise.
    pub reduction: f64,
}

/// Decodes the pixels. `scale` is the response's size relative to the source: a JPEG is
/// decoded at the smallest of 1/8, 1/4, 1/2 or 1 that is still at least that large.
/// `max_bytes` bounds what a decoder may allocate.
pub fn decode(
    bytes: &[u8],
    header: &Header,
    scale: f64,
    max_bytes: u64,
) -> Result<Decoded, String> {
    if header.format == ImageFormat::Jpeg {
        let numerator = jpeg_scale_numerator(scale);
        return Ok(Decoded {
            raster: decode_jpeg(bytes, numerator)?,
            reduction: f64::from(numerator) / 8.0,
        });
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), header.format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    let image = reader.decode().map_err(|e| e.to_string())?;
    let (w, h) = (image.width(), image.height());
    let raster = if image.color().has_alpha() {
        Raster::new(w, h, true, image.into_rgba8().into_raw())
    } else {
        Raster::new(w, h, false, image.into_rgb8().into_raw())
    };
    Ok(Decoded {
        raster,
        reduction: 1.0,
    })
}

/// The libjpeg scale numerator (out of 8) for a response `scale` times the source size.
pub fn jpeg_scale_numerator(scale: f64) -> u8 {
    [1, 2, 4]
        .into_iter()
        .find(|&n| f64::from(n) / 8.0 >= scale)
        .unwrap_or(8)
}

fn decode_jpeg(bytes: &[u8], numerator: u8) -> Result<Raster, String> {
    libjpeg::guard(|| {
        let mut d = Decompress::new_mem(bytes)?;
        d.scale(numerator);
        let cmyk = matches!(d.color_space(), ColorSpace::JCS_CMYK | ColorSpace::JCS_YCCK);
        let mut started = if cmyk {
            d.to_colorspace(ColorSpace::JCS_CMYK)?
        } else {
            d.rgb()?
        };
        let (w, h) = (started.width() as u32, started.height() as u32);
        let pixels: Vec<u8> = started.read_scanlines()?;
        started.finish()?;
        let rgb = if cmyk { cmyk_to_rgb(&pixels) } else { pixels };
        if rgb.len() != w as usize * h as usize * 3 {
            return Err(std::io::Error::other("the image data is truncated"));
        }
        Ok(Raster::new(w, h, false, rgb))
    })
}

/// Adobe-style (inverted) CMYK, as nearly all CMYK JPEGs are written.
fn cmyk_to_rgb(cmyk: &[u8]) -> Vec<u8> {
    let mut rgb = Vec::with_capacity(cmyk.len() / 4 * 3);
    for p in cmyk.chunks_exact(4) {
        let k = u16::from(p[3]);
        rgb.extend(
            p[..3]
                .iter()
                .map(|&c| ((u16::from(c) * k + 127) / 255) as u8),
        );
    }
    rgb
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_smallest_sufficient_jpeg_scale() {
        assert_eq!(jpeg_scale_numerator(0.25), 2);
        assert_eq!(jpeg_scale_numerator(0.24), 2);
        assert_eq!(jpeg_scale_numerator(0.26), 4);
        assert_eq!(jpeg_scale_numerator(0.1), 1);
        assert_eq!(jpeg_scale_numerator(0.6), 8);
        assert_eq!(jpeg_scale_numerator(3.0), 8);
    }

    /// mozjpeg-sys assembles libjpeg-turbo's SIMD code with nasm; without nasm it only
    /// warns, and a thumbnail then costs about 1.6 times the instructions.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn libjpeg_is_built_with_its_simd_code() {
        unsafe extern "C" {
            fn jsimd_can_idct_2x2() -> std::ffi::c_int;
        }
        // SAFETY: a query without arguments; it only reads the CPU's features.
        let simd = unsafe { jsimd_can_idct_2x2() };
        assert_eq!(
            simd, 1,
            "libjpeg was built without SIMD: install nasm, then rebuild mozjpeg-sys"
        );
    }

    #[test]
    fn refuses_what_is_not_an_image() {
        assert!(read_header(b"hello world, not an image").is_err());
        assert!(read_header(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0]).is_err());
        assert!(read_header(b"").is_err());
    }
}
