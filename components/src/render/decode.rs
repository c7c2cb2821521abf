//! Reading raster sources: their header first (size, format and orientation, so that
//! oversized sources are refused before a single pixel is allocated), then the pixels,
//! converted to sRGB and turned upright. JPEG is decoded by libjpeg-turbo's code (through
//! mozjpeg) with DCT-domain scaling, so a large photo asked for as a thumbnail is decoded at
//! 1/2, 1/4 or 1/8 of its size straight away; a progressive one is read for the frequencies
//! that scale needs alone ([`progressive`]).

use std::io::Cursor;

use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use mozjpeg::decompress::DecompressBuilder;
use mozjpeg::{ColorSpace, Decompress, Marker};

use super::raster::Raster;
use super::{libjpeg, orientation, profile, progressive};

/// A source's format, stored size and orientation, read from its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub format: ImageFormat,
    /// The size as stored, before the orientation is applied.
    pub width: u32,
    pub height: u32,
    /// How the stored pixels are turned upright: the EXIF tag, or none when it is ignored.
    pub orientation: Orientation,
}

impl Header {
    pub fn pixels(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }

    /// The size of the image as it is shown.
    pub fn upright_size(&self) -> (u32, u32) {
        orientation::upright_size((self.width, self.height), self.orientation)
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

/// JPEG segments that carry EXIF data (APP1) and ICC profiles (APP2).
const EXIF_MARKER: Marker = Marker::APP(1);
const ICC_MARKER: Marker = Marker::APP(2);

/// Reads only the header of `bytes`; the EXIF orientation is honoured if `apply_orientation`.
pub fn read_header(bytes: &[u8], apply_orientation: bool) -> Result<Header, String> {
    let format = image::guess_format(bytes)
        .ok()
        .filter(|f| SUPPORTED.contains(f))
        .ok_or("not a JPEG, PNG, WebP, GIF or TIFF image")?;
    let (width, height, tagged) = if format == ImageFormat::Jpeg {
        libjpeg::guard(|| {
            let markers = if apply_orientation {
                &[EXIF_MARKER][..]
            } else {
                &[]
            };
            let d = DecompressBuilder::new()
                .with_markers(markers)
                .from_mem(bytes)?;
            let tagged = d
                .markers()
                .filter(|m| m.marker == EXIF_MARKER)
                .find_map(|m| Orientation::from_exif_chunk(m.data.strip_prefix(b"Exif\0\0")?));
            Ok((d.width() as u32, d.height() as u32, tagged))
        })?
    } else {
        let mut decoder = ImageReader::with_format(Cursor::new(bytes), format)
            .into_decoder()
            .map_err(|e| e.to_string())?;
        let (w, h) = decoder.dimensions();
        let tagged = if apply_orientation {
            decoder.orientation().ok()
        } else {
            None
        };
        (w, h, tagged)
    };
    if width == 0 || height == 0 {
        return Err("the image has no pixels".into());
    }
    Ok(Header {
        format,
        width,
        height,
        orientation: tagged.unwrap_or(Orientation::NoTransforms),
    })
}

/// Decoded pixels, upright and in sRGB, possibly reduced while decoding.
#[derive(Debug)]
pub struct Decoded {
    pub raster: Raster,
    /// Upright source pixel (x, y) is pixel `origin` + (x, y) * `reduction` of `raster`.
    /// `reduction` is 1/8, 1/4, 1/2 or 1 for JPEG's DCT scaling, 1 otherwise. DCT scaling
    /// rounds sizes up (1333 rows at 1/4 give 334, the last one partly padding); a mirrored
    /// axis has that padding first, so its `origin` is not 0.
    pub reduction: f64,
    pub origin: (f64, f64),
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
    let (mut raster, icc, reduction) = if header.format == ImageFormat::Jpeg {
        let numerator = jpeg_scale_numerator(scale);
        let (raster, icc) = decode_jpeg(bytes, numerator)?;
        (raster, icc, f64::from(numerator) / 8.0)
    } else {
        let (raster, icc) = decode_other(bytes, header.format, max_bytes)?;
        (raster, icc, 1.0)
    };
    if let Some(icc) = icc {
        profile::convert_to_srgb(&mut raster, &icc);
    }
    let padding = (
        f64::from(raster.width) - f64::from(header.width) * reduction,
        f64::from(raster.height) - f64::from(header.height) * reduction,
    );
    let (raster, origin) = orientation::upright(raster, header.orientation, padding);
    Ok(Decoded {
        raster,
        reduction,
        origin,
    })
}

/// Formats other than JPEG, through the `image` crate: the pixels and the ICC profile.
fn decode_other(
    bytes: &[u8],
    format: ImageFormat,
    max_bytes: u64,
) -> Result<(Raster, Option<Vec<u8>>), String> {
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_alloc = Some(max_bytes);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| e.to_string())?;
    // A profile that cannot be read is ignored, as browsers do: the pixels are taken as sRGB.
    let icc = decoder.icc_profile().ok().flatten();
    let image = DynamicImage::from_decoder(decoder).map_err(|e| e.to_string())?;
    let (w, h) = (image.width(), image.height());
    let raster = if image.color().has_alpha() {
        Raster::new(w, h, true, image.into_rgba8().into_raw())
    } else {
        Raster::new(w, h, false, image.into_rgb8().into_raw())
    };
    Ok((raster, icc))
}

/// The libjpeg scale numerator (out of 8) for a response `scale` times the source size.
pub fn jpeg_scale_numerator(scale: f64) -> u8 {
    [1, 2, 4]
        .into_iter()
        .find(|&n| f64::from(n) / 8.0 >= scale)
        .unwrap_or(8)
}

/// A JPEG at `numerator`/8 of its size, and its ICC profile.
fn decode_jpeg(bytes: &[u8], numerator: u8) -> Result<(Raster, Option<Vec<u8>>), String> {
    libjpeg::guard(|| {
        let mut d = DecompressBuilder::new()
            .with_markers(&[ICC_MARKER])
            .from_mem(bytes)?;
        let icc = jpeg_icc_profile(&d);
        // Progressive YCbCr or grayscale sources reduced while decoding have a faster path;
        // what it refuses (baseline files, damaged ones) libjpeg decodes.
        if numerator < 8
            && matches!(
                d.color_space(),
                ColorSpace::JCS_YCbCr | ColorSpace::JCS_GRAYSCALE
            )
            && let Ok(raster) = progressive::decode_reduced(bytes, numerator)
        {
            return Ok((raster, icc));
        }
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
        Ok((Raster::new(w, h, false, rgb), icc))
    })
}

/// The ICC profile of a JPEG: the data of its `ICC_PROFILE` APP2 segments, each numbered
/// (from 1) because a profile may be larger than one segment.
fn jpeg_icc_profile<R>(d: &Decompress<R>) -> Option<Vec<u8>> {
    let mut chunks: Vec<(u8, &[u8])> = d
        .markers()
        .filter(|m| m.marker == ICC_MARKER)
        .filter_map(|m| {
            let rest = m.data.strip_prefix(b"ICC_PROFILE\0")?;
            Some((*rest.first()?, rest.get(2..)?))
        })
        .collect();
    if chunks.is_empty() {
        return None;
    }
    chunks.sort_by_key(|&(number, _)| number);
    Some(
        chunks
            .into_iter()
            .flat_map(|(_, data)| data)
            .copied()
            .collect(),
    )
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
        assert!(read_header(b"hello world, not an image", true).is_err());
        assert!(read_header(&[0xFF, 0xD8, 0xFF, 0xE0, 0, 0], true).is_err());
        assert!(read_header(b"", true).is_err());
    }
}
