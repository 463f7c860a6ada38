//! Data readers, import and loader against real public files and generated fixtures.
//!
//! Fixtures come from `scripts/fixtures.sh` (run by `scripts/test.sh`): real DESI/SDSS files
//! from PyPI packages' test data, files written by h5py/astropy, and reference values computed
//! independently in `tests/fixtures/make_fixtures.py`:
//! * DESI arm combination — astropy reads the arms; numpy places each pixel on the DESI grid
//!   with `searchsorted` and accumulates `ivar·(mask==0)` weights with `np.add.at` in float64.
//! * SDSS resampling — `spectres.spectres` (Carnall 2017) onto the DESI grid.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use astroclip_core::config::ExperimentConfig;
use astroclip_core::data::astroclip_h5::{self, AstroClipH5};
use astroclip_core::data::inspect::{self, ImportSpec};
use astroclip_core::data::loader::{LoaderConfig, Plan, Prefetcher, TokenizerPair};
use astroclip_core::data::{DataError, ObjectSource, OnBad, desi, grid, legacy, mmu, sdss};
use astroclip_core::survey::{self, SynthConfig};
use serde_json::Value;

fn fixtures() -> PathBuf {
    let root = std::env::var("ASTROCLIP_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().join("target/fixtures"));
    assert!(
        root.join("gen/expect.json").exists(),
        "test fixtures missing under {}: run scripts/fixtures.sh (scripts/test.sh does)",
        root.display()
    );
    root
}

fn generated(name: &str) -> PathBuf {
    fixtures().join("gen").join(name)
}

fn real(rel: &str) -> PathBuf {
    fixtures().join("real").join(rel)
}

fn expect() -> Value {
    serde_json::from_slice(&std::fs::read(generated("expect.json")).unwrap()).unwrap()
}

fn read_all(src: &dyn ObjectSource, i: usize) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let s = src.image_size();
    let l = src.wavelength().len();
    let (mut a, mut b, mut c) = (vec![0f32; s * s * src.bands().len()], vec![0f32; l], vec![0f32; l]);
    src.reader().unwrap().read(i, &mut a, &mut b, &mut c).unwrap();
    (a, b, c)
}

#[test]
fn astroclip_layout_from_h5py_reads_by_index_and_target_id() {
    let e = &expect()["astroclip_layout"];
    for name in ["astroclip_layout.h5", "astroclip_gzip.h5"] {
        let src = AstroClipH5::open(&generated(name)).unwrap();
        assert_eq!(src.len(), 9, "{name}");
        assert_eq!(src.groups(), vec![("0".to_string(), 5), ("1".to_string(), 4)]);
        let ids: Vec<String> =
            e["targetids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert_eq!(src.object_ids(), ids.as_slice());
        let z = src.truth_column("redshift").unwrap();
        for (a, b) in z.iter().zip(e["redshifts"].as_array().unwrap()) {
            assert_eq!(*a, b.as_f64().unwrap() as f32);
        }
        assert_eq!(src.wavelength().len(), 7781);
        assert_eq!((src.wavelength()[0], src.wavelength()[7780]), (3600.0, 9824.0));
        let (img, flux, ivar) = read_all(&src, 7);
        assert_eq!(img[(10 * 152 + 20) * 3 + 1], e["image_7_10_20_1"].as_f64().unwrap() as f32);
        assert_eq!(flux.len(), 7781);
        assert!(ivar.iter().all(|&w| w == 1.0), "no ivar in the file: every bin gets 1");
        let (_, flux3, _) = read_all(&src, 3);
        assert_eq!(flux3[100], e["spectrum_3_100"].as_f64().unwrap() as f32);
        let (_, flux8, _) = read_all(&src, 8);
        assert_eq!(flux8[7780], e["spectrum_8_7780"].as_f64().unwrap() as f32);
        // Random access by target id.
        assert_eq!(src.index_of(&ids[6]), Some(6));
    }
}

#[test]
fn synthetic_survey_round_trips_through_the_astroclip_layout() {
    let s = survey::synthesize(&SynthConfig { n_galaxies: 6, image_size: 32, ..SynthConfig::default() }, |_| {});
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.h5");
    astroclip_h5::write(&s, &path).unwrap();
    let src = AstroClipH5::open(&path).unwrap();
    assert_eq!((src.len(), src.image_size(), src.bands()), (6, 32, s.bands.as_slice()));
    assert!(src.has_ivar());
    for i in [0, 5] {
        let (img, flux, ivar) = read_all(&src, i);
        assert_eq!(img, s.image(i));
        assert_eq!((flux.as_slice(), ivar.as_slice()), s.spectrum(i));
    }
    for (name, col) in &s.truth {
        assert_eq!(src.truth_column(name).unwrap(), col.as_slice(), "{name}");
    }
    assert!(!dir.path().join("s.partial").exists());
}

#[test]
fn broken_hdf5_files_are_errors_naming_the_file() {
    for name in ["astroclip_truncated.h5", "not_hdf5.h5"] {
        let p = generated(name);
        // A truncated file may open (its header is intact) and fail on the first read.
        let msg = match AstroClipH5::open(&p) {
            Err(e) => e.to_string(),
            Ok(src) => {
                let s = src.image_size();
                let (mut a, mut b, mut c) = (vec![0f32; s * s * 3], vec![0f32; 7781], vec![0f32; 7781]);
                let mut r = src.reader().unwrap();
                (0..src.len())
                    .find_map(|i| r.read(i, &mut a, &mut b, &mut c).err())
                    .expect("a read must fail")
                    .to_string()
            }
        };
        assert!(msg.contains(name), "{msg}");
    }
    let missing = AstroClipH5::open(&generated("nope.h5")).err().unwrap().to_string();
    assert!(missing.contains("nope.h5") && missing.to_lowercase().contains("no such file"), "{missing}");
}

#[test]
fn nan_spectrum_names_the_object_and_bin() {
    let e = &expect()["astroclip_nan"];
    let src = AstroClipH5::open(&generated("astroclip_nan.h5")).unwrap();
    let (mut a, mut b, mut c) = (vec![0f32; 152 * 152 * 3], vec![0f32; 7781], vec![0f32; 7781]);
    let err = src.reader().unwrap().read(2, &mut a, &mut b, &mut c).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, DataError::BadObject { .. }), "{msg}");
    assert!(msg.contains(e["bad_id"].as_str().unwrap()) && msg.contains("flux[500]"), "{msg}");
    assert!(msg.contains("astroclip_nan.h5") && msg.contains("on_bad"), "{msg}");
}

fn quick_tokenizers(n_bins: usize) -> TokenizerPair {
    let cfg = ExperimentConfig::preset("quickstart").unwrap();
    let (image, spectrum) = astroclip_core::components::tokenizers(&cfg, n_bins).unwrap();
    TokenizerPair { image, spectrum }
}

#[test]
fn loader_batches_are_deterministic_in_order_and_skip_bad_objects() {
    let src: Arc<dyn ObjectSource> = Arc::new(AstroClipH5::open(&generated("astroclip_layout.h5")).unwrap());
    let tok = Arc::new(quick_tokenizers(7781));
    let plan: Plan = Arc::new(|k| vec![(k * 2) % 9, (k * 2 + 1) % 9, (k * 5) % 9]);
    let collect = |workers: usize, prefetch: usize| -> Vec<(Vec<usize>, Vec<f32>, Vec<f32>)> {
        let lc = LoaderConfig { workers, prefetch, ..LoaderConfig::default() };
        Prefetcher::start(src.clone(), tok.clone(), plan.clone(), 7, &lc, OnBad::Error)
            .map(|b| b.map(|b| (b.indices, b.image, b.spectrum)).unwrap())
            .collect()
    };
    let one = collect(1, 1);
    assert_eq!(one.len(), 7);
    for (k, b) in one.iter().enumerate() {
        assert_eq!(b.0, plan(k));
    }
    assert_eq!(one, collect(3, 2));
    assert_eq!(one, collect(2, 8));
    // Tokens equal tokenizing the object directly.
    let (img, flux, ivar) = read_all(src.as_ref(), one[1].0[0]);
    let mut t = vec![0f32; tok.image_len()];
    let view = astroclip_plugin_api::ImageView {
        object_id: "x",
        height: 152,
        width: 152,
        bands: src.bands(),
        flux: &img,
        pixel_scale: 0.262,
    };
    tok.image.tokenize(&astroclip_plugin_api::Observation::Image(view), &mut t).unwrap();
    assert_eq!(&one[1].1[..tok.image_len()], t.as_slice());
    let _ = (flux, ivar);

    // on_bad: error stops with the object named; skip drops it from the batch and reports it.
    let bad: Arc<dyn ObjectSource> = Arc::new(AstroClipH5::open(&generated("astroclip_nan.h5")).unwrap());
    let plan2: Plan = Arc::new(|_| vec![0, 1, 2, 3]);
    let lc = LoaderConfig::default();
    let err =
        Prefetcher::start(bad.clone(), tok.clone(), plan2.clone(), 1, &lc, OnBad::Error).next().unwrap().unwrap_err();
    assert!(err.to_string().contains(&bad.object_ids()[2]), "{err}");
    let b = Prefetcher::start(bad.clone(), tok.clone(), plan2, 1, &lc, OnBad::Skip).next().unwrap().unwrap();
    assert_eq!(b.indices, vec![0, 1, 3]);
    assert_eq!(b.skipped.len(), 1);
    assert_eq!(b.image.len(), 3 * tok.image_len());
}

#[test]
fn desi_coadds_combine_arms_like_the_independent_reference() {
    let e = &expect()["desi"];
    for key in ["fastspecfit", "specutils"] {
        let r = &e[key];
        let path = real(r["file"].as_str().unwrap());
        let (specs, log) = desi::read_coadd(&path, None, OnBad::Skip).unwrap();
        let ids: Vec<&str> = r["targetids"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
        let reference: Vec<_> = r["flux"].as_array().unwrap().iter().zip(r["ivar"].as_array().unwrap()).collect();
        // The spectra with no pixel of positive ivar in the independent combination (unassigned
        // or broken fibres) are exactly the ones reported unusable, ids unchanged (negative
        // TARGETIDs stay negative); the others are read in file order.
        let empty: Vec<&str> = ids
            .iter()
            .zip(&reference)
            .filter(|(_, (_, iv))| iv.as_array().unwrap().iter().all(|w| w.as_f64().unwrap() <= 0.0))
            .map(|(id, _)| *id)
            .collect();
        assert_eq!(log.skipped.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), empty, "{key}");
        assert!(log.skipped.iter().all(|(_, why)| why.contains("no usable pixel")), "{:?}", log.skipped);
        let usable: Vec<&str> = ids.iter().copied().filter(|id| !empty.contains(id)).collect();
        assert_eq!(specs.iter().map(|s| s.object_id.as_str()).collect::<Vec<_>>(), usable);
        if key == "specutils" {
            assert_eq!(empty.len(), 3, "the SV3 coadd holds 3 fibres without data");
            // Two of them are sky/unassigned fibres with negative TARGETIDs, kept as they are.
            assert_eq!(empty.iter().filter(|id| id.starts_with('-')).count(), 2, "{empty:?}");
        }
        let msg = desi::read_coadd(&path, None, OnBad::Error).map(|_| ()).err().map(|e| e.to_string());
        assert_eq!(msg.is_some(), !empty.is_empty(), "{key}: {msg:?}");
        let mut compared = 0;
        let usable_ref = ids.iter().zip(&reference).filter(|(id, _)| !empty.contains(id)).map(|(_, r)| *r);
        for (s, (rf, riv)) in specs.iter().zip(usable_ref) {
            assert_eq!(s.wavelength, grid::desi_grid());
            assert!(s.ra.is_some() && s.dec.is_some());
            for (j, (f, w)) in rf.as_array().unwrap().iter().zip(riv.as_array().unwrap()).enumerate() {
                let (f, w) = (f.as_f64().unwrap(), w.as_f64().unwrap());
                // 1e-4 relative (plus an absolute floor for values that cross zero).
                assert!(
                    (s.ivar[j] as f64 - w).abs() <= 1e-4 * w.abs() + 1e-9,
                    "{key} {} ivar bin {j}: {} vs {w}",
                    s.object_id,
                    s.ivar[j]
                );
                assert!(
                    (s.flux[j] as f64 - f).abs() <= 1e-4 * f.abs() + 1e-6,
                    "{key} {} flux bin {j}: {} vs {f}",
                    s.object_id,
                    s.flux[j]
                );
                compared += usize::from(w > 0.0);
            }
        }
        assert!(compared > 7000, "{key}: only {compared} unmasked bins compared");
    }
    // Redshifts joined from redrock by TARGETID.
    let (specs, _) = desi::read_coadd(
        &real("fastspecfit/test/data/coadd-4-80613-thru20210324.fits"),
        Some(&real("fastspecfit/test/data/redrock-4-80613-thru20210324.fits")),
        OnBad::Error,
    )
    .unwrap();
    let z = e["redrock_z"][&specs[0].object_id].as_f64().unwrap();
    assert_eq!(specs[0].redshift, Some(z));
}

#[test]
fn desi_missing_arm_and_truncated_file() {
    let p = generated("desi_missing_z.fits");
    let msg = desi::read_coadd(&p, None, OnBad::Error).unwrap_err().to_string();
    assert!(msg.contains("desi_missing_z.fits") && msg.contains("arm Z is missing"), "{msg}");
    let (specs, log) = desi::read_coadd(&p, None, OnBad::Skip).unwrap();
    // 5 targets: the 3 fibres without data are reported unusable, not combined into zeros.
    assert_eq!((specs.len(), log.skipped.len()), (2, 3), "{:?}", log.skipped);
    assert_eq!(log.warnings.len(), 1);
    // Without Z, nothing beyond the R arm's end (7620 Å, grid bin 5025) carries information.
    assert!(specs.iter().all(|s| s.ivar[5026..].iter().all(|&w| w == 0.0)));
    assert!(specs.iter().any(|s| s.ivar[3000..5000].iter().any(|&w| w > 0.0)));
    let t = generated("desi_truncated.fits");
    let msg = desi::read_coadd(&t, None, OnBad::Error).unwrap_err().to_string();
    assert!(msg.contains("desi_truncated.fits") && msg.contains("truncated"), "{msg}");
}

#[test]
fn sdss_spectrum_resamples_like_spectres() {
    let e = &expect()["sdss"];
    let s = sdss::read_spec(&real("ppxf/spectra/NGC3073_SDSS_DR18.fits"), &grid::desi_grid()).unwrap();
    assert_eq!(s.object_id, e["specobjid"].as_str().unwrap());
    assert_eq!(s.redshift, Some(e["z"].as_f64().unwrap()));
    let idx = e["grid_index"].as_array().unwrap();
    assert!(idx.len() > 6000, "{}", idx.len());
    for ((j, f), w) in idx.iter().zip(e["flux"].as_array().unwrap()).zip(e["ivar"].as_array().unwrap()) {
        let (j, f, w) = (j.as_u64().unwrap() as usize, f.as_f64().unwrap(), w.as_f64().unwrap());
        assert!((s.flux[j] as f64 - f).abs() <= 1e-4 * f.abs(), "bin {j}: {} vs {f}", s.flux[j]);
        assert!((s.ivar[j] as f64 - w).abs() <= 1e-4 * w.abs(), "bin {j}: ivar {} vs {w}", s.ivar[j]);
    }
    // Outside SDSS's 3800–9200 Å coverage the DESI grid carries no information.
    assert_eq!((s.ivar[0], s.ivar[7780]), (0.0, 0.0));
}

#[test]
fn legacy_cutout_pixel_scale_bands_and_layout() {
    let e = &expect()["legacy"];
    let img = legacy::read_cutout(&generated("legacy_cutout.fits")).unwrap();
    assert!((img.pixel_scale - 0.262).abs() < 1e-9, "{}", img.pixel_scale);
    assert_eq!(img.bands, vec!["g", "r", "z"]);
    assert_eq!((img.height, img.width, img.ra, img.dec), (64, 64, Some(150.1), Some(2.2)));
    assert_eq!(img.flux[(5 * 64 + 7) * 3], e["g_5_7"].as_f64().unwrap() as f32);
    assert_eq!(img.flux[(60 * 64 + 3) * 3 + 2], e["z_60_3"].as_f64().unwrap() as f32);
}

#[test]
fn real_first_cutout_reads_with_the_wcs_pixel_scale() {
    let e = &expect()["first_cutout"];
    let img = legacy::read_cutout(&real("astroquery/image_cutouts/first/tests/data/image.fits")).unwrap();
    assert!((img.pixel_scale - e["pixel_scale"].as_f64().unwrap()).abs() < 1e-9, "{}", img.pixel_scale);
    assert_eq!((img.height, img.width, img.bands.len()), (33, 33, 1));
    assert_eq!(img.object_id, e["object"].as_str().unwrap());
    assert_eq!(img.flux[16 * 33 + 16], e["value_16_16"].as_f64().unwrap() as f32);
    assert_eq!(img.flux[3 * 33 + 30], e["value_3_30"].as_f64().unwrap() as f32);
}

#[test]
fn mmu_shards_read_mask_and_report_bad_objects() {
    let e = &expect()["mmu"];
    let p = generated("mmu_spectra.hdf5");
    let msg = mmu::read_spectra(&p, OnBad::Error).unwrap_err().to_string();
    assert!(msg.contains(e["nan_object"].as_str().unwrap()) && msg.contains("flux[300]"), "{msg}");
    let (specs, skipped) = mmu::read_spectra(&p, OnBad::Skip).unwrap();
    assert_eq!((specs.len(), skipped.len()), (5, 1));
    // Masked pixels (first 10, one holding NaN) get ivar 0; the NaN in a masked pixel is accepted.
    assert!(specs[1].ivar[..10].iter().all(|&w| w == 0.0) && specs[1].mask[5]);
    assert_eq!(specs[3].flux[1000], e["flux_3_1000"].as_f64().unwrap() as f32);
    let (imgs, _) = mmu::read_images(&generated("mmu_images.hdf5"), OnBad::Error).unwrap();
    assert_eq!(imgs.len(), 6);
    let bands: Vec<String> = e["bands"].as_array().unwrap().iter().map(|b| b.as_str().unwrap().to_string()).collect();
    assert_eq!(imgs[0].bands, bands);
    assert_eq!((imgs[2].height, imgs[2].width, imgs[2].pixel_scale as f32), (160, 160, 0.262));
    assert_eq!(imgs[2].flux[(80 * 160 + 81) * 4 + 1], e["image_2_80_81_1"].as_f64().unwrap() as f32);
}

#[test]
fn import_pairs_by_id_or_sky_and_accounts_for_every_object() {
    let dir = tempfile::tempdir().unwrap();
    let mut spec = ImportSpec {
        spectra: vec![generated("mmu_spectra.hdf5")],
        images: vec![generated("mmu_images.hdf5")],
        redrock: None,
        match_by: "id".into(),
        radius_arcsec: 1.0,
        image_size: 152,
        bands: vec!["DES-G".into(), "DES-R".into(), "DES-Z".into()],
        on_bad: OnBad::Error,
    };
    // Strict: the NaN spectrum stops the import, naming it.
    let out = dir.path().join("a.h5");
    let msg = inspect::import(&spec, &out).unwrap_err().to_string();
    assert!(msg.contains(expect()["mmu"]["nan_object"].as_str().unwrap()), "{msg}");
    assert!(!out.exists());
    spec.on_bad = OnBad::Skip;
    for how in ["id", "sky"] {
        spec.match_by = how.into();
        let out = dir.path().join(format!("{how}.h5"));
        let s = inspect::import(&spec, &out).unwrap();
        // 6 spectra (1 NaN skipped → 5 read), 6 images; 5 pairs; the image-only id is reported.
        assert_eq!((s.spectra_read, s.images_read, s.paired, s.images_unpaired), (5, 6, 5, 1), "{how}");
        assert_eq!(s.skipped.len(), 2, "{how}: {:?}", s.skipped);
        let src = AstroClipH5::open(&out).unwrap();
        assert_eq!((src.len(), src.image_size(), src.bands().len()), (5, 152, 3));
        assert!(src.has_ivar());
    }
    // Bands the images lack are an error naming the object.
    spec.bands = vec!["g".into(), "r".into(), "z".into()];
    let msg = inspect::import(&spec, &dir.path().join("b.h5")).unwrap_err().to_string();
    assert!(msg.contains("not g"), "{msg}");
}

#[test]
fn inspect_reports_every_format() {
    let cases = [
        (generated("astroclip_layout.h5"), "AstroCLIP"),
        (generated("mmu_spectra.hdf5"), "Multimodal Universe HDF5, spectra"),
        (generated("mmu_images.hdf5"), "Multimodal Universe HDF5, images"),
        (generated("legacy_cutout.fits"), "Legacy Survey cutout"),
        (real("fastspecfit/test/data/coadd-4-80613-thru20210324.fits"), "DESI coadd"),
        (real("fastspecfit/test/data/redrock-4-80613-thru20210324.fits"), "redrock"),
        (real("ppxf/spectra/NGC3073_SDSS_DR18.fits"), "SDSS"),
    ];
    for (p, what) in cases {
        let r = inspect::inspect(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        assert!(r.description.contains(what), "{}: {}", p.display(), r.description);
        assert!(r.objects >= 1);
    }
    let r = inspect::inspect(&generated("mmu_spectra.hdf5")).unwrap();
    assert_eq!(r.bad_objects.len(), 1);
    // The unusable object is listed, not counted; the NaN in a masked pixel is counted.
    assert_eq!(r.flux.as_ref().unwrap().nan, 1);
    let r = inspect::inspect(&generated("astroclip_nan.h5")).unwrap();
    assert_eq!(r.bad_objects.len(), 1);
    assert_eq!(r.flux.as_ref().unwrap().nan, 1);
    let msg = inspect::inspect(&generated("desi_truncated.fits")).unwrap_err().to_string();
    assert!(msg.contains("truncated"), "{msg}");
}

/// A minimal Legacy-Survey-style cutout: primary image (1, 8, 8), `OBJID`, `PIXSCALE`.
fn write_cutout(path: &Path, objid: &str) {
    let mut header = String::new();
    for card in [
        "SIMPLE  =                    T".to_string(),
        "BITPIX  =                  -32".into(),
        "NAXIS   =                    3".into(),
        "NAXIS1  =                    8".into(),
        "NAXIS2  =                    8".into(),
        "NAXIS3  =                    1".into(),
        "BAND0   = 'r       '".into(),
        "PIXSCALE=                0.262".into(),
        format!("OBJID   = '{objid}'"),
        "END".into(),
    ] {
        header.push_str(&format!("{card:<80}"));
    }
    let mut bytes = header.into_bytes();
    bytes.resize(2880, b' ');
    let mut data: Vec<u8> = (0..64).flat_map(|i| (i as f32).to_be_bytes()).collect();
    data.resize(2880, 0);
    bytes.extend(data);
    std::fs::write(path, bytes).unwrap();
}

/// `data import` of a real DESI SV3 coadd: TARGETIDs are written unchanged (negative sky and
/// unassigned fibres included, as int64 since all are integers), the fibres without data are
/// reported unusable and left out under `on_bad = skip` (and stop a strict import); ids that
/// are not canonical integers (`007`, `+7`) are written as strings, never renumbered.
#[test]
fn import_keeps_ids_unchanged_and_reports_unusable_spectra() {
    let coadd = real("specutils/io/default_loaders/tests/desi_test_data/coadd-sv3-dark-26065.fits");
    let (all, log) = desi::read_coadd(&coadd, None, OnBad::Skip).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut images = Vec::new();
    let ids: Vec<String> =
        all.iter().map(|s| s.object_id.clone()).chain(log.skipped.iter().map(|s| s.0.clone())).collect();
    for (k, id) in ids.iter().enumerate() {
        let p = dir.path().join(format!("cutout-{k}.fits"));
        write_cutout(&p, id);
        images.push(p);
    }
    let mut spec = ImportSpec {
        spectra: vec![coadd.clone()],
        images,
        redrock: None,
        match_by: "id".into(),
        radius_arcsec: 1.0,
        image_size: 8,
        bands: vec!["r".into()],
        on_bad: OnBad::Error,
    };
    let out = dir.path().join("strict.h5");
    let msg = inspect::import(&spec, &out).unwrap_err().to_string();
    assert!(msg.contains("no usable pixel") && msg.contains(&log.skipped[0].0), "{msg}");
    spec.on_bad = OnBad::Skip;
    let out = dir.path().join("sv3.h5");
    let s = inspect::import(&spec, &out).unwrap();
    assert_eq!(s.paired, all.len());
    let unusable: Vec<&str> =
        s.skipped.iter().filter(|(_, why)| why.contains("no usable pixel")).map(|(id, _)| id.as_str()).collect();
    assert_eq!(unusable, log.skipped.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>());
    let src = AstroClipH5::open(&out).unwrap();
    assert_eq!(src.object_ids(), all.iter().map(|s| s.object_id.clone()).collect::<Vec<_>>().as_slice());
    let report = inspect::inspect(&coadd).unwrap();
    assert_eq!(report.bad_objects.len(), 3, "inspect reports the fibres without data");
    assert!(report.text().contains("unusable    3 objects"), "{}", report.text());

    // Ids that are not canonical integers stay strings, unchanged; duplicates are refused.
    let mut survey = survey::synthesize(&SynthConfig { n_galaxies: 4, image_size: 16, ..Default::default() }, |_| {});
    survey.object_ids = vec!["-5".into(), "+7".into(), "007".into(), "18446744073709551616".into()];
    let p = dir.path().join("ids.h5");
    astroclip_h5::write(&survey, &p).unwrap();
    assert_eq!(AstroClipH5::open(&p).unwrap().object_ids(), survey.object_ids.as_slice());
    survey.object_ids[3] = "-5".into();
    let msg = astroclip_h5::write(&survey, &dir.path().join("dup.h5")).unwrap_err().to_string();
    assert!(msg.contains("\"-5\"") && msg.contains("more than once"), "{msg}");
}
