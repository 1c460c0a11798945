//! Arbitrary config files, read as `--config` reads them.
//!
//! The checks live in `mjpeg_server_cli::config::fuzz_config`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mjpeg_server_cli::config::fuzz_config(data);
});
