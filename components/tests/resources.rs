//! What serving costs the host beyond the pixel work: a render reuses the memory of the one
//! before it instead of faulting it in again, and the Image Server stays small.

mod common;

use common::{Stack, noisy_photo};
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

#[test]
fn thumbnails_reuse_their_memory_and_the_image_server_stays_small() {
    let stack = Stack::start_with(&[("IMAGESERVING_PS_CACHE_BYTES", "0")]);
    // The benchmark's case: a 2000x1333 photo asked for 500 px wide.
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 90)
        .encode_image(&noisy_photo(2000, 1333))
        .unwrap();
    std::fs::write(stack.catalog.root.join("cat/large.jpg"), jpeg).unwrap();
    let path = "/is/image/cat/large?wid=500&qlt=80";
    let es = pid(&stack, "es");
    // Two at a time, so that both of es's blocking threads (es.workers) exist and have
    // rendered before the count starts: a thread's first render faults in an allocator
    // arena of its own, and a thread that first appeared during the count would be counted.
    for _ in 0..3 {
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| assert_eq!(stack.get(path).size(), (500, 333)));
            }
        });
    }
    let before = minor_faults(es);
    let renders = 10;
    for _ in 0..renders {
        assert_eq!(stack.get(path).status, 200);
    }
    // Each render frees about 1.5 MiB. With glibc's default thresholds part of it went back
    // to the kernel and was faulted in again by the next render: about 90 pages here, 370
    // for the benchmark's photo; none now.
    let per_render = (minor_faults(es) - before) / renders;
    assert!(per_render < 40, "{per_render} page faults per render");
    let rss = resident_kib(es);
    assert!(rss < 20 * 1024, "the Image Server holds {rss} KiB");
}
