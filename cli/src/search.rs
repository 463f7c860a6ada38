//! `astroclip search`: nearest neighbours in an embedded catalogue, exact (see
//! `astroclip_core::search`) or from a stored HNSW index (`astroclip_core::ann`);
//! `astroclip search index build`: build that index and report its recall@10. Queries are
//! catalogue objects by id, or the objects of a data file embedded on the fly by the
//! catalogue's model (`astroclip_core::query`); `--html` writes a gallery of the query and its
//! matches (cutouts and spectra from the catalogue's data files).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use astroclip_core::ann::{self, HnswParams};
use astroclip_core::embed::Modality;
use astroclip_core::query::{self, CatalogueData, ObjectPixels};
use astroclip_core::search::{self, Match, Method};

use crate::in_range;

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct SearchArgs {
    #[command(subcommand)]
    command: Option<SearchCommand>,
    /// A catalogue written by `astroclip embed`.
    #[arg(long, required = true)]
    catalogue: Option<PathBuf>,
    /// Query by object id (repeatable): catalogue objects, or with `--file` objects of that file.
    #[arg(long = "id", required_unless_present_any = ["recall", "file"])]
    ids: Vec<String>,
    /// Query with the objects of a data file (a Legacy Survey cutout, a DESI coadd or SDSS spec
    /// file, Multimodal Universe or AstroCLIP HDF5, survey safetensors), embedded on the fly by
    /// the catalogue's model: images query as images, spectra as spectra, paired files as
    /// `--from`.
    #[arg(long, conflicts_with = "recall")]
    file: Option<PathBuf>,
    /// Also write a gallery of the queries and their matches (cutouts and spectra) to this
    /// HTML file.
    #[arg(long, conflicts_with = "recall")]
    html: Option<PathBuf>,
    /// Compute device for `--file` queries: flex, tch or tch-cuda:N.
    #[arg(long, default_value = "flex")]
    device: String,
    /// The query's modality.
    #[arg(long, default_value = "image", value_parser = Modality::parse)]
    from: Modality,
    /// The modality searched (the query's own by default; the other one for cross-modal search).
    #[arg(long, value_parser = Modality::parse)]
    to: Option<Modality>,
    /// Matches per query.
    #[arg(long, default_value_t = 10, value_parser = in_range(1..=10_000))]
    k: usize,
    /// Instead of queries: recall@1 and recall@k of each object's own `--to` embedding from its
    /// `--from` embedding, over up to this many objects spread over the catalogue.
    #[arg(long, value_parser = in_range(1..=100_000_000))]
    recall: Option<usize>,
    /// Answer from the approximate (HNSW) index stored next to the catalogue for the searched
    /// modality (`astroclip search index build`) instead of the exact scan.
    #[arg(long)]
    index: bool,
    /// Search breadth of the index (default: the one its recall was measured with).
    #[arg(long, requires = "index", value_parser = in_range(1..=1_000_000))]
    ef: Option<usize>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Subcommand, Debug)]
pub enum SearchCommand {
    /// The approximate nearest-neighbour index of a catalogue.
    #[command(subcommand)]
    Index(IndexCommand),
}

#[derive(clap::Subcommand, Debug)]
pub enum IndexCommand {
    /// Build (or rebuild) the HNSW index of one modality, stored in
    /// `<catalogue>.<modality>.hnsw/`, and report its recall@10 against exact search.
    Build {
        #[arg(long)]
        catalogue: PathBuf,
        #[arg(long, default_value = "image", value_parser = Modality::parse)]
        modality: Modality,
        /// Links per node (HNSW's M).
        #[arg(long, default_value_t = HnswParams::default().m, value_parser = in_range(2..=255))]
        m: usize,
        #[arg(long, default_value_t = HnswParams::default().ef_construction, value_parser = in_range(1..=100_000))]
        ef_construction: usize,
        /// Search breadth the recall is measured with (and the searches' default); 128 gives
        /// recall@10 ≥ 0.95 on 1 M clustered rows (docs/models.md).
        #[arg(long, default_value_t = 128, value_parser = in_range(1..=1_000_000))]
        ef_search: usize,
        /// Catalogue rows, spread over it, whose exact and approximate top-10 are compared.
        #[arg(long, default_value_t = 1000, value_parser = in_range(1..=1_000_000))]
        recall_queries: usize,
        #[arg(long)]
        json: bool,
    },
}

fn build_index(cmd: IndexCommand) -> anyhow::Result<()> {
    let IndexCommand::Build { catalogue, modality, m, ef_construction, ef_search, recall_queries, json } = cmd;
    let meta = ann::build_for(&catalogue, modality, HnswParams { m, ef_construction }, ef_search, recall_queries)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&meta)?);
        return Ok(());
    }
    println!(
        "{}: HNSW index of {} {} embeddings ({}-d), M {}, ef_construction {}, built in {:.1} s",
        ann::index_dir(&catalogue, modality).display(),
        meta.rows,
        modality.as_str(),
        meta.dim,
        meta.params.m,
        meta.params.ef_construction,
        meta.build_seconds
    );
    println!(
        "  recall@10 against exact search: {:.4} ({} queries, ef_search {})",
        meta.recall_at_10, meta.recall_queries, meta.ef_search
    );
    Ok(())
}

/// A query, shown by the label and, in the gallery, by its pixels.
struct Query {
    label: String,
    from: Modality,
    pixels: Option<ObjectPixels>,
}

pub fn execute(args: SearchArgs, home: &Path, registry: Option<&str>) -> anyhow::Result<()> {
    if let Some(SearchCommand::Index(cmd)) = args.command {
        return build_index(cmd);
    }
    let catalogue = args.catalogue.clone().expect("clap requires --catalogue without a subcommand");
    let to = args.to.unwrap_or(args.from);
    if let Some(n) = args.recall {
        let ks: Vec<usize> = if args.k == 1 { vec![1] } else { vec![1, args.k] };
        let r = search::recall(&catalogue, args.from, to, &ks, n)?;
        if args.json {
            println!("{}", serde_json::to_string_pretty(&r)?);
            return Ok(());
        }
        println!(
            "{} → {} retrieval of the same object, {} queries over {} objects:",
            r.from.as_str(),
            r.to.as_str(),
            r.queries,
            r.catalogue
        );
        for ((k, v), (_, c)) in r.recall.iter().zip(&r.chance) {
            println!("  recall@{k:<4} = {v:.3}   (chance {c:.4})");
        }
        return Ok(());
    }
    let method = if args.index { Method::Index { ef: args.ef } } else { Method::Exact };
    let mut data = None;
    let (queries, results) = if let Some(file) = &args.file {
        let d = CatalogueData::open(&catalogue)?;
        let (from, objects) = query::read_query_file(file, &args.ids, args.from, &d.inputs)?;
        let device = astroclip_core::device::parse(&args.device)?;
        let model = query::catalogue_model(&catalogue, &d, home, registry, &device)?;
        let rows = query::embed_objects(&model, &d.inputs, from, &objects, &device)?;
        let results = search::by_rows(&catalogue, &rows, args.to.unwrap_or(from), args.k, method)?;
        let queries: Vec<Query> = objects
            .into_iter()
            .map(|o| Query { label: format!("{} ({})", o.object_id, file.display()), from, pixels: Some(o) })
            .collect();
        data = Some(d);
        (queries, results)
    } else {
        let results = search::by_ids(&catalogue, &args.ids, args.from, to, args.k, method)?;
        (args.ids.iter().map(|id| Query { label: id.clone(), from: args.from, pixels: None }).collect(), results)
    };
    let from = queries.first().map_or(args.from, |q| q.from);
    let to = args.to.unwrap_or(from);
    if let Some(page) = &args.html {
        let mut d = match data {
            Some(d) => d,
            None => CatalogueData::open(&catalogue)?,
        };
        let html = gallery(&catalogue, &mut d, &queries, &results, to)?;
        std::fs::write(page, html).map_err(|e| anyhow::anyhow!("writing {}: {e}", page.display()))?;
        eprintln!("gallery -> {}", page.display());
    }
    if args.json {
        let out: Vec<_> = queries
            .iter()
            .zip(&results)
            .map(|(q, m)| serde_json::json!({ "query": q.label, "from": q.from, "to": to, "matches": m }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for (q, matches) in queries.iter().zip(&results) {
        println!("{} {} → {}:", q.from.as_str(), q.label, to.as_str());
        println!("  {:>4}  {:<28} {:>8}", "rank", "object_id", "cosine");
        for m in matches {
            println!("  {:>4}  {:<28} {:>8.4}", m.rank, m.object_id, m.cosine);
        }
    }
    Ok(())
}

/// The gallery page: per query, the query (its cutout or spectrum) and its matches, each with
/// its cutout and spectrum from the catalogue's data files, the match's searched modality
/// framed. Self-contained (PNG data URIs, inline SVG); on load a script writes what rendered
/// onto `<body>` for headless checks.
fn gallery(
    catalogue: &Path,
    data: &mut CatalogueData,
    queries: &[Query],
    results: &[Vec<Match>],
    to: Modality,
) -> anyhow::Result<String> {
    use crate::html::{base64, cutout_png, esc, spectrum_svg};
    let sources = query::source_files(catalogue)?;
    let ids =
        if queries.iter().any(|q| q.pixels.is_none()) { astroclip_core::embed::read_ids(catalogue)? } else { vec![] };
    let size = data.inputs.image_size;
    let wave = data.inputs.wavelength.clone();
    let mut h = String::new();
    let _ = write!(
        h,
        r#"<!doctype html><html><head><meta charset="utf-8"><title>astroclip search</title><style>
body{{font-family:sans-serif;margin:2em}} .query{{margin-bottom:2em;border-top:1px solid #ccc}} .row{{display:flex;flex-wrap:wrap;gap:8px}}
figure{{margin:0;font-size:12px}} .match.hit{{outline:2px solid #2ca02c}} img.cutout{{image-rendering:pixelated}}
</style></head><body><h1>Search in <code>{}</code></h1><p>Cutouts: z, r, g as R, G, B (asinh stretch); spectra binned to 300 points. Searched: {} embeddings, cosine similarity.</p>"#,
        esc(&catalogue.display().to_string()),
        to.as_str()
    );
    let figure = |h: &mut String, class: &str, caption: &str, p: &ObjectPixels| {
        let _ = write!(h, r#"<figure class="{class}">"#);
        if let Some(img) = &p.image {
            let _ = write!(
                h,
                r#"<img class="cutout" width="120" height="120" alt="cutout {}" src="data:image/png;base64,{}"/>"#,
                esc(&p.object_id),
                base64(&cutout_png(img, size))
            );
        }
        if let Some(flux) = &p.flux {
            h.push_str(&spectrum_svg(&wave, flux, &p.object_id, false));
        }
        let _ = write!(h, "<figcaption>{}</figcaption></figure>", esc(caption));
    };
    for (q, matches) in queries.iter().zip(results) {
        let _ = write!(
            h,
            r#"<div class="query"><h2>{} {} → {}</h2><div class="row">"#,
            q.from.as_str(),
            esc(&q.label),
            to.as_str()
        );
        let pixels = match &q.pixels {
            Some(p) => p.clone(),
            None => {
                let row =
                    ids.iter().position(|x| x == &q.label).ok_or_else(|| anyhow::anyhow!("no object {:?}", q.label))?;
                let mut p = data.pixels(&sources[row], &q.label)?;
                match q.from {
                    Modality::Image => (p.flux, p.ivar) = (None, None),
                    Modality::Spectrum => p.image = None,
                }
                p
            }
        };
        figure(&mut h, "query", &format!("query {}", q.label), &pixels);
        for m in matches {
            let p = data.pixels(&sources[m.row], &m.object_id)?;
            let class = if m.object_id == pixels.object_id { "match hit" } else { "match" };
            figure(&mut h, class, &format!("{}. {} cos {:.4}", m.rank, m.object_id, m.cosine), &p);
        }
        h.push_str("</div></div>");
    }
    h.push_str(
        "<script>window.addEventListener('load',()=>{const b=document.body;\
         b.dataset.queries=document.querySelectorAll('div.query').length;\
         b.dataset.matches=document.querySelectorAll('figure.match').length;\
         b.dataset.spectra=document.querySelectorAll('svg.spectrum polyline').length;\
         b.dataset.images=document.images.length;\
         b.dataset.brokenImages=[...document.images].filter(i=>!(i.complete&&i.naturalWidth>0)).length;});</script></body></html>\n",
    );
    Ok(h)
}
