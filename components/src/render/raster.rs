//! Pixel buffers and the one operation the protocol needs on them: scale a region of the
//! source into the response canvas, padded with the background colour and, unless the
//! response keeps transparency, flattened onto it.

use std::cell::RefCell;

use fast_image_resize::images::Image;
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};

use super::geometry::Layout;
use crate::modifiers::Color;

/// An 8-bit RGB or RGBA image (straight, not premultiplied, alpha).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Raster {
    pub width: u32,
    pub height: u32,
    pub has_alpha: bool,
    pub data: Vec<u8>,
}

/// Opaque white, the padding colour when the request gives no `bgc`.
pub const WHITE: Color = Color {
    r: 255,
    g: 255,
    b: 255,
    a: 255,
};

const TRANSPARENT: Color = Color {
    r: 0,
    g: 0,
    b: 0,
    a: 0,
};

thread_local! {
    /// One resizer per render thread: its scratch buffers are reused between images.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

impl Raster {
    pub fn new(width: u32, height: u32, has_alpha: bool, data: Vec<u8>) -> Raster {
        debug_assert_eq!(
            data.len(),
            width as usize * height as usize * if has_alpha { 4 } else { 3 }
        );
        Raster {
            width,
            height,
            has_alpha,
            data,
        }
    }

    pub fn channels(&self) -> usize {
        if self.has_alpha { 4 } else { 3 }
    }

    /// Builds the response image for `layout`. `self` is the layout's source, or a decode
    /// of it reduced by `reduction` (JPEG shrink-on-load: source pixel x is x * reduction).
    pub fn compose(
        self,
        layout: &Layout,
        reduction: f64,
        background: Option<Color>,
        keep_alpha: bool,
    ) -> Result<Raster, String> {
        let scaled = self.scale_region(layout, reduction)?;
        // The scaled image is the response when nothing shows through or around it.
        let covers = layout.covers_canvas();
        let underlay = scaled.has_alpha && background.is_some();
        if covers && keep_alpha == scaled.has_alpha && !underlay {
            return Ok(scaled);
        }
        let fill = match (background, keep_alpha) {
            (Some(c), true) => c,
            (Some(c), false) => Color { a: 255, ..c },
            (None, true) => TRANSPARENT,
            (None, false) => WHITE,
        };
        let mut canvas = Raster::filled(layout.canvas, keep_alpha, fill);
        canvas.draw(&scaled, layout.dest.x, layout.dest.y);
        Ok(canvas)
    }

    /// The layout's source region, resampled to the size of its destination rectangle.
    fn scale_region(self, layout: &Layout, reduction: f64) -> Result<Raster, String> {
        let (x, y) = (layout.source.x * reduction, layout.source.y * reduction);
        let (w, h) = (
            layout.source.width * reduction,
            layout.source.height * reduction,
        );
        let (dw, dh) = (layout.dest.width, layout.dest.height);
        // Within a pixel of the destination size (the whole image, or a DCT-scaled decode,
        // 2000x1333 at 1/4 is 500x333.25 for a 500x333 response): cut the region out
        // instead of resampling it.
        let near = |a: f64, b: u32| (a - f64::from(b)).abs() < 1.0;
        let (cx, cy) = (x.round(), y.round());
        if near(w, dw)
            && near(h, dh)
            && (x - cx).abs() < 0.5
            && (y - cy).abs() < 0.5
            && cx as u32 + dw <= self.width
            && cy as u32 + dh <= self.height
        {
            return Ok(self.cut(cx as u32, cy as u32, dw, dh));
        }
        let pixel_type = if self.has_alpha {
            PixelType::U8x4
        } else {
            PixelType::U8x3
        };
        let has_alpha = self.has_alpha;
        let src = Image::from_vec_u8(self.width, self.height, self.data, pixel_type)
            .map_err(|e| format!("bad source buffer: {e}"))?;
        let mut dst = Image::new(dw, dh, pixel_type);
        let options = ResizeOptions::new()
            .resize_alg(ResizeAlg::Convolution(FilterType::Lanczos3))
            .crop(x, y, w, h);
        RESIZER
            .with(|r| r.borrow_mut().resize(&src, &mut dst, &options))
            .map_err(|e| format!("resize failed: {e}"))?;
        Ok(Raster::new(dw, dh, has_alpha, dst.into_vec()))
    }

    /// The `w` x `h` region at (x, y), which must lie inside the image, in place: each row
    /// moves towards the start of the buffer, never over a row still to be moved.
    fn cut(mut self, x: u32, y: u32, w: u32, h: u32) -> Raster {
        let ch = self.channels();
        let (stride, row) = (self.width as usize * ch, w as usize * ch);
        let first = y as usize * stride + x as usize * ch;
        if row != stride || first != 0 {
            for r in 0..h as usize {
                let start = first + r * stride;
                self.data.copy_within(start..start + row, r * row);
            }
        }
        self.data.truncate(row * h as usize);
        Raster::new(w, h, self.has_alpha, self.data)
    }

    fn filled(size: (u32, u32), has_alpha: bool, c: Color) -> Raster {
        let pixel: &[u8] = if has_alpha {
            &[c.r, c.g, c.b, c.a]
        } else {
            &[c.r, c.g, c.b]
        };
        let data = pixel.repeat(size.0 as usize * size.1 as usize);
        Raster::new(size.0, size.1, has_alpha, data)
    }

    /// Draws `top` over `self` at (x, y), blending by `top`'s alpha ("source over").
    fn draw(&mut self, top: &Raster, x: u32, y: u32) {
        let (dc, tc) = (self.channels(), top.channels());
        let width = top.width.min(self.width.saturating_sub(x)) as usize;
        let rows = top.height.min(self.height.saturating_sub(y)) as usize;
        for row in 0..rows {
            let d0 = ((y as usize + row) * self.width as usize + x as usize) * dc;
            let t0 = row * top.width as usize * tc;
            let dst = &mut self.data[d0..d0 + width * dc];
            let src = &top.data[t0..t0 + width * tc];
            for (d, s) in dst.chunks_exact_mut(dc).zip(src.chunks_exact(tc)) {
                blend(d, s);
            }
        }
    }
}

/// One pixel of "source over": `d` is RGB or RGBA, `s` is RGB (opaque) or RGBA.
fn blend(d: &mut [u8], s: &[u8]) {
    let sa = if s.len() == 4 { u32::from(s[3]) } else { 255 };
    if sa == 255 {
        d[..3].copy_from_slice(&s[..3]);
        if d.len() == 4 {
            d[3] = 255;
        }
        return;
    }
    let da = if d.len() == 4 { u32::from(d[3]) } else { 255 };
    // Result alpha, and the destination's weight, in 0..=255*255.
    let dw = da * (255 - sa);
    let out_a = sa * 255 + dw;
    if out_a == 0 {
        d.fill(0);
        return;
    }
    for i in 0..3 {
        let v = (u32::from(s[i]) * sa * 255 + u32::from(d[i]) * dw + out_a / 2) / out_a;
        d[i] = v as u8;
    }
    if d.len() == 4 {
        d[3] = ((out_a + 127) / 255) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dimensions;
    use crate::modifiers::{Fit, FitMode, Size};

    fn layout(src: (u32, u32), w: u32, h: u32, mode: FitMode) -> Layout {
        let max = Dimensions::new(4000, 4000);
        let size = Size::Box {
            wid: Some(w),
            hei: Some(h),
        };
        let fit = Some(Fit {
            mode,
            upscale: false,
        });
        Layout::new(src, size, fit, max, max).unwrap()
    }

    fn solid(w: u32, h: u32, px: &[u8]) -> Raster {
        Raster::new(w, h, px.len() == 4, px.repeat((w * h) as usize))
    }

    #[test]
    fn pads_with_background() {
        let red = solid(40, 20, &[255, 0, 0]);
        let bg = Color {
            r: 0,
            g: 0,
            b: 255,
            a: 255,
        };
        let out = red
            .compose(
                &layout((40, 20), 10, 10, FitMode::Fit),
                1.0,
                Some(bg),
                false,
            )
            .unwrap();
        assert_eq!((out.width, out.height, out.has_alpha), (10, 10, false));
        assert_eq!(&out.data[..3], &[0, 0, 255], "top row is padding");
        let mid = (5 * 10 + 5) * 3;
        assert_eq!(&out.data[mid..mid + 3], &[255, 0, 0]);
    }

    #[test]
    fn flattens_transparency_onto_white() {
        let clear = solid(8, 8, &[0, 0, 0, 0]);
        let out = clear
            .compose(&layout((8, 8), 8, 8, FitMode::Fit), 1.0, None, false)
            .unwrap();
        assert!(out.data.iter().all(|&v| v == 255));
    }

    #[test]
    fn keeps_transparency_for_png_alpha() {
        let half = solid(8, 4, &[10, 20, 30, 128]);
        let out = half
            .compose(&layout((8, 4), 8, 8, FitMode::Fit), 1.0, None, true)
            .unwrap();
        assert!(out.has_alpha);
        assert_eq!(out.data[3], 0, "padding is transparent");
        let mid = (4 * 8 + 4) * 4;
        assert_eq!(&out.data[mid..mid + 4], &[10, 20, 30, 128]);
    }

    /// Rows of different greys: any resampling would blend them.
    fn stripes(w: u32, h: u32) -> Raster {
        let data = (0..h)
            .flat_map(|r| vec![(r * 37 % 256) as u8; w as usize * 3])
            .collect();
        Raster::new(w, h, false, data)
    }

    #[test]
    fn a_dct_scaled_decode_within_a_pixel_of_its_destination_is_cut_not_resampled() {
        // 2000x1333 decoded at 1/4 is 500x334 (rounded up) for a 500x333 response.
        let decoded = stripes(500, 334);
        let max = Dimensions::new(2000, 2000);
        let size = Size::Box {
            wid: Some(500),
            hei: None,
        };
        let l = Layout::new((2000, 1333), size, None, max, max).unwrap();
        let expected = decoded.data[..500 * 333 * 3].to_vec();
        let out = decoded.compose(&l, 0.25, None, false).unwrap();
        assert_eq!((out.width, out.height), (500, 333));
        assert!(out.data == expected, "pixels are copied as they are");
    }

    #[test]
    fn a_cut_keeps_the_pixels_of_an_inner_region() {
        let source = Raster::new(8, 4, false, (0..8 * 4 * 3).map(|v| v as u8).collect());
        let out = source
            .clone()
            .compose(&layout((8, 4), 4, 4, FitMode::Crop), 1.0, None, false)
            .unwrap();
        assert_eq!((out.width, out.height), (4, 4));
        for row in 0..4 {
            let from = (row * 8 + 2) * 3;
            assert_eq!(
                &out.data[row * 12..row * 12 + 12],
                &source.data[from..from + 12],
                "row {row}"
            );
        }
    }

    #[test]
    fn reduced_decodes_map_to_the_original_region() {
        // A 100x100 source decoded at 1/2: the crop must use half coordinates.
        let decoded = solid(50, 50, &[7, 7, 7]);
        let l = layout((100, 100), 20, 10, FitMode::Crop);
        let out = decoded.compose(&l, 0.5, None, false).unwrap();
        assert_eq!((out.width, out.height), (20, 10));
        assert!(out.data.iter().all(|&v| v == 7));
    }
}
