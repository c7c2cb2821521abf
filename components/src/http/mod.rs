//! HTTP as the three daemons speak it: the listening socket, the server loop with its limits,
//! responses, and percent-decoding of URLs.

pub(crate) mod listener;
pub(crate) mod percent;
pub(crate) mod reply;
pub(crate) mod server;
