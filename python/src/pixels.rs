//! What `Stream.publish` takes, made into a frame: the one place that
//! tells Python objects apart.
//!
//! - `bytes`, `bytearray`, and one-dimensional buffers: an encoded image.
//!   A JPEG passes through untouched (checked, not decoded); another
//!   format (PNG, GIF, …) is converted once.
//! - Buffers of two or three dimensions (NumPy arrays, `memoryview`s):
//!   `uint8` pixels, H×W grey, H×W×3 RGB (or BGR) or H×W×4 RGBA, in any
//!   memory order.
//! - A Pillow `Image`: its pixels, converted to RGB first if its mode is
//!   not RGB, RGBA or L.
//! - A matplotlib `Figure`: drawn on its Agg canvas and read from
//!   `buffer_rgba()` (no `savefig`, no PNG in between).
//!
//! Encoding and checking run with the GIL released.

use bytes::Bytes;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use mjpeg_server::convert::{to_frame_blocking, ConvertOptions};
use mjpeg_server::frame::{Frame, ImageKind, Pixels};

/// How to read the pixels of an array.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Encoding {
    pub quality: u8,
    pub bgr: bool,
}

/// `obj` as a frame, or the exception that says why not.
pub(crate) fn frame_from(
    obj: &Bound<'_, PyAny>,
    encoding: Encoding,
    convert: &ConvertOptions,
) -> PyResult<Frame> {
    let py = obj.py();
    if !(1..=100).contains(&encoding.quality) {
        return Err(PyValueError::new_err(format!(
            "quality={} is not between 1 and 100",
            encoding.quality
        )));
    }
    // An image in another format is converted at the quality asked for.
    let convert = &ConvertOptions {
        quality: encoding.quality,
        ..convert.clone()
    };
    if let Ok(bytes) = obj.cast::<PyBytes>() {
        return encoded(py, Bytes::copy_from_slice(bytes.as_bytes()), convert);
    }
    if let Ok(array) = obj.cast::<PyByteArray>() {
        return encoded(py, Bytes::from(array.to_vec()), convert);
    }
    if is_figure(obj)? {
        return figure(obj, encoding);
    }
    if is_pillow_image(obj)? {
        return pillow(obj, encoding);
    }
    match array_of(obj)? {
        Some(array) => from_array(obj, array, encoding, convert),
        None => Err(PyTypeError::new_err(format!(
            "cannot publish a {}: give JPEG (or PNG, GIF, …) bytes, a NumPy uint8 array of \
             shape (H, W), (H, W, 3) or (H, W, 4), a Pillow Image or a matplotlib Figure",
            type_name(obj)
        ))),
    }
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".into())
}

/// An encoded image: checked (a JPEG) or converted (any other format).
fn encoded(py: Python<'_>, data: Bytes, convert: &ConvertOptions) -> PyResult<Frame> {
    py.detach(|| to_frame_blocking(data, convert))
        .map_err(|e| PyValueError::new_err(format!("not a usable image: {e}")))
}

/// The pixels (or encoded bytes) of an array-like object, read through
/// NumPy's array interface or, failing that, a `memoryview` (the buffer
/// protocol of the C API is not in the stable ABI before Python 3.11).
struct Array {
    shape: Vec<usize>,
    /// The element type in the array interface's notation: `|u1` for
    /// `uint8`.
    typestr: String,
    data: Data,
}

enum Data {
    /// The array's own memory, C-contiguous: read in place.
    Memory { address: usize, len: usize },
    /// A copy in row order (strided arrays, memoryviews).
    Copy(Vec<u8>),
}

/// `obj` as an array, or `None` if it is not one.
fn array_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Array>> {
    let py = obj.py();
    if let Ok(interface) = obj.getattr("__array_interface__") {
        let shape: Vec<usize> = interface.get_item("shape")?.extract()?;
        let typestr: String = interface.get_item("typestr")?.extract()?;
        let strides = interface.get_item("strides").ok().filter(|s| !s.is_none());
        let pointer = interface
            .get_item("data")
            .ok()
            .and_then(|d| d.extract::<(usize, bool)>().ok());
        let data = match (pointer, strides) {
            // No strides: C-contiguous, by the interface's definition.
            (Some((address, _)), None) if typestr == "|u1" => Data::Memory {
                address,
                len: shape.iter().product(),
            },
            _ if typestr == "|u1" => Data::Copy(obj.call_method0("tobytes")?.extract()?),
            // Not bytes: refused by the caller, which names the type.
            _ => Data::Copy(Vec::new()),
        };
        return Ok(Some(Array {
            shape,
            typestr,
            data,
        }));
    }
    let Ok(view) = py.import("builtins")?.getattr("memoryview")?.call1((obj,)) else {
        return Ok(None);
    };
    let shape: Vec<usize> = view.getattr("shape")?.extract()?;
    let format: String = view.getattr("format")?.extract()?;
    let itemsize: usize = view.getattr("itemsize")?.extract()?;
    let typestr = match (format.as_str(), itemsize) {
        ("B" | "c", 1) => "|u1".to_string(),
        _ => format!("format {format:?} of {itemsize} bytes"),
    };
    let data = if typestr == "|u1" {
        Data::Copy(view.call_method0("tobytes")?.extract()?)
    } else {
        Data::Copy(Vec::new())
    };
    Ok(Some(Array {
        shape,
        typestr,
        data,
    }))
}

fn from_array(
    obj: &Bound<'_, PyAny>,
    array: Array,
    encoding: Encoding,
    convert: &ConvertOptions,
) -> PyResult<Frame> {
    let py = obj.py();
    let shape = array.shape;
    if array.typestr != "|u1" {
        let dtype = obj
            .getattr("dtype")
            .map(|d| d.to_string())
            .unwrap_or(array.typestr);
        return Err(PyValueError::new_err(format!(
            "pixels must be uint8 (0–255), not {dtype}: convert with \
             (array * 255).clip(0, 255).astype(numpy.uint8) or array.astype(numpy.uint8)"
        )));
    }
    let data = array.data;
    // One dimension, or N×1 as cv2.imencode returns: an encoded image.
    let encoded_image = match shape.as_slice() {
        [_] => true,
        [_, 1] => starts_like_an_image(&data),
        _ => false,
    };
    if encoded_image {
        let bytes = match data {
            Data::Copy(v) => Bytes::from(v),
            // SAFETY: see `Data::Memory` below; copied with the GIL held.
            Data::Memory { address, len } => Bytes::copy_from_slice(unsafe {
                std::slice::from_raw_parts(address as *const u8, len)
            }),
        };
        return encoded(py, bytes, convert);
    }
    let (height, width, layout) = match (shape.as_slice(), encoding.bgr) {
        ([h, w], _) | ([h, w, 1], _) => (*h, *w, Pixels::Luma),
        ([h, w, 3], false) => (*h, *w, Pixels::Rgb),
        ([h, w, 3], true) => (*h, *w, Pixels::Bgr),
        ([h, w, 4], false) => (*h, *w, Pixels::Rgba),
        ([h, w, 4], true) => (*h, *w, Pixels::Bgra),
        _ => {
            return Err(PyValueError::new_err(format!(
                "an array of shape {} is not an image: give (H, W) grey, (H, W, 3) RGB or \
                 (H, W, 4) RGBA pixels",
                shape_text(&shape)
            )))
        }
    };
    let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(PyValueError::new_err(format!(
                "an image of shape {} cannot be a JPEG: width and height must be 1 to 65535",
                shape_text(&shape)
            )))
        }
    };
    mjpeg_server::frame::check_pixels(w.into(), h.into(), convert.max_pixels)
        .map_err(|e| PyValueError::new_err(e.to_string()))?;
    match data {
        Data::Memory { address, len } => py.detach(move || {
            // SAFETY: `address` and `len` are the array interface's pointer
            // and size of a C-contiguous uint8 array, and `obj`, which owns
            // the memory, is held (so neither freed nor resized: NumPy
            // refuses to resize an array that is referenced) until this
            // returns. Another Python thread may write pixels meanwhile, as
            // with any C extension that reads an array without the GIL: the
            // frame may then mix old and new pixels, and is still a JPEG.
            let pixels = unsafe { std::slice::from_raw_parts(address as *const u8, len) };
            encode(pixels, w, h, layout, encoding.quality)
        }),
        Data::Copy(pixels) => py.detach(move || encode(&pixels, w, h, layout, encoding.quality)),
    }
}

fn encode(pixels: &[u8], w: u16, h: u16, layout: Pixels, quality: u8) -> PyResult<Frame> {
    Frame::from_pixels(pixels, w, h, layout, quality)
        .map_err(|e| PyValueError::new_err(e.to_string()))
}

fn shape_text(shape: &[usize]) -> String {
    match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|n| n.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// Whether the data's first bytes are an image format's signature.
fn starts_like_an_image(data: &Data) -> bool {
    let head = match data {
        Data::Copy(v) => v.as_slice(),
        // SAFETY: the array's own memory, read with the GIL held.
        Data::Memory { address, len } => unsafe {
            std::slice::from_raw_parts(*address as *const u8, (*len).min(16))
        },
    };
    head.len() >= 4
        && !matches!(
            ImageKind::detect(head),
            ImageKind::Unknown | ImageKind::Html | ImageKind::Empty
        )
}

/// A matplotlib figure: it has a canvas and saves itself.
fn is_figure(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(obj.hasattr("savefig")? && obj.hasattr("canvas")? && obj.hasattr("dpi")?)
}

fn figure(fig: &Bound<'_, PyAny>, encoding: Encoding) -> PyResult<Frame> {
    let py = fig.py();
    let mut canvas = fig.getattr("canvas")?;
    // Interactive back-ends that are not Agg-based have no pixel buffer:
    // draw on an Agg canvas of the figure, as matplotlib's own
    // savefig does for raster formats.
    if !canvas.hasattr("buffer_rgba")? {
        let agg = py
            .import("matplotlib.backends.backend_agg")?
            .getattr("FigureCanvasAgg")?;
        canvas = agg.call1((fig,))?;
    }
    canvas.call_method0("draw")?;
    let rgba = canvas.call_method0("buffer_rgba")?;
    let array = array_of(&rgba)?
        .ok_or_else(|| PyTypeError::new_err("the figure's canvas gave no pixel buffer"))?;
    from_array(
        &rgba,
        array,
        Encoding {
            bgr: false,
            ..encoding
        },
        &ConvertOptions::default(),
    )
}

/// A Pillow image: `PIL.Image.Image` or a subclass (by its methods, so
/// that Pillow need not be imported).
fn is_pillow_image(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    Ok(obj.hasattr("tobytes")? && obj.hasattr("mode")? && obj.hasattr("getbands")?)
}

fn pillow(image: &Bound<'_, PyAny>, encoding: Encoding) -> PyResult<Frame> {
    let py = image.py();
    let mode: String = image.getattr("mode")?.extract()?;
    let (image, layout) = match mode.as_str() {
        "RGB" => (image.clone(), Pixels::Rgb),
        "RGBA" => (image.clone(), Pixels::Rgba),
        "L" => (image.clone(), Pixels::Luma),
        // P, CMYK, I;16, F, …: Pillow knows how each becomes RGB.
        _ => (image.call_method1("convert", ("RGB",))?, Pixels::Rgb),
    };
    let (width, height): (usize, usize) = image.getattr("size")?.extract()?;
    let (w, h) = match (u16::try_from(width), u16::try_from(height)) {
        (Ok(w), Ok(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(PyValueError::new_err(format!(
                "a {width}x{height} image cannot be a JPEG: width and height must be 1 to 65535"
            )))
        }
    };
    let data = image.call_method0("tobytes")?;
    let data = data.cast::<PyBytes>()?.as_bytes().to_vec();
    py.detach(move || encode(&data, w, h, layout, encoding.quality))
}
