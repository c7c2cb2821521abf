//! Test harness: a generated catalog, the three daemons started as real processes on free
//! loopback ports, and a small HTTP/1.1 client able to send well-formed and hostile bytes.
#![allow(dead_code)] // each test binary uses its own part of the harness

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use image::codecs::jpeg::JpegEncoder;
use image::{ImageFormat, Rgb, RgbImage, Rgba, RgbaImage};

/// How long any single wait in the tests may take.
pub const DEADLINE: Duration = Duration::from_secs(30);

/// A fresh directory under Cargo's per-target scratch space (never /tmp, which units
/// give a private copy of).
pub fn scratch_dir(label: &str) -> PathBuf {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let dir =
        Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A catalog root holding catalog `cat` with one source of every supported kind, plus
/// a file outside the catalog that no request may reach.
pub struct Catalog {
    pub root: PathBuf,
}

/// Pixel sizes of the generated sources.
pub const PHOTO: (u32, u32) = (640, 480);
pub const LOGO: (u32, u32) = (200, 100);
pub const DRAWING: (u32, u32) = (100, 50);

impl Catalog {
    pub fn generate() -> Catalog {
        let root = scratch_dir("catalog");
        let cat = root.join("cat");
        std::fs::create_dir_all(cat.join("sub")).unwrap();

        let photo = noisy_photo(PHOTO.0, PHOTO.1);
        let mut jpeg = Vec::new();
        JpegEncoder::new_with_quality(&mut jpeg, 90)
            .encode_image(&photo)
            .unwrap();
        std::fs::write(cat.join("photo.jpg"), &jpeg).unwrap();

        let logo = RgbaImage::from_fn(LOGO.0, LOGO.1, |x, _| {
            if x < LOGO.0 / 2 {
                Rgba([0, 0, 0, 0])
            } else {
                Rgba([0, 128, 255, 255])
            }
        });
        logo.save(cat.join("logo.png")).unwrap();
        let small = RgbImage::from_fn(120, 80, |x, y| Rgb([x as u8, y as u8, 90]));
        small
            .save_with_format(cat.join("pic.webp"), ImageFormat::WebP)
            .unwrap();
        small
            .save_with_format(cat.join("anim.gif"), ImageFormat::Gif)
            .unwrap();
        small
            .save_with_format(cat.join("scan.tif"), ImageFormat::Tiff)
            .unwrap();
        small
            .save_with_format(cat.join("sub/nested.png"), ImageFormat::Png)
            .unwrap();
        std::fs::write(
            cat.join("drawing.svg"),
            format!(
                r##"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}"><rect width="100%" height="100%" fill="#00ff00"/></svg>"##,
                DRAWING.0, DRAWING.1
            ),
        )
        .unwrap();
        std::fs::write(cat.join("bomb.png"), png_claiming(50_000, 50_000)).unwrap();
        std::fs::write(
            cat.join("broken.jpg"),
            b"\xFF\xD8\xFF\xE0 this is not really a jpeg",
        )
        .unwrap();
        std::fs::write(cat.join("notes.txt"), b"catalog notes\n").unwrap();
        std::fs::write(root.join("secret.txt"), b"TOP SECRET\n").unwrap();
        std::os::unix::fs::symlink(root.join("secret.txt"), cat.join("escape.txt")).unwrap();
        Catalog { root }
    }
}

/// `jpeg` re-encoded progressive without loss, its markers kept, as photo tools save it.
pub fn progressive(jpeg: &[u8]) -> Vec<u8> {
    let mut child = Command::new("jpegtran")
        .args(["-progressive", "-copy", "all"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("jpegtran runs (apt-get install libjpeg-turbo-progs)");
    child.stdin.take().unwrap().write_all(jpeg).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "jpegtran failed");
    out.stdout
}

/// A photo-like image: smooth gradients with noise, so JPEG quality matters.
pub fn noisy_photo(w: u32, h: u32) -> RgbImage {
    let mut seed = 0x2545_f491_u32;
    RgbImage::from_fn(w, h, |x, y| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let n = (seed % 64) as u8;
        Rgb([
            ((x * 255 / w) as u8).saturating_add(n),
            ((y * 255 / h) as u8).saturating_add(n / 2),
            128u8.saturating_sub(n),
        ])
    })
}

/// A valid 1x1 PNG whose header claims `w` x `h`: a decompression bomb's signature.
fn png_claiming(w: u32, h: u32) -> Vec<u8> {
    let mut png = Vec::new();
    RgbImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut png), ImageFormat::Png)
        .unwrap();
    // IHDR data starts at 16: width, height, then CRC over type+data at 29.
    png[16..20].copy_from_slice(&w.to_be_bytes());
    png[20..24].copy_from_slice(&h.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFF_u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// `N` distinct loopback ports that were free a moment ago: held all at once while they are
/// picked, so that the kernel cannot hand out one of them twice.
pub fn free_ports<const N: usize>() -> [u16; N] {
    let held = [(); N].map(|()| TcpListener::bind("127.0.0.1:0").unwrap());
    held.map(|listener| listener.local_addr().unwrap().port())
}

/// A daemon child process, killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub name: &'static str,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn binary(name: &str) -> &'static str {
    match name {
        "ps" => env!("CARGO_BIN_EXE_imageserving-ps"),
        "es" => env!("CARGO_BIN_EXE_imageserving-es"),
        "svg" => env!("CARGO_BIN_EXE_imageserving-svg"),
        _ => panic!("no daemon {name}"),
    }
}

/// A command for daemon `name` with an empty configuration file and `env` on top.
pub fn daemon_command(name: &'static str, config: &Path, env: &[(String, String)]) -> Command {
    let mut cmd = Command::new(binary(name));
    cmd.arg("--config").arg(config);
    cmd.env_remove("NOTIFY_SOCKET")
        .env_remove("LISTEN_FDS")
        .env_remove("LISTEN_PID")
        .env_remove("WATCHDOG_USEC")
        .env_remove("IMAGESERVING_CONFIG");
    cmd.envs(env.iter().map(|(k, v)| (k, v)));
    // SAFETY: prctl is async-signal-safe; the daemon dies with the test that started it.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
    cmd
}

pub fn spawn(name: &'static str, mut cmd: Command, log: &Path) -> Daemon {
    let out = std::fs::File::create(log.join(format!("{name}.out"))).unwrap();
    let err = std::fs::File::create(log.join(format!("{name}.err"))).unwrap();
    let child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .unwrap();
    Daemon { child, name }
}

/// The three daemons on free loopback ports, serving a generated catalog.
pub struct Stack {
    pub catalog: Catalog,
    pub dir: PathBuf,
    pub ps: SocketAddr,
    pub es: SocketAddr,
    pub svg: SocketAddr,
    /// Where each daemon serves its metrics: ps, es, svg.
    pub metrics: [SocketAddr; 3],
    pub env: Vec<(String, String)>,
    pub config: PathBuf,
    pub daemons: Vec<Daemon>,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with(&[])
    }

    /// Starts the stack with extra `IMAGESERVING_*` overrides, and waits until the status
    /// page proves both renderers are reachable.
    pub fn start_with(extra: &[(&str, &str)]) -> Stack {
        let stack = Stack::prepare(extra);
        let mut stack = stack;
        for name in ["es", "svg", "ps"] {
            stack.launch(name);
        }
        stack.wait_until(|s| s.get("/is/image").status == 200);
        stack
    }

    /// Everything but the processes.
    pub fn prepare(extra: &[(&str, &str)]) -> Stack {
        let catalog = Catalog::generate();
        let dir = scratch_dir("stack");
        let config = dir.join("imageserving.toml");
        std::fs::write(
            &config,
            "# tests: all defaults, overridden by the environment\n",
        )
        .unwrap();
        let local = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let [ps, es, svg, ps_metrics, es_metrics, svg_metrics] = free_ports().map(local);
        let metrics = [ps_metrics, es_metrics, svg_metrics];
        let mut env: Vec<(String, String)> = vec![
            (
                "IMAGESERVING_CATALOG_ROOT".into(),
                catalog.root.display().to_string(),
            ),
            ("IMAGESERVING_PS_LISTEN".into(), ps.to_string()),
            ("IMAGESERVING_ES_LISTEN".into(), es.to_string()),
            ("IMAGESERVING_SVG_LISTEN".into(), svg.to_string()),
            (
                "IMAGESERVING_PS_METRICS_LISTEN".into(),
                metrics[0].to_string(),
            ),
            (
                "IMAGESERVING_ES_METRICS_LISTEN".into(),
                metrics[1].to_string(),
            ),
            (
                "IMAGESERVING_SVG_METRICS_LISTEN".into(),
                metrics[2].to_string(),
            ),
            (
                "IMAGESERVING_IMAGE_MAX_SOURCE_PIXELS".into(),
                "4000000".into(),
            ),
            ("IMAGESERVING_ES_WORKERS".into(), "2".into()),
        ];
        env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Stack {
            catalog,
            dir,
            ps,
            es,
            svg,
            metrics,
            env,
            config,
            daemons: Vec::new(),
        }
    }

    pub fn launch(&mut self, name: &'static str) {
        let cmd = daemon_command(name, &self.config, &self.env);
        self.daemons.push(spawn(name, cmd, &self.dir));
    }

    /// Kills one daemon (as a crash would).
    pub fn kill(&mut self, name: &str) {
        self.daemons.retain(|d| d.name != name);
    }

    pub fn get(&self, path: &str) -> Reply {
        get(self.ps, path)
    }

    pub fn wait_until(&self, condition: impl Fn(&Stack) -> bool) {
        wait_for(|| condition(self), "the stack to answer");
    }

    /// Every daemon is still running.
    pub fn all_alive(&mut self) -> bool {
        self.daemons
            .iter_mut()
            .all(|d| matches!(d.child.try_wait(), Ok(None)))
    }

    pub fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.dir.join(name)).unwrap_or_default()
    }
}

/// Polls `condition` until it holds, failing the test after [`DEADLINE`].
pub fn wait_for(mut condition: impl FnMut() -> bool, what: &str) {
    let start = Instant::now();
    let mut pause = Duration::from_millis(5);
    while !condition() {
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// An HTTP response as the test saw it.
#[derive(Debug, Default)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded as an image: (width, height, format).
    pub fn image(&self) -> image::DynamicImage {
        assert_eq!(self.status, 200, "not an image: {}", self.text());
        image::load_from_memory(&self.body).unwrap_or_else(|e| panic!("undecodable body: {e}"))
    }

    pub fn size(&self) -> (u32, u32) {
        let img = self.image();
        (img.width(), img.height())
    }
}

/// GET `path` with `Connection: close`; a connection failure is status 0.
pub fn get(addr: SocketAddr, path: &str) -> Reply {
    get_with(addr, path, &[])
}

pub fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let mut raw = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        raw.push_str(&format!("{k}: {v}\r\n"));
    }
    raw.push_str("\r\n");
    send_raw(addr, raw.as_bytes()).unwrap_or_default()
}

/// Sends `bytes` as they are and reads the response to the end.
pub fn send_raw(addr: SocketAddr, bytes: &[u8]) -> std::io::Result<Reply> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(DEADLINE))?;
    stream.set_write_timeout(Some(DEADLINE))?;
    stream.write_all(bytes)?;
    let mut data = Vec::new();
    stream.read_to_end(&mut data)?;
    Ok(parse_reply(&data))
}

pub fn parse_reply(data: &[u8]) -> Reply {
    let Some(split) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Reply::default();
    };
    let head = String::from_utf8_lossy(&data[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let mut body = data[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Reply {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = data.windows(2).position(|w| w == b"\r\n") {
        let size =
            usize::from_str_radix(std::str::from_utf8(&data[..eol]).unwrap_or("0").trim(), 16)
                .unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = eol + 2;
        out.extend_from_slice(&data[start..(start + size).min(data.len())]);
        data = &data[(start + size + 2).min(data.len())..];
    }
    out
}
