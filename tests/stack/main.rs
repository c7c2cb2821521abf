//! Integration tests of the whole stack: the shipped units under a real systemd, driven by the
//! real `ImageServing` binary, each test in a sandbox of its own.

mod control;
mod faults;
mod fixture;
mod fleet;
mod hostile;
mod hosts;
mod logs;
mod operators;
mod serving;
mod units;
mod user;
mod watch;
