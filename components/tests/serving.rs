//! The protocol, end to end through the three daemons: sizes, formats, caching, the status
//! page, catalog files and every class of error.

mod common;

use common::{DRAWING, LOGO, PHOTO, Stack};

#[test]
fn fit_modes_give_the_documented_sizes() {
    let s = Stack::start();
    let (w, h) = PHOTO; // 640x480, 4:3
    assert_eq!((w, h), (640, 480));
    let cases: [(&str, (u32, u32)); 17] = [
        ("wid=320", (320, 240)),
        ("hei=120", (160, 120)),
        ("wid=200&hei=200", (200, 200)),
        ("wid=200&hei=200&fit=fit", (200, 200)),
        ("wid=200&hei=200&fit=constrain", (200, 150)),
        ("wid=200&hei=200&fit=crop", (200, 200)),
        ("wid=200&hei=200&fit=wrap", (267, 200)),
        ("wid=200&hei=200&fit=stretch", (200, 200)),
        ("wid=200&hei=200&fit=hfit", (200, 200)),
        ("wid=200&hei=200&fit=vfit", (200, 200)),
        ("wid=1000&hei=1000&fit=constrain,0", (640, 480)),
        ("wid=1000&hei=1000&fit=constrain,1", (1000, 750)),
        ("wid=1000&hei=1000&fit=wrap,1", (1333, 1000)),
        ("wid=1000&hei=1000&fit=fit,0", (1000, 1000)),
        ("scl=2", (320, 240)),
        ("wid=100&scl=4", (160, 120)),
        ("", (640, 480)),
    ];
    for (query, want) in cases {
        let r = s.get(&format!("/is/image/cat/photo?{query}"));
        assert_eq!(r.size(), want, "{query}");
    }
}

#[test]
fn padding_cropping_and_background() {
    let s = Stack::start();
    // fit pads top and bottom of a 4:3 photo in a square: bgc shows there.
    let img = s
        .get("/is/image/cat/photo?wid=200&hei=200&fit=fit&bgc=ff0000&fmt=png")
        .image()
        .to_rgb8();
    assert_eq!(img.get_pixel(100, 2).0, [255, 0, 0]);
    assert_ne!(img.get_pixel(100, 100).0, [255, 0, 0]);
    // crop fills the square: no background at the edges.
    let img = s
        .get("/is/image/cat/photo?wid=200&hei=200&fit=crop&bgc=ff0000&fmt=png")
        .image()
        .to_rgb8();
    assert_ne!(img.get_pixel(100, 2).0, [255, 0, 0]);
    // hfit keeps the width: pads vertically; vfit keeps the height: crops horizontally.
    let img = s
        .get("/is/image/cat/photo?wid=200&hei=200&fit=hfit&bgc=0000ff&fmt=png")
        .image()
        .to_rgb8();
    assert_eq!(img.get_pixel(100, 2).0, [0, 0, 255]);
    let img = s
        .get("/is/image/cat/photo?wid=200&hei=200&fit=vfit&bgc=0000ff&fmt=png")
        .image()
        .to_rgb8();
    assert_ne!(img.get_pixel(2, 100).0, [0, 0, 255]);
    // A transparent source keeps its alpha only in png-alpha; otherwise it is flattened.
    let alpha = s.get("/is/image/cat/logo?fmt=png-alpha").image().to_rgba8();
    assert_eq!(alpha.dimensions(), LOGO);
    assert_eq!(alpha.get_pixel(10, 50).0[3], 0);
    let flat = s
        .get("/is/image/cat/logo?fmt=png&bgc=00ff00")
        .image()
        .to_rgba8();
    assert_eq!(flat.get_pixel(10, 50).0, [0, 255, 0, 255]);
}

#[test]
fn formats_and_quality() {
    let s = Stack::start();
    for (fmt, content_type, format) in [
        ("jpeg", "image/jpeg", image::ImageFormat::Jpeg),
        ("jpg", "image/jpeg", image::ImageFormat::Jpeg),
        ("png", "image/png", image::ImageFormat::Png),
        ("png-alpha", "image/png", image::ImageFormat::Png),
        ("webp", "image/webp", image::ImageFormat::WebP),
        ("gif", "image/gif", image::ImageFormat::Gif),
        ("tif", "image/tiff", image::ImageFormat::Tiff),
    ] {
        let r = s.get(&format!("/is/image/cat/photo?wid=100&fmt={fmt}"));
        assert_eq!(r.status, 200, "{fmt}: {}", r.text());
        assert_eq!(r.header("content-type"), Some(content_type), "{fmt}");
        assert_eq!(image::guess_format(&r.body).unwrap(), format, "{fmt}");
        assert_eq!(r.size(), (100, 75), "{fmt}");
    }
    // Default is JPEG; every source format is read.
    for id in ["photo", "logo", "pic", "anim", "scan", "sub/nested"] {
        let r = s.get(&format!("/is/image/cat/{id}?wid=50"));
        assert_eq!(
            r.header("content-type"),
            Some("image/jpeg"),
            "{id}: {}",
            r.text()
        );
        assert_eq!(r.size().0, 50, "{id}");
    }
    let size = |q: &str| {
        s.get(&format!("/is/image/cat/photo?wid=400&{q}"))
            .body
            .len()
    };
    assert!(
        size("qlt=20") < size("qlt=95"),
        "JPEG quality has no effect"
    );
    assert!(
        size("qlt=20&fmt=webp") < size("qlt=95&fmt=webp"),
        "WebP quality has no effect"
    );
    assert!(
        size("qlt=80,1") > size("qlt=80,0"),
        "full chroma should cost bytes"
    );
}

#[test]
fn props_status_page_and_content() {
    let s = Stack::start();
    let props = s.get("/is/image/cat/photo?req=props");
    assert_eq!(props.status, 200);
    assert!(
        props
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );
    let text = props.text();
    for line in ["image.width=640", "image.height=480", "image.format=jpeg"] {
        assert!(
            text.lines().any(|l| l == line),
            "{line} missing from {text}"
        );
    }
    let svg_props = s.get("/is/image/cat/drawing?req=props").text();
    assert!(
        svg_props.contains(&format!("image.width={}", DRAWING.0)),
        "{svg_props}"
    );

    for path in ["/is/image", "/is/image/"] {
        let status = s.get(path);
        assert_eq!(status.status, 200);
        let text = status.text();
        for key in [
            "version=",
            "uptime=",
            "imageServer.status=ok",
            "imageServer.roundTripMs=",
            "imageServer.version=",
            "imageServer.uptime=",
            "svgServer.status=ok",
            "svgServer.version=",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(key)),
                "{key} missing from {text}"
            );
        }
    }

    let notes = s.get("/is/content/cat/notes.txt");
    assert_eq!(
        (notes.status, notes.text().as_str()),
        (200, "catalog notes\n")
    );
    let original = std::fs::read(s.catalog.root.join("cat/photo.jpg")).unwrap();
    let photo = s.get("/is/content/cat/photo.jpg");
    assert_eq!(photo.header("content-type"), Some("image/jpeg"));
    assert_eq!(photo.body, original);
    let etag = photo.header("etag").unwrap().to_owned();
    let again = common::get_with(
        s.ps,
        "/is/content/cat/photo.jpg",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(again.status, 304);
    let svg = s.get("/is/content/cat/drawing.svg");
    assert!(
        svg.header("content-security-policy")
            .unwrap()
            .contains("sandbox")
    );

    // Every request went to the access log on standard output.
    s.wait_until(|s| {
        s.log("ps.out")
            .contains("\"GET /is/content/cat/notes.txt\" 200")
    });
}

#[test]
fn etags_and_the_response_cache() {
    let s = Stack::start();
    let first = s.get("/is/image/cat/photo?wid=123");
    assert_eq!(first.status, 200);
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(first.header("cache-control").unwrap().contains("max-age="));
    let second = s.get("/is/image/cat/photo?wid=123");
    assert_eq!(second.body, first.body);
    assert_eq!(second.header("etag"), Some(etag.as_str()));
    let not_modified = common::get_with(
        s.ps,
        "/is/image/cat/photo?wid=123",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(not_modified.status, 304);
    assert!(not_modified.body.is_empty());
    assert_eq!(not_modified.header("etag"), Some(etag.as_str()));
    // Another request, another tag; the same request spelled differently, the same tag.
    let other = s.get("/is/image/cat/photo?wid=124");
    assert_ne!(other.header("etag"), Some(etag.as_str()));
    let respelled = s.get("/is/image/cat/photo?WID=123&fmt=jpeg&unknown=1");
    assert_ne!(
        respelled.header("etag"),
        Some(etag.as_str()),
        "fmt=jpeg is explicit: a distinct request"
    );
    let respelled = s.get("/is/image/cat/photo?WID=123&unknown=1");
    assert_eq!(respelled.header("etag"), Some(etag.as_str()));

    let status = s.get("/is/image").text();
    let hits: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("cache.hitRate="))
        .unwrap()
        .parse()
        .unwrap();
    assert!(hits > 0.0, "{status}");
    s.wait_until(|s| s.log("ps.out").contains(" hit"));

    // A changed source is a new entity: new tag, new pixels.
    let path = s.catalog.root.join("cat/photo.jpg");
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
        .encode_image(&common::noisy_photo(320, 240))
        .unwrap();
    std::fs::write(&path, jpeg).unwrap();
    let changed = common::get_with(
        s.ps,
        "/is/image/cat/photo?wid=123",
        &[("If-None-Match", &etag)],
    );
    assert_eq!(changed.status, 200);
    assert_ne!(changed.header("etag"), Some(etag.as_str()));
    assert_eq!(changed.size(), (123, 92));
}

#[test]
fn errors_carry_a_status_and_a_reason() {
    let s = Stack::start();
    let cases: [(&str, u16, &str); 16] = [
        ("/is/image/cat/photo?wid=0", 400, "wid"),
        ("/is/image/cat/photo?wid=abc", 400, "wid"),
        ("/is/image/cat/photo?fit=crop", 400, "fit"),
        ("/is/image/cat/photo?fit=squash&wid=5", 400, "fit"),
        ("/is/image/cat/photo?fmt=bmp", 400, "fmt"),
        ("/is/image/cat/photo?qlt=500", 400, "qlt"),
        ("/is/image/cat/photo?bgc=red", 400, "bgc"),
        ("/is/image/cat/photo?scl=0", 400, "scl"),
        ("/is/image/cat/photo?wid=%zz", 400, "percent"),
        ("/is/image/cat/nothing", 404, "nothing"),
        ("/is/image/nocatalog/photo", 404, "catalog"),
        ("/is/content/cat/missing.txt", 404, "missing"),
        ("/is/image/cat/photo?wid=3000", 403, "MaxPix 2000,2000"),
        (
            "/is/image/cat/photo?scl=1&wid=2001&hei=10&fit=stretch",
            403,
            "MaxPix",
        ),
        ("/is/image/cat/bomb", 403, "max_source_pixels"),
        ("/elsewhere", 404, "/is/image"),
    ];
    for (path, status, reason) in cases {
        let r = s.get(path);
        assert_eq!(r.status, status, "{path}: {}", r.text());
        assert!(
            r.header("content-type").unwrap().starts_with("text/plain"),
            "{path}"
        );
        assert!(
            r.text().contains(reason),
            "{path}: {:?} lacks {reason:?}",
            r.text()
        );
        assert!(r.text().lines().count() == 1, "{path}: {:?}", r.text());
    }
    let broken = s.get("/is/image/cat/broken");
    assert_eq!(broken.status, 422, "{}", broken.text());
    assert!(
        broken.text().contains("cannot be read"),
        "{}",
        broken.text()
    );
    let post = common::send_raw(s.ps, b"POST /is/image/cat/photo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc").unwrap();
    assert_eq!(post.status, 405);
    // The props of an oversized source are refused too: nothing is decoded.
    assert_eq!(s.get("/is/image/cat/bomb?req=props").status, 403);
}

#[test]
fn paths_never_escape_the_catalog() {
    let s = Stack::start();
    for path in [
        "/is/content/cat/../secret.txt",
        "/is/content/cat/%2e%2e/secret.txt",
        "/is/content/cat/%2E%2E%2Fsecret.txt",
        "/is/content/cat/..%2fsecret.txt",
        "/is/content/cat/..%5csecret.txt",
        "/is/content/cat/..\\secret.txt",
        "/is/content/cat/%00/../secret.txt",
        "/is/content/cat/sub/../../secret.txt",
        "/is/content/%2e%2e/secret.txt",
        "/is/content//secret.txt",
        "/is/content/cat//etc/passwd",
        "/is/content/cat/%2fetc%2fpasswd",
        "/is/content/cat/escape.txt",
        "/is/image/cat/..%2f..%2fsecret",
        "/is/image/cat/%2e%2e/cat/photo",
        "/is/image/../cat/photo",
        "/is/content/cat/%252e%252e/secret.txt",
        "/is/content/cat/%c0%ae%c0%ae/secret.txt",
    ] {
        let r = s.get(path);
        assert!(
            matches!(r.status, 400 | 404),
            "{path}: {} {}",
            r.status,
            r.text()
        );
        assert!(!r.text().contains("TOP SECRET"), "{path} leaked the secret");
    }
    // The renderers check paths themselves too.
    for path in [
        "/render/cat/../secret.txt",
        "/render/cat/%2e%2e/secret.txt",
        "/render/cat/escape.txt",
    ] {
        let r = common::get(s.es, path);
        assert!(
            matches!(r.status, 400 | 404),
            "es {path}: {} {}",
            r.status,
            r.text()
        );
    }
}

#[test]
fn svg_sources_are_rendered_by_the_svg_server() {
    let s = Stack::start();
    let r = s.get("/is/image/cat/drawing?wid=300&fit=constrain,1");
    assert_eq!(r.header("content-type"), Some("image/png"));
    let img = r.image().to_rgba8();
    assert_eq!(img.dimensions(), (300, 150));
    assert_eq!(img.get_pixel(150, 75).0, [0, 255, 0, 255]);
    let jpeg = s.get("/is/image/cat/drawing?hei=40&fmt=jpeg");
    assert_eq!(jpeg.header("content-type"), Some("image/jpeg"));
    assert_eq!(jpeg.size(), (80, 40));
    let padded = s
        .get("/is/image/cat/drawing?wid=100&hei=100&fmt=png-alpha")
        .image()
        .to_rgba8();
    assert_eq!(padded.dimensions(), (100, 100));
    assert_eq!(padded.get_pixel(50, 5).0[3], 0, "padding stays transparent");
    let status = s.get("/is/image").text();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("svgServer.rendered=") && l != "svgServer.rendered=0"),
        "{status}"
    );
}
