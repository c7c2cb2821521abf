//! Rasterising SVG sources with resvg, straight at the response size.

use std::sync::Arc;

use resvg::tiny_skia::{Pixmap, Transform};
use resvg::usvg::{ImageHrefResolver, Options, Tree, fontdb};

use super::geometry::Layout;
use super::raster::Raster;

/// Parsing options shared by every render: system fonts loaded once, and no access to
/// files the SVG names (an `<image href="/etc/...">` must not read the disk).
pub struct SvgOptions {
    options: Options<'static>,
}

impl SvgOptions {
    /// `max_embedded_pixels` bounds images embedded as data URLs, which resvg decodes.
    pub fn new(max_embedded_pixels: u64) -> SvgOptions {
        let mut fonts = fontdb::Database::new();
        fonts.load_system_fonts();
        let default_data = ImageHrefResolver::default_data_resolver();
        let options = Options {
            fontdb: Arc::new(fonts),
            image_href_resolver: ImageHrefResolver {
                resolve_data: Box::new(move |mime, data, opts| {
                    let size = imagesize::blob_size(&data).ok()?;
                    let pixels = (size.width as u64).saturating_mul(size.height as u64);
                    (pixels <= max_embedded_pixels).then(|| default_data(mime, data, opts))?
                }),
                resolve_string: Box::new(|_, _| None),
            },
            ..Options::default()
        };
        SvgOptions { options }
    }

    pub fn parse(&self, bytes: &[u8]) -> Result<Tree, String> {
        Tree::from_data(bytes, &self.options).map_err(|e| e.to_string())
    }
}

/// The intrinsic size of a parsed SVG in whole pixels.
pub fn size(tree: &Tree) -> (u32, u32) {
    let s = tree.size();
    (
        (s.width().ceil() as u32).max(1),
        (s.height().ceil() as u32).max(1),
    )
}

/// Renders the layout's source region into a transparent canvas-sized RGBA raster.
pub fn render(tree: &Tree, layout: &Layout) -> Result<Raster, String> {
    let (cw, ch) = layout.canvas;
    let mut pixmap =
        Pixmap::new(cw, ch).ok_or_else(|| format!("cannot allocate a {cw}x{ch} canvas"))?;
    let (src, dst) = (layout.source, layout.dest);
    let (sx, sy) = (
        f64::from(dst.width) / src.width,
        f64::from(dst.height) / src.height,
    );
    let transform = Transform::from_row(
        sx as f32,
        0.0,
        0.0,
        sy as f32,
        (f64::from(dst.x) - src.x * sx) as f32,
        (f64::from(dst.y) - src.y * sy) as f32,
    );
    resvg::render(tree, transform, &mut pixmap.as_mut());
    // Clip to the destination: in crop modes the drawing would spill into the padding.
    let mut data = pixmap.take_demultiplied();
    clear_outside(&mut data, layout);
    Ok(Raster::new(cw, ch, true, data))
}

fn clear_outside(rgba: &mut [u8], layout: &Layout) {
    let (cw, _) = layout.canvas;
    let d = layout.dest;
    if layout.covers_canvas() {
        return;
    }
    for (i, px) in rgba.chunks_exact_mut(4).enumerate() {
        let (x, y) = ((i as u32) % cw, (i as u32) / cw);
        if x < d.x || y < d.y || x >= d.x + d.width || y >= d.y + d.height {
            px.fill(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Dimensions;
    use crate::modifiers::{Fit, FitMode, Size};

    fn bare_options() -> SvgOptions {
        SvgOptions {
            options: Options::default(),
        }
    }

    const SQUARE: &[u8] = br##"<svg xmlns="http://www.w3.org/2000/svg" width="100" height="50">
        <rect width="100" height="50" fill="#ff0000"/></svg>"##;

    #[test]
    fn renders_at_the_requested_size() {
        let tree = bare_options().parse(SQUARE).unwrap();
        assert_eq!(size(&tree), (100, 50));
        let max = Dimensions::new(2000, 2000);
        let size = Size::Box {
            wid: Some(400),
            hei: None,
        };
        let upscale = Some(Fit {
            mode: FitMode::Fit,
            upscale: true,
        });
        let layout = Layout::new((100, 50), size, upscale, max, max).unwrap();
        let r = render(&tree, &layout).unwrap();
        assert_eq!((r.width, r.height), (400, 200));
        assert_eq!(&r.data[..4], &[255, 0, 0, 255]);
    }

    #[test]
    fn ignores_references_to_local_files() {
        let svg = br#"<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">
            <image width="10" height="10" xlink:href="/etc/passwd"/></svg>"#;
        let opts = SvgOptions::new(1000);
        assert!(opts.parse(svg).is_ok());
    }

    #[test]
    fn refuses_what_is_not_svg() {
        assert!(bare_options().parse(b"\x89PNG not svg").is_err());
    }
}
