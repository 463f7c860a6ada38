//! One experiment run end to end: resolve the configuration, load or synthesise the survey,
//! tokenize, record the run, train (or resume), evaluate, store embeddings and results.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use astroclip_registry::{Metric, Registry};
use burn::module::Module;
use burn::tensor::Device;

use crate::config::{self, CliOverrides, ExperimentConfig};
use crate::eval::{self, EvalInput, EvalReport};
use crate::supervised::Modality;
use astroclip_plugin_api::ModalityEncoder;
use std::sync::Arc;

use crate::data::loader::TokenizerPair;
use crate::data::{self, ObjectSource};
use crate::dataset::TrainingData;
use crate::survey;
use crate::train::{self, Checkpoints, TrainSetup};
use crate::{components, device, lifecycle};

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub file: Option<PathBuf>,
    pub overrides: Vec<String>,
    pub device: String,
    pub resume: Option<String>,
    pub home: PathBuf,
    /// `--registry`: a `postgres://` URL or SQLite file instead of `<home>/registry.db`.
    pub registry: Option<String>,
    /// Stop after this many training steps (checkpointed, status `killed`, resumable).
    pub stop_after: Option<usize>,
}

#[derive(Debug)]
pub struct RunOutcome {
    pub run_id: String,
    /// `None` when training stopped early (`stop_after` or an interrupt).
    pub report: Option<EvalReport>,
    pub train_samples_per_sec: f64,
    pub wall_secs: f64,
}

pub fn registry_path(home: &Path) -> PathBuf {
    home.join("registry.db")
}

/// Opens the registry: `location` (`--registry`: a `postgres://` URL or a SQLite file) when
/// given, else `<home>/registry.db`.
pub fn open_registry(home: &Path, location: Option<&str>) -> Result<Registry, astroclip_registry::RegistryError> {
    match location.filter(|l| !l.is_empty()) {
        Some(l) => Registry::open_url(l),
        None => Registry::open(&registry_path(home)),
    }
}

/// Opens the data the configuration names, or synthesises the survey; returns it with the
/// generation rate (galaxies/s) when synthesised.
pub fn load_source(cfg: &ExperimentConfig) -> anyhow::Result<(Arc<dyn ObjectSource>, Option<f64>)> {
    if !cfg.data.path.is_empty() {
        let s = data::open_path(Path::new(&cfg.data.path)).with_context(|| "loading data.path".to_string())?;
        tracing::info!(objects = s.len(), source = %s.describe(), "data opened");
        return Ok((s, None));
    }
    let synth = &cfg.data.synth;
    let bar = indicatif::ProgressBar::new(synth.n_galaxies as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("survey {bar:30} {pos}/{len} galaxies [{elapsed_precise}]")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let t = Instant::now();
    let s = survey::synthesize(synth, |done| bar.set_position(done as u64));
    bar.finish_and_clear();
    let rate = synth.n_galaxies as f64 / t.elapsed().as_secs_f64();
    tracing::info!(galaxies = synth.n_galaxies, galaxies_per_sec = format!("{rate:.1}"), "synthetic survey generated");
    Ok((Arc::new(data::memory::MemorySource::new(s, "synthetic")), Some(rate)))
}

pub fn execute(opts: &RunOptions) -> anyhow::Result<RunOutcome> {
    let wall = Instant::now();
    let registry = open_registry(&opts.home, opts.registry.as_deref())?;
    let (cfg, resume_id) = match &opts.resume {
        Some(id) => {
            if opts.file.is_some() || !opts.overrides.is_empty() {
                bail!("--resume continues a run with its recorded configuration; drop the experiment file and --set");
            }
            let detail = registry.run(id)?;
            let cfg = config::from_stored(&detail.config)
                .with_context(|| format!("run {} has an unreadable stored configuration", detail.summary.id))?;
            (cfg, Some(detail.summary.id))
        }
        None => (config::load(opts.file.as_deref(), &CliOverrides::parse(&opts.overrides)?)?, None),
    };
    let device: Device = device::parse(&opts.device)?;
    device.seed(cfg.train.seed);
    let device = device.autodiff();

    let (source, synth_rate) = load_source(&cfg)?;
    for p in &cfg.eval.properties {
        if source.truth_column(p).is_none() {
            let have: Vec<&str> = source.truth().iter().map(|(n, _)| n.as_str()).collect();
            bail!(
                "eval.properties names {p:?}, which {} does not have (it has: {}); set eval.properties",
                source.describe(),
                have.join(", ")
            );
        }
    }
    let data_hash = source.content_hash()?;
    let (image_tok, spectrum_tok) = components::tokenizers(&cfg, source.wavelength().len())?;
    let (image_shape, spectrum_shape) = (image_tok.output_shape(), spectrum_tok.output_shape());
    let tokenizers = TokenizerPair { image: image_tok, spectrum: spectrum_tok };
    let data = if crate::dataset::holds_in_memory(
        &cfg.data.loader,
        source.len(),
        tokenizers.image_len(),
        tokenizers.spectrum_len(),
    ) {
        let bar = indicatif::ProgressBar::new(source.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("tokenize {bar:30} {pos}/{len} objects [{elapsed_precise}]")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        let d = TrainingData::new(source.clone(), tokenizers, cfg.data.loader.clone(), cfg.data.on_bad, |n| {
            bar.set_position(n as u64)
        })?;
        bar.finish_and_clear();
        d
    } else {
        TrainingData::new(source.clone(), tokenizers, cfg.data.loader.clone(), cfg.data.on_bad, |_| {})?
    };
    let (mut train_idx, mut test_idx) = data::split_indices(source.len(), cfg.data.test_fraction, cfg.data.split_seed);
    let skipped: std::collections::BTreeSet<usize> = data.excluded().into_iter().map(|(i, _)| i).collect();
    if !skipped.is_empty() {
        tracing::warn!(skipped = skipped.len(), "objects left out under data.on_bad = \"skip\"");
        train_idx.retain(|i| !skipped.contains(i));
        test_idx.retain(|i| !skipped.contains(i));
    }
    if test_idx.len() < 2 || train_idx.len() < 2 {
        bail!(
            "{} objects split by data.test_fraction = {} leave {} for training and {} held out; each needs at least 2",
            source.len(),
            cfg.data.test_fraction,
            train_idx.len(),
            test_idx.len()
        );
    }
    let built = components::model(&cfg, &image_shape, &spectrum_shape, &opts.home, &device)?;
    let component_infos = components::describe(
        &built.model,
        data.tokenizers.image.as_ref(),
        data.tokenizers.spectrum.as_ref(),
        cfg.eval.k,
    );

    let config_json = serde_json::to_value(&cfg)?;
    let resumed = resume_id.map(|id| registry.run(&id)).transpose()?;
    let run_id = lifecycle::open(
        &registry,
        lifecycle::RunStart {
            experiment: &cfg.experiment.name,
            name: format!("{}-{}", cfg.experiment.name, cfg.experiment.preset),
            config: &config_json,
            data_hash: &data_hash,
            components: &component_infos,
            params: vec![
                ("run.device".into(), opts.device.clone()),
                ("data.format".into(), source.format().into()),
                ("data.objects".into(), source.len().to_string()),
                ("data.source".into(), source.describe()),
            ],
            pinned: built.params(),
        },
        resumed.as_ref(),
    )?;
    let mut rate = 0.0;
    let report = lifecycle::conclude(&registry, &run_id, &format!("astroclip run --resume {run_id}"), || {
        let (report, r) = train_and_evaluate(
            &TrainEval {
                cfg: &cfg,
                registry: &registry,
                run_id: &run_id,
                home: &opts.home,
                device: &device,
                data: &data,
                train_idx: &train_idx,
                test_idx: &test_idx,
                synth_rate,
                stop_after: opts.stop_after,
            },
            built.model,
        )?;
        rate = r;
        Ok(report)
    })?;
    Ok(RunOutcome { run_id, report, train_samples_per_sec: rate, wall_secs: wall.elapsed().as_secs_f64() })
}

struct TrainEval<'a> {
    cfg: &'a ExperimentConfig,
    registry: &'a Registry,
    run_id: &'a str,
    home: &'a Path,
    device: &'a Device,
    data: &'a TrainingData,
    train_idx: &'a [usize],
    test_idx: &'a [usize],
    synth_rate: Option<f64>,
    stop_after: Option<usize>,
}

fn train_and_evaluate(t: &TrainEval<'_>, model: components::Model) -> anyhow::Result<(Option<EvalReport>, f64)> {
    let cfg = t.cfg;
    let run_dir = t.home.join("runs").join(t.run_id);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let resolved = run_dir.join("config.toml");
    std::fs::write(&resolved, toml::to_string_pretty(cfg)?)?;
    train::record_artifact(t.registry, t.run_id, t.home, &resolved, "config")?;
    if let Some(rate) = t.synth_rate {
        t.registry.log_metrics(t.run_id, &[Metric::new("data.synth_galaxies_per_sec", 0, rate)])?;
    }
    let checkpoints = Checkpoints { dir: run_dir.join("checkpoints") };
    let start_step = checkpoints.latest().map(|(s, _)| s).unwrap_or(0);
    if start_step > 0 {
        tracing::info!(step = start_step, "resuming from checkpoint");
    }
    let setup = TrainSetup {
        cfg: &cfg.train,
        device: t.device,
        data: t.data,
        train_idx: t.train_idx,
        registry: t.registry,
        run_id: t.run_id,
        checkpoints: &checkpoints,
        artifact_root: t.home,
        stop_after: t.stop_after,
    };
    use crate::config::ObjectiveKind as K;
    match cfg.objective.kind {
        K::Clip => {
            let model = two_stage_init(t, model, start_step)?;
            fit_and_evaluate(t, setup, train::Clip::new(t.data), model, start_step, &run_dir)
        }
        K::MocoV2 => {
            use crate::objectives::moco::{Moco, MocoConfig};
            let o = &cfg.objective;
            let settings = MocoConfig {
                queue_size: o.queue_size,
                momentum: o.momentum,
                temperature: o.temperature,
                augment: o.augment,
            };
            let moco = Moco::new(&model.image, settings, t.data.tokenizers.image_len(), cfg.train.seed)?;
            fit_and_evaluate(t, setup, moco, Moco::pair(model.image), start_step, &run_dir)
        }
        K::SpecformerMasked => {
            use crate::objectives::masked::{Masked, MaskedSpecFormer};
            let backbone = model.spectrum.into_specformer().map_err(|info| {
                anyhow::anyhow!("objective.kind = \"specformer-masked\" trains a specformer, not {}", info.id)
            })?;
            let masked = Masked { mask: cfg.objective.mask, seed: cfg.train.seed };
            fit_and_evaluate(t, setup, masked, MaskedSpecFormer::new(backbone, t.device), start_step, &run_dir)
        }
        K::SupervisedImage => supervised_and_evaluate(t, setup, model.image, Modality::Image, start_step, &run_dir),
        K::SupervisedSpectrum => {
            supervised_and_evaluate(t, setup, model.spectrum, Modality::Spectrum, start_step, &run_dir)
        }
        K::SupervisedPhotometry => photometry_baseline(t, &run_dir),
    }
}

/// Trains `objective` and evaluates the embeddings of the trained model: the one path of every
/// self-supervised objective (AstroCLIP, MoCo v2, masked SpecFormer).
fn fit_and_evaluate<O: train::Embeds>(
    t: &TrainEval<'_>,
    setup: TrainSetup<'_>,
    mut objective: O,
    model: O::Model,
    start_step: usize,
    run_dir: &Path,
) -> anyhow::Result<(Option<EvalReport>, f64)> {
    let report = train::fit(setup, &mut objective, model, start_step)?;
    if report.stopped_at.is_some() {
        return Ok((None, report.samples_per_sec));
    }
    let (image, spectrum) = objective.embed(&report.model, t.data, t.cfg.eval.batch_size, t.device)?;
    let rate = report.samples_per_sec;
    let eval_report = evaluate_and_record(t, run_dir, image.as_ref(), spectrum.as_ref(), report.steps_run, rate)?;
    Ok((Some(eval_report), rate))
}

/// The newest checkpoint of pre-training run `id` (named by `key`), after checking that the
/// run finished, has objective `kind`, and built its encoder with the same configuration
/// `sections` as this run. Returns `(full run id, model.bpk path)`.
fn pretrained_checkpoint(
    t: &TrainEval<'_>,
    key: &str,
    id: &str,
    kind: &str,
    sections: &[&str],
) -> anyhow::Result<(String, PathBuf)> {
    let detail = t
        .registry
        .run(id)
        .with_context(|| format!("{key} = {id:?}: no such run in the registry; run `astroclip runs list`"))?;
    let full = detail.summary.id.clone();
    if detail.summary.status != "finished" {
        bail!(
            "{key} = {id:?}: run {full} is {}, not finished; finish it first (`astroclip run --resume {full}`)",
            detail.summary.status
        );
    }
    let theirs = serde_json::to_value(
        config::from_stored(&detail.config)
            .with_context(|| format!("{key} = {id:?}: run {full} has an unreadable stored configuration"))?,
    )?;
    let ours = serde_json::to_value(t.cfg)?;
    // An imported checkpoint (`astroclip models import`) stands for the pre-training run it
    // came from: AstroDINO for the image backbone, AstroCLIP's SpecFormer for the spectrum one.
    // It was trained on other data, so the [data] section is not compared.
    let imported = detail.params.iter().find(|(k, _)| k == "import.kind").map(|(_, v)| v.as_str());
    let their_kind = match imported {
        Some(k) => k,
        None => theirs.pointer("/objective/kind").and_then(|v| v.as_str()).unwrap_or("clip"),
    };
    let wanted = match (imported, kind) {
        (Some(_), "moco-v2") => "astrodino",
        (Some(_), "specformer-masked") => "specformer",
        _ => kind,
    };
    if their_kind != wanted {
        bail!(
            "{key} = {id:?}: run {full} holds a {their_kind:?} model; {key} needs a {kind:?} run or an imported {} checkpoint",
            if kind == "moco-v2" { "astrodino" } else { "specformer" }
        );
    }
    for section in sections.iter().filter(|s| imported.is_none() || **s != "data") {
        if theirs.get(section) != ours.get(section) {
            bail!(
                "{key} = {id:?}: run {full} built its encoder with a different [{section}] section; \
                 use the same [{section}] settings (compare with `astroclip runs diff`)"
            );
        }
    }
    let checkpoints = Checkpoints { dir: t.home.join("runs").join(&full).join("checkpoints") };
    let Some((_, dir)) = checkpoints.latest() else {
        bail!("{key} = {id:?}: run {full} has no complete checkpoint under {}", checkpoints.dir.display());
    };
    Ok((full, dir.join("model.bpk")))
}

/// Whether run `id` is an imported checkpoint (`astroclip models import`).
fn is_imported(t: &TrainEval<'_>, id: &str) -> anyhow::Result<bool> {
    Ok(t.registry.run(id)?.params.iter().any(|(k, _)| k == "import.kind"))
}

/// Two-stage AstroCLIP: starts the encoders from pre-trained runs (`objective.init_image`: a
/// MoCo v2 query encoder; `objective.init_spectrum`: a masked-modelling SpecFormer) and, with
/// `objective.freeze_backbones`, leaves only the cross-attention heads trainable. The runs and
/// checkpoint hashes started from are recorded as params `init.*` of a new run.
fn two_stage_init(
    t: &TrainEval<'_>,
    mut model: components::Model,
    start_step: usize,
) -> anyhow::Result<components::Model> {
    let o = &t.cfg.objective;
    let mut params: Vec<(String, String)> = Vec::new();
    let mut provenance = |what: &str, id: &str, path: &Path| -> anyhow::Result<()> {
        let (sha, _) = train::file_sha256(path)?;
        params.push((format!("init.{what}.run"), id.to_string()));
        params
            .push((format!("init.{what}.checkpoint"), path.strip_prefix(t.home).unwrap_or(path).display().to_string()));
        params.push((format!("init.{what}.sha256"), sha));
        Ok(())
    };
    if !o.init_image.is_empty() {
        let (id, path) =
            pretrained_checkpoint(t, "objective.init_image", &o.init_image, "moco-v2", &["image", "model"])?;
        let load_err = |e: String| anyhow::anyhow!("objective.init_image: loading {}: {e}", path.display());
        if is_imported(t, &id)? {
            // An imported AstroDINO checkpoint holds the `vit` encoder itself.
            model.image = model.image.clone().try_load_file(&path).map_err(|e| load_err(e.to_string()))?;
        } else {
            let pair = crate::objectives::moco::MocoPair { query: model.image.clone(), key: model.image.clone() };
            model.image = pair.try_load_file(&path).map_err(|e| load_err(e.to_string()))?.query;
        }
        provenance("image", &id, &path)?;
    }
    if !o.init_spectrum.is_empty() {
        let (id, path) = pretrained_checkpoint(
            t,
            "objective.init_spectrum",
            &o.init_spectrum,
            "specformer-masked",
            &["spectrum", "model", "data"],
        )?;
        let backbone = model.spectrum.clone().into_specformer().map_err(|info| {
            anyhow::anyhow!("objective.init_spectrum loads a pre-trained specformer; spectrum.encoder is {}", info.id)
        })?;
        let masked = crate::objectives::masked::MaskedSpecFormer::new(backbone, t.device);
        let masked = masked
            .try_load_file(&path)
            .map_err(|e| anyhow::anyhow!("objective.init_spectrum: loading {}: {e}", path.display()))?;
        model.spectrum = crate::encoders::Encoder::SpecFormer(masked.backbone);
        provenance("spectrum", &id, &path)?;
    }
    if o.freeze_backbones {
        let no_split = |what: &str, info: astroclip_plugin_api::ComponentInfo| {
            anyhow::anyhow!("objective.freeze_backbones: the {what} encoder {} has no backbone/head split", info.id)
        };
        let info = model.image.info();
        model.image = model.image.freeze_backbone().ok_or_else(|| no_split("image", info))?;
        let info = model.spectrum.info();
        model.spectrum = model.spectrum.freeze_backbone().ok_or_else(|| no_split("spectrum", info))?;
        params.push(("init.frozen".into(), "image backbone, spectrum backbone".into()));
    }
    if start_step == 0 && !params.is_empty() {
        t.registry.log_params(t.run_id, &params)?;
    }
    Ok(model)
}

/// Training and held-out rows without the objects the loader skipped.
fn usable_split(t: &TrainEval<'_>) -> (Vec<usize>, Vec<usize>) {
    let skipped: std::collections::BTreeSet<usize> = t.data.excluded().into_iter().map(|(i, _)| i).collect();
    (
        t.train_idx.iter().copied().filter(|i| !skipped.contains(i)).collect(),
        t.test_idx.iter().copied().filter(|i| !skipped.contains(i)).collect(),
    )
}

/// Records a supervised baseline's R² (metrics and `eval.json`) and returns it as a report.
fn record_supervised(
    t: &TrainEval<'_>,
    run_dir: &Path,
    source: &str,
    r2: Vec<(String, f64)>,
    n: (usize, usize),
    samples_per_sec: Option<f64>,
    diagnostics: Option<eval::EmbeddingDiagnostics>,
) -> anyhow::Result<EvalReport> {
    let step = t.cfg.train.steps as i64;
    let mut metrics: Vec<Metric> = r2
        .iter()
        .map(|(p, v)| {
            Metric::new(format!("eval.supervised_r2.{p}"), step, *v).with_context(format!("split=test,source={source}"))
        })
        .collect();
    if let Some(rate) = samples_per_sec {
        metrics.push(Metric::new("train.mean_samples_per_sec", step, rate));
    }
    if let Some(d) = &diagnostics {
        metrics.extend(diagnostic_metrics(d, step));
    }
    t.registry.log_metrics(t.run_id, &metrics)?;
    let path = run_dir.join("eval.json");
    crate::supervised::write_report(&path, source, &r2, n.0, n.1)?;
    train::record_artifact(t.registry, t.run_id, t.home, &path, "evaluation")?;
    Ok(EvalReport {
        n_train: n.0,
        n_test: n.1,
        rows: vec![],
        recall: vec![],
        few_shot: vec![],
        supervised: vec![eval::R2Row { source: source.into(), r2 }],
        diagnostics,
    })
}

/// A supervised baseline: `encoder` + a linear head trained on the standardised properties
/// with the run's budget, R² of its predictions on the held-out split.
fn supervised_and_evaluate(
    t: &TrainEval<'_>,
    setup: TrainSetup<'_>,
    encoder: crate::encoders::Encoder,
    modality: Modality,
    start_step: usize,
    run_dir: &Path,
) -> anyhow::Result<(Option<EvalReport>, f64)> {
    let cfg = t.cfg;
    let (train_idx, test_idx) = usable_split(t);
    let columns: Vec<&[f32]> =
        cfg.eval.properties.iter().map(|p| t.data.source.truth_column(p).expect("checked before training")).collect();
    let scaler = crate::supervised::Standardizer::fit(&columns, &train_idx);
    let model = crate::supervised::Regressor::new(encoder, columns.len(), t.device);
    let mut objective = crate::supervised::Supervised {
        modality,
        targets: &columns,
        scaler: &scaler,
        lens: (t.data.tokenizers.image_len(), t.data.tokenizers.spectrum_len()),
    };
    let report = train::fit(setup, &mut objective, model, start_step)?;
    if report.stopped_at.is_some() {
        return Ok((None, report.samples_per_sec));
    }
    let (pred, features) =
        crate::supervised::predict(&report.model, modality, t.data, &test_idx, &scaler, cfg.eval.batch_size, t.device)?;
    // The encoder's features (the head's input) of the held-out objects are this model's
    // embedding: diagnosed like every other one.
    let dim = report.model.encoder.embed_dim();
    let features = eval::Embeddings { n: test_idx.len(), dim, values: features }.normalized();
    let all: Vec<usize> = (0..test_idx.len()).collect();
    let diagnostics = eval::diagnose(&[(modality.name(), &features)], &all)?;
    let r2 = cfg
        .eval
        .properties
        .iter()
        .zip(&columns)
        .zip(&pred)
        .map(|((p, col), pr)| {
            let y: Vec<f32> = test_idx.iter().map(|&i| col[i]).collect();
            (p.clone(), astroclip_builtin::knn::r2_score(&y, pr))
        })
        .collect();
    let rate = (report.steps_run > 0).then_some(report.samples_per_sec);
    let rep = record_supervised(t, run_dir, modality.name(), r2, (train_idx.len(), test_idx.len()), rate, diagnostics)?;
    Ok((Some(rep), report.samples_per_sec))
}

/// The photometry MLP baseline (no encoder training: an MLP per property on the photometry).
fn photometry_baseline(t: &TrainEval<'_>, run_dir: &Path) -> anyhow::Result<(Option<EvalReport>, f64)> {
    let Some(phot) = t.data.source.photometry() else {
        bail!(
            "objective.kind = \"supervised-photometry\" needs broad-band photometry, and {} has none; \
             use the synthetic survey or a source with photometry",
            t.data.source.describe()
        );
    };
    let (train_idx, test_idx) = usable_split(t);
    let features = crate::supervised::photometry_features(phot, t.data.source.len());
    if let Some(i) = features.iter().position(|v| !v.is_finite()) {
        let obj = i / phot.bands.len();
        bail!(
            "photometry of object {} ({}) is not finite in band {}; fix or drop the object",
            obj,
            t.data.source.object_ids().get(obj).map(String::as_str).unwrap_or("?"),
            phot.bands[i % phot.bands.len()]
        );
    }
    let targets: Vec<(String, &[f32])> = t
        .cfg
        .eval
        .properties
        .iter()
        .map(|p| (p.clone(), t.data.source.truth_column(p).expect("checked before training")))
        .collect();
    t.registry.log_params(t.run_id, &[("photometry.bands".into(), phot.bands.join(","))])?;
    let r2 = crate::supervised::photometry_r2(&features, phot.bands.len(), &train_idx, &test_idx, &targets)?;
    // One MLP per property: no shared embedding to diagnose.
    let rep = record_supervised(t, run_dir, "photometry", r2, (train_idx.len(), test_idx.len()), None, None)?;
    Ok((Some(rep), 0.0))
}

/// Evaluates trained embeddings on the held-out split (all rows, or the image rows when there
/// is no spectrum embedding), saves them and the evaluation as artifacts, records the metrics.
fn evaluate_and_record(
    t: &TrainEval<'_>,
    run_dir: &Path,
    image: Option<&eval::Embeddings>,
    spectrum: Option<&eval::Embeddings>,
    steps_run: usize,
    samples_per_sec: f64,
) -> anyhow::Result<EvalReport> {
    let cfg = t.cfg;
    // Objects the loader skipped during training or embedding have no embedding.
    let (train_idx, test_idx) = usable_split(t);
    let none = eval::Embeddings { n: t.data.len(), dim: 0, values: vec![] };
    let embeddings = run_dir.join("embeddings.safetensors");
    save_embeddings(&embeddings, t.data.source.as_ref(), image.unwrap_or(&none), spectrum.unwrap_or(&none), &test_idx)?;
    train::record_artifact(t.registry, t.run_id, t.home, &embeddings, "embeddings")?;
    let targets = cfg
        .eval
        .properties
        .iter()
        .map(|p| (p.clone(), t.data.source.truth_column(p).expect("checked before training")))
        .collect();
    let input = EvalInput {
        image: image.or(spectrum).unwrap_or(&none),
        spectrum: spectrum.unwrap_or(&none),
        train_idx: &train_idx,
        test_idx: &test_idx,
        targets,
        k: cfg.eval.k,
        recall_at: &cfg.eval.recall_at,
        few_shot: cfg.eval.few_shot,
    };
    let eval_report = match (image, spectrum) {
        (Some(_), Some(_)) => eval::evaluate(&input)?,
        (Some(_), None) => eval::evaluate_single(&input, "image")?,
        (None, _) => eval::evaluate_single(&input, "spectrum")?,
    };
    let step = cfg.train.steps as i64;
    let mut metrics = Vec::new();
    for (prefix, rows) in [("eval.r2", &eval_report.rows), ("eval.mlp_r2", &eval_report.few_shot)] {
        for row in rows {
            for (prop, r2) in &row.r2 {
                metrics.push(
                    Metric::new(format!("{prefix}.{prop}"), step, *r2)
                        .with_context(format!("split=test,source={}", row.source)),
                );
            }
        }
    }
    for (k, r) in &eval_report.recall {
        metrics.push(
            Metric::new(format!("eval.recall_at_{k}"), step, *r).with_context("split=test,source=image→spectrum"),
        );
    }
    if let Some(d) = &eval_report.diagnostics {
        metrics.extend(diagnostic_metrics(d, step));
    }
    if steps_run > 0 {
        metrics.push(Metric::new("train.mean_samples_per_sec", step, samples_per_sec));
    }
    t.registry.log_metrics(t.run_id, &metrics)?;
    std::fs::write(run_dir.join("eval.json"), serde_json::to_string_pretty(&eval_report)?)?;
    train::record_artifact(t.registry, t.run_id, t.home, &run_dir.join("eval.json"), "evaluation")?;
    Ok(eval_report)
}

/// The registry metrics of the embedding diagnostics: `eval.effective_rank`,
/// `eval.uniformity`, `eval.pca_variance.pc1`…`pc3` and `eval.pca_variance.top2` (what the
/// report's map shows) per modality, `eval.alignment` of the pairs.
pub fn diagnostic_metrics(d: &eval::EmbeddingDiagnostics, step: i64) -> Vec<Metric> {
    let mut out = Vec::new();
    for m in &d.modalities {
        let ctx = format!("split=test,source={}", m.source);
        out.push(Metric::new("eval.effective_rank", step, m.effective_rank).with_context(ctx.clone()));
        out.push(Metric::new("eval.uniformity", step, m.uniformity).with_context(ctx.clone()));
        for (i, v) in m.pca_variance.iter().take(3).enumerate() {
            out.push(Metric::new(format!("eval.pca_variance.pc{}", i + 1), step, *v).with_context(ctx.clone()));
        }
        let top2: f64 = m.pca_variance.iter().take(2).sum();
        out.push(Metric::new("eval.pca_variance.top2", step, top2).with_context(ctx));
    }
    if let Some(a) = d.alignment {
        out.push(Metric::new("eval.alignment", step, a).with_context("split=test,source=image↔spectrum"));
    }
    out
}

/// One modality's diagnostics as a run recorded them: read back from its latest metrics by
/// [`recorded_diagnostics`], the inverse of [`diagnostic_metrics`] (for reports and bench
/// tables).
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecordedDiagnostics {
    pub source: String,
    pub effective_rank: f64,
    pub uniformity: Option<f64>,
    pub pc1: Option<f64>,
    pub pc2: Option<f64>,
    /// Of the image and spectrum embeddings of the same objects (two-modality models).
    pub alignment: Option<f64>,
}

impl RecordedDiagnostics {
    /// Uniformity, PC1, PC2 and alignment as table cells, 3 decimals (— when absent).
    pub fn cells(&self) -> [String; 4] {
        let f = |v: Option<f64>| v.map_or("—".to_string(), |x| format!("{x:.3}"));
        [f(self.uniformity), f(self.pc1), f(self.pc2), f(self.alignment)]
    }
}

/// The image and then the spectrum diagnostics among a run's latest metrics (a modality
/// without `eval.effective_rank` is left out).
pub fn recorded_diagnostics(latest: &[Metric]) -> Vec<RecordedDiagnostics> {
    let metric = |key: &str, source: &str| {
        latest.iter().find(|x| x.key == key && x.context == format!("split=test,source={source}")).map(|x| x.value)
    };
    ["image", "spectrum"]
        .into_iter()
        .filter_map(|source| {
            Some(RecordedDiagnostics {
                source: source.into(),
                effective_rank: metric("eval.effective_rank", source)?,
                uniformity: metric("eval.uniformity", source),
                pc1: metric("eval.pca_variance.pc1", source),
                pc2: metric("eval.pca_variance.pc2", source),
                alignment: metric("eval.alignment", "image↔spectrum"),
            })
        })
        .collect()
}

/// Embeddings of every object as safetensors: `image` and `spectrum` (N, dim) float32,
/// `is_test` (N,) float32 0/1; object ids in the metadata.
fn save_embeddings(
    path: &Path,
    source: &dyn ObjectSource,
    image: &eval::Embeddings,
    spectrum: &eval::Embeddings,
    test_idx: &[usize],
) -> anyhow::Result<()> {
    use safetensors::tensor::{Dtype, TensorView};
    let mut is_test = vec![0f32; source.len()];
    test_idx.iter().for_each(|&i| is_test[i] = 1.0);
    let views = vec![
        (
            "image".to_string(),
            TensorView::new(Dtype::F32, vec![image.n, image.dim], bytemuck::cast_slice(&image.values))?,
        ),
        (
            "spectrum".to_string(),
            TensorView::new(Dtype::F32, vec![spectrum.n, spectrum.dim], bytemuck::cast_slice(&spectrum.values))?,
        ),
        ("is_test".to_string(), TensorView::new(Dtype::F32, vec![source.len()], bytemuck::cast_slice(&is_test))?),
    ];
    let mut meta = std::collections::HashMap::new();
    meta.insert("object_ids".to_string(), serde_json::to_string(source.object_ids())?);
    std::fs::write(path, safetensors::tensor::serialize(views, Some(meta))?)?;
    Ok(())
}
