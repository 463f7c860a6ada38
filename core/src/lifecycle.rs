//! The one place a run enters the registry, is reopened for resuming, and ends — for every
//! command that trains (`run`, `bench`, `bind`).
//!
//! A new run gets its resolved configuration (flattened into params), data hash, components,
//! git commit and extra params; a resumed one is checked against what it recorded (the data
//! hash, the plugin builds). The work runs with panics caught, and the run ends `finished`,
//! `killed` (stopped early: resumable, with the command that resumes it) or `failed` (with
//! the message).

use anyhow::bail;
use astroclip_plugin_api::ComponentInfo;
use astroclip_registry::{NewRun, Registry, RunDetail};
use serde_json::Value;

/// What a run records when it is created.
pub struct RunStart<'a> {
    pub experiment: &'a str,
    pub name: String,
    /// The resolved configuration, stored and flattened into params.
    pub config: &'a Value,
    pub data_hash: &'a str,
    pub components: &'a [ComponentInfo],
    /// Params beyond the configuration (device, data source).
    pub params: Vec<(String, String)>,
    /// Params a resume must find unchanged (`plugins.*`: the plugin builds).
    pub pinned: Vec<(String, String)>,
}

/// Flattens a JSON object into `a.b.c = value` pairs (the run's params).
pub fn flatten(prefix: &str, v: &Value, out: &mut Vec<(String, String)>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                flatten(&key, v, out);
            }
        }
        Value::String(s) => out.push((prefix.to_string(), s.clone())),
        other => out.push((prefix.to_string(), other.to_string())),
    }
}

fn git_commit() -> Option<String> {
    let out = std::process::Command::new("git").args(["rev-parse", "HEAD"]).output().ok()?;
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Creates the run, or — with `resume`, the recorded run — checks that its data and pinned
/// params are unchanged and marks it running again. Returns the run id.
pub fn open(registry: &Registry, start: RunStart<'_>, resume: Option<&RunDetail>) -> anyhow::Result<String> {
    if let Some(d) = resume {
        let id = &d.summary.id;
        if d.summary.data_hash.as_deref() != Some(start.data_hash) {
            bail!(
                "run {id} was trained on data {:?}, but the data now hashes to {}; resume refused",
                d.summary.data_hash,
                start.data_hash
            );
        }
        for (key, now) in &start.pinned {
            if let Some((_, then)) = d.params.iter().find(|(k, _)| k == key)
                && then != now
            {
                bail!(
                    "run {id} was trained with {key} = {then}, but it is now {now}; install the plugin the run used \
                     (`astroclip plugins add --replace`) to resume"
                );
            }
        }
        registry.set_status(id, "running", None)?;
        return Ok(id.clone());
    }
    let id = registry.create_run(&NewRun {
        experiment: start.experiment.to_string(),
        name: start.name,
        config_json: start.config.to_string(),
        git_commit: git_commit(),
        data_hash: Some(start.data_hash.to_string()),
        components_json: serde_json::to_string(start.components)?,
    })?;
    let mut params = Vec::new();
    flatten("", start.config, &mut params);
    params.extend(start.params);
    params.extend(start.pinned);
    registry.log_params(&id, &params)?;
    Ok(id)
}

/// A finished run that trained the same model as `cfg` — the same resolved configuration but
/// for the `[experiment]` section (name, description) — and passes `accept`; runs of the
/// experiment `experiment` only when given. Bench suites and bindings reuse such a run instead
/// of training it again.
pub fn reusable_run(
    registry: &Registry,
    cfg: &crate::config::ExperimentConfig,
    experiment: Option<&str>,
    accept: impl Fn(&RunDetail) -> bool,
) -> anyhow::Result<Option<String>> {
    for r in registry.list_runs(experiment)? {
        if r.status != "finished" {
            continue;
        }
        let d = registry.run(&r.id)?;
        if let Ok(mut old) = crate::config::from_stored(&d.config) {
            old.experiment = cfg.experiment.clone();
            if old == *cfg && accept(&d) {
                return Ok(Some(r.id));
            }
        }
    }
    Ok(None)
}

/// Runs `work` for run `id` (panics caught) and records how it ended: `Ok(Some)` finished,
/// `Ok(None)` stopped early — `killed`, resumable with `resume_with` (e.g. `astroclip run
/// --resume <id>`) —, `Err` failed with its message.
pub fn conclude<T>(
    registry: &Registry,
    id: &str,
    resume_with: &str,
    work: impl FnOnce() -> anyhow::Result<Option<T>>,
) -> anyhow::Result<Option<T>> {
    // A panic inside a component (a shape bug, a backend failure) must still leave the run
    // marked failed with its message, not "running" forever.
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".into());
        Err(anyhow::anyhow!("internal error (panic): {msg}"))
    });
    match result {
        Ok(Some(v)) => {
            registry.set_status(id, "finished", None)?;
            Ok(Some(v))
        }
        Ok(None) => {
            let hint = format!("stopped before the last step; continue with `{resume_with}`");
            registry.set_status(id, "killed", Some(&hint))?;
            Ok(None)
        }
        Err(e) => {
            registry.set_status(id, "failed", Some(&format!("{e:#}")))?;
            Err(e.context(format!("run {id} failed (recorded in the registry)")))
        }
    }
}
