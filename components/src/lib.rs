//! The Image Serving components: the Platform Server (`imageserving-ps`, the public HTTP
//! front door), the Image Server (`imageserving-es`, image I/O and processing) and the SVG
//! server (`imageserving-svg`). Each binary is a thin call into [`daemon::main`].

pub mod allocator;
pub mod catalog;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod decode;
pub mod encode;
pub mod geometry;
pub mod listener;
pub mod modifiers;
pub mod percent;
pub mod platform;
pub mod raster;
pub mod renderer;
pub mod reply;
pub mod server;
pub mod systemd;
pub mod vector;
