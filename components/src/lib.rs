//! The Image Serving components: the Platform Server (`imageserving-ps`, the public HTTP
//! front door), the Image Server (`imageserving-es`, image I/O and processing) and the SVG
//! server (`imageserving-svg`). Each binary is a thin call into [`daemon::main`].
//!
//! By role: [`daemon`] starts one of them; [`http`] is the server they share; [`platform`] is
//! ps; [`render`] is es and svg; [`protocol`] is the contract between ps and the renderers.
//! The rest is shared: the catalogs, the modifiers, the configuration, the command line and
//! the [`metrics`].

mod allocator;
mod catalog;
pub mod cli;
mod config;
pub mod daemon;
mod http;
mod metrics;
mod modifiers;
mod platform;
mod protocol;
mod render;
mod systemd;

// The parts that see untrusted input, for the property tests.
pub use catalog::segments;
pub use config::Dimensions;
pub use modifiers::Modifiers;
pub use render::geometry::Layout;
