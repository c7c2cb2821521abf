//! The sample catalog a fresh install serves: `/is/image/sample/testcard` and friends. The
//! pictures are drawn here rather than committed, so the repository holds no binary files and
//! every build produces the same bytes.

use std::fs::{self, File};
use std::io::BufWriter;
use std::path::Path;

use anyhow::{Context, Result};
use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, Rgb, RgbImage};

/// The catalog's name, which is also its folder under the catalog root.
pub const NAME: &str = "sample";

/// Writes `out_dir/sample/` with one PNG, one JPEG and one SVG source, a few KB each.
pub fn write(out_dir: &Path) -> Result<()> {
    let dir = out_dir.join(NAME);
    fs::create_dir_all(&dir).with_context(|| {
        format!(
            "cannot create {}: check the path and its permissions",
            dir.display()
        )
    })?;
    let unwritable = |file: &str| {
        format!(
            "cannot write {}: check the output directory",
            dir.join(file).display()
        )
    };

    test_card()
        .save_with_format(dir.join("testcard.png"), ImageFormat::Png)
        .with_context(|| unwritable("testcard.png"))?;

    let jpeg =
        File::create(dir.join("landscape.jpg")).with_context(|| unwritable("landscape.jpg"))?;
    landscape()
        .write_with_encoder(JpegEncoder::new_with_quality(BufWriter::new(jpeg), 75))
        .with_context(|| unwritable("landscape.jpg"))?;

    fs::write(dir.join("emblem.svg"), EMBLEM).with_context(|| unwritable("emblem.svg"))
}

/// Colour bars over a grey ramp, 320x240: resizing and colour handling show at a glance.
fn test_card() -> RgbImage {
    const BARS: [[u8; 3]; 7] = [
        [191, 191, 191],
        [191, 191, 0],
        [0, 191, 191],
        [0, 191, 0],
        [191, 0, 191],
        [191, 0, 0],
        [0, 0, 191],
    ];
    RgbImage::from_fn(320, 240, |x, y| {
        if y < 160 {
            Rgb(BARS[(x * 7 / 320) as usize])
        } else {
            let level = (x * 16 / 320 * 17) as u8;
            Rgb([level, level, level])
        }
    })
}

/// A sunset, 384x256: smooth gradients, the kind of content JPEG is for.
fn landscape() -> RgbImage {
    const HORIZON: u32 = 168;
    RgbImage::from_fn(384, 256, |x, y| {
        let (dx, dy) = (x as f32 - 264.0, y as f32 - 140.0);
        if y >= HORIZON {
            let depth = (y - HORIZON) as f32 / (256 - HORIZON) as f32;
            Rgb([mix(70, 20, depth), mix(110, 50, depth), mix(40, 20, depth)])
        } else if dx * dx + dy * dy < 30.0 * 30.0 {
            Rgb([255, 220, 120])
        } else {
            let height = 1.0 - y as f32 / HORIZON as f32;
            Rgb([
                mix(250, 30, height),
                mix(150, 60, height),
                mix(80, 130, height),
            ])
        }
    })
}

/// Linear blend from `from` to `to`, `t` in 0..=1.
fn mix(from: u8, to: u8, t: f32) -> u8 {
    (from as f32 + (to as f32 - from as f32) * t).round() as u8
}

/// Shapes only, no text: rendering it needs no fonts on the server.
const EMBLEM: &str = r##"<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="256" height="256" viewBox="0 0 256 256">
  <rect width="256" height="256" rx="32" fill="#1d3557"/>
  <circle cx="128" cy="112" r="64" fill="#f4a261"/>
  <path d="M24 232 L96 136 L144 196 L176 160 L232 232 Z" fill="#2a9d8f"/>
</svg>
"##;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_small_decodable_images() {
        let dir = std::env::temp_dir().join(format!("xtask-catalog-{}", std::process::id()));
        write(&dir).unwrap();
        let catalog = dir.join(NAME);
        for (file, size) in [("testcard.png", (320, 240)), ("landscape.jpg", (384, 256))] {
            let path = catalog.join(file);
            assert_eq!(image::image_dimensions(&path).unwrap(), size, "{file}");
            assert!(
                fs::metadata(&path).unwrap().len() < 16 * 1024,
                "{file} is not small"
            );
        }
        assert!(
            fs::read_to_string(catalog.join("emblem.svg"))
                .unwrap()
                .contains("<svg")
        );
        fs::remove_dir_all(dir).unwrap();
    }
}
