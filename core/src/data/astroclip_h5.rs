//! AstroCLIP's training-file layout in HDF5, read with random access and written by
//! `astroclip survey synth --format h5`.
//!
//! AstroCLIP (Parker et al. 2024, `astroclip_desi.*.h5`) stores the paired sample as top-level
//! groups (`"0"`, `"1"`, …), each holding
//! `images` (N, 152, 152, 3) float32 nanomaggies in g, r, z; `spectra` (N, 7781, 1) float32 on
//! the DESI grid 3600–9824 Å / 0.8 Å; `redshifts` (N,); `targetids` (N,) int64.
//! Datasets directly at the root (one part) are read the same way.
//!
//! astroclip adds optional members the original lacks, read when present: `ivar` (same shape as
//! `spectra`), `wavelength` (L,) Å, `truth_<name>` (N,) catalogue columns, and the root
//! attributes `bands` ("g,r,z"), `pixel_scale` (arcsec, "0.262"), `provenance`. Without
//! `ivar`, every bin gets ivar 1 (AstroCLIP's SpecFormer ignores it).

use std::path::{Path, PathBuf};

use rust_hdf5::{H5Dataset, H5File};

use super::grid::check_wavelengths;
use super::{DataError, ObjectReader, ObjectSource, check_image, check_spectrum, check_usable, display, h5};
use crate::data::catalog::Survey;
use crate::data::grid::{DESI_DLAMBDA, DESI_LAMBDA_MIN, DESI_NBINS};

const FORMAT: &str = "AstroCLIP HDF5";

/// One group of the file (or the root).
#[derive(Debug, Clone)]
struct Part {
    /// `""` for root-level datasets, else `"<group>/"`.
    prefix: String,
    start: usize,
    n: usize,
    has_ivar: bool,
}

pub struct AstroClipH5 {
    path: PathBuf,
    parts: Vec<Part>,
    object_ids: Vec<String>,
    bands: Vec<String>,
    image_size: usize,
    pixel_scale: f32,
    wavelength: Vec<f32>,
    truth: Vec<(String, Vec<f32>)>,
    provenance: String,
    by_id: std::collections::HashMap<String, usize>,
}

fn fmt_err(path: &Path, detail: impl Into<String>) -> DataError {
    h5::fmt_err(path, FORMAT, detail)
}

fn guarded<T>(path: &Path, what: &str, f: impl FnOnce() -> Result<T, DataError>) -> Result<T, DataError> {
    h5::guarded(path, FORMAT, what, f)
}

impl AstroClipH5 {
    pub fn open(path: &Path) -> Result<Self, DataError> {
        let f = h5::open(path, FORMAT)?;
        guarded(path, "reading the file structure", || Self::open_inner(path, f))
    }

    fn open_inner(path: &Path, f: H5File) -> Result<Self, DataError> {
        let h5 = |e: rust_hdf5::Hdf5Error| fmt_err(path, e.to_string());
        let root = f.root_group();
        let root_sets = root.dataset_names().map_err(h5)?;
        let mut prefixes = Vec::new();
        if root_sets.iter().any(|n| n == "images") {
            prefixes.push(String::new());
        }
        let mut groups = root.group_names().map_err(h5)?;
        // Numeric group names in numeric order ("2" before "10").
        groups.sort_by(|a, b| match (a.parse::<u64>(), b.parse::<u64>()) {
            (Ok(x), Ok(y)) => x.cmp(&y),
            _ => a.cmp(b),
        });
        for g in groups {
            let sets = root.group(&g).and_then(|g| g.dataset_names()).map_err(h5)?;
            if sets.iter().any(|n| n == "images") {
                prefixes.push(format!("{g}/"));
            }
        }
        if prefixes.is_empty() {
            return Err(fmt_err(
                path,
                "no `images` dataset at the root or in any top-level group; expected AstroCLIP's layout \
                 (groups holding images, spectra, redshifts, targetids)",
            ));
        }
        let attr = |name: &str| f.attr_string(name).ok();
        let bands: Vec<String> = attr("bands")
            .map(|b| b.split(',').map(|s| s.trim().to_string()).collect())
            .unwrap_or_else(|| vec!["g".into(), "r".into(), "z".into()]);
        if bands.iter().enumerate().any(|(i, b)| b.is_empty() || bands[..i].contains(b)) {
            return Err(fmt_err(path, format!("attribute bands = {:?} must name each band once", bands.join(","))));
        }
        let pixel_scale: f32 = match attr("pixel_scale") {
            Some(s) => s
                .parse()
                .ok()
                .filter(|v: &f32| v.is_finite() && *v > 0.0)
                .ok_or_else(|| fmt_err(path, format!("attribute pixel_scale = {s:?} is not a positive number")))?,
            None => 0.262,
        };
        let provenance = attr("provenance").unwrap_or_else(|| "AstroCLIP-layout HDF5".into());

        let mut parts = Vec::new();
        let mut object_ids = Vec::new();
        let mut truth: Vec<(String, Vec<f32>)> = Vec::new();
        let mut image_size = 0;
        let mut n_bins = 0;
        let mut wavelength: Option<Vec<f32>> = None;
        for prefix in prefixes {
            let ds = |name: &str| f.dataset(&format!("{prefix}{name}"));
            let group_name = if prefix.is_empty() { "/".to_string() } else { prefix.trim_end_matches('/').to_string() };
            let need = |name: &str| {
                ds(name)
                    .map_err(|_| fmt_err(path, format!("group {group_name:?} has `images` but no `{name}` dataset")))
            };
            let images = need("images")?;
            h5::check_declared(&images, path, FORMAT, &format!("{prefix}images"))?;
            let ishape = images.shape();
            if ishape.len() != 4 || ishape[1] != ishape[2] || ishape[3] != bands.len() {
                return Err(fmt_err(
                    path,
                    format!(
                        "{group_name}/images has shape {ishape:?}; expected (N, H, H, {}) for bands {}",
                        bands.len(),
                        bands.join(",")
                    ),
                ));
            }
            let n = ishape[0];
            if ishape[1] > super::MAX_IMAGE_SIDE {
                return Err(fmt_err(
                    path,
                    format!(
                        "{group_name}/images are {} px wide; at most {} px are read",
                        ishape[1],
                        super::MAX_IMAGE_SIDE
                    ),
                ));
            }
            let spectra = need("spectra")?;
            h5::check_declared(&spectra, path, FORMAT, &format!("{prefix}spectra"))?;
            let sshape = spectra.shape();
            if !(sshape.len() == 2 || (sshape.len() == 3 && sshape[2] == 1)) || sshape[0] != n {
                return Err(fmt_err(
                    path,
                    format!("{group_name}/spectra has shape {sshape:?}; expected ({n}, L, 1) or ({n}, L)"),
                ));
            }
            if sshape[1] > super::MAX_SPECTRUM_BINS {
                return Err(fmt_err(
                    path,
                    format!(
                        "{group_name}/spectra have {} bins; at most {} are read",
                        sshape[1],
                        super::MAX_SPECTRUM_BINS
                    ),
                ));
            }
            if ishape[1] == 0 || sshape[1] == 0 {
                return Err(fmt_err(
                    path,
                    format!(
                        "{group_name} holds {}-px images and {}-bin spectra; both must be non-empty",
                        ishape[1], sshape[1]
                    ),
                ));
            }
            if image_size == 0 {
                image_size = ishape[1];
                n_bins = sshape[1];
            } else if image_size != ishape[1] || n_bins != sshape[1] {
                return Err(fmt_err(
                    path,
                    format!(
                        "{group_name} has {}-px images and {}-bin spectra; the first group has {image_size} and {n_bins}",
                        ishape[1], sshape[1]
                    ),
                ));
            }
            let has_ivar = match ds("ivar") {
                Ok(iv) if iv.shape() == sshape => true,
                Ok(iv) => {
                    return Err(fmt_err(
                        path,
                        format!("{group_name}/ivar has shape {:?}; spectra have {sshape:?}", iv.shape()),
                    ));
                }
                Err(_) => false,
            };
            if let Ok(w) = ds("wavelength") {
                let (_, w) = h5::read_all::<f32>(&w, path, FORMAT, &format!("{prefix}wavelength"))?;
                check_wavelengths(&w.iter().map(|&v| v as f64).collect::<Vec<_>>())
                    .map_err(|e| fmt_err(path, format!("{group_name}/wavelength: {e}")))?;
                if wavelength.as_ref().is_some_and(|prev| prev != &w) {
                    return Err(fmt_err(path, format!("{group_name}/wavelength differs from the first group's grid")));
                }
                wavelength = Some(w);
            }
            // int64 as AstroCLIP writes them, or strings (ids that are not all integers).
            let ids = h5::read_ids(&need("targetids")?, path, FORMAT, &format!("{prefix}targetids"))?;
            let (_, z) = h5::read_all::<f32>(&need("redshifts")?, path, FORMAT, &format!("{prefix}redshifts"))?;
            if ids.len() != n || z.len() != n {
                return Err(fmt_err(
                    path,
                    format!("{group_name}: {n} images but {} targetids and {} redshifts", ids.len(), z.len()),
                ));
            }
            let mut cols: Vec<(String, Vec<f32>)> = vec![("redshift".into(), z)];
            let g_sets = if prefix.is_empty() {
                root_sets.clone()
            } else {
                root.group(&group_name).and_then(|g| g.dataset_names()).map_err(h5)?
            };
            for name in g_sets.iter().filter_map(|s| s.strip_prefix("truth_")) {
                let key = format!("{prefix}truth_{name}");
                let (_, col) = h5::read_all::<f32>(&ds(&format!("truth_{name}")).map_err(h5)?, path, FORMAT, &key)?;
                if col.len() != n {
                    return Err(fmt_err(
                        path,
                        format!("{group_name}/truth_{name} has {} values for {n} objects", col.len()),
                    ));
                }
                cols.push((name.to_string(), col));
            }
            if parts.is_empty() {
                truth = cols;
            } else {
                for (name, col) in cols {
                    match truth.iter_mut().find(|(t, _)| *t == name) {
                        Some((_, all)) => all.extend(col),
                        None => {
                            return Err(fmt_err(
                                path,
                                format!("{group_name} has column {name} that the first group lacks"),
                            ));
                        }
                    }
                }
                if let Some((name, col)) = truth.iter().find(|(_, c)| c.len() != object_ids.len() + n) {
                    return Err(fmt_err(path, format!("{group_name} lacks column {name} ({} values)", col.len())));
                }
            }
            parts.push(Part { prefix, start: object_ids.len(), n, has_ivar });
            object_ids.extend(ids);
        }
        let wavelength = match wavelength {
            Some(w) if w.len() == n_bins => w,
            Some(w) => {
                return Err(fmt_err(path, format!("wavelength has {} values for {n_bins}-bin spectra", w.len())));
            }
            None if n_bins == DESI_NBINS => {
                (0..DESI_NBINS).map(|i| (DESI_LAMBDA_MIN + DESI_DLAMBDA * i as f64) as f32).collect()
            }
            None => {
                return Err(fmt_err(
                    path,
                    format!(
                        "spectra have {n_bins} bins but no `wavelength` dataset; only the 7781-bin DESI grid is implied"
                    ),
                ));
            }
        };
        let by_id = object_ids.iter().enumerate().map(|(i, id)| (id.clone(), i)).collect();
        Ok(Self {
            by_id,
            path: path.to_path_buf(),
            parts,
            object_ids,
            bands,
            image_size,
            pixel_scale,
            wavelength,
            truth,
            provenance,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn groups(&self) -> Vec<(String, usize)> {
        self.parts.iter().map(|p| (p.prefix.trim_end_matches('/').to_string(), p.n)).collect()
    }

    pub fn has_ivar(&self) -> bool {
        self.parts.iter().all(|p| p.has_ivar)
    }

    /// Index of the object with this target id.
    pub fn index_of(&self, target_id: &str) -> Option<usize> {
        self.by_id.get(target_id).copied()
    }
}

impl ObjectSource for AstroClipH5 {
    fn describe(&self) -> String {
        format!("{} ({})", display(&self.path), self.provenance)
    }
    fn len(&self) -> usize {
        self.object_ids.len()
    }
    fn object_ids(&self) -> &[String] {
        &self.object_ids
    }
    fn bands(&self) -> &[String] {
        &self.bands
    }
    fn image_size(&self) -> usize {
        self.image_size
    }
    fn pixel_scale(&self) -> f32 {
        self.pixel_scale
    }
    fn wavelength(&self) -> &[f32] {
        &self.wavelength
    }
    fn truth(&self) -> &[(String, Vec<f32>)] {
        &self.truth
    }
    fn reader(&self) -> Result<Box<dyn ObjectReader + '_>, DataError> {
        let path = &self.path;
        let (file, sets) = guarded(path, "opening", || {
            let h5 = |e: rust_hdf5::Hdf5Error| fmt_err(path, e.to_string());
            let file = H5File::open(path).map_err(h5)?;
            // Dataset handles are looked up once per reader, not per object.
            let sets = self
                .parts
                .iter()
                .map(|p| {
                    let d = |n: &str| {
                        file.dataset(&format!("{}{n}", p.prefix))
                            .map(|d| {
                                let f32 = is_f32(&d);
                                Slab { d, f32 }
                            })
                            .map_err(h5)
                    };
                    Ok((d("images")?, d("spectra")?, if p.has_ivar { Some(d("ivar")?) } else { None }))
                })
                .collect::<Result<Vec<_>, DataError>>()?;
            Ok((file, sets))
        })?;
        Ok(Box::new(H5Reader { src: self, _file: file, sets }))
    }
    fn content_hash(&self) -> Result<String, DataError> {
        super::file_sha256(&self.path)
    }
    fn format(&self) -> &'static str {
        "astroclip-h5"
    }
}

struct H5Reader<'a> {
    src: &'a AstroClipH5,
    _file: H5File,
    sets: Vec<(Slab, Slab, Option<Slab>)>,
}

/// A dataset handle and whether it stores f32 (checked once per reader).
struct Slab {
    d: H5Dataset,
    f32: bool,
}

/// Whether a dataset stores IEEE float32 (read in place) rather than something to convert.
fn is_f32(d: &H5Dataset) -> bool {
    matches!(d.datatype(), Ok(rust_hdf5::format::messages::datatype::DatatypeMessage::FloatingPoint { size: 4, .. }))
}

/// A hyperslab as f32: straight into `out` when stored as f32, converted otherwise.
fn slab(s: &Slab, start: &[usize], count: &[usize], out: &mut [f32]) -> Result<(), rust_hdf5::Hdf5Error> {
    if s.f32 {
        s.d.read_slice_into(out, start, count)
    } else {
        out.copy_from_slice(&s.d.read_numeric_slice_as::<f32>(start, count)?);
        Ok(())
    }
}

impl ObjectReader for H5Reader<'_> {
    fn read(&mut self, i: usize, image: &mut [f32], flux: &mut [f32], ivar: &mut [f32]) -> Result<(), DataError> {
        let src = self.src;
        let k = src.parts.iter().position(|p| i >= p.start && i < p.start + p.n).ok_or_else(|| DataError::Content {
            path: display(&src.path),
            detail: format!("object index {i} is out of range ({} objects)", src.len()),
        })?;
        let row = i - src.parts[k].start;
        let object = &src.object_ids[i];
        let s = src.image_size;
        let b = src.bands.len();
        let l = src.wavelength.len();
        let path = &src.path;
        let (images, spectra, ivars) = &self.sets[k];
        guarded(path, &format!("reading object {object}"), || {
            let bad = |e: rust_hdf5::Hdf5Error| DataError::BadObject {
                path: display(path),
                object: object.clone(),
                detail: format!("cannot read its rows ({e}); the file may be truncated"),
            };
            slab(images, &[row, 0, 0, 0], &[1, s, s, b], image).map_err(bad)?;
            let (st, ct): (Vec<usize>, Vec<usize>) =
                if spectra.d.ndims() == 3 { (vec![row, 0, 0], vec![1, l, 1]) } else { (vec![row, 0], vec![1, l]) };
            slab(spectra, &st, &ct, flux).map_err(bad)?;
            match ivars {
                Some(d) => slab(d, &st, &ct, ivar).map_err(bad)?,
                None => ivar.fill(1.0),
            }
            Ok(())
        })?;
        let p = display(path);
        check_image(&p, object, image)?;
        check_spectrum(&p, object, flux, ivar)?;
        check_usable(&p, object, ivar)
    }
}

/// Writes a survey in AstroCLIP's layout (one group `"0"`), plus astroclip's optional members
/// (`ivar`, `wavelength`, `truth_*`, attributes). Object ids are never changed: when every id
/// is an integer written the canonical way (`-5`, `39627745545617766`, not `+7` or `007`),
/// `targetids` is int64 as in AstroCLIP's files; otherwise it is a string dataset holding the
/// ids as given. Duplicate ids are refused. Written to `<path>.partial` and renamed, so a
/// crash leaves no half file.
pub fn write(survey: &Survey, path: &Path) -> Result<(), DataError> {
    let n = survey.len();
    let s = survey.image_size;
    let b = survey.bands.len();
    let l = survey.wavelength.len();
    let mut seen = std::collections::HashSet::with_capacity(n);
    if let Some(dup) = survey.object_ids.iter().find(|id| !seen.insert(id.as_str())) {
        return Err(DataError::Content {
            path: display(path),
            detail: format!("object id {dup:?} occurs more than once; ids must be unique to be written"),
        });
    }
    let ints: Option<Vec<i64>> =
        survey.object_ids.iter().map(|id| id.parse::<i64>().ok().filter(|v| v.to_string() == *id)).collect();
    let tmp = path.with_extension("partial");
    let h5 = |e: rust_hdf5::Hdf5Error| DataError::Content { path: display(path), detail: format!("writing HDF5: {e}") };
    {
        let f = H5File::create(&tmp).map_err(h5)?;
        f.set_attr_string("bands", &survey.bands.join(",")).map_err(h5)?;
        f.set_attr_string("pixel_scale", &survey.pixel_scale.to_string()).map_err(h5)?;
        f.set_attr_string("provenance", &survey.provenance).map_err(h5)?;
        f.set_attr_string("format", "astroclip-h5/1").map_err(h5)?;
        let g = f.create_group("0").map_err(h5)?;
        g.new_dataset::<f32>()
            .shape([n, s, s, b])
            .create("images")
            .map_err(h5)?
            .write_raw(&survey.images)
            .map_err(h5)?;
        g.new_dataset::<f32>()
            .shape([n, l, 1])
            .create("spectra")
            .map_err(h5)?
            .write_raw(&survey.spectra)
            .map_err(h5)?;
        g.new_dataset::<f32>().shape([n, l, 1]).create("ivar").map_err(h5)?.write_raw(&survey.ivar).map_err(h5)?;
        g.new_dataset::<f32>()
            .shape([l])
            .create("wavelength")
            .map_err(h5)?
            .write_raw(&survey.wavelength)
            .map_err(h5)?;
        match &ints {
            Some(ids) => {
                g.new_dataset::<i64>().shape([n]).create("targetids").map_err(h5)?.write_raw(ids).map_err(h5)?;
            }
            None => {
                let ids: Vec<&str> = survey.object_ids.iter().map(String::as_str).collect();
                g.write_vlen_strings("targetids", &ids).map_err(h5)?;
            }
        }
        let z = survey.truth_column("redshift").map(<[f32]>::to_vec).unwrap_or_else(|| vec![f32::NAN; n]);
        g.new_dataset::<f32>().shape([n]).create("redshifts").map_err(h5)?.write_raw(&z).map_err(h5)?;
        for (name, col) in survey.truth.iter().filter(|(name, _)| name != "redshift") {
            g.new_dataset::<f32>()
                .shape([n])
                .create(&format!("truth_{name}"))
                .map_err(h5)?
                .write_raw(col)
                .map_err(h5)?;
        }
        f.close().map_err(h5)?;
    }
    std::fs::rename(&tmp, path).map_err(|e| DataError::io(path, e))
}
