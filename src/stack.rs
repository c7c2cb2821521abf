//! The Image Serving stack: the Supervisor and the components it supervises, and the systemd
//! units that stand for them.

use std::fmt;

/// The Server Supervisor. Starting, stopping or restarting it does the same to every component,
/// which are `PartOf=` it.
pub const SUPERVISOR: &str = "imageserving.target";

/// The slice the components run in: its accounting gives the stack's totals.
pub const SLICE: &str = "imageserving.slice";

/// The Platform Server's socket: where its `Listen` property says the stack is reachable.
pub const PS_SOCKET: &str = "imageserving-ps.socket";

/// One of the servers the Supervisor runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Component {
    /// The Platform Server: the public HTTP front door.
    Ps,
    /// The Image Server: all image I/O and processing.
    Es,
    /// The SVG server: renders SVG sources.
    Svg,
}

impl Component {
    /// Every component, in the order the status report lists them.
    pub const ALL: [Component; 3] = [Component::Ps, Component::Es, Component::Svg];

    /// The canonical name operators type: `ps`, `es` or `svg`.
    pub fn name(self) -> &'static str {
        match self {
            Component::Ps => "ps",
            Component::Es => "es",
            Component::Svg => "svg",
        }
    }

    /// Other names accepted for the component. The English documentation of the original
    /// product spells the Image Server `is`; its translations turned that into `es`.
    pub fn aliases(self) -> &'static [&'static str] {
        match self {
            Component::Es => &["is"],
            Component::Ps | Component::Svg => &[],
        }
    }

    /// What the component is, in words.
    pub fn title(self) -> &'static str {
        match self {
            Component::Ps => "Platform Server (HTTP front door)",
            Component::Es => "Image Server (image processing)",
            Component::Svg => "SVG server (SVG rendering)",
        }
    }

    /// The systemd service that runs the component.
    pub fn unit(self) -> &'static str {
        match self {
            Component::Ps => "imageserving-ps.service",
            Component::Es => "imageserving-es.service",
            Component::Svg => "imageserving-svg.service",
        }
    }

    /// The component a unit name stands for, if any.
    pub fn from_unit(unit: &str) -> Option<Component> {
        Component::ALL.into_iter().find(|c| c.unit() == unit)
    }
}

impl fmt::Display for Component {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
