//! The `mjpeg-server` command, as a library so that its tests and fuzz
//! checks can reach the config parser: [`config`] reads flags and the config
//! file into one set of settings, [`run`] maps them onto the
//! [`mjpeg_server`] library's options and serves until a signal.

pub mod config;
pub mod run;
