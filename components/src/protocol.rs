//! The contract between the Platform Server and the renderers (es, svg): the paths ps asks
//! for, and how a render request names its source and modifiers.
//!
//! `GET /render/{catalog}/{file.ext}?{canonical modifiers}` answers the image (or the
//! `req=props` text), or a status and a one-line reason; `GET /status` answers `key=value`
//! lines (version, uptime, counters) that the Platform Server folds into its status page.

use crate::http::percent;

/// The path prefix of render requests.
pub(crate) const RENDER_PREFIX: &str = "/render/";
/// The path of a renderer's status lines.
pub(crate) const STATUS_PATH: &str = "/status";

/// The render request for the catalog file `relative` with `canonical`, the modifiers'
/// canonical spelling ([`crate::modifiers::Modifiers::canonical`]), which the renderer parses
/// back to the same modifiers.
pub(crate) fn render_target(relative: &str, canonical: &str) -> String {
    format!(
        "{RENDER_PREFIX}{}?{canonical}",
        percent::encode_path(relative)
    )
}
