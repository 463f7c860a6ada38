//! Binding a new modality into a trained, **frozen** image–spectrum embedding
//! (ImageBind-style: Girdhar et al. 2023, "ImageBind: One Embedding Space To Bind Them All",
//! CVPR — a new modality's encoder is trained with InfoNCE against the frozen embeddings of a
//! modality already in the space, and inherits its alignment with every other one).
//!
//! Everything about the new modality comes from plugins: its tokenizer (a WASM plugin served by
//! `astroclip-wasm-host`) and its encoder (a native plugin over the host tensor interface). The
//! image and spectrum encoders are frozen, so their embeddings are exactly those the base run
//! stored (`embeddings.safetensors`); only the new encoder's parameters are trained.
//!
//! `astroclip bind experiments/bind-photometry.toml` finds or trains the base run, tokenizes
//! the photometry, trains the encoder, and reports k-NN R² from the new embeddings and
//! cross-modal retrieval into the existing modalities, recorded as a run in the registry.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use astroclip_builtin::infonce::InfoNceConfig;
use astroclip_plugin_api::{ComponentInfo, ComponentKind, ContrastiveLoss, Probe};
use astroclip_plugin_host::Installed;
use astroclip_plugin_host::native::NativePlugin;
use astroclip_registry::{Metric, Registry};
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use figment::Figment;
use figment::providers::{Format, Toml};
use serde::{Deserialize, Serialize};

use crate::eval::{self, Embeddings, retrieval_recall};
use crate::plugin_encoder::PluginEncoder;
use crate::run::{self, RunOptions};
use crate::wasm_client::WasmTokenizer;
use crate::{components, config, device, lifecycle, train};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindConfig {
    pub experiment: BindExperiment,
    pub base: BaseConfig,
    pub modality: ModalityConfig,
    pub train: BindTrain,
    pub eval: BindEval,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindExperiment {
    pub name: String,
    #[serde(default)]
    pub description: String,
}

/// The trained embedding to bind into.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaseConfig {
    /// A finished run (id or unique prefix) with stored embeddings; wins over `experiment`.
    #[serde(default)]
    pub run: String,
    /// Otherwise: an experiment TOML (relative to this file) or a preset name. A finished run
    /// with the same resolved configuration is reused; if there is none, it is trained first.
    #[serde(default)]
    pub experiment: String,
    /// `--set`-style overrides of that experiment, e.g. `["train.steps=300"]`.
    #[serde(default)]
    pub overrides: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModalityConfig {
    /// Name of the new modality (`photometry`); the data source must provide it.
    pub name: String,
    /// Tokenizer plugin (WASM, run by `astroclip-wasm-host`, or native): a plugin directory
    /// or an installed plugin id. Its first tokenizer for `name` is used.
    pub tokenizer: String,
    /// Native encoder plugin (tensor interface): a plugin directory or an installed id.
    pub encoder_plugin: String,
    /// The encoder's name within that plugin.
    pub encoder: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindTrain {
    pub steps: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub warmup_steps: usize,
    pub weight_decay: f64,
    /// InfoNCE logit scale (AstroCLIP: 15.5, fixed) of the built-in loss.
    pub logit_scale: f64,
    /// A contrastive loss from a plugin (id or directory) instead of the built-in InfoNCE;
    /// `loss` names it within the plugin.
    #[serde(default)]
    pub loss_plugin: String,
    #[serde(default = "default_loss")]
    pub loss: String,
    /// Frozen modalities the new one is aligned to (`image`, `spectrum`); losses are averaged.
    pub bind_to: Vec<String>,
    pub seed: u64,
    pub log_every: usize,
    /// A checkpoint (encoder + optimizer state) every this many steps, and at the last step
    /// and on Ctrl-C/SIGTERM; `astroclip bind --resume <run>` continues from the newest.
    #[serde(default = "default_checkpoint_every")]
    pub checkpoint_every: usize,
}

fn default_checkpoint_every() -> usize {
    500
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BindEval {
    pub k: usize,
    pub recall_at: Vec<usize>,
    /// Extra probes from plugins (ids or directories; every probe they export), evaluated on
    /// the new modality's embeddings next to the k-NN probe.
    #[serde(default)]
    pub probe_plugins: Vec<String>,
}

fn default_loss() -> String {
    "infonce".into()
}

pub fn load_config(path: &Path) -> anyhow::Result<BindConfig> {
    if !path.is_file() {
        bail!("bind experiment file {} not found", path.display());
    }
    let cfg: BindConfig = Figment::new().merge(Toml::file_exact(path)).extract().map_err(|e| {
        let lines: Vec<String> = e
            .into_iter()
            .map(|e| format!("  key `{}`: {} [in {}]", e.path.join("."), e.kind, path.display()))
            .collect();
        anyhow::anyhow!("invalid bind experiment:\n{}", lines.join("\n"))
    })?;
    let t = &cfg.train;
    if t.steps == 0 || t.batch_size < 2 || t.log_every == 0 || t.checkpoint_every == 0 || t.lr <= 0.0 || cfg.eval.k == 0
    {
        bail!(
            "{}: train.steps, train.log_every, train.checkpoint_every, train.lr and eval.k must be > 0 and \
             train.batch_size ≥ 2",
            path.display()
        );
    }
    for m in &t.bind_to {
        if m != "image" && m != "spectrum" {
            bail!("{}: train.bind_to names {m:?}; the frozen modalities are image and spectrum", path.display());
        }
    }
    if t.bind_to.is_empty() {
        bail!("{}: train.bind_to is empty: name at least one frozen modality", path.display());
    }
    if cfg.modality.name != "photometry" {
        bail!(
            "{}: modality.name {:?}: this version binds `photometry` (the modality its data sources carry)",
            path.display(),
            cfg.modality.name
        );
    }
    Ok(cfg)
}

/// Outcome of a binding run.
#[derive(Debug, Clone, Serialize)]
pub struct BindReport {
    pub run_id: String,
    pub base_run: String,
    pub n_train: usize,
    pub n_test: usize,
    /// `(embedding, [(property, R²)])`.
    pub r2: Vec<(String, Vec<(String, f64)>)>,
    /// `(direction, [(k, recall)])`.
    pub recall: Vec<(String, Vec<(usize, f64)>)>,
    pub first_loss: f64,
    pub final_loss: f64,
    pub train_secs: f64,
    pub tokenize_per_sec: f64,
}

impl BindReport {
    pub fn table(&self) -> String {
        let mut out = format!(
            "binding into run {}: zero-shot k-NN R² on {} held-out galaxies ({} neighbours pool)\n",
            self.base_run, self.n_test, self.n_train
        );
        let props: Vec<&str> =
            self.r2.first().map(|(_, r)| r.iter().map(|(p, _)| p.as_str()).collect()).unwrap_or_default();
        out.push_str(&format!("{:<24}", "embedding"));
        for p in &props {
            out.push_str(&format!("{p:>12}"));
        }
        out.push_str(&format!("{:>12}\n", "mean"));
        for (name, row) in &self.r2 {
            out.push_str(&format!("{name:<24}"));
            for (_, v) in row {
                out.push_str(&format!("{v:>12.3}"));
            }
            let mean = row.iter().map(|(_, v)| v).sum::<f64>() / row.len().max(1) as f64;
            out.push_str(&format!("{mean:>12.3}\n"));
        }
        out.push_str(&format!(
            "retrieval among {} held-out galaxies (chance @1 = {:.4}):\n",
            self.n_test,
            1.0 / self.n_test.max(1) as f64
        ));
        for (dir, r) in &self.recall {
            out.push_str(&format!("  {dir:<22}"));
            for (k, v) in r {
                out.push_str(&format!("  recall@{k} = {v:.3}"));
            }
            out.push('\n');
        }
        out.push_str(&format!(
            "InfoNCE {:.3} → {:.3} in {:.1} s of training; WASM tokenizer {:.0} objects/s\n",
            self.first_loss, self.final_loss, self.train_secs, self.tokenize_per_sec
        ));
        out
    }
}

enum EncoderSource {
    Native(astroclip_plugin_host::native::NativeEncoder),
    Wasm(WasmTokenizer),
}

/// The new modality's tokenizer, from either carrier.
enum PluginTokenizer {
    Wasm(WasmTokenizer),
    Native(NativePlugin, astroclip_plugin_host::native::NativeTokenizer),
}

impl PluginTokenizer {
    fn open(dir: &astroclip_plugin_host::PluginDir, modality: &str) -> anyhow::Result<Self> {
        Ok(match dir.manifest.entry.carrier {
            astroclip_plugin_host::Carrier::Wasm => Self::Wasm(WasmTokenizer::spawn(&dir.dir)?),
            astroclip_plugin_host::Carrier::Native => {
                let p = NativePlugin::load(dir)?;
                let t = p.tokenizers().into_iter().find(|(_, m, _)| m == modality).map(|(_, _, t)| t).with_context(
                    || {
                        format!(
                            "modality.tokenizer: plugin {} {} has no tokenizer for modality {modality:?}",
                            p.id, p.version
                        )
                    },
                )?;
                Self::Native(p, t)
            }
        })
    }

    fn id(&self) -> String {
        match self {
            Self::Wasm(w) => w.id.clone(),
            Self::Native(p, _) => p.id.clone(),
        }
    }

    fn version(&self) -> String {
        match self {
            Self::Wasm(w) => w.version.clone(),
            Self::Native(p, _) => p.version.clone(),
        }
    }

    fn output_len(&mut self, shape: &[usize]) -> anyhow::Result<Option<usize>> {
        Ok(match self {
            Self::Wasm(w) => w.output_len(shape)?,
            Self::Native(p, t) => p.output_len(*t, shape),
        })
    }

    /// `n` inputs in one call; an error carries the failing object's index when known.
    fn tokenize_batch(
        &mut self,
        inputs: &[f32],
        shape: &[usize],
        n: usize,
        len: usize,
    ) -> Result<Vec<f32>, (Option<usize>, String)> {
        match self {
            Self::Wasm(w) => w.tokenize_batch(inputs, shape, n).map_err(|e| match &e {
                crate::wasm_client::WasmClientError::Call { index, .. } => (*index, e.to_string()),
                _ => (None, e.to_string()),
            }),
            Self::Native(p, t) => {
                let per: usize = shape.iter().product();
                let mut out = vec![0f32; n * len];
                for i in 0..n {
                    p.tokenize(*t, &inputs[i * per..(i + 1) * per], shape, &mut out[i * len..(i + 1) * len])
                        .map_err(|e| (Some(i), e.to_string()))?;
                }
                Ok(out)
            }
        }
    }
}

struct Stored {
    image: Embeddings,
    spectrum: Embeddings,
    is_test: Vec<bool>,
    object_ids: Vec<String>,
}

fn read_embeddings(path: &Path) -> anyhow::Result<Stored> {
    let bytes = std::fs::read(path).with_context(|| format!("reading the base run's embeddings {}", path.display()))?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes)?;
    let st = safetensors::SafeTensors::deserialize(&bytes)?;
    let get = |name: &str| -> anyhow::Result<(Vec<usize>, Vec<f32>)> {
        let t = st.tensor(name).with_context(|| format!("{}: no `{name}` tensor", path.display()))?;
        Ok((t.shape().to_vec(), bytemuck::pod_collect_to_vec(t.data())))
    };
    let emb = |name: &str| -> anyhow::Result<Embeddings> {
        let (s, v) = get(name)?;
        Ok(Embeddings { n: s[0], dim: s[1], values: v })
    };
    let (_, t) = get("is_test")?;
    let ids = meta
        .metadata()
        .as_ref()
        .and_then(|m| m.get("object_ids"))
        .and_then(|s| serde_json::from_str(s).ok())
        .with_context(|| format!("{}: no object ids in the metadata", path.display()))?;
    Ok(Stored {
        image: emb("image")?,
        spectrum: emb("spectrum")?,
        is_test: t.iter().map(|&v| v > 0.5).collect(),
        object_ids: ids,
    })
}

/// Finds the base run: by id, or a finished run of the same resolved configuration, or trains it.
fn base_run(
    cfg: &BindConfig,
    file: &Path,
    home: &Path,
    device_name: &str,
    registry: &Registry,
) -> anyhow::Result<String> {
    if !cfg.base.run.is_empty() {
        return Ok(registry.resolve(&cfg.base.run)?);
    }
    if cfg.base.experiment.is_empty() {
        bail!("{}: set base.run (a run id) or base.experiment (a preset or experiment file)", file.display());
    }
    let (exp_path, mut overrides) = config::experiment_ref(file, "base.experiment", &cfg.base.experiment)?;
    overrides.extend(cfg.base.overrides.iter().cloned());
    let resolved = config::load(exp_path.as_deref(), &config::CliOverrides::parse(&overrides)?)?;
    let with_embeddings = |d: &astroclip_registry::RunDetail| d.artifacts.iter().any(|a| a.kind == "embeddings");
    if let Some(id) = lifecycle::reusable_run(registry, &resolved, Some(&resolved.experiment.name), with_embeddings)? {
        tracing::info!(run = %id, "reusing the finished base run with the same configuration");
        return Ok(id);
    }
    tracing::info!("no finished base run with this configuration: training it first");
    let out = run::execute(&RunOptions {
        file: exp_path,
        overrides,
        device: device_name.to_string(),
        resume: None,
        home: home.to_path_buf(),
        registry: Some(registry.url().to_string()),
        stop_after: None,
    })?;
    if let Some(r) = &out.report {
        println!("{}", r.table());
    }
    Ok(out.run_id)
}

fn tensor(values: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [rows, cols]), device)
}

fn gather(e: &[f32], dim: usize, idx: &[usize]) -> Vec<f32> {
    idx.iter().flat_map(|&i| e[i * dim..(i + 1) * dim].iter().copied()).collect()
}

/// Per-column standardisation (for the raw-feature reference row).
fn standardized(mut e: Embeddings, train: &[usize]) -> Embeddings {
    for c in 0..e.dim {
        let vals: Vec<f64> = train.iter().map(|&i| e.values[i * e.dim + c] as f64).collect();
        let mean = vals.iter().sum::<f64>() / vals.len() as f64;
        let sd = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / vals.len() as f64).sqrt().max(1e-9);
        for r in 0..e.n {
            let v = &mut e.values[r * e.dim + c];
            *v = ((*v as f64 - mean) / sd) as f32;
        }
    }
    e
}

/// The binding objective: InfoNCE (or a plugin's loss) between the new modality's embeddings
/// and the frozen, stored embeddings of the modalities in `bind_to`, averaged. Batches carry
/// only indices; the tokens and targets are held here.
struct Bind<'a> {
    tokens: &'a [f32],
    input_len: usize,
    targets: Vec<&'a Embeddings>,
    loss: &'a crate::encoders::Loss,
}

impl train::Objective for Bind<'_> {
    type Model = PluginEncoder;

    fn label(&self) -> String {
        "bind".into()
    }

    fn loss(
        &mut self,
        encoder: &PluginEncoder,
        b: crate::data::loader::TokenBatch,
        _step: usize,
        dev: &Device,
    ) -> Result<Tensor<1>, train::TrainError> {
        let component = |e: &dyn std::fmt::Display| train::TrainError::Component(e.to_string());
        let (f, idx) = (self.input_len, &b.indices);
        let z =
            encoder.try_encode(tensor(&gather(self.tokens, f, idx), idx.len(), f, dev)).map_err(|e| component(&e))?;
        let mut total: Option<Tensor<1>> = None;
        for target in &self.targets {
            let y = tensor(&gather(&target.values, target.dim, idx), idx.len(), target.dim, dev);
            let l = self.loss.try_loss(z.clone(), y).map_err(|e| component(&e))?;
            total = Some(match total {
                None => l,
                Some(a) => a + l,
            });
        }
        let n = self.targets.len();
        total.map(|t| t / n as f64).ok_or_else(|| component(&"train.bind_to is empty"))
    }
}

/// `astroclip bind <file>`, or `astroclip bind --resume <run>` (`file` = None): continues an
/// interrupted binding run from its newest checkpoint with its recorded configuration.
pub fn execute(
    file: Option<&Path>,
    resume: Option<&str>,
    home: &Path,
    registry: Option<&str>,
    device_name: &str,
) -> anyhow::Result<BindReport> {
    let registry = run::open_registry(home, registry)?;
    let (cfg, file, resumed) = match (file, resume) {
        (Some(f), None) => (load_config(f)?, f.to_path_buf(), None),
        (None, Some(id)) => {
            let d = registry.run(id)?;
            let id = d.summary.id.clone();
            if d.summary.status == "finished" {
                bail!("bind run {id} is finished; nothing to resume");
            }
            let mut cfg: BindConfig = serde_json::from_value(d.config.clone())
                .with_context(|| format!("run {id} is not a binding run (its configuration is not a bind file's)"))?;
            let base = d.params.iter().find(|(k, _)| k == "base.run_id").map(|(_, v)| v.clone());
            cfg.base.run = base.with_context(|| format!("run {id} records no base.run_id"))?;
            (cfg, PathBuf::from("."), Some(d))
        }
        _ => bail!("give a bind experiment file, or --resume <run> without one"),
    };
    let file = file.as_path();
    let base_id = base_run(&cfg, file, home, device_name, &registry)?;
    let base = registry.run(&base_id)?;
    if base.summary.status != "finished" {
        bail!("base run {base_id} is {}; bind into a finished run", base.summary.status);
    }
    let base_cfg = config::from_stored(&base.config)
        .with_context(|| format!("run {base_id} has an unreadable stored configuration"))?;
    let emb_path = home.join("runs").join(&base_id).join("embeddings.safetensors");
    let stored = read_embeddings(&emb_path)?;

    // The same objects, with the new modality: regenerate or reopen the base run's data.
    let (source, _) = run::load_source(&base_cfg)?;
    let hash = source.content_hash()?;
    if base.summary.data_hash.as_deref() != Some(hash.as_str()) {
        bail!(
            "the base run {base_id} was trained on data {:?}, which now hashes to {hash} (its data changed, or it \
             predates the photometry columns); train a new base run",
            base.summary.data_hash
        );
    }
    if source.object_ids() != stored.object_ids.as_slice() {
        bail!("the embeddings of run {base_id} list other objects than its data; the run's artifacts are inconsistent");
    }
    let phot = source.photometry().with_context(|| {
        format!(
            "{} has no {} columns: binding needs a source that carries the new modality",
            source.describe(),
            cfg.modality.name
        )
    })?;
    let n = source.len();
    let nb = phot.bands.len();

    // Plugins: the tokenizer (WASM, in its own process) and the encoder (native, tensor API).
    let installed = Installed::new(home);
    let tok_dir = installed.resolve(&cfg.modality.tokenizer).map_err(|e| anyhow::anyhow!("modality.tokenizer: {e}"))?;
    let enc_dir =
        installed.resolve(&cfg.modality.encoder_plugin).map_err(|e| anyhow::anyhow!("modality.encoder_plugin: {e}"))?;
    let mut tokenizer = PluginTokenizer::open(&tok_dir, &cfg.modality.name)?;
    // The encoder: native (tensor table) or WASM (tensor imports, served over the pipe).
    let (enc_id, enc_version) = (enc_dir.id().to_string(), enc_dir.version().to_string());
    let encoder_source = match enc_dir.manifest.entry.carrier {
        astroclip_plugin_host::Carrier::Native => {
            let native = NativePlugin::load(&enc_dir)?;
            EncoderSource::Native(native.encoder(&cfg.modality.encoder)?)
        }
        astroclip_plugin_host::Carrier::Wasm => {
            let client = WasmTokenizer::spawn(&enc_dir.dir)?;
            if !client.is_encoder {
                bail!("modality.encoder_plugin: {} {} is a WASM tokenizer, not an encoder", client.id, client.version);
            }
            EncoderSource::Wasm(client)
        }
    };

    let shape = [2, nb];
    let f = tokenizer.output_len(&shape)?.with_context(|| {
        format!("plugin {} {} does not take photometry of shape {shape:?}", tokenizer.id(), tokenizer.version())
    })?;
    let t0 = Instant::now();
    let mut tokens = Vec::with_capacity(n * f);
    for start in (0..n).step_by(512) {
        let end = (start + 512).min(n);
        let mut batch = Vec::with_capacity((end - start) * 2 * nb);
        for i in start..end {
            let (fl, iv) = phot.row(i);
            batch.extend_from_slice(fl);
            batch.extend_from_slice(iv);
        }
        let out = tokenizer.tokenize_batch(&batch, &shape, end - start, f).map_err(|(k, e)| match k {
            Some(k) => anyhow::anyhow!("object {}: {e}", source.object_ids()[start + k]),
            None => anyhow::anyhow!("{e}"),
        })?;
        tokens.extend(out);
    }
    let tokenize_per_sec = n as f64 / t0.elapsed().as_secs_f64();

    let train_idx: Vec<usize> = (0..n).filter(|&i| !stored.is_test[i]).collect();
    let test_idx: Vec<usize> = (0..n).filter(|&i| stored.is_test[i]).collect();
    let dim = stored.image.dim;

    let dev = device::parse(device_name)?;
    dev.seed(cfg.train.seed);
    let dev = dev.autodiff();
    let encoder = match encoder_source {
        EncoderSource::Native(e) => PluginEncoder::init(e, f, dim, &dev)?,
        EncoderSource::Wasm(c) => PluginEncoder::init_wasm(c, &cfg.modality.name, f, dim, &dev)?,
    };
    let loss_fn = if cfg.train.loss_plugin.is_empty() {
        if cfg.train.loss != "infonce" {
            bail!(
                "train.loss {:?}: the built-in loss is `infonce`; set train.loss_plugin for a plugin's loss",
                cfg.train.loss
            );
        }
        "infonce".to_string()
    } else {
        format!("{}/{}", cfg.train.loss_plugin, cfg.train.loss)
    };
    let infonce = InfoNceConfig::new().with_logit_scale(cfg.train.logit_scale);
    let (loss_fn, _) = crate::encoders::build_loss("train.loss_plugin", &loss_fn, &infonce, dim, home, &dev)?;

    let component_infos: Vec<ComponentInfo> = vec![
        ComponentInfo {
            id: tokenizer.id(),
            version: tokenizer.version(),
            kind: ComponentKind::Tokenizer,
            modality: Some(cfg.modality.name.clone()),
        },
        astroclip_plugin_api::ModalityEncoder::info(&encoder),
        loss_fn.info(),
        components::knn_probe(cfg.eval.k).info(),
    ];
    let plugin_params = vec![
        (
            "plugins.tokenizer".to_string(),
            format!("{} {} sha256 {}", tokenizer.id(), tokenizer.version(), tok_dir.manifest.entry.sha256),
        ),
        ("plugins.encoder".to_string(), format!("{enc_id} {enc_version} sha256 {}", enc_dir.manifest.entry.sha256)),
    ];
    let config_json = serde_json::to_value(&cfg)?;
    let run_id = lifecycle::open(
        &registry,
        lifecycle::RunStart {
            experiment: &cfg.experiment.name,
            name: format!("{}-into-{}", cfg.experiment.name, &base_id[..8.min(base_id.len())]),
            config: &config_json,
            data_hash: &hash,
            components: &component_infos,
            params: vec![
                ("base.run_id".into(), base_id.clone()),
                ("run.device".into(), device_name.to_string()),
                ("modality.input_len".into(), f.to_string()),
            ],
            pinned: plugin_params,
        },
        resumed.as_ref(),
    )?;

    let run_dir = home.join("runs").join(&run_id);
    let resume_with = format!("astroclip bind --resume {run_id}");
    let report = lifecycle::conclude(&registry, &run_id, &resume_with, || {
        let t = &cfg.train;
        let train_cfg = config::TrainConfig {
            steps: t.steps,
            batch_size: t.batch_size,
            lr: t.lr,
            weight_decay: t.weight_decay,
            warmup_steps: t.warmup_steps,
            // The quickstart's cosine floor; no gradient clipping.
            min_lr_fraction: config::ExperimentConfig::preset("quickstart").expect("preset").train.min_lr_fraction,
            grad_clip: 0.0,
            checkpoint_every: t.checkpoint_every,
            log_every: t.log_every,
            seed: t.seed,
        };
        let checkpoints = train::Checkpoints { dir: run_dir.join("checkpoints") };
        let start_step = checkpoints.latest().map(|(s, _)| s).unwrap_or(0);
        let setup = train::TrainSetup {
            cfg: &train_cfg,
            device: &dev,
            data: &train::IndexBatches,
            train_idx: &train_idx,
            registry: &registry,
            run_id: &run_id,
            checkpoints: &checkpoints,
            artifact_root: home,
            stop_after: None,
        };
        let targets = t.bind_to.iter().map(|m| if m == "image" { &stored.image } else { &stored.spectrum }).collect();
        let mut objective = Bind { tokens: &tokens, input_len: f, targets, loss: &loss_fn };
        let started = Instant::now();
        let fitted = train::fit(setup, &mut objective, encoder, start_step)?;
        let train_secs = started.elapsed().as_secs_f64();
        if fitted.stopped_at.is_some() {
            return Ok(None);
        }
        let encoder = fitted.model;
        let history = registry.metric_history(&run_id, "train.loss")?;
        let first = history.first().map_or(f64::NAN, |m| m.value);
        let last = history.last().map_or(f64::NAN, |m| m.value);

        // Embed every object with the trained encoder (no autodiff).
        let valid = encoder.valid();
        let inner = dev.clone().inner();
        let mut values = Vec::with_capacity(n * dim);
        for start in (0..n).step_by(512) {
            let end = (start + 512).min(n);
            let x = tensor(&tokens[start * f..end * f], end - start, f, &inner);
            values.extend(valid.try_encode(x)?.into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?);
        }
        let phot_emb = Embeddings { n, dim, values }.normalized();
        let img = stored.image.clone().normalized();
        let spec = stored.spectrum.clone().normalized();
        let raw = standardized(Embeddings { n, dim: f, values: tokens.clone() }, &train_idx);

        let targets: Vec<(String, &[f32])> = base_cfg
            .eval
            .properties
            .iter()
            .filter_map(|p| source.truth_column(p).filter(|v| v.len() == n).map(|v| (p.clone(), v)))
            .collect();
        let knn = || Ok(components::knn_probe(cfg.eval.k));
        let row = |name: &str,
                   neighbours: &Embeddings,
                   queries: &Embeddings|
         -> anyhow::Result<(String, Vec<(String, f64)>)> {
            Ok((name.to_string(), eval::probe_r2(neighbours, queries, &train_idx, &test_idx, &targets, &knn)?))
        };
        let mut r2 = vec![
            row("photometry", &phot_emb, &phot_emb)?,
            row("photometry→image", &img, &phot_emb)?,
            row("photometry→spectrum", &spec, &phot_emb)?,
            row("raw photometry features", &raw, &raw)?,
            row("image (frozen)", &img, &img)?,
            row("spectrum (frozen)", &spec, &spec)?,
        ];
        for spec in &cfg.eval.probe_plugins {
            let d = installed.resolve(spec).map_err(|e| anyhow::anyhow!("eval.probe_plugins: {e}"))?;
            let p = NativePlugin::load(&d)?;
            for (name, probe) in p.probes() {
                let make = || -> Result<Box<dyn Probe>, astroclip_plugin_api::ComponentError> {
                    Ok(Box::new(crate::plugin_probe::PluginProbe::new(probe)?))
                };
                let values = eval::probe_r2(&phot_emb, &phot_emb, &train_idx, &test_idx, &targets, &make)?;
                r2.insert(1, (format!("photometry ({}/{name})", p.id), values));
            }
        }
        let (pt, it, st) = (phot_emb.select(&test_idx), img.select(&test_idx), spec.select(&test_idx));
        let recall = vec![
            ("photometry→image".to_string(), retrieval_recall(&pt, &it, &cfg.eval.recall_at)),
            ("photometry→spectrum".to_string(), retrieval_recall(&pt, &st, &cfg.eval.recall_at)),
            ("image→spectrum (base)".to_string(), retrieval_recall(&it, &st, &cfg.eval.recall_at)),
        ];

        let step = t.steps as i64;
        let mut metrics = Vec::new();
        for (src, row) in &r2 {
            for (p, v) in row {
                metrics.push(
                    Metric::new(format!("eval.r2.{p}"), step, *v).with_context(format!("split=test,source={src}")),
                );
            }
        }
        for (dir, row) in &recall {
            for (kk, v) in row {
                metrics.push(
                    Metric::new(format!("eval.recall_at_{kk}"), step, *v)
                        .with_context(format!("split=test,source={dir}")),
                );
            }
        }
        // The new modality's embedding diagnostics, and its alignment with each base modality
        // it was bound to (same held-out rows as the evaluation's diagnostics).
        if let Some(d) = eval::diagnose(&[("photometry", &phot_emb)], &test_idx)? {
            metrics.extend(crate::run::diagnostic_metrics(&d, step));
        }
        let rows = &test_idx[..test_idx.len().min(eval::DIAGNOSTIC_ROWS)];
        for (pair, other) in [("photometry↔image", &img), ("photometry↔spectrum", &spec)] {
            if other.dim == dim && !rows.is_empty() {
                let (a, b) = (phot_emb.select(rows), other.select(rows));
                let v = astroclip_builtin::diagnostics::alignment(&a.values, &b.values, a.n, a.dim)?;
                metrics.push(Metric::new("eval.alignment", step, v).with_context(format!("split=test,source={pair}")));
            }
        }
        metrics.push(Metric::new("data.tokenize_per_sec", 0, tokenize_per_sec));
        registry.log_metrics(&run_id, &metrics)?;

        std::fs::create_dir_all(&run_dir)?;
        let ckpt = run_dir.join("encoder.bpk");
        encoder.clone().save_file(&ckpt).map_err(|e| anyhow::anyhow!("saving {}: {e}", ckpt.display()))?;
        train::record_artifact(&registry, &run_id, home, &ckpt, "checkpoint")?;
        let emb_out = run_dir.join("embeddings.safetensors");
        let view = safetensors::tensor::TensorView::new(
            safetensors::tensor::Dtype::F32,
            vec![n, dim],
            bytemuck::cast_slice(&phot_emb.values),
        )?;
        let mut meta = std::collections::HashMap::new();
        meta.insert("object_ids".to_string(), serde_json::to_string(source.object_ids())?);
        std::fs::write(&emb_out, safetensors::tensor::serialize(vec![(cfg.modality.name.clone(), view)], Some(meta))?)?;
        train::record_artifact(&registry, &run_id, home, &emb_out, "embeddings")?;
        let report = BindReport {
            run_id: run_id.clone(),
            base_run: base_id.clone(),
            n_train: train_idx.len(),
            n_test: test_idx.len(),
            r2,
            recall,
            first_loss: first,
            final_loss: last,
            train_secs,
            tokenize_per_sec,
        };
        let eval_path = run_dir.join("eval.json");
        std::fs::write(&eval_path, serde_json::to_string_pretty(&report)?)?;
        train::record_artifact(&registry, &run_id, home, &eval_path, "evaluation")?;
        Ok(Some(report))
    })?;
    report
        .ok_or_else(|| anyhow::anyhow!("bind run {run_id} stopped before the last step; continue with `{resume_with}`"))
}
