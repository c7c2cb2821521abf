//! What serving costs the host beyond the pixel work: a render reuses the memory of the one
//! before it instead of faulting it in again, and the Image Server stays small.

mod common;

use common::{Stack, noisy_photo, progressive};
use image::codecs::jpeg::JpegEncoder;

/// The process id of daemon `name`.
fn pid(stack: &Stack, name: &str) -> u32 {
    stack
        .daemons
        .iter()
        .find(|d| d.name == name)
        .expect("the daemon runs")
        .child
        .id()
}

/// Minor page faults of process `pid` so far (field 10 of /proc/PID/stat).
fn minor_faults(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // The command name, in parentheses, may hold spaces: count fields after it.
    let after_name = &stat[stat.rfind(')').unwrap() + 2..];
    after_name.split(' ').nth(7).unwrap().parse().unwrap()
}

fn resident_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// A stack whose Platform Server caches nothing and whose Image Server renders on one worker,
/// with `source` in the catalog as `cat/NAME.jpg`.
fn stack_serving(name: &str, source: &[u8]) -> Stack {
    // One worker: the renders before a count warm the one heap the counted ones use.
    let stack = Stack::start_with(&[
        ("IMAGESERVING_PS_CACHE_BYTES", "0"),
        ("IMAGESERVING_ES_WORKERS", "1"),
    ]);
    std::fs::write(stack.catalog.root.join(format!("cat/{name}.jpg")), source).unwrap();
    stack
}

/// The Image Server's page faults per render of `path` (of the given size), once warm.
fn faults_per_render(stack: &Stack, path: &str, size: (u32, u32)) -> u64 {
    let es = pid(stack, "es");
    for _ in 0..3 {
        assert_eq!(stack.get(path).size(), size);
    }
    let before = minor_faults(es);
    let renders = 10;
    for _ in 0..renders {
        assert_eq!(stack.get(path).status, 200);
    }
    (minor_faults(es) - before) / renders
}

/// The benchmark's photo: 2000x1333, quality 90.
fn large_photo() -> Vec<u8> {
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&noisy_photo(2000, 1333))
        .unwrap();
    jpeg
}

#[test]
fn thumbnails_reuse_their_memory_and_the_image_server_stays_small() {
    let stack = stack_serving("large", &large_photo());
    // The benchmark's case, asked for 500 px wide.
    let per_render = faults_per_render(&stack, "/is/image/cat/large?wid=500&qlt=80", (500, 333));
    // Each render frees about 1.5 MiB. With glibc's default thresholds part of it went back
    // to the kernel and was faulted in again by the next render: about 90 pages here, 370
    // for the benchmark's photo; none now.
    assert!(per_render < 40, "{per_render} page faults per render");
    let rss = resident_kib(pid(&stack, "es"));
    assert!(rss < 20 * 1024, "the Image Server holds {rss} KiB");
}

/// A progressive source is decoded into buffers for the whole image (the coefficients the
/// scale needs and a non-zero mask a block; libjpeg's coefficient buffer, about 8 MB for
/// this 4:2:0 photo, where it decodes) before any pixel comes out; the next render reuses
/// them instead of having the kernel map and clear them again.
#[test]
fn progressive_renders_reuse_their_coefficient_buffer() {
    let stack = stack_serving("progressive", &progressive(&large_photo()));
    let path = "/is/image/cat/progressive?wid=500&qlt=80";
    let per_render = faults_per_render(&stack, path, (500, 333));
    // With 4 MiB retained between renders: about 3900 page faults per render; none now.
    assert!(per_render < 40, "{per_render} page faults per render");
}
