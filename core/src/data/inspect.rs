//! `astroclip data inspect` and `astroclip data import`: what a file holds (format, shapes,
//! counts, NaN/inf and ivar ≤ 0 counts, wavelength range), and conversion of paired images and
//! spectra from any supported format into the AstroCLIP HDF5 training layout.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::fits::FitsFile;
use super::grid::{desi_grid, resample};
use super::{DataError, ImageRecord, OnBad, SpectrumRecord};
use crate::data::catalog::Survey;

/// The formats `detect` recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    AstroclipH5,
    MmuSpectra,
    MmuImages,
    DesiCoadd,
    DesiRedrock,
    SdssSpec,
    LegacyCutout,
    SurveySafetensors,
}

impl Format {
    pub fn describe(self) -> &'static str {
        match self {
            Format::AstroclipH5 => "AstroCLIP-layout HDF5 (paired images + spectra)",
            Format::MmuSpectra => "Multimodal Universe HDF5, spectra",
            Format::MmuImages => "Multimodal Universe HDF5, images",
            Format::DesiCoadd => "DESI coadd FITS (B/R/Z arms)",
            Format::DesiRedrock => "DESI redrock redshift catalogue FITS",
            Format::SdssSpec => "SDSS/BOSS spec FITS",
            Format::LegacyCutout => "Legacy Survey cutout FITS",
            Format::SurveySafetensors => "astroclip survey safetensors",
        }
    }
}

pub fn detect(path: &Path) -> Result<Format, DataError> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_ascii_lowercase()).unwrap_or_default();
    if name.ends_with(".safetensors") {
        return Ok(Format::SurveySafetensors);
    }
    if name.ends_with(".h5") || name.ends_with(".hdf5") {
        let f = super::h5::open(path, "HDF5")?;
        let sets = super::h5::guarded(path, "HDF5", "listing datasets", || {
            Ok(f.root_group().dataset_names().unwrap_or_default())
        })?;
        if sets.iter().any(|s| s == "spectrum_flux") {
            return Ok(Format::MmuSpectra);
        }
        if sets.iter().any(|s| s == "image_array") {
            return Ok(Format::MmuImages);
        }
        return Ok(Format::AstroclipH5);
    }
    if name.ends_with(".fits") || name.ends_with(".fit") || name.ends_with(".fits.fz") {
        let f = FitsFile::open(path)?;
        if f.has_hdu("B_FLUX") || f.has_hdu("R_FLUX") || f.has_hdu("Z_FLUX") {
            return Ok(Format::DesiCoadd);
        }
        if f.has_hdu("REDSHIFTS") {
            return Ok(Format::DesiRedrock);
        }
        if f.has_hdu("COADD") {
            return Ok(Format::SdssSpec);
        }
        if f.hdus[0].get("NAXIS").and_then(|v| v.parse::<usize>().ok()).is_some_and(|n| n >= 2) {
            return Ok(Format::LegacyCutout);
        }
        return Err(DataError::Content {
            path: path.display().to_string(),
            detail: format!(
                "a FITS file with HDUs {:?} that is none of: DESI coadd, redrock, SDSS spec, Legacy Survey cutout",
                f.hdus.iter().map(|h| h.name.as_str()).collect::<Vec<_>>()
            ),
        });
    }
    Err(DataError::Content {
        path: path.display().to_string(),
        detail: "unknown file type (expected .h5/.hdf5, .fits or .safetensors)".into(),
    })
}

/// Counts over a set of values.
#[derive(Debug, Default, Clone, Serialize)]
pub struct ValueStats {
    pub values: usize,
    pub nan: usize,
    pub inf: usize,
    pub ivar_nonpositive: usize,
    pub masked: usize,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl ValueStats {
    fn add(&mut self, v: &[f32]) {
        for &x in v {
            self.values += 1;
            if x.is_nan() {
                self.nan += 1;
            } else if x.is_infinite() {
                self.inf += 1;
            } else {
                let x = x as f64;
                self.min = Some(self.min.map_or(x, |m| m.min(x)));
                self.max = Some(self.max.map_or(x, |m| m.max(x)));
            }
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub path: String,
    pub format: Format,
    pub description: &'static str,
    pub objects: usize,
    pub groups: Vec<(String, usize)>,
    pub image_shape: Option<Vec<usize>>,
    pub bands: Vec<String>,
    pub pixel_scale: Option<f64>,
    pub spectrum_bins: Option<usize>,
    pub wavelength_range: Option<(f64, f64)>,
    pub redshift_range: Option<(f64, f64)>,
    pub columns: Vec<String>,
    pub image: Option<ValueStats>,
    pub flux: Option<ValueStats>,
    pub ivar: Option<ValueStats>,
    /// Objects a reader refused (with reason) — reported, not fatal, in inspect.
    pub bad_objects: Vec<(String, String)>,
    pub sha256: String,
}

fn range(v: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    v.filter(|x| x.is_finite()).fold(None, |acc, x| Some(acc.map_or((x, x), |(a, b): (f64, f64)| (a.min(x), b.max(x)))))
}

fn spectra_report(report: &mut Report, specs: &[SpectrumRecord]) {
    let mut flux = ValueStats::default();
    let mut ivar = ValueStats::default();
    for s in specs {
        flux.add(&s.flux);
        ivar.add(&s.ivar);
        ivar.ivar_nonpositive += s.ivar.iter().filter(|&&w| w <= 0.0).count();
        flux.masked += s.mask.iter().filter(|&&m| m).count();
    }
    report.objects = specs.len() + report.bad_objects.len();
    report.spectrum_bins = specs.first().map(|s| s.wavelength.len());
    report.wavelength_range =
        range(specs.iter().flat_map(|s| s.wavelength.first().into_iter().chain(s.wavelength.last())).copied());
    report.redshift_range = range(specs.iter().filter_map(|s| s.redshift));
    report.flux = Some(flux);
    report.ivar = Some(ivar);
}

fn images_report(report: &mut Report, imgs: &[ImageRecord]) {
    let mut st = ValueStats::default();
    for i in imgs {
        st.add(&i.flux);
        st.masked += i.mask.as_ref().map_or(0, |m| m.iter().filter(|&&x| x).count());
    }
    report.objects = imgs.len() + report.bad_objects.len();
    if let Some(first) = imgs.first() {
        report.image_shape = Some(vec![first.height, first.width, first.bands.len()]);
        report.bands = first.bands.clone();
        report.pixel_scale = Some(first.pixel_scale);
    }
    report.image = Some(st);
}

/// Inspects any supported file. Unusable objects are counted in `bad_objects`, not fatal.
pub fn inspect(path: &Path) -> Result<Report, DataError> {
    let format = detect(path)?;
    let mut r = Report {
        path: path.display().to_string(),
        format,
        description: format.describe(),
        objects: 0,
        groups: Vec::new(),
        image_shape: None,
        bands: Vec::new(),
        pixel_scale: None,
        spectrum_bins: None,
        wavelength_range: None,
        redshift_range: None,
        columns: Vec::new(),
        image: None,
        flux: None,
        ivar: None,
        bad_objects: Vec::new(),
        sha256: super::file_sha256(path)?,
    };
    match format {
        Format::AstroclipH5 | Format::SurveySafetensors => {
            let src = super::open_path(path)?;
            if let Format::AstroclipH5 = format {
                r.groups = super::astroclip_h5::AstroClipH5::open(path)?.groups();
            }
            r.objects = src.len();
            r.image_shape = Some(vec![src.image_size(), src.image_size(), src.bands().len()]);
            r.bands = src.bands().to_vec();
            r.pixel_scale = Some(src.pixel_scale() as f64);
            r.spectrum_bins = Some(src.wavelength().len());
            let w = src.wavelength();
            r.wavelength_range = w.first().zip(w.last()).map(|(a, b)| (*a as f64, *b as f64));
            r.redshift_range = src.truth_column("redshift").and_then(|z| range(z.iter().map(|&v| v as f64)));
            r.columns = src.truth().iter().map(|(n, _)| n.clone()).collect();
            let (mut img, mut flux, mut ivar) = (ValueStats::default(), ValueStats::default(), ValueStats::default());
            let mut reader = src.reader()?;
            let s = src.image_size();
            let (mut ib, mut fb, mut wb) =
                (vec![0f32; s * s * src.bands().len()], vec![0f32; w.len()], vec![0f32; w.len()]);
            for i in 0..src.len() {
                match reader.read(i, &mut ib, &mut fb, &mut wb) {
                    Ok(()) => {}
                    Err(DataError::BadObject { object, detail, .. }) => r.bad_objects.push((object, detail)),
                    Err(e) => return Err(e),
                }
                img.add(&ib);
                flux.add(&fb);
                ivar.add(&wb);
                ivar.ivar_nonpositive += wb.iter().filter(|&&v| v <= 0.0).count();
            }
            (r.image, r.flux, r.ivar) = (Some(img), Some(flux), Some(ivar));
        }
        Format::MmuSpectra => {
            let (specs, bad) = super::mmu::read_spectra(path, OnBad::Skip)?;
            r.bad_objects = bad;
            spectra_report(&mut r, &specs);
        }
        Format::MmuImages => {
            let (imgs, bad) = super::mmu::read_images(path, OnBad::Skip)?;
            r.bad_objects = bad;
            images_report(&mut r, &imgs);
        }
        Format::DesiCoadd => {
            let (specs, log) = super::desi::read_coadd(path, None, OnBad::Skip)?;
            r.bad_objects = log.skipped;
            r.columns = log.warnings;
            spectra_report(&mut r, &specs);
        }
        Format::DesiRedrock => {
            let z = super::desi::read_redrock(path)?;
            r.objects = z.len();
            r.redshift_range = range(z.values().map(|(z, _)| *z));
            r.columns = vec!["TARGETID".into(), "Z".into(), "ZWARN".into()];
        }
        Format::SdssSpec => {
            let f = FitsFile::open(path)?;
            let coadd = f.hdu("COADD")?;
            let (loglam, _) = f.column_f64(coadd, "loglam")?;
            let spec = super::sdss::read_spec(path, &desi_grid())?;
            let (fl, _) = f.column_f64(coadd, "flux")?;
            let (iv, _) = f.column_f64(coadd, "ivar")?;
            let mut flux = ValueStats::default();
            flux.add(&fl.iter().map(|&v| v as f32).collect::<Vec<_>>());
            let mut ivar = ValueStats::default();
            ivar.add(&iv.iter().map(|&v| v as f32).collect::<Vec<_>>());
            ivar.ivar_nonpositive = iv.iter().filter(|&&v| v <= 0.0).count();
            r.objects = 1;
            r.spectrum_bins = Some(loglam.len());
            r.wavelength_range = range(loglam.iter().map(|l| 10f64.powf(*l)));
            r.redshift_range = spec.redshift.map(|z| (z, z));
            (r.flux, r.ivar) = (Some(flux), Some(ivar));
        }
        Format::LegacyCutout => {
            let img = super::legacy::read_cutout(path)?;
            images_report(&mut r, std::slice::from_ref(&img));
        }
    }
    Ok(r)
}

impl Report {
    pub fn text(&self) -> String {
        let mut s = format!("{}\n  format      {}\n  objects     {}\n", self.path, self.description, self.objects);
        for (g, n) in &self.groups {
            s += &format!("  group       {:<10} {n} objects\n", if g.is_empty() { "/" } else { g });
        }
        if let Some(shape) = &self.image_shape {
            s += &format!(
                "  images      {:?} (H, W, bands) bands {}  pixel scale {:.3}\"\n",
                shape,
                self.bands.join(","),
                self.pixel_scale.unwrap_or(f64::NAN)
            );
        }
        if let Some(n) = self.spectrum_bins {
            s += &format!("  spectra     {n} bins");
            if let Some((a, b)) = self.wavelength_range {
                s += &format!("  {a:.1}–{b:.1} Å");
            }
            s += "\n";
        }
        if let Some((a, b)) = self.redshift_range {
            s += &format!("  redshift    {a:.4} – {b:.4}\n");
        }
        if !self.columns.is_empty() {
            s += &format!("  columns     {}\n", self.columns.join(", "));
        }
        for (name, st) in [("image", &self.image), ("flux", &self.flux), ("ivar", &self.ivar)] {
            if let Some(st) = st {
                s += &format!(
                    "  {name:<11} {} values, NaN {}, inf {}, ivar≤0 {}, masked {}, range {:.4e} … {:.4e}\n",
                    st.values,
                    st.nan,
                    st.inf,
                    st.ivar_nonpositive,
                    st.masked,
                    st.min.unwrap_or(f64::NAN),
                    st.max.unwrap_or(f64::NAN)
                );
            }
        }
        s += &format!("  unusable    {} objects\n", self.bad_objects.len());
        for (obj, why) in self.bad_objects.iter().take(10) {
            s += &format!("    {obj}: {why}\n");
        }
        s += &format!("  sha256      {}\n", self.sha256);
        s
    }
}

/// What `import` reads and how it pairs.
#[derive(Debug, Clone)]
pub struct ImportSpec {
    pub spectra: Vec<PathBuf>,
    pub images: Vec<PathBuf>,
    pub redrock: Option<PathBuf>,
    /// `id` or `sky`.
    pub match_by: String,
    pub radius_arcsec: f64,
    pub image_size: usize,
    pub bands: Vec<String>,
    pub on_bad: OnBad,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub spectra_read: usize,
    pub images_read: usize,
    pub paired: usize,
    pub spectra_unpaired: usize,
    pub images_unpaired: usize,
    pub skipped: Vec<(String, String)>,
    pub out: String,
    pub sha256: String,
}

fn on_desi_grid(w: &[f64]) -> bool {
    let g = desi_grid();
    w.len() == g.len() && w.iter().zip(&g).all(|(a, b)| (a - b).abs() < 1e-3)
}

pub fn read_spectra_any(path: &Path, redrock: Option<&Path>, on_bad: OnBad) -> super::ReadResult<SpectrumRecord> {
    let grid = desi_grid();
    match detect(path)? {
        Format::DesiCoadd => super::desi::read_coadd(path, redrock, on_bad).map(|(s, log)| (s, log.skipped)),
        Format::SdssSpec => match super::sdss::read_spec(path, &grid) {
            Ok(s) => Ok((vec![s], vec![])),
            Err(e @ DataError::BadObject { .. }) if on_bad == OnBad::Skip => {
                Ok((vec![], vec![(path.display().to_string(), e.brief())]))
            }
            Err(e) => Err(e),
        },
        Format::MmuSpectra => {
            let (specs, mut skipped) = super::mmu::read_spectra(path, on_bad)?;
            let mut out = Vec::with_capacity(specs.len());
            for mut s in specs {
                if !on_desi_grid(&s.wavelength) {
                    let (f, iv) = resample(&s.wavelength, &s.flux, &s.ivar, &grid);
                    s.mask = iv.iter().map(|&w| w <= 0.0).collect();
                    (s.flux, s.ivar, s.wavelength) = (f, iv, grid.clone());
                    // Usable on its own grid, perhaps not where it overlaps DESI's.
                    match super::check_usable(&path.display().to_string(), &s.object_id, &s.ivar) {
                        Ok(()) => {}
                        Err(e) if on_bad == OnBad::Skip => {
                            skipped.push((s.object_id.clone(), format!("{} on the DESI grid", e.brief())));
                            continue;
                        }
                        Err(e) => return Err(e),
                    }
                }
                out.push(s);
            }
            Ok((out, skipped))
        }
        other => Err(DataError::Content {
            path: path.display().to_string(),
            detail: format!("{} holds no spectra to import", other.describe()),
        }),
    }
}

pub fn read_images_any(path: &Path, on_bad: OnBad) -> super::ReadResult<ImageRecord> {
    match detect(path)? {
        Format::LegacyCutout => Ok((vec![super::legacy::read_cutout(path)?], vec![])),
        Format::MmuImages => super::mmu::read_images(path, on_bad),
        other => Err(DataError::Content {
            path: path.display().to_string(),
            detail: format!("{} holds no images to import", other.describe()),
        }),
    }
}

/// Centre crop (or zero pad) to `size` and pick `bands` by name, `(size, size, bands)`.
pub fn fit_image(img: &ImageRecord, size: usize, bands: &[String]) -> Result<Vec<f32>, String> {
    let sel: Vec<usize> = bands
        .iter()
        .map(|b| img.bands.iter().position(|x| x == b).ok_or_else(|| format!("has bands {:?}, not {b}", img.bands)))
        .collect::<Result<_, _>>()?;
    let nb = img.bands.len();
    let mut out = vec![0f32; size * size * sel.len()];
    let (oy, ox) = (img.height as isize - size as isize, img.width as isize - size as isize);
    let (oy, ox) = (oy.div_euclid(2), ox.div_euclid(2));
    for y in 0..size {
        for x in 0..size {
            let (sy, sx) = (y as isize + oy, x as isize + ox);
            if sy < 0 || sx < 0 || sy >= img.height as isize || sx >= img.width as isize {
                continue;
            }
            for (k, &b) in sel.iter().enumerate() {
                out[(y * size + x) * sel.len() + k] = img.flux[(sy as usize * img.width + sx as usize) * nb + b];
            }
        }
    }
    Ok(out)
}

/// Reads, pairs and writes `out` in the AstroCLIP HDF5 layout (with ivar).
pub fn import(spec: &ImportSpec, out: &Path) -> Result<ImportSummary, DataError> {
    let arg = |name: &str, detail: String| DataError::Content { path: name.into(), detail };
    if spec.bands.is_empty() || spec.bands.iter().any(|b| b.trim().is_empty()) {
        return Err(arg("--bands", format!("{:?} must name at least one band, none empty (e.g. g,r,z)", spec.bands)));
    }
    if let Some(dup) = spec.bands.iter().enumerate().find(|(i, b)| spec.bands[..*i].contains(b)) {
        return Err(arg("--bands", format!("band {:?} is named twice in {}", dup.1, spec.bands.join(","))));
    }
    if spec.image_size == 0 || spec.image_size > super::MAX_IMAGE_SIDE {
        return Err(arg(
            "--image-size",
            format!(
                "{} px; give 1 to {} (AstroCLIP uses 144 after cropping 152)",
                spec.image_size,
                super::MAX_IMAGE_SIDE
            ),
        ));
    }
    if !(spec.radius_arcsec.is_finite() && spec.radius_arcsec > 0.0) {
        return Err(arg("--radius", format!("{} arcsec; give a positive number", spec.radius_arcsec)));
    }
    let mut spectra = Vec::new();
    let mut skipped = Vec::new();
    for p in &spec.spectra {
        let (s, sk) = read_spectra_any(p, spec.redrock.as_deref(), spec.on_bad)?;
        spectra.extend(s);
        skipped.extend(sk);
    }
    let mut images = Vec::new();
    for p in &spec.images {
        let (s, sk) = read_images_any(p, spec.on_bad)?;
        images.extend(s);
        skipped.extend(sk);
    }
    let (pairs, only_s, only_i) = match spec.match_by.as_str() {
        "id" => {
            let a: Vec<String> = spectra.iter().map(|s| s.object_id.clone()).collect();
            let b: Vec<String> = images.iter().map(|s| s.object_id.clone()).collect();
            super::crossmatch::by_id(&a, &b)
        }
        "sky" => {
            let pos = |ra: Option<f64>, dec: Option<f64>, id: &str, path: &str| {
                ra.zip(dec).ok_or_else(|| DataError::BadObject {
                    path: path.into(),
                    object: id.into(),
                    detail: "has no ra/dec for a sky match".into(),
                })
            };
            let a =
                spectra.iter().map(|s| pos(s.ra, s.dec, &s.object_id, &s.provenance)).collect::<Result<Vec<_>, _>>()?;
            let b =
                images.iter().map(|s| pos(s.ra, s.dec, &s.object_id, &s.provenance)).collect::<Result<Vec<_>, _>>()?;
            super::crossmatch::by_position(&a, &b, spec.radius_arcsec)
        }
        other => {
            return Err(DataError::Content {
                path: "--match".into(),
                detail: format!("{other:?} is not `id` or `sky`"),
            });
        }
    };
    let unpaired = only_s
        .iter()
        .map(|&i| (&spectra[i].object_id, &spectra[i].provenance, "spectrum has no image"))
        .chain(only_i.iter().map(|&j| (&images[j].object_id, &images[j].provenance, "image has no spectrum")));
    for (object, provenance, what) in unpaired {
        let why = format!("{what} (object id present in one modality only)");
        if spec.on_bad == OnBad::Error {
            return Err(DataError::BadObject { path: provenance.clone(), object: object.clone(), detail: why });
        }
        tracing::warn!(object = %object, "skipped: {why}");
        skipped.push((object.clone(), why));
    }
    if pairs.is_empty() {
        return Err(DataError::Content {
            path: out.display().to_string(),
            detail: "no image–spectrum pairs to write".into(),
        });
    }
    let n = pairs.len();
    let s = spec.image_size;
    let mut survey = Survey {
        object_ids: Vec::with_capacity(n),
        bands: spec.bands.clone(),
        image_size: s,
        pixel_scale: images[pairs[0].1].pixel_scale as f32,
        images: Vec::with_capacity(n * s * s * spec.bands.len()),
        wavelength: desi_grid().iter().map(|&w| w as f32).collect(),
        spectra: Vec::with_capacity(n * crate::data::grid::DESI_NBINS),
        ivar: Vec::with_capacity(n * crate::data::grid::DESI_NBINS),
        truth: vec![("redshift".into(), Vec::with_capacity(n))],
        photometry: None,
        provenance: format!(
            "astroclip data import: spectra {:?}, images {:?}, matched by {}",
            spec.spectra, spec.images, spec.match_by
        ),
    };
    for &(i, j) in &pairs {
        let (sp, im) = (&spectra[i], &images[j]);
        let pix = fit_image(im, s, &spec.bands).map_err(|detail| DataError::BadObject {
            path: im.provenance.clone(),
            object: im.object_id.clone(),
            detail,
        })?;
        survey.object_ids.push(sp.object_id.clone());
        survey.images.extend(pix);
        survey.spectra.extend(&sp.flux);
        survey.ivar.extend(&sp.ivar);
        survey.truth[0].1.push(sp.redshift.map_or(f32::NAN, |z| z as f32));
    }
    super::astroclip_h5::write(&survey, out)?;
    Ok(ImportSummary {
        spectra_read: spectra.len(),
        images_read: images.len(),
        paired: n,
        spectra_unpaired: only_s.len(),
        images_unpaired: only_i.len(),
        skipped,
        out: out.display().to_string(),
        sha256: super::file_sha256(out)?,
    })
}
