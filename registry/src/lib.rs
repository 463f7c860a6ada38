//! The astroclip experiment registry: one SQLite file (WAL) holding experiments, runs with
//! their resolved configuration, data hash and components, immutable params, append-only
//! metrics written in batches, and artifacts with their SHA-256.
//!
//! Modelled on MLflow's tracking store. The schema lives in numbered migrations
//! (`registry/migrations/`), applied once under an exclusive file lock because SQLite's
//! migrator does not lock (concurrent first opens otherwise race on `CREATE TABLE`).
//!
//! The API is synchronous: each `Registry` owns a small current-thread tokio runtime, so
//! training code never needs async.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod query;

use serde::Serialize;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error("registry {path}: cannot create or lock ({source})")]
    Io { path: String, source: std::io::Error },
    #[error("registry {path}: migration failed: {source}")]
    Migrate { path: String, source: sqlx::migrate::MigrateError },
    #[error("registry query failed ({context}): {source}")]
    Query { context: String, source: sqlx::Error },
    #[error("no run matches {0:?}; `astroclip runs list` shows the ids")]
    RunNotFound(String),
    #[error("run id prefix {0:?} is ambiguous; give more characters")]
    Ambiguous(String),
    #[error("param {key:?} of run {run} is already {old:?}; params are immutable (wanted {new:?})")]
    ParamConflict { run: String, key: String, old: String, new: String },
    #[error("metric {key:?} at step {step} is not finite ({value}); refusing to record it")]
    NonFinite { key: String, step: i64, value: f64 },
    #[error("bad query: {0}")]
    BadQuery(String),
}

type Result<T> = std::result::Result<T, RegistryError>;

/// This machine's name (Linux: /proc/sys/kernel/hostname), to tell our processes from others'.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "localhost".into())
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as i64).unwrap_or(0)
}

/// One metric sample. `context` qualifies it, e.g. `split=test,modality=image`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metric {
    pub key: String,
    pub step: i64,
    pub time_ms: i64,
    pub value: f64,
    pub context: String,
}

impl Metric {
    pub fn new(key: impl Into<String>, step: i64, value: f64) -> Self {
        Self { key: key.into(), step, time_ms: now_ms(), value, context: String::new() }
    }

    pub fn with_context(mut self, context: impl Into<String>) -> Self {
        self.context = context.into();
        self
    }
}

#[derive(Debug, Clone)]
pub struct NewRun {
    pub experiment: String,
    pub name: String,
    pub config_json: String,
    pub git_commit: Option<String>,
    pub data_hash: Option<String>,
    pub components_json: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub experiment: String,
    pub name: String,
    pub status: String,
    pub start_ms: i64,
    pub end_ms: Option<i64>,
    pub data_hash: Option<String>,
    pub git_commit: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Artifact {
    pub path: String,
    pub kind: String,
    pub sha256: String,
    pub size_bytes: i64,
    pub created_ms: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub message: Option<String>,
    pub config: serde_json::Value,
    pub components: serde_json::Value,
    pub params: Vec<(String, String)>,
    /// Last value of every (key, context) series, with its step.
    pub latest_metrics: Vec<Metric>,
    pub artifacts: Vec<Artifact>,
    /// Mutable labels (`runs tag`); the note is the tag `note`.
    pub tags: Vec<(String, String)>,
    /// When the run was soft-deleted (`runs rm`), if it was.
    pub deleted_ms: Option<i64>,
}

/// A run matched by [`Registry::query`], with the values of the fields the query named.
#[derive(Debug, Clone, Serialize)]
pub struct QueryRow {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub fields: Vec<(String, Option<String>)>,
}

/// One metric series of a run, summarised (for diffs).
#[derive(Debug, Clone, Serialize)]
pub struct MetricSummary {
    pub key: String,
    pub context: String,
    pub last: f64,
    pub last_step: i64,
    pub min: f64,
    pub max: f64,
    pub count: i64,
}

#[derive(Debug)]
pub struct Registry {
    pool: SqlitePool,
    rt: tokio::runtime::Runtime,
    path: PathBuf,
}

fn q(context: &str) -> impl FnOnce(sqlx::Error) -> RegistryError + '_ {
    move |source| RegistryError::Query { context: context.to_string(), source }
}

impl Registry {
    /// Opens (creating if needed) the registry at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| RegistryError::Io { path: p.clone(), source })?;
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RegistryError::Io { path: p.clone(), source })?;
        let opts = SqliteConnectOptions::from_str(&format!("sqlite://{p}"))
            .map_err(|source| RegistryError::Open { path: p.clone(), source })?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        // Serialise first opens across threads and processes: creating the file and switching
        // a fresh database to WAL (done on connect) can fail with SQLITE_BUSY without waiting
        // on the busy timeout, and the migrator does not lock.
        let lock_path = path.with_extension("lock");
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|source| RegistryError::Io { path: p.clone(), source })?;
        fs4::fs_std::FileExt::lock_exclusive(&lock).map_err(|source| RegistryError::Io { path: p.clone(), source })?;
        let opened = rt
            .block_on(SqlitePoolOptions::new().max_connections(2).connect_with(opts))
            .map_err(|source| RegistryError::Open { path: p.clone(), source })
            .and_then(|pool| {
                rt.block_on(sqlx::migrate!("./migrations").run(&pool))
                    .map(|()| pool)
                    .map_err(|source| RegistryError::Migrate { path: p.clone(), source })
            });
        let _ = fs4::fs_std::FileExt::unlock(&lock);
        let pool = opened?;
        Ok(Self { pool, rt, path: path.to_path_buf() })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn experiment_id(&self, name: &str) -> Result<i64> {
        self.rt.block_on(async {
            sqlx::query("INSERT INTO experiments (name, created_ms) VALUES (?, ?) ON CONFLICT(name) DO NOTHING")
                .bind(name)
                .bind(now_ms())
                .execute(&self.pool)
                .await
                .map_err(q("create experiment"))?;
            let row = sqlx::query("SELECT id FROM experiments WHERE name = ?")
                .bind(name)
                .fetch_one(&self.pool)
                .await
                .map_err(q("find experiment"))?;
            Ok(row.get::<i64, _>(0))
        })
    }

    /// Creates a run in state `running` and returns its id.
    pub fn create_run(&self, run: &NewRun) -> Result<String> {
        let exp = self.experiment_id(&run.experiment)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.rt.block_on(
            sqlx::query(
                "INSERT INTO runs (id, experiment_id, name, status, start_ms, git_commit, config_json, data_hash, components_json, pid, host)
                 VALUES (?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?)",
            )
            .bind(&id)
            .bind(exp)
            .bind(&run.name)
            .bind(now_ms())
            .bind(&run.git_commit)
            .bind(&run.config_json)
            .bind(&run.data_hash)
            .bind(&run.components_json)
            .bind(std::process::id() as i64)
            .bind(hostname())
            .execute(&self.pool),
        )
        .map_err(q("create run"))?;
        Ok(id)
    }

    /// Marks `running` runs owned by a process of this host that no longer exists as `killed`
    /// (their committed metric batches and checkpoints stay; `astroclip run --resume` continues
    /// them). Returns the ids it marked. Runs of other hosts are left alone.
    pub fn reap_dead_runs(&self) -> Result<Vec<String>> {
        let rows = self
            .rt
            .block_on(
                sqlx::query("SELECT id, pid FROM runs WHERE status = 'running' AND host = ? AND pid IS NOT NULL")
                    .bind(hostname())
                    .fetch_all(&self.pool),
            )
            .map_err(q("find running runs"))?;
        let mut reaped = Vec::new();
        for r in rows {
            let (id, pid): (String, i64) = (r.get(0), r.get(1));
            if pid as u32 == std::process::id() || Path::new(&format!("/proc/{pid}")).exists() {
                continue;
            }
            let msg = format!(
                "its process ({pid} on {}) ended without closing the run (killed?); committed metrics and checkpoints \
                 are kept; continue with `astroclip run --resume {id}`",
                hostname()
            );
            self.rt
                .block_on(
                    sqlx::query("UPDATE runs SET status = 'killed', end_ms = ?, message = ? WHERE id = ? AND status = 'running'")
                        .bind(now_ms())
                        .bind(msg)
                        .bind(&id)
                        .execute(&self.pool),
                )
                .map_err(q("mark dead run"))?;
            reaped.push(id);
        }
        Ok(reaped)
    }

    /// Sets status (`running`, `finished`, `failed`, `killed`) and, unless running, the end time.
    /// A run set back to `running` (a resume) is owned by this process from now on.
    pub fn set_status(&self, run: &str, status: &str, message: Option<&str>) -> Result<()> {
        let end = (status != "running").then(now_ms);
        if status == "running" {
            self.rt
                .block_on(
                    sqlx::query("UPDATE runs SET pid = ?, host = ? WHERE id = ?")
                        .bind(std::process::id() as i64)
                        .bind(hostname())
                        .bind(run)
                        .execute(&self.pool),
                )
                .map_err(q("take over run"))?;
        }
        self.rt
            .block_on(
                sqlx::query("UPDATE runs SET status = ?, end_ms = ?, message = ? WHERE id = ?")
                    .bind(status)
                    .bind(end)
                    .bind(message)
                    .bind(run)
                    .execute(&self.pool),
            )
            .map_err(q("set run status"))?;
        Ok(())
    }

    /// Records params; re-logging the same value is a no-op, a different value an error.
    pub fn log_params(&self, run: &str, params: &[(String, String)]) -> Result<()> {
        self.rt.block_on(async {
            let mut tx = self.pool.begin().await.map_err(q("begin params"))?;
            for (key, value) in params {
                let old: Option<String> = sqlx::query_scalar("SELECT value FROM params WHERE run_id = ? AND key = ?")
                    .bind(run)
                    .bind(key)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(q("read param"))?;
                match old {
                    Some(old) if &old == value => {}
                    Some(old) => {
                        return Err(RegistryError::ParamConflict {
                            run: run.into(),
                            key: key.clone(),
                            old,
                            new: value.clone(),
                        });
                    }
                    None => {
                        sqlx::query("INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)")
                            .bind(run)
                            .bind(key)
                            .bind(value)
                            .execute(&mut *tx)
                            .await
                            .map_err(q("insert param"))?;
                    }
                }
            }
            tx.commit().await.map_err(q("commit params"))
        })
    }

    /// Appends a batch of metrics in one transaction.
    pub fn log_metrics(&self, run: &str, metrics: &[Metric]) -> Result<()> {
        if let Some(m) = metrics.iter().find(|m| !m.value.is_finite()) {
            return Err(RegistryError::NonFinite { key: m.key.clone(), step: m.step, value: m.value });
        }
        self.rt.block_on(async {
            let mut tx = self.pool.begin().await.map_err(q("begin metrics"))?;
            // Multi-row inserts, 100 rows (600 binds) per statement, well under SQLite's limit.
            for chunk in metrics.chunks(100) {
                let mut sql = String::from("INSERT INTO metrics (run_id, key, step, time_ms, value, context) VALUES ");
                sql.push_str(&vec!["(?, ?, ?, ?, ?, ?)"; chunk.len()].join(", "));
                // Only placeholders are interpolated: the values travel as binds.
                let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
                for m in chunk {
                    query = query.bind(run).bind(&m.key).bind(m.step).bind(m.time_ms).bind(m.value).bind(&m.context);
                }
                query.execute(&mut *tx).await.map_err(q("insert metrics"))?;
            }
            tx.commit().await.map_err(q("commit metrics"))
        })
    }

    pub fn log_artifact(&self, run: &str, path: &str, kind: &str, sha256: &str, size_bytes: u64) -> Result<()> {
        self.rt
            .block_on(
                sqlx::query(
                    "INSERT INTO artifacts (run_id, path, kind, sha256, size_bytes, created_ms) VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT(run_id, path) DO UPDATE SET sha256 = excluded.sha256, size_bytes = excluded.size_bytes,
                     created_ms = excluded.created_ms",
                )
                .bind(run)
                .bind(path)
                .bind(kind)
                .bind(sha256)
                .bind(size_bytes as i64)
                .bind(now_ms())
                .execute(&self.pool),
            )
            .map_err(q("record artifact"))?;
        Ok(())
    }

    /// Resolves a full id or a unique prefix of one.
    pub fn resolve(&self, id_or_prefix: &str) -> Result<String> {
        let pattern = format!("{}%", id_or_prefix.replace(['%', '_'], ""));
        let ids: Vec<String> = self
            .rt
            .block_on(
                sqlx::query_scalar("SELECT id FROM runs WHERE id LIKE ? LIMIT 2").bind(pattern).fetch_all(&self.pool),
            )
            .map_err(q("resolve run"))?;
        match ids.len() {
            0 => Err(RegistryError::RunNotFound(id_or_prefix.into())),
            1 => Ok(ids[0].clone()),
            _ => Err(RegistryError::Ambiguous(id_or_prefix.into())),
        }
    }

    const SUMMARY_SQL: &'static str =
        "SELECT r.id, e.name, r.name, r.status, r.start_ms, r.end_ms, r.data_hash, r.git_commit
         FROM runs r JOIN experiments e ON e.id = r.experiment_id";

    fn summary(row: &sqlx::sqlite::SqliteRow) -> RunSummary {
        RunSummary {
            id: row.get(0),
            experiment: row.get(1),
            name: row.get(2),
            status: row.get(3),
            start_ms: row.get(4),
            end_ms: row.get(5),
            data_hash: row.get(6),
            git_commit: row.get(7),
        }
    }

    /// A `(key, step, time_ms, value, context)` row.
    fn metric(row: &sqlx::sqlite::SqliteRow) -> Metric {
        Metric { key: row.get(0), step: row.get(1), time_ms: row.get(2), value: row.get(3), context: row.get(4) }
    }

    /// Runs not soft-deleted, newest first, optionally of one experiment.
    pub fn list_runs(&self, experiment: Option<&str>) -> Result<Vec<RunSummary>> {
        let sql = format!(
            "{} WHERE r.deleted_ms IS NULL AND (? IS NULL OR e.name = ?) ORDER BY r.start_ms DESC, r.id",
            Self::SUMMARY_SQL
        );
        let rows = self
            .rt
            .block_on(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(experiment).bind(experiment).fetch_all(&self.pool))
            .map_err(q("list runs"))?;
        Ok(rows.iter().map(Self::summary).collect())
    }

    /// Sets (or replaces) tags: unlike params, tags are mutable labels.
    pub fn set_tags(&self, run: &str, tags: &[(String, String)]) -> Result<()> {
        self.rt.block_on(async {
            let mut tx = self.pool.begin().await.map_err(q("begin tags"))?;
            for (k, v) in tags {
                sqlx::query("INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value")
                    .bind(run)
                    .bind(k)
                    .bind(v)
                    .execute(&mut *tx)
                    .await
                    .map_err(q("set tag"))?;
            }
            tx.commit().await.map_err(q("commit tags"))
        })
    }

    /// Soft delete (`restore == false`) or restore a run; nothing is ever removed.
    pub fn set_deleted(&self, run: &str, deleted: bool) -> Result<()> {
        let when = deleted.then(now_ms);
        self.rt
            .block_on(
                sqlx::query("UPDATE runs SET deleted_ms = ? WHERE id = ?").bind(when).bind(run).execute(&self.pool),
            )
            .map_err(q("soft delete"))?;
        Ok(())
    }

    /// Runs matching a `--where` filter, ordered by `--order` (default newest first), with the
    /// values of every field the query names. `deleted` lists soft-deleted runs instead.
    pub fn query(
        &self,
        filter: Option<&str>,
        order: Option<&str>,
        experiment: Option<&str>,
        deleted: bool,
    ) -> Result<Vec<QueryRow>> {
        let c = query::compile(filter, order).map_err(RegistryError::BadQuery)?;
        let mut sql =
            String::from("SELECT r.id, e.name, r.name, r.status, r.start_ms, r.end_ms, r.data_hash, r.git_commit");
        let mut binds: Vec<query::Bind> = Vec::new();
        for f in &c.fields {
            sql.push_str(&format!(", CAST({} AS TEXT)", f.sql));
            binds.extend(f.binds.iter().cloned());
        }
        sql.push_str(" FROM runs r JOIN experiments e ON e.id = r.experiment_id WHERE ");
        sql.push_str(if deleted { "r.deleted_ms IS NOT NULL" } else { "r.deleted_ms IS NULL" });
        if let Some(e) = experiment {
            sql.push_str(" AND e.name = ?");
            binds.push(query::Bind::Text(e.to_string()));
        }
        for (cond, b) in &c.conditions {
            sql.push_str(&format!(" AND ({cond})"));
            binds.extend(b.iter().cloned());
        }
        match &c.order {
            Some((f, desc)) => {
                let expr = if f.numeric || f.label.starts_with("params.") {
                    format!("CAST({} AS REAL)", f.sql)
                } else {
                    f.sql.clone()
                };
                sql.push_str(&format!(
                    " ORDER BY ({expr}) IS NULL, {expr} {}, r.start_ms DESC",
                    if *desc { "DESC" } else { "ASC" }
                ));
                for _ in 0..2 {
                    binds.extend(f.binds.iter().cloned());
                }
            }
            None => sql.push_str(" ORDER BY r.start_ms DESC, r.id"),
        }
        // Field names only select fixed SQL fragments; every value is a bind.
        let mut qy = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in binds {
            qy = match b {
                query::Bind::Real(x) => qy.bind(x),
                query::Bind::Text(t) => qy.bind(t),
            };
        }
        let rows = self.rt.block_on(qy.fetch_all(&self.pool)).map_err(q("query runs"))?;
        Ok(rows
            .iter()
            .map(|row| QueryRow {
                summary: Self::summary(row),
                fields: c
                    .fields
                    .iter()
                    .enumerate()
                    .map(|(i, f)| (f.label.clone(), row.get::<Option<String>, _>(8 + i)))
                    .collect(),
            })
            .collect())
    }

    /// Every metric series of a run: last (by step), min, max, count.
    pub fn metric_summary(&self, run: &str) -> Result<Vec<MetricSummary>> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT s.key, s.context, m.value, m.step, s.mn, s.mx, s.n FROM
                       (SELECT key, context, MIN(value) AS mn, MAX(value) AS mx, COUNT(*) AS n,
                               (SELECT rowid FROM metrics x WHERE x.run_id = ? AND x.key = y.key AND x.context = y.context
                                ORDER BY step DESC, rowid DESC LIMIT 1) AS last
                        FROM metrics y WHERE run_id = ? GROUP BY key, context) s
                     JOIN metrics m ON m.rowid = s.last ORDER BY s.key, s.context",
                )
                .bind(run)
                .bind(run)
                .fetch_all(&self.pool),
            )
            .map_err(q("metric summary"))?;
        Ok(rows
            .iter()
            .map(|r| MetricSummary {
                key: r.get(0),
                context: r.get(1),
                last: r.get(2),
                last_step: r.get(3),
                min: r.get(4),
                max: r.get(5),
                count: r.get(6),
            })
            .collect())
    }

    /// Full history of one metric key (all contexts), ordered by step.
    pub fn metric_history(&self, run: &str, key: &str) -> Result<Vec<Metric>> {
        let rows = self
            .rt
            .block_on(
                sqlx::query(
                    "SELECT key, step, time_ms, value, context FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, time_ms",
                )
                .bind(run)
                .bind(key)
                .fetch_all(&self.pool),
            )
            .map_err(q("metric history"))?;
        Ok(rows.iter().map(Self::metric).collect())
    }

    pub fn run(&self, id_or_prefix: &str) -> Result<RunDetail> {
        let id = self.resolve(id_or_prefix)?;
        self.rt.block_on(async {
            let sql = format!("{} WHERE r.id = ?", Self::SUMMARY_SQL);
            let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(&id).fetch_one(&self.pool).await.map_err(q("read run"))?;
            let summary = Self::summary(&row);
            let extra = sqlx::query("SELECT message, config_json, components_json FROM runs WHERE id = ?")
                .bind(&id)
                .fetch_one(&self.pool)
                .await
                .map_err(q("read run"))?;
            let params = sqlx::query("SELECT key, value FROM params WHERE run_id = ? ORDER BY key")
                .bind(&id)
                .fetch_all(&self.pool)
                .await
                .map_err(q("read params"))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            // Last sample of each (key, context) series.
            let latest_metrics = sqlx::query(
                "SELECT m.key, m.step, m.time_ms, m.value, m.context FROM metrics m
                 JOIN (SELECT key, context, MAX(rowid) AS last FROM metrics WHERE run_id = ? GROUP BY key, context) l
                 ON m.rowid = l.last ORDER BY m.key, m.context",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read metrics"))?
            .iter()
            .map(Self::metric)
            .collect();
            let artifacts = sqlx::query(
                "SELECT path, kind, sha256, size_bytes, created_ms FROM artifacts WHERE run_id = ? ORDER BY created_ms, path",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read artifacts"))?
            .iter()
            .map(|r| Artifact { path: r.get(0), kind: r.get(1), sha256: r.get(2), size_bytes: r.get(3), created_ms: r.get(4) })
            .collect();
            let tags = sqlx::query("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key")
                .bind(&id)
                .fetch_all(&self.pool)
                .await
                .map_err(q("read tags"))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let deleted_ms: Option<i64> = sqlx::query_scalar("SELECT deleted_ms FROM runs WHERE id = ?")
                .bind(&id)
                .fetch_one(&self.pool)
                .await
                .map_err(q("read run"))?;
            let parse = |s: String| serde_json::from_str(&s).unwrap_or(serde_json::Value::String(s));
            Ok(RunDetail {
                tags,
                deleted_ms,
                summary,
                message: extra.get(0),
                config: parse(extra.get(1)),
                components: parse(extra.get(2)),
                params,
                latest_metrics,
                artifacts,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn new_run(reg: &Registry) -> String {
        reg.create_run(&NewRun {
            experiment: "exp".into(),
            name: "r".into(),
            config_json: "{}".into(),
            git_commit: None,
            data_hash: Some("abc".into()),
            components_json: "[]".into(),
        })
        .unwrap()
    }

    #[test]
    fn params_are_immutable_and_metrics_append_only() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("r.db")).unwrap();
        let run = new_run(&reg);
        reg.log_params(&run, &[("lr".into(), "0.001".into())]).unwrap();
        reg.log_params(&run, &[("lr".into(), "0.001".into())]).unwrap();
        let err = reg.log_params(&run, &[("lr".into(), "0.1".into())]).unwrap_err();
        assert!(err.to_string().contains("immutable"), "{err}");
        let batch: Vec<Metric> = (0..250).map(|s| Metric::new("loss", s, 1.0 / (s + 1) as f64)).collect();
        reg.log_metrics(&run, &batch).unwrap();
        assert_eq!(reg.metric_history(&run, "loss").unwrap().len(), 250);
        let err = reg.log_metrics(&run, &[Metric::new("loss", 251, f64::NAN)]).unwrap_err();
        assert!(err.to_string().contains("not finite"), "{err}");
        // The database itself refuses rewriting history.
        let res = reg.rt.block_on(sqlx::query("DELETE FROM metrics").execute(&reg.pool));
        assert!(res.unwrap_err().to_string().contains("append-only"));
        let detail = reg.run(&run[..8]).unwrap();
        assert_eq!(detail.latest_metrics.len(), 1);
        assert_eq!(detail.latest_metrics[0].step, 249);
    }

    #[test]
    fn query_filters_orders_and_soft_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("r.db")).unwrap();
        let runs: Vec<String> = (0..3).map(|_| new_run(&reg)).collect();
        for (i, r) in runs.iter().enumerate() {
            reg.log_params(r, &[("loss.logit_scale".into(), ["10", "15.5", "20"][i].into())]).unwrap();
            let m: Vec<Metric> =
                (0..5).map(|s| Metric::new("train.loss", s, 3.0 - i as f64 - 0.1 * s as f64)).collect();
            reg.log_metrics(r, &m).unwrap();
            reg.log_metrics(r, &[Metric::new("eval.r2", 5, 0.1 * i as f64).with_context("source=image")]).unwrap();
        }
        let ids = |rows: Vec<QueryRow>| rows.into_iter().map(|r| r.summary.id).collect::<Vec<_>>();
        assert_eq!(
            ids(reg.query(Some("params.loss.logit_scale = 15.5"), None, None, false).unwrap()),
            [runs[1].clone()]
        );
        // last train.loss: 2.6, 1.6, 0.6; min likewise; ascending order by it.
        let rows = reg.query(Some("metrics.train.loss < 2"), Some("metrics.train.loss"), None, false).unwrap();
        assert_eq!(ids(rows.clone()), [runs[2].clone(), runs[1].clone()]);
        assert_eq!(rows[0].fields[0].0, "metrics.train.loss");
        assert!(rows[0].fields[0].1.as_deref().unwrap().starts_with("0.6"));
        let rows = reg
            .query(Some("metrics.eval.r2[source=image] >= 0.1"), Some("-params.loss.logit_scale"), None, false)
            .unwrap();
        assert_eq!(ids(rows), [runs[2].clone(), runs[1].clone()]);
        assert!(reg.query(Some("metrics.eval.r2[source=spectrum] >= 0"), None, None, false).unwrap().is_empty());
        // Context parts match whole: `source=image` is not `source=image→spectrum`.
        reg.log_metrics(&runs[0], &[Metric::new("eval.r2", 6, 99.0).with_context("split=test,source=image→spectrum")])
            .unwrap();
        assert!(reg.query(Some("metrics.eval.r2[source=image] > 50"), None, None, false).unwrap().is_empty());
        assert_eq!(
            reg.query(Some("metrics.eval.r2[split=test,source=image→spectrum] > 50"), None, None, false).unwrap().len(),
            1
        );
        reg.set_tags(&runs[0], &[("team".into(), "vision".into())]).unwrap();
        reg.set_tags(&runs[0], &[("team".into(), "spectra".into())]).unwrap();
        assert_eq!(ids(reg.query(Some("tags.team ~ spec"), None, None, false).unwrap()), [runs[0].clone()]);
        reg.set_deleted(&runs[0], true).unwrap();
        assert_eq!(reg.query(None, None, None, false).unwrap().len(), 2);
        assert_eq!(ids(reg.query(None, None, None, true).unwrap()), [runs[0].clone()]);
        assert!(reg.run(&runs[0]).unwrap().deleted_ms.is_some());
        reg.set_deleted(&runs[0], false).unwrap();
        assert_eq!(reg.query(Some("experiment = exp"), None, Some("exp"), false).unwrap().len(), 3);
        let err = reg.query(Some("params.x >< 1"), None, None, false).unwrap_err().to_string();
        assert!(err.contains("bad query") && err.contains("unknown operator"), "{err}");
        let s = reg.metric_summary(&runs[0]).unwrap();
        let loss = s.iter().find(|m| m.key == "train.loss").unwrap();
        assert_eq!((loss.count, loss.last_step), (5, 4));
        assert!((loss.last - 2.6).abs() < 1e-9 && (loss.max - 3.0).abs() < 1e-9);
    }

    #[test]
    fn reopen_keeps_runs_and_concurrent_opens_migrate_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.db");
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = path.clone();
                std::thread::spawn(move || Registry::open(&p).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let reg = Registry::open(&path).unwrap();
        let run = new_run(&reg);
        reg.set_status(&run, "finished", None).unwrap();
        drop(reg);
        let reg = Registry::open(&path).unwrap();
        let runs = reg.list_runs(None).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "finished");
        assert!(matches!(reg.resolve("zzz"), Err(RegistryError::RunNotFound(_))));
    }
}
