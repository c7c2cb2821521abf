//! Where the source lands in the response: the response size for every size request and
//! fit mode, and the part of the source visible in it (cropping) or not filling it (padding).

use crate::config::Dimensions;
use crate::modifiers::{Fit, FitMode, Size};

/// The response canvas and the mapping from source pixels onto it. Crop and pad are both
/// centred, as in Image Serving without `align=`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub canvas: (u32, u32),
    /// The rectangle of the canvas covered by the image; the rest is background.
    pub dest: Rect,
    /// The source region (in source pixels, fractional) scaled into `dest`.
    pub source: SourceRect,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rect {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SourceRect {
    pub x: f64,
    pub y: f64,
    pub width: f64,
    pub height: f64,
}

/// Why no layout could be made: the response would exceed MaxPix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TooLarge {
    pub canvas: (u32, u32),
    pub max_pix: Dimensions,
}

impl std::fmt::Display for TooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the response would be {}x{} pixels, larger than MaxPix {}",
            self.canvas.0, self.canvas.1, self.max_pix
        )
    }
}

impl Layout {
    /// Lays out a `source`-sized image for the request. `fit` defaults to `fit,0`.
    pub fn new(
        source: (u32, u32),
        size: Size,
        fit: Option<Fit>,
        default_pix: Dimensions,
        max_pix: Dimensions,
    ) -> Result<Layout, TooLarge> {
        let (sw, sh) = (f64::from(source.0.max(1)), f64::from(source.1.max(1)));
        let scaled = |sx: f64, sy: f64| (px(sw * sx), px(sh * sy));
        let (canvas, sx, sy) = match size {
            Size::Default if default_pix.is_unlimited() => ((px(sw), px(sh)), 1.0, 1.0),
            Size::Default => {
                let s = (f64::from(default_pix.width) / sw)
                    .min(f64::from(default_pix.height) / sh)
                    .min(1.0);
                (scaled(s, s), s, s)
            }
            Size::Scale(inverse) => {
                let s = 1.0 / inverse;
                (scaled(s, s), s, s)
            }
            Size::Box { wid, hei } => {
                let fit = fit.unwrap_or_default();
                // A missing side follows the source's aspect ratio.
                let (w, h) = match (wid, hei) {
                    (Some(w), Some(h)) => (f64::from(w), f64::from(h)),
                    (Some(w), None) => (f64::from(w), f64::from(px(sh * f64::from(w) / sw))),
                    (None, Some(h)) => (f64::from(px(sw * f64::from(h) / sh)), f64::from(h)),
                    (None, None) => (sw, sh),
                };
                let (xs, ys) = (w / sw, h / sh);
                let cap = |s: f64| if fit.upscale { s } else { s.min(1.0) };
                let exact = (px(w), px(h));
                match fit.mode {
                    FitMode::Fit => (exact, cap(xs.min(ys)), cap(xs.min(ys))),
                    FitMode::Crop => (exact, cap(xs.max(ys)), cap(xs.max(ys))),
                    FitMode::Constrain => {
                        let s = cap(xs.min(ys));
                        (scaled(s, s), s, s)
                    }
                    FitMode::Wrap => {
                        let s = cap(xs.max(ys));
                        (scaled(s, s), s, s)
                    }
                    FitMode::Stretch => (exact, cap(xs), cap(ys)),
                    FitMode::HFit => (exact, cap(xs), cap(xs)),
                    FitMode::VFit => (exact, cap(ys), cap(ys)),
                }
            }
        };
        if canvas.0 > max_pix.width || canvas.1 > max_pix.height {
            return Err(TooLarge { canvas, max_pix });
        }
        let (x, src_x, width, src_w) = axis(canvas.0, sw, sx);
        let (y, src_y, height, src_h) = axis(canvas.1, sh, sy);
        Ok(Layout {
            canvas,
            dest: Rect {
                x,
                y,
                width,
                height,
            },
            source: SourceRect {
                x: src_x,
                y: src_y,
                width: src_w,
                height: src_h,
            },
        })
    }

    /// A canvas of `size` entirely covered by a source of the same size.
    pub fn covering(size: (u32, u32)) -> Layout {
        Layout {
            canvas: size,
            dest: Rect {
                x: 0,
                y: 0,
                width: size.0,
                height: size.1,
            },
            source: SourceRect {
                x: 0.0,
                y: 0.0,
                width: f64::from(size.0),
                height: f64::from(size.1),
            },
        }
    }

    /// Whether the image covers the whole canvas (no background shows).
    pub fn covers_canvas(&self) -> bool {
        self.dest.x == 0 && self.dest.y == 0 && (self.dest.width, self.dest.height) == self.canvas
    }

    /// The scale from source to response pixels, the larger of the two axes: what a
    /// decoder may shrink to without losing detail the response needs.
    pub fn scale(&self) -> f64 {
        (f64::from(self.dest.width) / self.source.width)
            .max(f64::from(self.dest.height) / self.source.height)
    }
}

/// Rounds a length to whole pixels, at least one (and saturating far beyond any limit).
fn px(v: f64) -> u32 {
    (v.round() as u32).max(1)
}

/// One axis: a source of `len` scaled by `s` and centred on `canvas` pixels. Returns the
/// covered canvas span (start, length) and the source span shown in it.
fn axis(canvas: u32, len: f64, s: f64) -> (u32, f64, u32, f64) {
    let canvas_f = f64::from(canvas);
    let scaled = len * s;
    // An image within a pixel of the canvas covers it: no sliver of background.
    if (scaled - canvas_f).abs() < 1.0 {
        return (0, 0.0, canvas, len);
    }
    let offset = (canvas_f - scaled) / 2.0;
    let start = offset.max(0.0).round().min(canvas_f - 1.0);
    let end = (offset + scaled).min(canvas_f).round().max(start + 1.0);
    let src_start = ((start - offset) / s).clamp(0.0, len - MIN_SPAN);
    let src_len = ((end - start) / s).clamp(MIN_SPAN, len - src_start);
    (start as u32, src_start, (end - start) as u32, src_len)
}

/// The thinnest source span handed to the resizer, which needs a non-empty region.
const MIN_SPAN: f64 = 1e-3;

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Dimensions = Dimensions::new(2000, 2000);
    const DEF: Dimensions = Dimensions::new(1280, 1280);

    fn lay(
        src: (u32, u32),
        wid: Option<u32>,
        hei: Option<u32>,
        fit: Option<(FitMode, bool)>,
    ) -> Layout {
        let fit = fit.map(|(mode, upscale)| Fit { mode, upscale });
        Layout::new(src, Size::Box { wid, hei }, fit, DEF, MAX).unwrap()
    }

    fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
        Rect {
            x,
            y,
            width,
            height,
        }
    }

    #[test]
    fn width_only_keeps_aspect() {
        let l = lay((2000, 1333), Some(500), None, None);
        assert_eq!(l.canvas, (500, 333));
        assert!(l.covers_canvas());
        assert!((l.scale() - 0.25).abs() < 0.001);
    }

    #[test]
    fn fit_pads_to_the_exact_box() {
        let l = lay(
            (400, 200),
            Some(100),
            Some(100),
            Some((FitMode::Fit, false)),
        );
        assert_eq!(l.canvas, (100, 100));
        assert_eq!(l.dest, rect(0, 25, 100, 50));
    }

    #[test]
    fn constrain_shrinks_the_box_instead_of_padding() {
        let l = lay(
            (400, 200),
            Some(100),
            Some(100),
            Some((FitMode::Constrain, false)),
        );
        assert_eq!(l.canvas, (100, 50));
        assert!(l.covers_canvas());
    }

    #[test]
    fn crop_fills_and_cuts_the_long_side() {
        let l = lay(
            (400, 200),
            Some(100),
            Some(100),
            Some((FitMode::Crop, false)),
        );
        assert_eq!(l.canvas, (100, 100));
        assert_eq!(l.dest, rect(0, 0, 100, 100));
        assert_eq!((l.source.x, l.source.width), (100.0, 200.0));
        assert_eq!(l.source.height, 200.0);
    }

    #[test]
    fn wrap_grows_the_box_instead_of_cropping() {
        let l = lay(
            (400, 200),
            Some(100),
            Some(100),
            Some((FitMode::Wrap, false)),
        );
        assert_eq!(l.canvas, (200, 100));
        assert!(l.covers_canvas());
    }

    #[test]
    fn stretch_scales_axes_independently() {
        let l = lay(
            (400, 200),
            Some(100),
            Some(100),
            Some((FitMode::Stretch, false)),
        );
        assert_eq!(l.canvas, (100, 100));
        assert!(l.covers_canvas());
    }

    #[test]
    fn hfit_and_vfit_follow_one_axis() {
        let h = lay(
            (400, 200),
            Some(100),
            Some(100),
            Some((FitMode::HFit, false)),
        );
        assert_eq!(h.dest, rect(0, 25, 100, 50));
        let v = lay(
            (400, 200),
            Some(100),
            Some(100),
            Some((FitMode::VFit, false)),
        );
        assert_eq!(v.canvas, (100, 100));
        assert_eq!(v.dest, rect(0, 0, 100, 100));
        assert_eq!((v.source.x, v.source.width), (100.0, 200.0));
    }

    #[test]
    fn no_upscale_pads_small_sources() {
        let l = lay((50, 50), Some(100), Some(100), Some((FitMode::Fit, false)));
        assert_eq!(l.canvas, (100, 100));
        assert_eq!(l.dest, rect(25, 25, 50, 50));
        let c = lay(
            (50, 50),
            Some(100),
            Some(100),
            Some((FitMode::Constrain, false)),
        );
        assert_eq!(c.canvas, (50, 50));
        let u = lay((50, 50), Some(100), Some(100), Some((FitMode::Fit, true)));
        assert_eq!(u.dest, rect(0, 0, 100, 100));
    }

    #[test]
    fn default_and_scale_sizes() {
        let d = Layout::new((4000, 1000), Size::Default, None, DEF, MAX).unwrap();
        assert_eq!(d.canvas, (1280, 320));
        let small = Layout::new((30, 20), Size::Default, None, DEF, MAX).unwrap();
        assert_eq!(small.canvas, (30, 20));
        let s = Layout::new((300, 200), Size::Scale(2.0), None, DEF, MAX).unwrap();
        assert_eq!(s.canvas, (150, 100));
    }

    #[test]
    fn refuses_more_than_max_pix() {
        let e = Layout::new(
            (100, 100),
            Size::Box {
                wid: Some(3000),
                hei: None,
            },
            None,
            DEF,
            MAX,
        )
        .unwrap_err();
        assert_eq!(e.canvas, (3000, 3000));
        assert!(e.to_string().contains("MaxPix 2000,2000"));
    }
}
