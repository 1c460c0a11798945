//! Arbitrary bytes as a multipart body, read whole and byte by byte: no
//! panic, bounded buffering, no part over the limit, work bounded by a
//! constant times the input, and the same parts either way.
//!
//! The checks live in `mjpeg_server::fuzz::multipart`, so that
//! unit tests replay findings through the same code.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mjpeg_server::fuzz::multipart(data);
});
