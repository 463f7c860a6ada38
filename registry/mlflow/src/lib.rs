//! Export of astroclip registry runs into an MLflow tracking server, MLflow being the
//! interchange format of the field.
//!
//! Experiments, runs, params, tags and metric series go through the `mlflow-client` crate
//! (MLflow's REST API 2.0, `runs/log-batch` within its limits: 1000 metrics, 100 params, 100
//! tags per request); artifact files go through MLflow's artifact proxy
//! (`PUT /api/2.0/mlflow-artifacts/artifacts/<experiment>/<run>/artifacts/<path>`, served by
//! `mlflow server` by default), which `mlflow-client` does not cover.
//!
//! Export is **idempotent**: the MLflow run id and how much was sent (metric rows in insertion
//! order, artifact sha256s) are stored in the registry (`mlflow_exports`, migration 0004), and
//! params/tags are compared with what the MLflow run already holds, so a second export sends
//! only what is new. The state is saved after every request, so an interrupted export resumes.
//!
//! Name mapping (MLflow keys allow letters, digits, `_ - . / space`): a metric `key` with
//! context `k1=v1,k2=v2` becomes `key/k1_v1/k2_v2`, `→` becomes `-to-`, and any other
//! character outside that set becomes `_`; the run note becomes `mlflow.note.content` (MLflow's
//! run description), the git commit `mlflow.source.git.commit`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;

use astroclip_registry::{Metric, MlflowExport, Registry, RegistryError, RunDetail};
use mlflow_client::client::MlflowClient;
use mlflow_client::data::{
    CreateExperimentOptions, CreateRunOptions, Param, RunStatus, RunTag, Timestamp, UpdateRunOptions,
};
use sha2::{Digest, Sha256};

/// MLflow's `log-batch` limits.
pub const MAX_METRICS: usize = 1000;
pub const MAX_PARAMS: usize = 100;
pub const MAX_TAGS: usize = 100;
/// MLflow's longest param value (6000 in MLflow ≥ 2.x); longer values are cut with a marker.
pub const MAX_PARAM_VALUE: usize = 6000;
/// MLflow's longest tag value (8000 in MLflow 3).
pub const MAX_TAG_VALUE: usize = 8000;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error("MLflow at {uri}: {what}: {source}")]
    Mlflow { uri: String, what: String, source: mlflow_client::Error },
    #[error("MLflow at {uri}: uploading artifact {path}: {message}")]
    Upload { uri: String, path: String, message: String },
    #[error(
        "MLflow at {uri} stores run artifacts at {artifact_uri:?}, which it does not proxy; start the server with \
         artifact serving on (`mlflow server --artifacts-destination <dir>`, the default `--serve-artifacts`)"
    )]
    NotProxied { uri: String, artifact_uri: String },
    #[error(
        "param {key:?} of run {run} is {ours:?} here but {theirs:?} in MLflow run {mlflow_run}; params are immutable \
         on both sides: export into a fresh MLflow server or experiment"
    )]
    ParamConflict { run: String, key: String, ours: String, theirs: String, mlflow_run: String },
}

type Result<T> = std::result::Result<T, ExportError>;

/// An MLflow-safe name: letters, digits, `_ - . / space` kept, `→` as `-to-`, the rest `_`.
pub fn sanitize(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' | '/' | ' ' => out.push(c),
            '→' => out.push_str("-to-"),
            _ => out.push('_'),
        }
    }
    out
}

/// The MLflow metric key for an astroclip metric `key` with `context` (`k=v,…`).
pub fn mlflow_key(key: &str, context: &str) -> String {
    let mut k = sanitize(key);
    for part in context.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        k.push('/');
        k.push_str(&sanitize(&part.replacen('=', "_", 1)));
    }
    k
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 12).collect();
    out.push_str("…[truncated]");
    out
}

/// The params an export sends for a run: (MLflow key, value).
pub fn mlflow_params(detail: &RunDetail) -> Vec<(String, String)> {
    detail.params.iter().map(|(k, v)| (sanitize(k), cut(v, MAX_PARAM_VALUE))).collect()
}

/// The tags an export sets on a run: the run's own tags (its note as MLflow's description)
/// and astroclip's provenance.
pub fn mlflow_tags(detail: &RunDetail) -> Vec<(String, String)> {
    let s = &detail.summary;
    let mut tags: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in &detail.tags {
        let key = if k == "note" { "mlflow.note.content".to_string() } else { sanitize(k) };
        tags.insert(key, cut(v, MAX_TAG_VALUE));
    }
    tags.insert("astroclip.run_id".into(), s.id.clone());
    tags.insert("astroclip.status".into(), s.status.clone());
    if let Some(h) = &s.data_hash {
        tags.insert("astroclip.data_hash".into(), h.clone());
    }
    if let Some(g) = &s.git_commit {
        tags.insert("mlflow.source.git.commit".into(), g.clone());
    }
    tags.insert("astroclip.components".into(), cut(&detail.components.to_string(), MAX_TAG_VALUE));
    tags.into_iter().collect()
}

/// Where an artifact goes inside the MLflow run: its path below `runs/<id>/`, else its name.
pub fn artifact_path(run: &str, path: &str) -> String {
    let prefix = format!("runs/{run}/");
    match path.strip_prefix(&prefix) {
        Some(rest) => rest.to_string(),
        None => Path::new(path).file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.into()),
    }
}

fn mlflow_status(status: &str) -> RunStatus {
    match status {
        "finished" => RunStatus::Finished,
        "failed" => RunStatus::Failed,
        "killed" => RunStatus::Killed,
        _ => RunStatus::Running,
    }
}

/// What one run's export sent.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct RunExport {
    pub run: String,
    pub mlflow_run_id: String,
    pub mlflow_experiment_id: String,
    pub created: bool,
    pub params: usize,
    pub tags: usize,
    pub metrics: usize,
    pub requests: usize,
    pub artifacts: usize,
    pub artifact_bytes: u64,
    /// Artifacts not sent: missing on disk, or changed since the registry recorded them.
    pub skipped: Vec<String>,
}

pub struct Exporter {
    uri: String,
    client: MlflowClient,
    http: reqwest::blocking::Client,
}

impl Exporter {
    pub fn new(uri: &str) -> Result<Self> {
        let uri = uri.trim_end_matches('/').to_string();
        let client = MlflowClient::new(&uri).map_err(|source| ExportError::Mlflow {
            uri: uri.clone(),
            what: "bad tracking URI".into(),
            source,
        })?;
        let http = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(300))
            .build()
            .map_err(|e| ExportError::Upload { uri: uri.clone(), path: String::new(), message: e.to_string() })?;
        Ok(Self { uri, client, http })
    }

    fn err(&self, what: impl Into<String>) -> impl FnOnce(mlflow_client::Error) -> ExportError + '_ {
        let what = what.into();
        move |source| ExportError::Mlflow { uri: self.uri.clone(), what, source }
    }

    fn experiment_id(&self, name: &str) -> Result<String> {
        match self.client.get_experiment_by_name(name) {
            Ok(r) => Ok(r.experiment.experiment_id),
            Err(e) if e.is_resource_does_not_exist() => Ok(self
                .client
                .create_experiment(name, CreateExperimentOptions::default())
                .map_err(self.err(format!("creating experiment {name:?}")))?
                .experiment_id),
            Err(e) => Err(self.err(format!("looking up experiment {name:?}"))(e)),
        }
    }

    /// Exports one run (creating its MLflow run the first time), sending only what is new.
    pub fn export_run(&self, reg: &Registry, home: &Path, run: &str) -> Result<RunExport> {
        let detail = reg.run(run)?;
        let id = detail.summary.id.clone();
        let mut out = RunExport { run: id.clone(), ..Default::default() };
        // The MLflow run: the recorded one if the server still has it, else a new one.
        let mut state = reg.mlflow_export(&id, &self.uri)?;
        let mut remote = None;
        if let Some(st) = &state {
            match self.client.get_run(&st.run_id) {
                Ok(r) => remote = Some(r.run),
                Err(e) if e.is_resource_does_not_exist() => state = None,
                Err(e) => return Err(self.err(format!("reading run {}", st.run_id))(e)),
            }
        }
        let mut state = match state {
            Some(st) => st,
            None => {
                let exp = self.experiment_id(&detail.summary.experiment)?;
                let created = self
                    .client
                    .create_run(
                        &exp,
                        &detail.summary.name,
                        CreateRunOptions { start_time: Some(Timestamp(detail.summary.start_ms)), tags: &[] },
                    )
                    .map_err(self.err(format!("creating a run for {id}")))?;
                out.created = true;
                let st =
                    MlflowExport { experiment_id: exp, run_id: created.run.info.run_id.clone(), ..Default::default() };
                // Saved at once: an interrupted export must not create a second MLflow run.
                reg.set_mlflow_export(&id, &self.uri, &st)?;
                remote = Some(created.run);
                st
            }
        };
        let remote = remote.expect("remote run read or created");
        out.mlflow_run_id = state.run_id.clone();
        out.mlflow_experiment_id = state.experiment_id.clone();

        // Params (immutable on both sides) and tags: send what MLflow lacks or holds differently.
        let have_params: BTreeMap<&str, &str> =
            remote.data.params.iter().map(|p| (p.key.as_str(), p.value.as_str())).collect();
        let mut params = Vec::new();
        for (k, v) in mlflow_params(&detail) {
            match have_params.get(k.as_str()) {
                Some(old) if *old == v => {}
                Some(old) => {
                    return Err(ExportError::ParamConflict {
                        run: id.clone(),
                        key: k,
                        ours: v,
                        theirs: old.to_string(),
                        mlflow_run: state.run_id.clone(),
                    });
                }
                None => params.push(Param { key: k, value: v }),
            }
        }
        let have_tags: BTreeMap<&str, &str> =
            remote.data.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())).collect();
        let tags: Vec<RunTag> = mlflow_tags(&detail)
            .into_iter()
            .filter(|(k, v)| have_tags.get(k.as_str()) != Some(&v.as_str()))
            .map(|(key, value)| RunTag { key, value })
            .collect();
        for chunk in params.chunks(MAX_PARAMS) {
            self.client
                .log_batch(&state.run_id, &[], chunk, &[])
                .map_err(self.err(format!("logging params of {id}")))?;
            out.requests += 1;
        }
        for chunk in tags.chunks(MAX_TAGS) {
            self.client.log_batch(&state.run_id, &[], &[], chunk).map_err(self.err(format!("setting tags of {id}")))?;
            out.requests += 1;
        }
        out.params = params.len();
        out.tags = tags.len();

        // Metric rows after those already sent, in insertion order, 1000 per request.
        loop {
            let rows = reg.metrics_in_order(&id, state.metric_rows_sent, MAX_METRICS as i64)?;
            if rows.is_empty() {
                break;
            }
            let batch: Vec<mlflow_client::data::Metric> = rows.iter().map(to_mlflow).collect();
            self.client
                .log_batch(&state.run_id, &batch, &[], &[])
                .map_err(self.err(format!("logging metrics of {id}")))?;
            out.requests += 1;
            out.metrics += rows.len();
            state.metric_rows_sent += rows.len() as i64;
            reg.set_mlflow_export(&id, &self.uri, &state)?;
        }

        // Artifacts through MLflow's artifact proxy.
        let root = remote
            .info
            .artifact_uri
            .strip_prefix("mlflow-artifacts:")
            .map(|r| r.trim_start_matches('/').to_string())
            .ok_or_else(|| ExportError::NotProxied {
                uri: self.uri.clone(),
                artifact_uri: remote.info.artifact_uri.clone(),
            })?;
        for a in &detail.artifacts {
            let dest = artifact_path(&id, &a.path);
            if state.artifacts_sent.get(&dest) == Some(&a.sha256) {
                continue;
            }
            let file = home.join(&a.path);
            let bytes = match std::fs::File::open(&file) {
                Ok(mut f) => {
                    let mut b = Vec::new();
                    f.read_to_end(&mut b).map_err(|e| ExportError::Upload {
                        uri: self.uri.clone(),
                        path: file.display().to_string(),
                        message: e.to_string(),
                    })?;
                    b
                }
                Err(_) => {
                    out.skipped.push(format!("{} (missing: {})", a.path, file.display()));
                    continue;
                }
            };
            let sha = format!("{:x}", Sha256::digest(&bytes));
            if sha != a.sha256 {
                out.skipped.push(format!("{} (changed since the run recorded it)", a.path));
                continue;
            }
            self.upload(&root, &dest, bytes.clone())?;
            out.requests += 1;
            out.artifacts += 1;
            out.artifact_bytes += bytes.len() as u64;
            state.artifacts_sent.insert(dest, sha);
            reg.set_mlflow_export(&id, &self.uri, &state)?;
        }

        // Status and end time, last: a finished MLflow run has everything.
        let want = mlflow_status(&detail.summary.status);
        let end = detail.summary.end_ms.map(Timestamp);
        if remote.info.status != want || remote.info.end_time != end {
            self.client
                .update_run(&state.run_id, UpdateRunOptions { status: Some(want), end_time: end, run_name: None })
                .map_err(self.err(format!("setting the status of {id}")))?;
            out.requests += 1;
        }
        Ok(out)
    }

    fn upload(&self, root: &str, dest: &str, bytes: Vec<u8>) -> Result<()> {
        let enc: Vec<String> = dest.split('/').map(percent).collect();
        let url = format!("{}/api/2.0/mlflow-artifacts/artifacts/{root}/{}", self.uri, enc.join("/"));
        let fail = |message: String| ExportError::Upload { uri: self.uri.clone(), path: dest.to_string(), message };
        let resp = self.http.put(&url).body(bytes).send().map_err(|e| fail(e.to_string()))?;
        if !resp.status().is_success() {
            let status = resp.status();
            let body = resp.text().unwrap_or_default();
            return Err(fail(format!("HTTP {status}: {}", body.chars().take(300).collect::<String>())));
        }
        Ok(())
    }
}

fn percent(seg: &str) -> String {
    let mut out = String::new();
    for b in seg.bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b as char),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

fn to_mlflow(m: &Metric) -> mlflow_client::data::Metric {
    mlflow_client::data::Metric {
        key: mlflow_key(&m.key, &m.context),
        value: m.value,
        timestamp: Timestamp(m.time_ms),
        step: Some(m.step),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_contexts_and_forbidden_characters() {
        assert_eq!(mlflow_key("train.loss", ""), "train.loss");
        assert_eq!(
            mlflow_key("eval.r2.redshift", "split=test,source=image→spectrum"),
            "eval.r2.redshift/split_test/source_image-to-spectrum"
        );
        assert_eq!(sanitize("plugin.photometry-mlp[0]:sha"), "plugin.photometry-mlp_0__sha");
        assert_eq!(artifact_path("abc", "runs/abc/checkpoints/step-1/model.bpk"), "checkpoints/step-1/model.bpk");
        assert_eq!(artifact_path("abc", "plots/x.png"), "x.png");
        assert_eq!(percent("a b%"), "a%20b%25");
        let long = "x".repeat(7000);
        let c = cut(&long, MAX_PARAM_VALUE);
        assert_eq!(c.chars().count(), MAX_PARAM_VALUE);
        assert!(c.ends_with("…[truncated]"));
    }
}
