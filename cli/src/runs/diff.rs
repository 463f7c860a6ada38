//! `astroclip runs diff`: what differs between runs — params side by side (identical ones
//! hidden unless asked), final and best metrics with deltas against the first run, components
//! (plugins) and data hashes compared.

use std::collections::{BTreeMap, BTreeSet};

use astroclip_registry::{MetricSummary, Registry, RegistryError, RunDetail};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct Diff {
    pub runs: Vec<String>,
    /// `(key, value per run)`; `None` where a run lacks the key.
    pub params: Vec<(String, Vec<Option<String>>)>,
    pub identical_params: usize,
    /// `(key [context], final per run, best per run, better = "lower"|"higher")`.
    pub metrics: Vec<MetricRow>,
    pub components: Vec<(String, Vec<Option<String>>)>,
    pub data_hash: Vec<Option<String>>,
}

#[derive(Debug, Serialize)]
pub struct MetricRow {
    pub key: String,
    pub context: String,
    pub last: Vec<Option<f64>>,
    pub best: Vec<Option<f64>>,
    /// `lower`/`higher` is better, or `None` where "best" means nothing (a learning rate).
    pub better: Option<&'static str>,
    /// Longest series among the runs (1: logged once, e.g. an evaluation).
    pub samples: i64,
}

/// Lower is better for losses, errors, waiting, and an embedding's uniformity and alignment
/// (Wang & Isola); higher for R², recall, throughput and effective rank; nothing is "best"
/// about a learning rate, a logit scale or a PCA variance fraction.
fn better(key: &str) -> Option<&'static str> {
    if ["loss", "error", "wait", "skipped", "uniformity", "alignment"].iter().any(|k| key.contains(k)) {
        Some("lower")
    } else if ["r2", "recall", "per_sec", "accuracy", "effective_rank"].iter().any(|k| key.contains(k)) {
        Some("higher")
    } else {
        None
    }
}

fn component_map(d: &RunDetail) -> BTreeMap<String, String> {
    let mut m = BTreeMap::new();
    if let Some(list) = d.components.as_array() {
        for c in list {
            let kind = c["kind"].as_str().unwrap_or("?");
            let modality = c["modality"].as_str().map(|m| format!(" ({m})")).unwrap_or_default();
            m.insert(
                format!("{kind}{modality}"),
                format!("{} {}", c["id"].as_str().unwrap_or("?"), c["version"].as_str().unwrap_or("")),
            );
        }
    }
    m
}

pub fn diff(reg: &Registry, ids: &[String], all: bool) -> Result<Diff, RegistryError> {
    let details: Vec<RunDetail> = ids.iter().map(|i| reg.run(i)).collect::<Result<_, _>>()?;
    let summaries: Vec<Vec<MetricSummary>> =
        details.iter().map(|d| reg.metric_summary(&d.summary.id)).collect::<Result<_, _>>()?;
    let keys: BTreeSet<&String> = details.iter().flat_map(|d| d.params.iter().map(|(k, _)| k)).collect();
    let mut params = Vec::new();
    let mut identical = 0;
    for k in keys {
        let vals: Vec<Option<String>> =
            details.iter().map(|d| d.params.iter().find(|(pk, _)| pk == k).map(|(_, v)| v.clone())).collect();
        let same = vals.windows(2).all(|w| w[0] == w[1]);
        if same {
            identical += 1;
        }
        if !same || all {
            params.push((k.clone(), vals));
        }
    }
    let series: BTreeSet<(&String, &String)> = summaries.iter().flatten().map(|m| (&m.key, &m.context)).collect();
    let metrics = series
        .into_iter()
        .map(|(k, c)| {
            let b = better(k);
            let find = |s: &Vec<MetricSummary>| s.iter().find(|m| &m.key == k && &m.context == c).cloned();
            MetricRow {
                key: k.clone(),
                context: c.clone(),
                last: summaries.iter().map(|s| find(s).map(|m| m.last)).collect(),
                best: summaries
                    .iter()
                    .map(|s| find(s).map(|m| if b == Some("lower") { m.min } else { m.max }))
                    .collect(),
                better: b,
                samples: summaries.iter().filter_map(find).map(|m| m.count).max().unwrap_or(0),
            }
        })
        .collect();
    let comps: Vec<BTreeMap<String, String>> = details.iter().map(component_map).collect();
    let slots: BTreeSet<&String> = comps.iter().flat_map(|c| c.keys()).collect();
    let components =
        slots.into_iter().map(|s| (s.clone(), comps.iter().map(|c| c.get(s).cloned()).collect())).collect();
    Ok(Diff {
        runs: details.iter().map(|d| d.summary.id.clone()).collect(),
        params,
        identical_params: identical,
        metrics,
        components,
        data_hash: details.iter().map(|d| d.summary.data_hash.clone()).collect(),
    })
}

fn short(id: &str) -> &str {
    &id[..8.min(id.len())]
}

impl Diff {
    pub fn table(&self, all: bool) -> String {
        let n = self.runs.len();
        let mut out = String::new();
        let head = |out: &mut String, title: &str| {
            out.push_str(&format!("{title:<60}"));
            for r in &self.runs {
                out.push_str(&format!(" {:>22}", short(r)));
            }
            out.push('\n');
        };
        head(&mut out, "params");
        for (k, vals) in &self.params {
            out.push_str(&format!("  {k:<58}"));
            for v in vals {
                out.push_str(&format!(" {:>22}", v.as_deref().unwrap_or("—")));
            }
            out.push('\n');
        }
        if !all {
            out.push_str(&format!("  ({} identical params hidden; --all shows them)\n", self.identical_params));
        }
        out.push('\n');
        head(&mut out, "metrics: final (Δ vs first), best over the run");
        for m in &self.metrics {
            let label = if m.context.is_empty() { m.key.clone() } else { format!("{} [{}]", m.key, m.context) };
            out.push_str(&format!("  {label:<58}"));
            for (i, v) in m.last.iter().enumerate() {
                let cell = match (v, m.last[0]) {
                    (Some(x), Some(f)) if i > 0 => format!("{x:.4} ({:+.4})", x - f),
                    (Some(x), _) => format!("{x:.4}"),
                    (None, _) => "—".into(),
                };
                out.push_str(&format!(" {cell:>22}"));
            }
            out.push('\n');
            // A best value only where it means something: a series with a direction.
            if let (Some(b), true) = (m.better, m.samples > 1) {
                out.push_str(&format!("  {:<58}", format!("  best ({b} is better)")));
                for v in &m.best {
                    out.push_str(&format!(" {:>22}", v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "—".into())));
                }
                out.push('\n');
            }
        }
        out.push('\n');
        head(&mut out, "components");
        for (slot, vals) in &self.components {
            let same = vals.windows(2).all(|w| w[0] == w[1]);
            out.push_str(&format!("{} {slot:<58}", if same { " " } else { "≠" }));
            for v in vals {
                out.push_str(&format!(" {:>22}", v.as_deref().unwrap_or("—")));
            }
            out.push('\n');
        }
        let same = self.data_hash.windows(2).all(|w| w[0] == w[1]);
        out.push_str(&format!("{} {:<58}", if same { " " } else { "≠" }, "data hash"));
        for h in &self.data_hash {
            out.push_str(&format!(" {:>22}", h.as_deref().map(|h| &h[..12.min(h.len())]).unwrap_or("—")));
        }
        out.push('\n');
        let _ = n;
        out
    }
}
