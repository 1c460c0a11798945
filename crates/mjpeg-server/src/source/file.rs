//! Reading an image file for a file source (`dir:`, `watch:`), safely
//! whatever is found at the name.

use crate::names::option_names;

/// Reads the image file `path` for a file source (`dir:`, `watch:`),
/// safely whatever is found at that name: returns its metadata (from the
/// open file) and its bytes.
///
/// * Only regular files are read. A FIFO would block the open until a
///   writer comes, and a read until it writes, holding up the source and
///   the shutdown (which waits for blocking reads): the type is checked
///   before opening, the open does not block (`O_NONBLOCK`), and the type
///   is checked again on the open file, since the name may have been
///   replaced in between.
/// * A file larger than `limit` (`--max-frame-size`) is refused from its
///   size, without reading it; and at most `limit + 1` bytes are read
///   anyway, since the file may grow between the check and the read.
///
/// Runs on the blocking pool, in one trip.
pub(crate) async fn read_image_file(
    path: &std::path::Path,
    limit: usize,
) -> std::io::Result<(std::fs::Metadata, Vec<u8>)> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || read_image_file_blocking(&path, limit))
        .await
        .unwrap_or_else(|e| Err(std::io::Error::other(format!("reading task failed: {e}"))))
}

fn read_image_file_blocking(
    path: &std::path::Path,
    limit: usize,
) -> std::io::Result<(std::fs::Metadata, Vec<u8>)> {
    use std::io::Read;
    let limit = limit as u64;
    let check = |meta: &std::fs::Metadata| {
        if !meta.is_file() {
            return Err(not_a_regular_file(meta));
        }
        if meta.len() > limit {
            return Err(too_large(format!(
                "{} bytes, over the frame size limit of {limit} bytes ({}); not read",
                meta.len(),
                option_names().max_frame
            )));
        }
        Ok(())
    };
    // Follows symlinks, so that linked images count.
    check(&std::fs::metadata(path)?)?;
    let mut open = std::fs::OpenOptions::new();
    open.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        // Reads of regular files ignore the flag; it only keeps the open
        // of a FIFO put here since the check from blocking.
        open.custom_flags(libc::O_NONBLOCK);
    }
    let file = open.open(path)?;
    let meta = file.metadata()?;
    check(&meta)?;
    let mut data = Vec::with_capacity(meta.len() as usize);
    file.take(limit + 1).read_to_end(&mut data)?;
    if data.len() as u64 > limit {
        return Err(too_large(format!(
            "grew while being read, past the frame size limit of {limit} bytes ({}); dropped",
            option_names().max_frame
        )));
    }
    Ok((meta, data))
}

fn not_a_regular_file(meta: &std::fs::Metadata) -> std::io::Error {
    let ft = meta.file_type();
    #[cfg(unix)]
    let what = {
        use std::os::unix::fs::FileTypeExt;
        if ft.is_fifo() {
            "a FIFO"
        } else if ft.is_socket() {
            "a socket"
        } else if ft.is_block_device() || ft.is_char_device() {
            "a device"
        } else if ft.is_dir() {
            "a folder"
        } else {
            "not a file"
        }
    };
    #[cfg(not(unix))]
    let what = if ft.is_dir() {
        "a folder"
    } else {
        "not a file"
    };
    std::io::Error::new(
        std::io::ErrorKind::InvalidInput,
        format!("not a regular file ({what}); only regular files are read"),
    )
}

fn too_large(why: String) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, why)
}
