//! `astroclip embed`: a trained (or imported) model applied to whole catalogues, written as
//! Parquet rows `(object_id, ra, dec, source_file, <modality>…)`, one fixed-size float list per
//! embedded modality, row group by row group.
//!
//! - **Bounded memory**: the loader's prefetching workers tokenize batch by batch; one row
//!   group (`chunk_rows` rows) is held at a time.
//! - **Resumable**: every finished row group is first written as its own small Parquet file
//!   under `<out>.partial/` (written to a temporary name, then renamed, so a kill never leaves
//!   half a file), beside a manifest naming the model, data, modalities, chunking and shard. A
//!   second run with the same arguments keeps the finished chunks and embeds the rest; the
//!   chunks are then copied, in order, into `<out>` and the directory is removed. The result is
//!   the file an uninterrupted run writes, byte for byte.
//! - **Shardable**: `--shard i/N` embeds the `i`-th of `N` contiguous ranges of chunks;
//!   [`merge`] concatenates the `N` shard files (checked: same model, data and chunking, every
//!   shard once) into the file one process writes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use arrow_array::builder::{FixedSizeListBuilder, Float32Builder, Float64Builder, StringBuilder};
use arrow_array::{Array, ArrayRef, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use astroclip_plugin_api::ModalityEncoder;
use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::components::{self, Model};
use crate::config::{self, ExperimentConfig, ObjectiveKind};
use crate::data::loader::{Plan, Prefetcher, TokenizerPair};
use crate::data::{ObjectSource, OnBad};
use crate::train::Checkpoints;

/// The modalities a model embeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Modality {
    Image,
    Spectrum,
}

impl Modality {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Image => "image",
            Self::Spectrum => "spectrum",
        }
    }

    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "image" => Ok(Self::Image),
            "spectrum" => Ok(Self::Spectrum),
            other => Err(format!("unknown modality {other:?}; available: image, spectrum")),
        }
    }
}

/// Key-value metadata keys of the Parquet file.
pub const META_MODEL: &str = "astroclip.model";
pub const META_SHARD: &str = "astroclip.shard";
pub const META_MANIFEST: &str = "astroclip.embed";

#[derive(Debug, Clone)]
pub struct EmbedOptions {
    /// Run id (or unique prefix) of a finished contrastive run or imported AstroCLIP model.
    pub model: String,
    pub data: Vec<PathBuf>,
    pub modalities: Vec<Modality>,
    pub out: PathBuf,
    /// `(i, n)`: the `i`-th of `n` shards (0-based).
    pub shard: (usize, usize),
    /// Rows per row group (and per resumable chunk).
    pub chunk_rows: usize,
    pub batch_size: usize,
    pub on_bad: OnBad,
    /// Stop after this many chunks were written (the embed stays resumable).
    pub stop_after: Option<usize>,
    pub device: Device,
    pub home: PathBuf,
    pub registry: Option<String>,
}

/// What is being embedded; stored in `<out>.partial/manifest.json` and in the Parquet file, and
/// compared on resume and merge.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub model: String,
    pub checkpoint_sha256: String,
    pub data: Vec<DataFile>,
    pub modalities: Vec<Modality>,
    pub embed_dim: usize,
    pub chunk_rows: usize,
    /// Chunks over all files (every shard's share of them).
    pub total_chunks: usize,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    pub path: String,
    pub objects: usize,
    pub bytes: u64,
    /// SHA-256 of the object ids, in order.
    pub ids_sha256: String,
}

#[derive(Debug, Clone)]
pub struct EmbedOutcome {
    pub out: PathBuf,
    /// Chunks of this shard, those found finished from an earlier run, and those written now.
    pub chunks: usize,
    pub resumed_chunks: usize,
    pub written_chunks: usize,
    pub rows_written: usize,
    pub skipped: Vec<(String, String)>,
    pub secs: f64,
    /// False when `stop_after` stopped it: run again to finish.
    pub complete: bool,
}

/// One chunk: rows `start..end` of data file `file`.
#[derive(Debug, Clone, Copy)]
struct Chunk {
    file: usize,
    start: usize,
    end: usize,
}

/// A loaded model and what it needs to be applied.
pub struct Loaded {
    pub run_id: String,
    pub config: ExperimentConfig,
    pub model: Model,
    pub tokenizers: TokenizerPair,
    pub checkpoint_sha256: String,
}

/// Loads the newest checkpoint of a finished contrastive run (or imported AstroCLIP model) for
/// spectra of `n_bins` bins.
pub fn load_model(
    registry: &astroclip_registry::Registry,
    home: &Path,
    id: &str,
    n_bins: usize,
    device: &Device,
) -> anyhow::Result<Loaded> {
    let detail = registry.run(id).with_context(|| format!("--model {id:?}: no such run; see `astroclip runs list`"))?;
    let run_id = detail.summary.id.clone();
    if detail.summary.status != "finished" {
        bail!("--model {id:?}: run {run_id} is {}, not finished", detail.summary.status);
    }
    let cfg = config::from_stored(&detail.config)
        .with_context(|| format!("--model {id:?}: run {run_id} has an unreadable stored configuration"))?;
    if cfg.objective.kind != ObjectiveKind::Clip {
        bail!(
            "--model {id:?}: run {run_id} trained objective {:?}, which embeds no shared image–spectrum space; \
             use a contrastive (clip) run or an imported astroclip.ckpt",
            cfg.objective.kind.as_str()
        );
    }
    let checkpoints = Checkpoints { dir: home.join("runs").join(&run_id).join("checkpoints") };
    let Some((_, dir)) = checkpoints.latest() else {
        bail!("--model {id:?}: run {run_id} has no complete checkpoint under {}", checkpoints.dir.display());
    };
    let path = dir.join("model.bpk");
    let (image_tok, spectrum_tok) = components::tokenizers(&cfg, n_bins)?;
    let built = components::model(&cfg, &image_tok.output_shape(), &spectrum_tok.output_shape(), home, device)?;
    let model = built.model.try_load_file(&path).map_err(|e| anyhow::anyhow!("loading {}: {e}", path.display()))?;
    let (sha, _) = crate::train::file_sha256(&path)?;
    Ok(Loaded {
        run_id,
        config: cfg,
        model: model.valid(),
        tokenizers: TokenizerPair { image: image_tok, spectrum: spectrum_tok },
        checkpoint_sha256: sha,
    })
}

fn describe_file(path: &Path, source: &dyn ObjectSource) -> anyhow::Result<DataFile> {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    for id in source.object_ids() {
        h.update(id.as_bytes());
        h.update([0u8]);
    }
    Ok(DataFile {
        path: path.display().to_string(),
        objects: source.len(),
        bytes: std::fs::metadata(path).with_context(|| format!("reading {}", path.display()))?.len(),
        ids_sha256: hex::encode(h.finalize()),
    })
}

fn partial_dir(out: &Path) -> PathBuf {
    let mut s = out.as_os_str().to_os_string();
    s.push(".partial");
    PathBuf::from(s)
}

fn chunk_file(dir: &Path, k: usize) -> PathBuf {
    dir.join(format!("chunk-{k:07}.parquet"))
}

/// Embeds the data with the model into `opts.out` (see the module documentation).
pub fn embed(opts: &EmbedOptions) -> anyhow::Result<EmbedOutcome> {
    let t0 = std::time::Instant::now();
    let (shard, n_shards) = opts.shard;
    if n_shards == 0 || shard >= n_shards {
        bail!("--shard {shard}/{n_shards}: the shard index must be below the shard count");
    }
    if opts.modalities.is_empty() {
        bail!("--modalities: name at least one of image, spectrum");
    }
    if opts.data.is_empty() {
        bail!("--data: name at least one data file");
    }
    let mut sources: Vec<Arc<dyn ObjectSource>> = Vec::new();
    let mut files = Vec::new();
    for p in &opts.data {
        let s = crate::data::open_path(p)?;
        files.push(describe_file(p, s.as_ref())?);
        sources.push(s);
    }
    let n_bins = sources[0].wavelength().len();
    if let Some((i, s)) = sources.iter().enumerate().find(|(_, s)| s.wavelength().len() != n_bins) {
        bail!(
            "--data: {} has {} spectral bins, {} has {n_bins}; embed files of one wavelength grid together",
            opts.data[i].display(),
            s.wavelength().len(),
            opts.data[0].display()
        );
    }
    let registry = crate::run::open_registry(&opts.home, opts.registry.as_deref())?;
    let device = opts.device.clone().inner();
    let loaded = load_model(&registry, &opts.home, &opts.model, n_bins, &device)?;
    let embed_dim = loaded.model.image.embed_dim();

    let mut chunks = Vec::new();
    for (f, s) in sources.iter().enumerate() {
        let n = s.len();
        chunks.extend((0..n.div_ceil(opts.chunk_rows)).map(|c| Chunk {
            file: f,
            start: c * opts.chunk_rows,
            end: ((c + 1) * opts.chunk_rows).min(n),
        }));
    }
    let total = chunks.len();
    let mine: Vec<usize> = (shard * total / n_shards..(shard + 1) * total / n_shards).collect();
    let manifest = Manifest {
        model: loaded.run_id.clone(),
        checkpoint_sha256: loaded.checkpoint_sha256.clone(),
        data: files,
        modalities: opts.modalities.clone(),
        embed_dim,
        chunk_rows: opts.chunk_rows,
        total_chunks: total,
    };

    let dir = partial_dir(&opts.out);
    let manifest_path = dir.join("manifest.json");
    let mine_json = serde_json::json!({ "manifest": &manifest, "shard": [shard, n_shards] });
    if manifest_path.exists() {
        let old: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest_path)?)
            .with_context(|| format!("reading {}", manifest_path.display()))?;
        if old != mine_json {
            bail!(
                "{} holds an unfinished embed of other inputs (model, data, modalities, chunking or shard differ); \
                 rerun with the same arguments to finish it, or delete the directory to start over",
                dir.display()
            );
        }
    } else {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        std::fs::write(&manifest_path, serde_json::to_vec_pretty(&mine_json)?)?;
    }
    let todo: Vec<usize> = mine.iter().copied().filter(|&k| !chunk_file(&dir, k).exists()).collect();
    let resumed = mine.len() - todo.len();
    let budget = opts.stop_after.unwrap_or(usize::MAX);
    let todo: Vec<usize> = todo.into_iter().take(budget).collect();

    let bar = indicatif::ProgressBar::new(mine.iter().map(|&k| chunks[k].end - chunks[k].start).sum::<usize>() as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "embed {bar:30} {pos}/{len} objects {per_sec} [{elapsed_precise} < {eta_precise}]",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_position(
        mine.iter().filter(|&&k| chunk_file(&dir, k).exists()).map(|&k| chunks[k].end - chunks[k].start).sum::<usize>()
            as u64,
    );
    let tokenizers = Arc::new(loaded.tokenizers);
    let schema = schema(&opts.modalities, embed_dim);
    let mut rows_written = 0;
    let mut skipped = Vec::new();
    // Chunks of one file go through one loader, so its workers prefetch across chunk ends.
    let mut i = 0;
    while i < todo.len() {
        let f = chunks[todo[i]].file;
        let run: Vec<usize> = todo[i..].iter().copied().take_while(|&k| chunks[k].file == f).collect();
        i += run.len();
        let source = sources[f].clone();
        // Batches: each chunk split into model batches; batch b of the plan belongs to chunk owner[b].
        let mut batches: Vec<(usize, Vec<usize>)> = Vec::new();
        for &k in &run {
            let c = chunks[k];
            let mut s = c.start;
            while s < c.end {
                let e = (s + opts.batch_size).min(c.end);
                batches.push((k, (s..e).collect()));
                s = e;
            }
        }
        let plan_batches: Arc<Vec<Vec<usize>>> = Arc::new(batches.iter().map(|(_, b)| b.clone()).collect());
        let plan: Plan = Arc::new(move |b| plan_batches[b].clone());
        let loader = Prefetcher::start(
            source.clone(),
            tokenizers.clone(),
            plan,
            batches.len(),
            &loaded.config.data.loader,
            opts.on_bad,
        );
        let ids = source.object_ids();
        let ra = source.truth_column("ra");
        let dec = source.truth_column("dec");
        let file_name = opts.data[f].display().to_string();
        let mut current: Option<(usize, ChunkRows)> = None;
        for ((k, _), batch) in batches.iter().zip(loader) {
            let batch = batch?;
            if current.as_ref().is_some_and(|(c, _)| c != k) {
                let (c, rows) = current.take().expect("checked");
                rows_written += write_chunk(&dir, c, &schema, rows)?;
            }
            let rows = &mut current.get_or_insert_with(|| (*k, ChunkRows::new(opts.modalities.len()))).1;
            skipped.extend(batch.skipped.iter().map(|(i, why)| (ids[*i].clone(), why.clone())));
            let n = batch.len();
            bar.inc((n + batch.skipped.len()) as u64);
            if n == 0 {
                continue;
            }
            let (il, sl) = (tokenizers.image_len(), tokenizers.spectrum_len());
            for (m, modality) in opts.modalities.iter().enumerate() {
                let e = match modality {
                    Modality::Image => loaded.model.image.encode(tensor(&batch.image, n, il, &device)),
                    Modality::Spectrum => loaded.model.spectrum.encode(tensor(&batch.spectrum, n, sl, &device)),
                };
                let values: Vec<f32> = e.into_data().try_to_vec::<f32>().map_err(|e| anyhow::anyhow!("{e:?}"))?;
                rows.embeddings[m].extend(values);
            }
            for &i in &batch.indices {
                rows.ids.push(ids[i].clone());
                rows.ra.push(ra.map(|c| c[i] as f64));
                rows.dec.push(dec.map(|c| c[i] as f64));
                rows.source.push(file_name.clone());
            }
        }
        if let Some((c, rows)) = current.take() {
            rows_written += write_chunk(&dir, c, &schema, rows)?;
        }
    }
    bar.finish_and_clear();
    let complete = mine.iter().all(|&k| chunk_file(&dir, k).exists());
    if complete {
        let inputs: Vec<PathBuf> = mine.iter().map(|&k| chunk_file(&dir, k)).collect();
        let mut meta = vec![
            KeyValue::new(META_MODEL.to_string(), manifest.model.clone()),
            KeyValue::new(META_MANIFEST.to_string(), serde_json::to_string(&manifest)?),
        ];
        if n_shards > 1 {
            meta.push(KeyValue::new(META_SHARD.to_string(), format!("{shard}/{n_shards}")));
        }
        concatenate(&inputs, &opts.out, &schema, opts.chunk_rows, meta)?;
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    Ok(EmbedOutcome {
        out: opts.out.clone(),
        chunks: mine.len(),
        resumed_chunks: resumed,
        written_chunks: todo.len(),
        rows_written,
        skipped,
        secs: t0.elapsed().as_secs_f64(),
        complete,
    })
}

fn tensor(values: &[f32], rows: usize, cols: usize, device: &Device) -> Tensor<2> {
    Tensor::from_data(TensorData::new(values.to_vec(), [rows, cols]), device)
}

/// The rows of one chunk, column by column.
struct ChunkRows {
    ids: Vec<String>,
    ra: Vec<Option<f64>>,
    dec: Vec<Option<f64>>,
    source: Vec<String>,
    embeddings: Vec<Vec<f32>>,
}

impl ChunkRows {
    fn new(modalities: usize) -> Self {
        Self { ids: vec![], ra: vec![], dec: vec![], source: vec![], embeddings: vec![vec![]; modalities] }
    }
}

/// `object_id, ra, dec, source_file`, then one `FixedSizeList<Float32, dim>` per modality.
pub fn schema(modalities: &[Modality], dim: usize) -> Arc<Schema> {
    let mut fields = vec![
        Field::new("object_id", DataType::Utf8, false),
        Field::new("ra", DataType::Float64, true),
        Field::new("dec", DataType::Float64, true),
        Field::new("source_file", DataType::Utf8, false),
    ];
    for m in modalities {
        let item = Arc::new(Field::new("item", DataType::Float32, false));
        fields.push(Field::new(m.as_str(), DataType::FixedSizeList(item, dim as i32), false));
    }
    Arc::new(Schema::new(fields))
}

fn batch_of(schema: &Arc<Schema>, rows: ChunkRows) -> anyhow::Result<RecordBatch> {
    let mut ids = StringBuilder::new();
    rows.ids.iter().for_each(|s| ids.append_value(s));
    let mut ra = Float64Builder::new();
    rows.ra.iter().for_each(|v| ra.append_option(*v));
    let mut dec = Float64Builder::new();
    rows.dec.iter().for_each(|v| dec.append_option(*v));
    let mut src = StringBuilder::new();
    rows.source.iter().for_each(|s| src.append_value(s));
    let mut columns: Vec<ArrayRef> =
        vec![Arc::new(ids.finish()), Arc::new(ra.finish()), Arc::new(dec.finish()), Arc::new(src.finish())];
    for (m, values) in rows.embeddings.into_iter().enumerate() {
        let DataType::FixedSizeList(item, dim) = schema.field(4 + m).data_type().clone() else {
            bail!("internal: column {} is not a list", 4 + m);
        };
        let mut b = FixedSizeListBuilder::new(Float32Builder::with_capacity(values.len()), dim).with_field(item);
        for row in values.chunks(dim as usize) {
            b.values().append_slice(row);
            b.append(true);
        }
        columns.push(Arc::new(b.finish()));
    }
    Ok(RecordBatch::try_new(schema.clone(), columns)?)
}

fn props(chunk_rows: usize, meta: Vec<KeyValue>) -> WriterProperties {
    WriterProperties::builder()
        .set_max_row_group_size(chunk_rows.max(1))
        .set_created_by(format!("astroclip {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(meta))
        .build()
}

fn write_chunk(dir: &Path, k: usize, schema: &Arc<Schema>, rows: ChunkRows) -> anyhow::Result<usize> {
    let n = rows.ids.len();
    let batch = batch_of(schema, rows)?;
    let path = chunk_file(dir, k);
    let tmp = path.with_extension("parquet.tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props(n.max(1), vec![])))?;
    w.write(&batch)?;
    w.close()?;
    std::fs::rename(&tmp, &path).with_context(|| format!("renaming {}", tmp.display()))?;
    Ok(n)
}

/// Copies the row groups of `inputs`, in order, into `out` (via a temporary name), one row
/// group per input row group.
fn concatenate(
    inputs: &[PathBuf],
    out: &Path,
    schema: &Arc<Schema>,
    chunk_rows: usize,
    meta: Vec<KeyValue>,
) -> anyhow::Result<()> {
    let mut tmp = out.as_os_str().to_os_string();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let file = std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    let mut w = ArrowWriter::try_new(file, schema.clone(), Some(props(chunk_rows, meta)))?;
    for input in inputs {
        let open = || -> anyhow::Result<ParquetRecordBatchReaderBuilder<std::fs::File>> {
            let f = crate::data::open_regular(input)?;
            ParquetRecordBatchReaderBuilder::try_new(f).with_context(|| format!("reading {}", input.display()))
        };
        let groups: Vec<usize> = open()?.metadata().row_groups().iter().map(|g| g.num_rows().max(0) as usize).collect();
        // Row group by row group, so that the output keeps the inputs' row groups exactly.
        for (g, rows) in groups.into_iter().enumerate() {
            let reader = open()?.with_row_groups(vec![g]).with_batch_size(rows.max(1)).build()?;
            for batch in reader {
                let batch = batch.with_context(|| format!("reading {}", input.display()))?;
                if batch.schema().fields() != schema.fields() {
                    bail!("{}: columns differ from the other inputs", input.display());
                }
                w.write(&batch)?;
            }
            w.flush()?;
        }
    }
    w.close()?;
    std::fs::rename(&tmp, out).with_context(|| format!("writing {}", out.display()))?;
    Ok(())
}

/// `(manifest, shard (i, n) when the file is one, schema)` of an embedded catalogue.
pub type CatalogueMeta = (Manifest, Option<(usize, usize)>, Arc<Schema>);

/// The metadata of an embedded catalogue: the manifest and, for a shard, `(i, n)`.
pub fn read_meta(path: &Path) -> anyhow::Result<CatalogueMeta> {
    let f = crate::data::open_regular(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f)
        .with_context(|| format!("{}: not a Parquet file", path.display()))?;
    let kv = builder.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    let manifest: Manifest = serde_json::from_str(&get(META_MANIFEST).with_context(|| {
        format!("{}: not written by `astroclip embed` (no {META_MANIFEST} metadata)", path.display())
    })?)
    .with_context(|| format!("{}: unreadable {META_MANIFEST} metadata", path.display()))?;
    let shard = match get(META_SHARD) {
        None => None,
        Some(s) => {
            let parsed = s.split_once('/').and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)));
            Some(parsed.with_context(|| format!("{}: bad {META_SHARD} metadata {s:?}", path.display()))?)
        }
    };
    Ok((manifest, shard, builder.schema().clone()))
}

/// Merges the shard files of one embed (every shard `i/N` exactly once, same manifest) into
/// `out`: the file a single process writes. Returns the row count.
pub fn merge(inputs: &[PathBuf], out: &Path) -> anyhow::Result<usize> {
    if inputs.is_empty() {
        bail!("embed merge: name the shard files");
    }
    let mut shards = Vec::new();
    let mut first: Option<Manifest> = None;
    for p in inputs {
        let (m, shard, _) = read_meta(p)?;
        let Some((i, n)) = shard else {
            bail!("{}: not a shard (written without --shard i/N)", p.display());
        };
        if let Some(f) = &first
            && *f != m
        {
            bail!(
                "{}: a shard of another embed than {} (model, data, modalities or chunking differ)",
                p.display(),
                inputs[0].display()
            );
        }
        first.get_or_insert(m);
        shards.push((i, n, p.clone()));
    }
    shards.sort_by_key(|(i, _, _)| *i);
    let n = shards[0].1;
    let have: Vec<usize> = shards.iter().map(|(i, _, _)| *i).collect();
    if shards.iter().any(|(_, m, _)| *m != n) || have != (0..n).collect::<Vec<_>>() {
        bail!("embed merge: shards {have:?} of {n}; every shard 0..{n} must be given once");
    }
    let manifest = first.expect("inputs checked non-empty");
    let schema = schema(&manifest.modalities, manifest.embed_dim);
    let meta = vec![
        KeyValue::new(META_MODEL.to_string(), manifest.model.clone()),
        KeyValue::new(META_MANIFEST.to_string(), serde_json::to_string(&manifest)?),
    ];
    let files: Vec<PathBuf> = shards.into_iter().map(|(_, _, p)| p).collect();
    concatenate(&files, out, &schema, manifest.chunk_rows, meta)?;
    let f = crate::data::open_regular(out)?;
    Ok(ParquetRecordBatchReaderBuilder::try_new(f)?.metadata().file_metadata().num_rows() as usize)
}

/// Reads an embedded catalogue's object ids and one modality's embeddings (row-major).
pub fn read_column(path: &Path, modality: Modality) -> anyhow::Result<(Vec<String>, Vec<f32>, usize)> {
    let (manifest, _, _) = read_meta(path)?;
    if !manifest.modalities.contains(&modality) {
        bail!("{}: holds no {} embeddings (embedded: {:?})", path.display(), modality.as_str(), manifest.modalities);
    }
    let f = crate::data::open_regular(path)?;
    let reader = ParquetRecordBatchReaderBuilder::try_new(f)?.build()?;
    let (mut ids, mut values) = (Vec::new(), Vec::new());
    for batch in reader {
        let batch = batch?;
        let id_col = batch
            .column_by_name("object_id")
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>())
            .with_context(|| format!("{}: no object_id column", path.display()))?;
        for (r, id) in id_col.iter().enumerate() {
            let Some(id) = id else { bail!("{}: object_id {} is null", path.display(), ids.len() + r) };
            ids.push(id.to_string());
        }
        let col = batch
            .column_by_name(modality.as_str())
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::FixedSizeListArray>())
            .with_context(|| format!("{}: no {} column", path.display(), modality.as_str()))?;
        let inner = col
            .values()
            .as_any()
            .downcast_ref::<arrow_array::Float32Array>()
            .with_context(|| format!("{}: {} is not a float list", path.display(), modality.as_str()))?;
        if col.value_length() as usize != manifest.embed_dim {
            bail!(
                "{}: {} lists hold {} values, the manifest says embed_dim {}",
                path.display(),
                modality.as_str(),
                col.value_length(),
                manifest.embed_dim
            );
        }
        if col.null_count() > 0 {
            bail!("{}: {} null {} embeddings", path.display(), col.null_count(), modality.as_str());
        }
        let start = col.offset() * manifest.embed_dim;
        if inner.len() < start + col.len() * manifest.embed_dim {
            bail!("{}: a {} column is shorter than its rows", path.display(), modality.as_str());
        }
        values.extend_from_slice(&inner.values()[start..start + col.len() * manifest.embed_dim]);
    }
    Ok((ids, values, manifest.embed_dim))
}

/// Reads an embedded catalogue's object ids only (the other columns are not decoded).
pub fn read_ids(path: &Path) -> anyhow::Result<Vec<String>> {
    read_string_column(path, "object_id")
}

/// Reads one string column of an embedded catalogue (`object_id`, `source_file`), refusing
/// nulls; the other columns are not decoded.
pub fn read_string_column(path: &Path, name: &str) -> anyhow::Result<Vec<String>> {
    let f = crate::data::open_regular(path)?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(f)
        .with_context(|| format!("{}: not a Parquet file", path.display()))?;
    let mask = parquet::arrow::ProjectionMask::columns(builder.parquet_schema(), [name]);
    let mut out = Vec::new();
    for batch in builder.with_projection(mask).build()? {
        let batch = batch?;
        let col = batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<arrow_array::StringArray>())
            .with_context(|| format!("{}: no {name} string column", path.display()))?;
        for v in col.iter() {
            let Some(v) = v else { bail!("{}: {name} {} is null", path.display(), out.len()) };
            out.push(v.to_string());
        }
    }
    Ok(out)
}

/// A one-row-group catalogue of the given embeddings (one `(modality, rows)` per column),
/// with a manifest naming no model or data: for tests of what reads catalogues.
#[cfg(test)]
pub(crate) fn write_catalogue(
    path: &Path,
    ids: &[String],
    columns: Vec<(Modality, Vec<f32>)>,
    dim: usize,
) -> anyhow::Result<()> {
    let modalities: Vec<Modality> = columns.iter().map(|c| c.0).collect();
    let manifest = Manifest {
        model: "test".into(),
        checkpoint_sha256: String::new(),
        data: vec![],
        modalities: modalities.clone(),
        embed_dim: dim,
        chunk_rows: ids.len().max(1),
        total_chunks: 1,
    };
    let schema = schema(&modalities, dim);
    let rows = ChunkRows {
        ids: ids.to_vec(),
        ra: vec![None; ids.len()],
        dec: vec![None; ids.len()],
        source: vec!["test".into(); ids.len()],
        embeddings: columns.into_iter().map(|c| c.1).collect(),
    };
    let batch = batch_of(&schema, rows)?;
    let meta = vec![KeyValue::new(META_MANIFEST.to_string(), serde_json::to_string(&manifest)?)];
    let mut w = ArrowWriter::try_new(std::fs::File::create(path)?, schema, Some(props(ids.len().max(1), meta)))?;
    w.write(&batch)?;
    w.close()?;
    Ok(())
}
