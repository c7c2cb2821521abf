//! The Image Serving protocol's modifiers (`wid`, `hei`, `scl`, `fit`, `fmt`, `qlt`, `bgc`,
//! `req`): parsing a query string, and the canonical spelling used as cache key and to pass
//! a request on to a renderer.

use std::fmt;

use crate::http::percent;

/// How the response size is asked for. `scl` and `wid`/`hei` cancel each other: whichever
/// comes later in the URL wins, as in Image Serving.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Size {
    /// Neither: the source size, fitted into DefaultPix.
    #[default]
    Default,
    /// `scl=`: the inverse scale factor (2 = half size).
    Scale(f64),
    /// `wid=` and/or `hei=`.
    Box { wid: Option<u32>, hei: Option<u32> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FitMode {
    #[default]
    Fit,
    Constrain,
    Crop,
    Wrap,
    Stretch,
    HFit,
    VFit,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Fit {
    pub mode: FitMode,
    pub upscale: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Jpeg,
    Png,
    PngAlpha,
    WebP,
    Gif,
    Tiff,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quality {
    pub value: u8,
    /// `qlt=Q,1`: keep full chroma resolution (no 4:2:0 subsampling).
    pub full_chroma: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Color {
    pub r: u8,
    pub g: u8,
    pub b: u8,
    pub a: u8,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Req {
    #[default]
    Image,
    Props,
}

/// A parsed, validated request. Unset fields take the server's defaults.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Modifiers {
    pub size: Size,
    pub fit: Option<Fit>,
    pub fmt: Option<Format>,
    pub qlt: Option<Quality>,
    pub bgc: Option<Color>,
    pub req: Req,
}

/// Why a query was refused: shown to the client with status 400.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModifierError(pub String);

impl fmt::Display for ModifierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ModifierError {}

/// Longest query accepted; longer ones are not a plausible image request.
pub const MAX_QUERY_LEN: usize = 4096;

impl Modifiers {
    /// Parses a raw (still percent-encoded) query string. Names are case-insensitive,
    /// unknown names are ignored, and a repeated name takes its last value.
    pub fn parse(query: &str) -> Result<Modifiers, ModifierError> {
        if query.len() > MAX_QUERY_LEN {
            return Err(err(format!(
                "the query is longer than {MAX_QUERY_LEN} bytes"
            )));
        }
        let mut m = Modifiers::default();
        let (mut wid, mut hei) = (None, None);
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, raw) = pair.split_once('=').unwrap_or((pair, ""));
            let name = percent::decode(name).map_err(err)?.to_ascii_lowercase();
            let value = percent::decode(raw).map_err(err)?;
            let value = value.as_str();
            match name.as_str() {
                "wid" => {
                    wid = Some(dimension("wid", value)?);
                    m.size = Size::Box { wid, hei };
                }
                "hei" => {
                    hei = Some(dimension("hei", value)?);
                    m.size = Size::Box { wid, hei };
                }
                "scl" => {
                    m.size = Size::Scale(scale(value)?);
                    (wid, hei) = (None, None);
                }
                "fit" => m.fit = Some(fit(value)?),
                "fmt" => m.fmt = Some(format(value)?),
                "qlt" => m.qlt = Some(quality(value)?),
                "bgc" => m.bgc = Some(color(value)?),
                "req" => m.req = req(value)?,
                _ => {}
            }
        }
        if m.fit.is_some() && matches!(m.size, Size::Default) {
            return Err(err("fit= needs wid= or hei="));
        }
        Ok(m)
    }

    /// The one spelling of these modifiers: equal requests give equal strings, and
    /// parsing the string gives these modifiers back.
    pub fn canonical(&self) -> String {
        let mut parts: Vec<String> = Vec::new();
        match self.size {
            Size::Default => {}
            Size::Scale(s) => parts.push(format!("scl={s}")),
            Size::Box { wid, hei } => {
                if let Some(w) = wid {
                    parts.push(format!("wid={w}"));
                }
                if let Some(h) = hei {
                    parts.push(format!("hei={h}"));
                }
            }
        }
        if let Some(f) = self.fit {
            parts.push(format!("fit={},{}", f.mode.name(), u8::from(f.upscale)));
        }
        if let Some(f) = self.fmt {
            parts.push(format!("fmt={}", f.name()));
        }
        if let Some(q) = self.qlt {
            parts.push(format!("qlt={},{}", q.value, u8::from(q.full_chroma)));
        }
        if let Some(c) = self.bgc {
            parts.push(format!("bgc={:02X}{:02X}{:02X}{:02X}", c.r, c.g, c.b, c.a));
        }
        if self.req == Req::Props {
            parts.push("req=props".to_owned());
        }
        parts.join("&")
    }
}

fn err(message: impl Into<String>) -> ModifierError {
    ModifierError(message.into())
}

fn dimension(name: &str, value: &str) -> Result<u32, ModifierError> {
    match value.parse::<u32>() {
        Ok(n) if n > 0 && value.bytes().all(|b| b.is_ascii_digit()) => Ok(n),
        _ => Err(err(format!(
            "{name}={value:?}: expected a whole number of pixels greater than 0"
        ))),
    }
}

fn scale(value: &str) -> Result<f64, ModifierError> {
    match value.parse::<f64>() {
        Ok(s) if s.is_finite() && s >= 1.0 => Ok(s),
        _ => Err(err(format!(
            "scl={value:?}: expected an inverse scale factor of 1.0 or more (2 = half size)"
        ))),
    }
}

fn fit(value: &str) -> Result<Fit, ModifierError> {
    let (mode, upscale) = value.split_once(',').unwrap_or((value, "0"));
    let mode = FitMode::from_name(&mode.to_ascii_lowercase()).ok_or_else(|| {
        err(format!(
            "fit={value:?}: mode must be one of fit, constrain, crop, wrap, stretch, hfit, vfit"
        ))
    })?;
    let upscale = match upscale {
        "0" => false,
        "1" => true,
        _ => return Err(err(format!("fit={value:?}: upscale must be 0 or 1"))),
    };
    Ok(Fit { mode, upscale })
}

fn format(value: &str) -> Result<Format, ModifierError> {
    Format::from_name(&value.to_ascii_lowercase()).ok_or_else(|| {
        err(format!(
            "fmt={value:?}: expected jpeg, jpg, png, png-alpha, webp, gif or tif"
        ))
    })
}

fn quality(value: &str) -> Result<Quality, ModifierError> {
    let bad = || {
        err(format!(
            "qlt={value:?}: expected a quality from 1 to 100, optionally followed by ,0 or ,1"
        ))
    };
    let (q, chroma) = value.split_once(',').unwrap_or((value, "0"));
    let value = match q.parse::<u8>() {
        Ok(v) if (1..=100).contains(&v) && q.bytes().all(|b| b.is_ascii_digit()) => v,
        _ => return Err(bad()),
    };
    let full_chroma = match chroma {
        "0" => false,
        "1" => true,
        _ => return Err(bad()),
    };
    Ok(Quality { value, full_chroma })
}

fn color(value: &str) -> Result<Color, ModifierError> {
    let hex = value
        .strip_prefix("0x")
        .or_else(|| value.strip_prefix("0X"))
        .unwrap_or(value);
    let byte = |i: usize| u8::from_str_radix(&hex[i..i + 2], 16);
    let parsed = match hex.len() {
        _ if !hex.bytes().all(|b| b.is_ascii_hexdigit()) => None,
        6 => Some((byte(0), byte(2), byte(4), Ok(255))),
        8 => Some((byte(0), byte(2), byte(4), byte(6))),
        _ => None,
    };
    match parsed {
        Some((Ok(r), Ok(g), Ok(b), Ok(a))) => Ok(Color { r, g, b, a }),
        _ => Err(err(format!(
            "bgc={value:?}: expected a colour as RRGGBB or RRGGBBAA in hexadecimal"
        ))),
    }
}

fn req(value: &str) -> Result<Req, ModifierError> {
    match value.to_ascii_lowercase().as_str() {
        "img" => Ok(Req::Image),
        "props" => Ok(Req::Props),
        _ => Err(err(format!("req={value:?}: supported are img and props"))),
    }
}

impl FitMode {
    const ALL: [(FitMode, &'static str); 7] = [
        (FitMode::Fit, "fit"),
        (FitMode::Constrain, "constrain"),
        (FitMode::Crop, "crop"),
        (FitMode::Wrap, "wrap"),
        (FitMode::Stretch, "stretch"),
        (FitMode::HFit, "hfit"),
        (FitMode::VFit, "vfit"),
    ];

    fn from_name(name: &str) -> Option<FitMode> {
        Self::ALL.iter().find(|(_, n)| *n == name).map(|(m, _)| *m)
    }

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(m, _)| *m == self)
            .map_or("fit", |(_, n)| n)
    }
}

impl Format {
    fn from_name(name: &str) -> Option<Format> {
        Some(match name {
            "jpeg" | "jpg" => Format::Jpeg,
            "png" => Format::Png,
            "png-alpha" => Format::PngAlpha,
            "webp" => Format::WebP,
            "gif" => Format::Gif,
            "tif" | "tiff" => Format::Tiff,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Jpeg => "jpeg",
            Format::Png => "png",
            Format::PngAlpha => "png-alpha",
            Format::WebP => "webp",
            Format::Gif => "gif",
            Format::Tiff => "tif",
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Jpeg => "image/jpeg",
            Format::Png | Format::PngAlpha => "image/png",
            Format::WebP => "image/webp",
            Format::Gif => "image/gif",
            Format::Tiff => "image/tiff",
        }
    }

    /// Whether the response keeps transparency; the others are flattened onto `bgc`.
    pub fn keeps_alpha(self) -> bool {
        self == Format::PngAlpha
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_modifier() {
        let m =
            Modifiers::parse("WID=500&hei=300&fit=crop,1&fmt=png&qlt=70,1&bgc=ff0000&req=props")
                .unwrap();
        assert_eq!(
            m.size,
            Size::Box {
                wid: Some(500),
                hei: Some(300)
            }
        );
        assert_eq!(
            m.fit,
            Some(Fit {
                mode: FitMode::Crop,
                upscale: true
            })
        );
        assert_eq!(m.fmt, Some(Format::Png));
        assert_eq!(
            m.qlt,
            Some(Quality {
                value: 70,
                full_chroma: true
            })
        );
        assert_eq!(
            m.bgc,
            Some(Color {
                r: 255,
                g: 0,
                b: 0,
                a: 255
            })
        );
        assert_eq!(m.req, Req::Props);
    }

    #[test]
    fn later_size_commands_cancel_earlier_ones() {
        assert_eq!(
            Modifiers::parse("wid=5&scl=2").unwrap().size,
            Size::Scale(2.0)
        );
        assert_eq!(
            Modifiers::parse("scl=2&hei=7").unwrap().size,
            Size::Box {
                wid: None,
                hei: Some(7)
            }
        );
    }

    #[test]
    fn refuses_malformed_values_with_a_reason() {
        for q in [
            "wid=0",
            "wid=-1",
            "wid=abc",
            "wid=+5",
            "hei=1.5",
            "scl=0.5",
            "scl=nan",
            "fit=bogus",
            "fit=crop,2",
            "fmt=bmp",
            "qlt=0",
            "qlt=101",
            "qlt=50,x",
            "bgc=12345",
            "bgc=zzzzzz",
            "req=tmb",
            "fit=crop",
            "wid=%zz",
        ] {
            let e = Modifiers::parse(q).unwrap_err();
            assert!(!e.0.is_empty(), "{q}");
        }
    }

    #[test]
    fn ignores_unknown_names_and_empty_pairs() {
        let m = Modifiers::parse("&cache=off&&wid=10&").unwrap();
        assert_eq!(m.canonical(), "wid=10");
    }

    #[test]
    fn canonical_round_trips() {
        let m = Modifiers::parse("fmt=jpg&scl=2.5&fit=wrap&bgc=0x00ff00&qlt=5").unwrap();
        assert_eq!(Modifiers::parse(&m.canonical()).unwrap(), m);
    }
}
