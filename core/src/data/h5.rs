//! Defensive access to HDF5 files through `rust-hdf5`: the decoder is run under
//! `catch_unwind` (a corrupt file is an error, not a crash), and a dataset's declared size is
//! checked against what the file could hold before anything is allocated for it, so a few
//! kilobytes declaring a (2, 200000, 200000, 3) array is an error rather than an allocation
//! abort or an hour-long read.

use std::path::Path;

use rust_hdf5::{H5Dataset, H5File};

use super::{DataError, display};

/// Deflate cannot compress better than 1032:1 (RFC 1951's longest match per code); a
/// dataset declaring more bytes than that times the file's size cannot be real.
const MAX_COMPRESSION: u64 = 1032;

pub(crate) fn fmt_err(path: &Path, format: &'static str, detail: impl Into<String>) -> DataError {
    DataError::Format { path: display(path), format, detail: detail.into() }
}

/// Runs `f`, turning a panic inside the HDF5 decoder (corrupt file) into an error.
pub(crate) fn guarded<T>(
    path: &Path,
    format: &'static str,
    what: &str,
    f: impl FnOnce() -> Result<T, DataError>,
) -> Result<T, DataError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|_| {
        Err(fmt_err(path, format, format!("the HDF5 decoder failed while {what}; is the file corrupt?")))
    })
}

/// Opens an HDF5 file: a missing file is an I/O error, anything else the decoder rejects (or
/// panics on) a format error.
pub(crate) fn open(path: &Path, format: &'static str) -> Result<H5File, DataError> {
    drop(super::open_regular(path)?);
    guarded(path, format, "opening the file", || H5File::open(path).map_err(|e| fmt_err(path, format, e.to_string())))
}

/// The bytes `d` declares (elements × element size), refused when it overflows or exceeds
/// what a file of this size could hold even deflate-compressed.
pub(crate) fn check_declared(d: &H5Dataset, path: &Path, format: &'static str, name: &str) -> Result<(), DataError> {
    let file_len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
    let shape = d.shape();
    let declared = shape
        .iter()
        .try_fold(d.element_size().max(1) as u64, |acc, &n| acc.checked_mul(n as u64))
        .ok_or_else(|| fmt_err(path, format, format!("`{name}` declares shape {shape:?}, whose size overflows")))?;
    // Reading visits every chunk of the grid, stored or not; a file indexes each stored chunk
    // in at least 8 bytes, so a grid of far more chunks than that is a corrupt header (and would
    // take hours to walk).
    if let Some(chunk) = d.chunk_dims().filter(|c| c.len() == shape.len()) {
        let chunks = shape
            .iter()
            .zip(&chunk)
            .try_fold(1u64, |acc, (&n, &c)| acc.checked_mul((n as u64).div_ceil(c.max(1) as u64)))
            .unwrap_or(u64::MAX);
        if chunks > file_len / 8 + 4096 {
            return Err(fmt_err(
                path,
                format,
                format!(
                    "`{name}` declares shape {shape:?} in {chunks} chunks of {chunk:?}, more than a file of \
                     {file_len} bytes can index; the file is corrupt"
                ),
            ));
        }
    }
    if declared > file_len.saturating_mul(MAX_COMPRESSION) {
        return Err(fmt_err(
            path,
            format,
            format!(
                "`{name}` declares shape {shape:?} ({declared} bytes) in a file of {file_len} bytes — more \
                 than any compression can hold; the file is corrupt or truncated"
            ),
        ));
    }
    Ok(())
}

/// Reads a whole numeric dataset as `T` after [`check_declared`], with its shape; the value
/// count is checked against the shape.
pub(crate) fn read_all<T: rust_hdf5::ReadNumeric>(
    d: &H5Dataset,
    path: &Path,
    format: &'static str,
    name: &str,
) -> Result<(Vec<usize>, Vec<T>), DataError> {
    check_declared(d, path, format, name)?;
    let shape = d.shape();
    let v = guarded(path, format, &format!("reading `{name}`"), || {
        d.read_numeric_as::<T>().map_err(|e| fmt_err(path, format, format!("`{name}`: {e}")))
    })?;
    let expected: usize = shape.iter().product();
    if v.len() != expected {
        return Err(fmt_err(path, format, format!("`{name}` holds {} values for shape {shape:?}", v.len())));
    }
    Ok((shape, v))
}

/// Object ids, stored as integers (AstroCLIP's int64 `targetids`, MMU's `object_id`) or as
/// fixed/variable-length strings, as strings — never renumbered.
pub(crate) fn read_ids(d: &H5Dataset, path: &Path, format: &'static str, name: &str) -> Result<Vec<String>, DataError> {
    check_declared(d, path, format, name)?;
    guarded(path, format, &format!("reading `{name}`"), || {
        if let Ok(v) = d.read_numeric_as::<i64>() {
            return Ok(v.into_iter().map(|x| x.to_string()).collect());
        }
        d.read_strings()
            .map(|v| v.into_iter().map(|s| s.trim_end_matches(['\0', ' ']).to_string()).collect())
            .map_err(|e| fmt_err(path, format, format!("`{name}` is neither integers nor strings: {e}")))
    })
}
