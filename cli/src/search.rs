//! `astroclip search`: nearest neighbours in an embedded catalogue (see `astroclip_core::search`).

use std::path::PathBuf;

use astroclip_core::embed::Modality;
use astroclip_core::search;

use crate::in_range;

#[derive(clap::Args, Debug)]
pub struct SearchArgs {
    /// A catalogue written by `astroclip embed`.
    #[arg(long)]
    catalogue: PathBuf,
    /// Query by object id (repeatable).
    #[arg(long = "id", required_unless_present = "recall")]
    ids: Vec<String>,
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
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn execute(args: SearchArgs) -> anyhow::Result<()> {
    let to = args.to.unwrap_or(args.from);
    if let Some(n) = args.recall {
        let ks: Vec<usize> = if args.k == 1 { vec![1] } else { vec![1, args.k] };
        let r = search::recall(&args.catalogue, args.from, to, &ks, n)?;
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
    let results = search::by_ids(&args.catalogue, &args.ids, args.from, to, args.k)?;
    if args.json {
        let out: Vec<_> = args
            .ids
            .iter()
            .zip(&results)
            .map(|(id, m)| serde_json::json!({ "query": id, "from": args.from, "to": to, "matches": m }))
            .collect();
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    for (id, matches) in args.ids.iter().zip(&results) {
        println!("{} {id} → {}:", args.from.as_str(), to.as_str());
        println!("  {:>4}  {:<28} {:>8}", "rank", "object_id", "cosine");
        for m in matches {
            println!("  {:>4}  {:<28} {:>8.4}", m.rank, m.object_id, m.cosine);
        }
    }
    Ok(())
}
