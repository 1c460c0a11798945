//! Arbitrary request heads, routed as the server routes a stream request.
//!
//! The checks live in `mjpeg_server::fuzz::request`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mjpeg_server::fuzz::request(data);
});
