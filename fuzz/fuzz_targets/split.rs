//! Arbitrary bytes, fed to the stream splitter in arbitrary pieces.
//!
//! The checks live in `mjpeg_server::fuzz::split`, so that the
//! unit tests replay findings through exactly the same code: no panic, the
//! same frames and problems whatever the chunking, every frame a complete
//! JPEG that `jpeg::validate` accepts with `len` equal to its length and
//! found in the input in order, a buffer never larger than the frame limit,
//! work bounded by a constant times the input, and `jpeg::Scanner` agreeing
//! with `jpeg::scan`.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    mjpeg_server::fuzz::split(data);
});
