//! What camera and phone photos carry, through the three daemons: EXIF orientation, embedded
//! colour profiles, and sources that cannot be read at all.

mod common;

use std::path::Path;

use common::{Stack, progressive};
use image::codecs::jpeg::JpegEncoder;
use image::codecs::png::PngEncoder;
use image::{ImageEncoder, Rgb, RgbImage};
use moxcms::{ColorProfile, Layout, TransformOptions};

/// The Adobe RGB (1998) profile of Debian's icc-profiles-free, as photo software embeds it.
const ADOBE_RGB: &str = "/usr/share/color/icc/compatibleWithAdobeRGB1998.icc";
/// An sRGB profile from the same package: a tag that changes nothing.
const SRGB: &str = "/usr/share/color/icc/sRGB.icc";

fn profile_file(path: &str) -> Vec<u8> {
    std::fs::read(path)
        .unwrap_or_else(|e| panic!("{path}: {e}; install icc-profiles-free (scripts/install-deps)"))
}

/// Quadrants of four colours far apart: red, green / blue, white, top to bottom. Each
/// of the eight orientations puts a different colour in the upright top-left corner, or
/// the same one with the others swapped.
const RED: [u8; 3] = [220, 20, 20];
const GREEN: [u8; 3] = [20, 200, 20];
const BLUE: [u8; 3] = [20, 20, 220];
const WHITE: [u8; 3] = [250, 250, 250];

/// Stored size: not a multiple of 8, so that DCT-scaled decodes are rounded up.
const STORED: (u32, u32) = (102, 54);

fn quadrants() -> RgbImage {
    let (w, h) = STORED;
    RgbImage::from_fn(w, h, |x, y| {
        Rgb(match (x < w / 2, y < h / 2) {
            (true, true) => RED,
            (false, true) => GREEN,
            (true, false) => BLUE,
            (false, false) => WHITE,
        })
    })
}

fn jpeg(image: &RgbImage, icc: Option<Vec<u8>>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = JpegEncoder::new_with_quality(&mut out, 95);
    if let Some(icc) = icc {
        encoder.set_icc_profile(icc).unwrap();
    }
    encoder.encode_image(image).unwrap();
    out
}

fn png(image: &RgbImage, icc: Vec<u8>) -> Vec<u8> {
    let mut out = Vec::new();
    let mut encoder = PngEncoder::new(&mut out);
    encoder.set_icc_profile(icc).unwrap();
    let (w, h) = image.dimensions();
    encoder
        .write_image(image.as_raw(), w, h, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// `jpeg` with an EXIF APP1 segment holding only the Orientation tag, put right after the
/// start-of-image marker: the compressed pixels stay byte for byte the same.
fn with_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    // TIFF header (little endian, first IFD at 8), one entry: tag 0x0112, SHORT, count 1.
    let mut tiff = b"II\x2a\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00".to_vec();
    tiff.extend_from_slice(&orientation.to_le_bytes());
    tiff.extend_from_slice(&[0, 0, 0, 0, 0, 0]); // value padding, no next IFD
    let payload = [b"Exif\0\0".as_slice(), &tiff].concat();
    let length = u16::try_from(payload.len() + 2).unwrap();
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&length.to_be_bytes());
    out.extend_from_slice(&payload);
    out.extend_from_slice(&jpeg[2..]);
    out
}

fn put(stack: &Stack, name: &str, bytes: &[u8]) {
    std::fs::write(stack.catalog.root.join("cat").join(name), bytes).unwrap();
}

/// `image.width=...` and `image.height=...` of a `req=props` answer.
fn props_size(stack: &Stack, id: &str) -> (u32, u32) {
    let r = stack.get(&format!("/is/image/cat/{id}?req=props"));
    assert_eq!(r.status, 200, "{}", r.text());
    let text = r.text();
    let value = |key: &str| -> u32 {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {text:?}"))
    };
    (value("image.width="), value("image.height="))
}

/// The colours at the centres of the four quadrants: top-left, top-right, bottom-left,
/// bottom-right.
fn corner_colours(image: &RgbImage) -> [[u8; 3]; 4] {
    let (w, h) = image.dimensions();
    let at = |fx: u32, fy: u32| image.get_pixel(w * fx / 4, h * fy / 4).0;
    [at(1, 1), at(3, 1), at(1, 3), at(3, 3)]
}

fn assert_colours(got: [[u8; 3]; 4], want: [[u8; 3]; 4], what: &str) {
    let close = |a: [u8; 3], b: [u8; 3]| a.iter().zip(b).all(|(x, y)| x.abs_diff(y) <= 40);
    assert!(
        got.iter().zip(want).all(|(g, w)| close(*g, w)),
        "{what}: corners {got:?}, expected {want:?}"
    );
}

/// Where each stored quadrant shows for EXIF orientations 1 to 8, as the tag defines them
/// (which sides the stored first row and first column are shown on).
const UPRIGHT: [[[u8; 3]; 4]; 8] = [
    [RED, GREEN, BLUE, WHITE], // 1: as stored
    [GREEN, RED, WHITE, BLUE], // 2: first column on the right
    [WHITE, BLUE, GREEN, RED], // 3: first row at the bottom, first column on the right
    [BLUE, WHITE, RED, GREEN], // 4: first row at the bottom
    [RED, BLUE, GREEN, WHITE], // 5: first row on the left, first column at the top
    [BLUE, RED, WHITE, GREEN], // 6: first row on the right, first column at the top
    [WHITE, GREEN, BLUE, RED], // 7: first row on the right, first column at the bottom
    [GREEN, WHITE, RED, BLUE], // 8: first row on the left, first column at the bottom
];

fn upright_size(orientation: u16) -> (u32, u32) {
    if orientation >= 5 {
        (STORED.1, STORED.0)
    } else {
        STORED
    }
}

#[test]
fn every_exif_orientation_is_served_upright() {
    let s = Stack::start();
    let plain = jpeg(&quadrants(), None);
    for orientation in 1..=8u16 {
        let id = format!("turned{orientation}");
        put(
            &s,
            &format!("{id}.jpg"),
            &with_orientation(&plain, orientation),
        );
        let (w, h) = upright_size(orientation);
        assert_eq!(props_size(&s, &id), (w, h), "orientation {orientation}");
        let want = UPRIGHT[usize::from(orientation - 1)];
        let full = s
            .get(&format!("/is/image/cat/{id}?fmt=png"))
            .image()
            .to_rgb8();
        assert_eq!(full.dimensions(), (w, h), "orientation {orientation}");
        assert_colours(
            corner_colours(&full),
            want,
            &format!("orientation {orientation}"),
        );
        // wid applies to the upright image; a quarter of it is decoded at 1/4 straight away.
        let quarter = s
            .get(&format!("/is/image/cat/{id}?wid={}&fmt=png", w / 4))
            .image()
            .to_rgb8();
        let expected = (
            w / 4,
            (f64::from(h) * f64::from(w / 4) / f64::from(w)).round() as u32,
        );
        assert_eq!(quarter.dimensions(), expected, "orientation {orientation}");
        assert_colours(
            corner_colours(&quarter),
            want,
            &format!("orientation {orientation} at wid={}", w / 4),
        );
    }
}

#[test]
fn orientation_can_be_turned_off_and_etags_tell_the_settings_apart() {
    let honoured = Stack::start();
    put(
        &honoured,
        "turned.jpg",
        &with_orientation(&jpeg(&quadrants(), None), 6),
    );
    let root = honoured.catalog.root.display().to_string();
    let ignored = Stack::start_with(&[
        ("IMAGESERVING_IMAGE_APPLY_ORIENTATION", "false"),
        ("IMAGESERVING_CATALOG_ROOT", &root),
    ]);
    assert_eq!(props_size(&honoured, "turned"), (STORED.1, STORED.0));
    assert_eq!(props_size(&ignored, "turned"), STORED);
    let path = "/is/image/cat/turned?fmt=png";
    let stored = ignored.get(path);
    assert_colours(
        corner_colours(&stored.image().to_rgb8()),
        UPRIGHT[0],
        "ignored",
    );
    let upright = honoured.get(path);
    let (a, b) = (
        upright.header("etag").unwrap(),
        stored.header("etag").unwrap(),
    );
    assert_ne!(a, b, "one ETag for two different images");
    // A client holding the upright image gets the stored one, not 304.
    let r = common::get_with(ignored.ps, path, &[("If-None-Match", a)]);
    assert_eq!(r.status, 200);
    assert_colours(
        corner_colours(&r.image().to_rgb8()),
        UPRIGHT[0],
        "revalidated",
    );
}

/// A photo-like image with saturated colours, where wide-gamut spaces differ most from sRGB.
fn colourful() -> RgbImage {
    RgbImage::from_fn(96, 64, |x, y| {
        let (fx, fy) = (x as f32 / 95.0, y as f32 / 63.0);
        Rgb([
            (255.0 * (1.0 - fx)) as u8,
            (255.0 * fx * (1.0 - fy)) as u8,
            (255.0 * fy) as u8,
        ])
    })
}

/// Peak signal-to-noise ratio of `a` against `b`, in dB.
fn psnr(a: &[u8], b: &[u8]) -> f64 {
    assert_eq!(a.len(), b.len());
    let mse = a
        .iter()
        .zip(b)
        .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
        .sum::<f64>()
        / a.len() as f64;
    10.0 * (255.0 * 255.0 / mse.max(1e-10)).log10()
}

/// The source as a correct viewer shows it: decoded, then converted from `icc` to sRGB.
fn srgb_reference(source: &[u8], icc: &[u8]) -> Vec<u8> {
    let pixels = image::load_from_memory(source)
        .unwrap()
        .to_rgb8()
        .into_raw();
    let transform = ColorProfile::new_from_slice(icc)
        .unwrap()
        .create_transform_8bit(
            Layout::Rgb,
            &ColorProfile::new_srgb(),
            Layout::Rgb,
            TransformOptions::default(),
        )
        .unwrap();
    let mut out = vec![0; pixels.len()];
    transform.transform(&pixels, &mut out).unwrap();
    out
}

#[test]
fn wide_gamut_sources_are_converted_to_srgb() {
    let s = Stack::start();
    let adobe = profile_file(ADOBE_RGB);
    let p3 = ColorProfile::new_display_p3().encode().unwrap();
    let cases = [
        ("adobe.jpg", jpeg(&colourful(), Some(adobe.clone())), adobe),
        ("p3.jpg", jpeg(&colourful(), Some(p3.clone())), p3.clone()),
        ("p3-lossless.png", png(&colourful(), p3.clone()), p3),
    ];
    for (name, bytes, icc) in cases {
        put(&s, name, &bytes);
        let id = Path::new(name).file_stem().unwrap().to_str().unwrap();
        let served = s
            .get(&format!("/is/image/cat/{id}?fmt=png"))
            .image()
            .to_rgb8();
        let reference = srgb_reference(&bytes, &icc);
        let as_stored = image::load_from_memory(&bytes)
            .unwrap()
            .to_rgb8()
            .into_raw();
        let converted = psnr(served.as_raw(), &reference);
        let ignored = psnr(&as_stored, &reference);
        eprintln!(
            "{name}: {converted:.1} dB against the sRGB reference, {ignored:.1} dB ignoring the profile"
        );
        assert!(converted >= 40.0, "{name}: {converted:.1} dB");
        assert!(
            ignored < converted - 5.0,
            "{name}: the source is too close to sRGB to tell"
        );
    }
}

#[test]
fn srgb_tagged_and_untagged_sources_are_served_alike() {
    let s = Stack::start();
    put(&s, "untagged.jpg", &jpeg(&colourful(), None));
    put(
        &s,
        "tagged.jpg",
        &jpeg(&colourful(), Some(profile_file(SRGB))),
    );
    for query in ["fmt=png", "wid=40&fmt=png"] {
        let untagged = s.get(&format!("/is/image/cat/untagged?{query}")).image();
        let tagged = s.get(&format!("/is/image/cat/tagged?{query}")).image();
        assert!(untagged.to_rgb8() == tagged.to_rgb8(), "{query}");
    }
}

#[test]
fn unreadable_sources_are_blamed_on_the_source() {
    let s = Stack::start();
    let whole = jpeg(&quadrants(), None);
    put(&s, "empty.jpg", b"");
    put(&s, "truncated.jpg", &whole[..100]);
    put(
        &s,
        "text.png",
        b"these are notes, saved with the wrong name\n",
    );
    for (id, file) in [
        ("empty", "empty.jpg"),
        ("truncated", "truncated.jpg"),
        ("text", "text.png"),
        ("broken", "broken.jpg"),
    ] {
        let r = s.get(&format!("/is/image/cat/{id}?wid=50"));
        assert_eq!(r.status, 422, "{id}: {}", r.text());
        assert!(r.text().contains("cannot be read"), "{id}: {}", r.text());
        assert_eq!(r.text().lines().count(), 1, "{id}: {}", r.text());
        assert_eq!(
            r.header("cache-control"),
            Some("public, max-age=60"),
            "{id}"
        );
        let log = s.log("es.err");
        let line = format!("cat/{file}: the source cannot be read as an image: ");
        assert!(log.contains(&line), "{id}: {line:?} not in the log: {log}");
    }
    // The same answer for the same request: nothing of a failure is cached.
    assert_eq!(s.get("/is/image/cat/empty?wid=50").status, 422);
}

/// A progressive source reduced while decoding (at 1/8 from its DC scans alone, at 1/4 and
/// 1/2 from each block's lowest frequencies) is still turned upright and converted to sRGB,
/// as its baseline twin is (which libjpeg decodes).
#[test]
fn progressive_photos_reduced_while_decoding_are_upright_and_in_srgb() {
    let s = Stack::start();
    let picture = RgbImage::from_fn(800, 480, |x, y| {
        let (fx, fy) = (x as f32 / 799.0, y as f32 / 479.0);
        let edge = if (x / 100 + y / 60) % 2 == 0 {
            40.0
        } else {
            0.0
        };
        Rgb([
            (215.0 * (1.0 - fx) + edge) as u8,
            (215.0 * fx * (1.0 - fy) + edge) as u8,
            (215.0 * fy + edge) as u8,
        ])
    });
    let baseline = with_orientation(&jpeg(&picture, Some(profile_file(ADOBE_RGB))), 6);
    put(&s, "baseline.jpg", &baseline);
    put(&s, "progressive.jpg", &progressive(&baseline));
    // Upright the photo is 480 wide: 60, 120 and 240 pixels are an eighth, a quarter and a
    // half.
    for wid in [60, 120, 240] {
        let served = |id: &str| {
            s.get(&format!("/is/image/cat/{id}?wid={wid}&fmt=png"))
                .image()
                .to_rgb8()
        };
        let (from_baseline, from_progressive) = (served("baseline"), served("progressive"));
        assert_eq!(from_progressive.dimensions(), (wid, wid * 5 / 3));
        assert_eq!(from_baseline.dimensions(), (wid, wid * 5 / 3));
        if wid == 60 {
            // Without chroma subsampling (as `jpeg` writes) the DC scans give libjpeg's
            // pixels.
            assert!(from_progressive == from_baseline);
        } else {
            // libjpeg's reduced IDCTs also read higher frequencies: close, not equal.
            let db = psnr(from_progressive.as_raw(), from_baseline.as_raw());
            assert!(db >= 40.0, "wid={wid}: {db:.1} dB from the baseline twin");
        }
    }
}
