//! Writing the response image in the requested format.

use std::io::Cursor;

use image::codecs::gif::GifEncoder;
use image::codecs::png::{CompressionType, FilterType, PngEncoder};
use image::codecs::tiff::TiffEncoder;
use image::{ExtendedColorType, ImageEncoder};
use mozjpeg::{ColorSpace, Compress};

use super::libjpeg;
use super::raster::Raster;
use crate::modifiers::{Format, Quality};

/// Encodes `raster` (RGB, or RGBA for formats that keep alpha) as `format`.
pub fn encode(raster: &Raster, format: Format, quality: Quality) -> Result<Vec<u8>, String> {
    let color = if raster.has_alpha {
        ExtendedColorType::Rgba8
    } else {
        ExtendedColorType::Rgb8
    };
    let (w, h, data) = (raster.width, raster.height, raster.data.as_slice());
    let mut out = Vec::new();
    let result = match format {
        Format::Jpeg => return jpeg(raster, quality),
        Format::WebP => {
            let encoder = if raster.has_alpha {
                webp::Encoder::from_rgba(data, w, h)
            } else {
                webp::Encoder::from_rgb(data, w, h)
            };
            return Ok(encoder.encode(f32::from(quality.value)).to_vec());
        }
        Format::Png | Format::PngAlpha => {
            PngEncoder::new_with_quality(&mut out, CompressionType::Fast, FilterType::Adaptive)
                .write_image(data, w, h, color)
        }
        Format::Gif => GifEncoder::new_with_speed(&mut out, 10).encode(data, w, h, color),
        Format::Tiff => TiffEncoder::new(Cursor::new(&mut out)).write_image(data, w, h, color),
    };
    result.map_err(|e| format!("cannot write {}: {e}", format.name()))?;
    Ok(out)
}

/// Baseline JPEG with Huffman tables optimised for the image, libjpeg-turbo's fast path.
fn jpeg(raster: &Raster, quality: Quality) -> Result<Vec<u8>, String> {
    debug_assert!(!raster.has_alpha);
    libjpeg::guard(|| {
        let mut c = Compress::new(ColorSpace::JCS_RGB);
        c.set_fastest_defaults();
        c.set_size(raster.width as usize, raster.height as usize);
        c.set_quality(f32::from(quality.value));
        c.set_optimize_coding(true);
        if quality.full_chroma {
            c.set_chroma_sampling_pixel_sizes((1, 1), (1, 1));
        }
        let capacity = raster.data.len() / 8;
        let mut started = c.start_compress(Vec::with_capacity(capacity))?;
        started.write_scanlines(&raster.data)?;
        started.finish()
    })
    .map_err(|e| format!("cannot write jpeg: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(w: u32, h: u32, alpha: bool) -> Raster {
        let ch = if alpha { 4 } else { 3 };
        let data = (0..w * h * ch).map(|i| (i * 7 % 251) as u8).collect();
        Raster::new(w, h, alpha, data)
    }

    #[test]
    fn every_format_round_trips_its_size() {
        let q = Quality {
            value: 80,
            full_chroma: false,
        };
        for (format, alpha) in [
            (Format::Jpeg, false),
            (Format::Png, false),
            (Format::PngAlpha, true),
            (Format::WebP, false),
            (Format::WebP, true),
            (Format::Gif, false),
            (Format::Tiff, false),
        ] {
            let bytes = encode(&gradient(33, 17, alpha), format, q).unwrap();
            let img = image::load_from_memory(&bytes).unwrap();
            assert_eq!((img.width(), img.height()), (33, 17), "{format:?}");
        }
    }

    #[test]
    fn jpeg_quality_changes_the_size() {
        let img = gradient(64, 64, false);
        let size = |value| {
            encode(
                &img,
                Format::Jpeg,
                Quality {
                    value,
                    full_chroma: false,
                },
            )
            .unwrap()
            .len()
        };
        assert!(size(20) < size(95));
    }
}
