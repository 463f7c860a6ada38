//! Legacy Survey cutout FITS (the `fits-cutout` service of legacysurvey.org): a primary image
//! `(bands, H, W)` in nanomaggies, band names in `BAND0`, `BAND1`, … and the pixel scale from
//! the WCS (`CD1_1`…`CD2_2`, or `CDELT1/2`, or a `PIXSCALE` keyword in arcsec). Any cutout
//! server's 2-D or 3-D primary image reads the same way (tested on a FIRST cutout).

use std::path::Path;

use super::fits::FitsFile;
use super::{DataError, ImageRecord};

pub fn read_cutout(path: &Path) -> Result<ImageRecord, DataError> {
    let f = FitsFile::open(path)?;
    let p = path.display().to_string();
    let hdu = &f.hdus[0];
    let (shape, data) = f.image(hdu)?;
    let (b, h, w) = match shape.as_slice() {
        [b, h, w] => (*b, *h, *w),
        [h, w] => (1, *h, *w),
        other => {
            return Err(DataError::Content {
                path: p,
                detail: format!("primary image has shape {other:?}; a cutout is (bands, H, W)"),
            });
        }
    };
    let bands: Vec<String> = (0..b)
        .map(|i| {
            hdu.get(&format!("BAND{i}"))
                .map(str::to_string)
                .unwrap_or_else(|| ["g", "r", "z", "i"].get(i).unwrap_or(&"?").to_string())
        })
        .collect();
    let pixel_scale = if let (Some(a), Some(d)) = (hdu.float("CD1_1"), hdu.float("CD2_2")) {
        let (b12, c21) = (hdu.float("CD1_2").unwrap_or(0.0), hdu.float("CD2_1").unwrap_or(0.0));
        (a * d - b12 * c21).abs().sqrt() * 3600.0
    } else if let Some(c) = hdu.float("CDELT1") {
        c.abs() * 3600.0
    } else if let Some(s) = hdu.float("PIXSCALE") {
        s
    } else {
        return Err(DataError::Content {
            path: p,
            detail: "no pixel scale in the header (CD1_1/CD2_2, CDELT1 or PIXSCALE)".into(),
        });
    };
    if !(pixel_scale.is_finite() && pixel_scale > 0.0) {
        return Err(DataError::Content {
            path: p,
            detail: format!("the header's pixel scale is {pixel_scale} arcsec; it must be a positive number"),
        });
    }
    if h > super::MAX_IMAGE_SIDE || w > super::MAX_IMAGE_SIDE {
        return Err(DataError::Content {
            path: p,
            detail: format!("the image is {h}×{w} px; at most {} px a side are read", super::MAX_IMAGE_SIDE),
        });
    }
    // (bands, H, W) → (H, W, bands), AstroCLIP's layout.
    let mut flux = vec![0f32; b * h * w];
    for k in 0..b {
        for y in 0..h {
            for x in 0..w {
                flux[(y * w + x) * b + k] = data[(k * h + y) * w + x] as f32;
            }
        }
    }
    let object_id = hdu
        .get("OBJID")
        .or_else(|| hdu.get("OBJECT"))
        .map(str::to_string)
        .unwrap_or_else(|| path.file_stem().map(|s| s.to_string_lossy().to_string()).unwrap_or_else(|| p.clone()));
    Ok(ImageRecord {
        object_id,
        ra: hdu.float("CRVAL1"),
        dec: hdu.float("CRVAL2"),
        bands,
        height: h,
        width: w,
        flux,
        ivar: None,
        mask: None,
        pixel_scale,
        provenance: format!("Legacy Survey cutout {p}"),
    })
}
