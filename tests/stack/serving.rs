//! End to end: the stack started by `ImageServing` under systemd serves images through the
//! Platform Server, and a restart of the Image Server leaves the front door running.

use std::path::PathBuf;

use image::{ImageFormat, Rgb, RgbImage};

use crate::fixture::{COMPONENTS, Stack, unit};

/// A catalog `shop` with one 640x480 PNG, `shoe`.
pub fn catalog(name: &str) -> PathBuf {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let dir = root.join("shop");
    std::fs::create_dir_all(&dir).unwrap();
    RgbImage::from_fn(640, 480, |x, y| {
        Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    })
    .save_with_format(dir.join("shoe.png"), ImageFormat::Png)
    .unwrap();
    root
}

fn png_size(body: &[u8]) -> (u32, u32) {
    let image = image::load_from_memory_with_format(body, ImageFormat::Png).expect("a PNG");
    (image.width(), image.height())
}

#[test]
fn the_started_stack_serves_images_and_survives_an_image_server_restart() {
    let stack = Stack::serving(&catalog("serving-e2e"));
    stack.cli(&["start"]).expect(0);

    let response = stack.get("/is/image/shop/shoe?wid=200&fmt=png");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.header("content-type"), Some("image/png"));
    assert_eq!(png_size(&response.body), (200, 150));

    let status = stack.get("/is/image");
    assert_eq!(status.status, 200, "{}", status.text());
    assert!(status.text().contains("imageServer."), "{}", status.text());

    let json = stack.cli(&["status", "--json"]).expect(0).json();
    for c in json["components"].as_array().unwrap() {
        assert_eq!(c["active_state"], "active", "{c}");
        stack.assert_figures(c);
    }

    let ps_before = stack.invocation("ps");
    let es_before = stack.invocation("es");
    stack.cli(&["restart", "es"]).expect(0);
    assert_ne!(stack.invocation("es"), es_before);
    assert_eq!(
        stack.invocation("ps"),
        ps_before,
        "ps restarted along with es"
    );

    // A size not asked before, so the answer comes from the restarted Image Server.
    let response = stack.get("/is/image/shop/shoe?wid=120&fmt=png");
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(png_size(&response.body), (120, 90));
    for c in COMPONENTS {
        assert_eq!(stack.show(&unit(c), "ActiveState"), "active", "{c}");
    }

    // Each daemon's metrics, on loopback under the hardened units: ps counted both images,
    // and the restarted es only the one it rendered.
    let scrape = |port: u16| {
        let response = stack.get_from(port, "/metrics");
        assert_eq!(response.status, 200, "{}", response.text());
        response.text()
    };
    let ps = scrape(27347);
    assert!(
        ps.lines()
            .any(|l| l == "imageserving_http_requests_total{route=\"image\",status=\"200\"} 2"),
        "{ps}"
    );
    let es = scrape(27348);
    assert!(
        es.lines()
            .any(|l| l == "imageserving_http_requests_total{route=\"render\",status=\"200\"} 1"),
        "{es}"
    );
    assert!(scrape(27349).contains("imageserving_render_duration_seconds"));
}
