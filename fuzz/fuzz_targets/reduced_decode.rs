//! Arbitrary bytes, decoded reduced to 1/2, 1/4 and 1/8 as variants are.
//!
//! The checks live in `mjpeg_server::fuzz::reduced_decode`, so that the
//! unit tests replay findings through exactly the same code: no panic, and
//! planes that decode have the size the header gives, convert to RGB and
//! encode.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mjpeg_server::fuzz::reduced_decode(data);
});
