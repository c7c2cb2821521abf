//! EXIF orientation: cameras and phones store pixels as the sensor read them and say in a
//! tag how to show them. Sources are turned upright after decoding, so every size and crop
//! applies to the image as it is shown.

use image::metadata::Orientation;
use image::{DynamicImage, RgbImage, RgbaImage};

use super::raster::Raster;

/// How an orientation maps stored axes onto upright ones: whether the axes swap, and then
/// whether the upright x and y axes run backwards.
fn axes(orientation: Orientation) -> (bool, bool, bool) {
    match orientation {
        Orientation::NoTransforms => (false, false, false),
        Orientation::FlipHorizontal => (false, true, false),
        Orientation::Rotate180 => (false, true, true),
        Orientation::FlipVertical => (false, false, true),
        Orientation::Rotate90FlipH => (true, false, false),
        Orientation::Rotate90 => (true, true, false),
        Orientation::Rotate270FlipH => (true, true, true),
        Orientation::Rotate270 => (true, false, true),
    }
}

/// The upright size of a `stored`-sized image.
pub fn upright_size(stored: (u32, u32), orientation: Orientation) -> (u32, u32) {
    if axes(orientation).0 {
        (stored.1, stored.0)
    } else {
        stored
    }
}

/// Turns `raster` upright. `padding` is how far its stored width and height run past the
/// image (a DCT-scaled decode's rounding, on the right and at the bottom); returns the
/// upright raster and where the image starts in it, which a mirrored axis moves.
pub fn upright(
    raster: Raster,
    orientation: Orientation,
    padding: (f64, f64),
) -> (Raster, (f64, f64)) {
    if orientation == Orientation::NoTransforms {
        return (raster, (0.0, 0.0));
    }
    let (swap, mirror_x, mirror_y) = axes(orientation);
    let (pad_x, pad_y) = if swap {
        (padding.1, padding.0)
    } else {
        padding
    };
    let origin = (
        if mirror_x { pad_x } else { 0.0 },
        if mirror_y { pad_y } else { 0.0 },
    );
    let (w, h, alpha) = (raster.width, raster.height, raster.has_alpha);
    let mut image = if alpha {
        RgbaImage::from_raw(w, h, raster.data).map(DynamicImage::ImageRgba8)
    } else {
        RgbImage::from_raw(w, h, raster.data).map(DynamicImage::ImageRgb8)
    }
    .expect("a raster's buffer holds its pixels");
    image.apply_orientation(orientation);
    let (w, h) = (image.width(), image.height());
    let data = if alpha {
        image.into_rgba8().into_raw()
    } else {
        image.into_rgb8().into_raw()
    };
    (Raster::new(w, h, alpha, data), origin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 3x2 image whose pixels are numbered 0 to 5 row by row (in the red channel).
    fn numbered() -> Raster {
        Raster::new(3, 2, false, (0..6).flat_map(|v| [v, 0, 0]).collect())
    }

    fn reds(r: &Raster) -> Vec<u8> {
        r.data.chunks_exact(3).map(|p| p[0]).collect()
    }

    /// Every EXIF orientation, as the tag's definition draws it: where the stored first row
    /// and first column end up.
    #[test]
    fn every_orientation_turns_the_pixels_upright() {
        for (exif, size, shown) in [
            (1, (3, 2), vec![0, 1, 2, 3, 4, 5]),
            (2, (3, 2), vec![2, 1, 0, 5, 4, 3]),
            (3, (3, 2), vec![5, 4, 3, 2, 1, 0]),
            (4, (3, 2), vec![3, 4, 5, 0, 1, 2]),
            (5, (2, 3), vec![0, 3, 1, 4, 2, 5]),
            (6, (2, 3), vec![3, 0, 4, 1, 5, 2]),
            (7, (2, 3), vec![5, 2, 4, 1, 3, 0]),
            (8, (2, 3), vec![2, 5, 1, 4, 0, 3]),
        ] {
            let o = Orientation::from_exif(exif).unwrap();
            let (r, _) = upright(numbered(), o, (0.0, 0.0));
            assert_eq!((r.width, r.height), size, "orientation {exif}");
            assert_eq!(upright_size((3, 2), o), size, "orientation {exif}");
            assert_eq!(reds(&r), shown, "orientation {exif}");
        }
    }

    #[test]
    fn padding_comes_first_on_mirrored_axes() {
        let pad = (0.25, 0.75);
        let origin = |exif| upright(numbered(), Orientation::from_exif(exif).unwrap(), pad).1;
        assert_eq!(origin(1), (0.0, 0.0));
        assert_eq!(origin(2), (0.25, 0.0));
        assert_eq!(origin(3), (0.25, 0.75));
        assert_eq!(
            origin(6),
            (0.75, 0.0),
            "stored rows become columns, right to left"
        );
        assert_eq!(origin(8), (0.0, 0.25));
    }
}
