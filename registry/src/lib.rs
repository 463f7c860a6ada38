//! The astroclip experiment registry: experiments, runs with their resolved configuration,
//! data hash and components, immutable params, append-only metrics written in batches, and
//! artifacts with their SHA-256 — in one SQLite file (WAL) or on a shared PostgreSQL server.
//!
//! Modelled on MLflow's tracking store. The schema lives in numbered migrations, one directory
//! per database (`registry/migrations/{sqlite,postgres}/`, the same numbers, tables and rules in
//! each dialect). Every query is written once, with `$N` placeholders (both databases accept
//! them) through sqlx's `Any` driver; the only dialect differences are the name of the
//! insertion-order column (`rowid` / `seq`) and casting text to a number ([`Dialect`]).
//! SQLite migrations are applied under an exclusive file lock because its migrator does not
//! lock (concurrent first opens otherwise race on `CREATE TABLE`); PostgreSQL's takes an
//! advisory lock itself.
//!
//! The API is synchronous: each `Registry` owns a small current-thread tokio runtime, so
//! training code never needs async.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub mod query;

use serde::Serialize;
use sqlx::any::{AnyArguments, AnyPoolOptions, AnyRow};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Any, AnyPool, Executor, Row};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry {path}: {source}")]
    Open { path: String, source: sqlx::Error },
    #[error(
        "registry {url}: cannot connect ({message}); check the URL (postgres://user[:password]@host[:port]/database) \
         and that the database exists (create it with `createdb`)"
    )]
    Connect { url: String, message: String },
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

/// Where a run went in MLflow and how much of it was sent (`runs export mlflow`).
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct MlflowExport {
    pub experiment_id: String,
    pub run_id: String,
    /// Metric rows sent, counted in insertion order.
    pub metric_rows_sent: i64,
    /// Artifact path (relative to the MLflow run's artifact root) → sha256 of the sent version.
    pub artifacts_sent: std::collections::BTreeMap<String, String>,
    pub updated_ms: i64,
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

/// The SQL dialect differences the registry's queries need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The column that orders a table's rows by insertion.
    pub fn seq(self) -> &'static str {
        match self {
            Dialect::Sqlite => "rowid",
            Dialect::Postgres => "seq",
        }
    }

    /// `expr` as a number, for numeric comparisons and ordering (params are stored as text).
    /// `expr` appears once, as it may hold placeholders. SQLite casts leniently (text that is
    /// not a number becomes 0); PostgreSQL's `astroclip_number` (migration 0004) gives NULL.
    pub fn number(self, expr: &str) -> String {
        match self {
            Dialect::Sqlite => format!("CAST({expr} AS REAL)"),
            Dialect::Postgres => format!("astroclip_number(CAST({expr} AS TEXT))"),
        }
    }

    /// Whether `haystack` contains the bound text literally: case-sensitive, with no wildcard
    /// characters (`%` and `_` match themselves), the same on both databases (LIKE differs:
    /// SQLite's ignores ASCII case, PostgreSQL's does not).
    pub fn contains(self, haystack: &str) -> String {
        match self {
            Dialect::Sqlite => format!("instr({haystack}, ?) > 0"),
            Dialect::Postgres => format!("strpos({haystack}, ?) > 0"),
        }
    }
}

/// Rewrites `?` placeholders as `$1, $2, …` (accepted by both SQLite and PostgreSQL). Queries
/// never contain a literal `?`: values always travel as binds.
fn numbered(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut n = 0;
    for c in sql.chars() {
        if c == '?' {
            n += 1;
            out.push('$');
            out.push_str(&n.to_string());
        } else {
            out.push(c);
        }
    }
    out
}

fn qy<'q>(sql: &str) -> sqlx::query::Query<'q, Any, AnyArguments> {
    sqlx::query(sqlx::AssertSqlSafe(numbered(sql)))
}

fn qs<'q, O>(sql: &str) -> sqlx::query::QueryScalar<'q, Any, O, AnyArguments>
where
    (O,): for<'r> sqlx::FromRow<'r, AnyRow>,
{
    sqlx::query_scalar(sqlx::AssertSqlSafe(numbered(sql)))
}

#[derive(Debug)]
pub struct Registry {
    pool: AnyPool,
    /// SQLite only: a native pool for the hot write path (metric batches).
    sqlite: Option<sqlx::SqlitePool>,
    rt: tokio::runtime::Runtime,
    location: String,
    url: String,
    path: Option<PathBuf>,
    dialect: Dialect,
}

fn q(context: &str) -> impl FnOnce(sqlx::Error) -> RegistryError + '_ {
    move |source| RegistryError::Query { context: context.to_string(), source }
}

/// Hides the password of a `postgres://user:password@host/db` URL in messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..s + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

impl Registry {
    /// Opens a registry given as a `postgres://` / `postgresql://` URL or as a SQLite file path
    /// (optionally `sqlite://path`).
    pub fn open_url(location: &str) -> Result<Self> {
        if location.starts_with("postgres://") || location.starts_with("postgresql://") {
            Self::open_postgres(location)
        } else {
            Self::open(Path::new(location.strip_prefix("sqlite://").unwrap_or(location)))
        }
    }

    fn runtime(location: &str) -> Result<tokio::runtime::Runtime> {
        sqlx::any::install_default_drivers();
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| RegistryError::Io { path: location.to_string(), source })
    }

    /// Opens (creating if needed) the PostgreSQL registry at `url` (the database must exist)
    /// and applies pending migrations.
    pub fn open_postgres(url: &str) -> Result<Self> {
        let shown = redact(url);
        let rt = Self::runtime(&shown)?;
        let pool = rt
            .block_on(
                AnyPoolOptions::new()
                    .max_connections(2)
                    .acquire_timeout(Duration::from_secs(20))
                    // NOTICEs (e.g. the migrator's "already exists, skipping") are not news.
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("SET client_min_messages = warning").await?;
                            Ok(())
                        })
                    })
                    .connect(url),
            )
            .map_err(|e| {
                let message = match &e {
                    sqlx::Error::Database(d) => d.message().to_string(),
                    other => other.to_string(),
                };
                RegistryError::Connect { url: shown.clone(), message }
            })?;
        rt.block_on(sqlx::migrate!("./migrations/postgres").run(&pool))
            .map_err(|source| RegistryError::Migrate { path: shown.clone(), source })?;
        Ok(Self {
            pool,
            sqlite: None,
            rt,
            location: shown,
            url: url.to_string(),
            path: None,
            dialect: Dialect::Postgres,
        })
    }

    /// Opens (creating if needed) the SQLite registry at `path` and applies pending migrations.
    pub fn open(path: &Path) -> Result<Self> {
        let p = path.display().to_string();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| RegistryError::Io { path: p.clone(), source })?;
        }
        let rt = Self::runtime(&p)?;
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
        // The Any driver takes a URL; the pragmas that URL cannot carry are set on every new
        // connection (busy timeout first, so the WAL switch waits for other writers).
        let url = format!("sqlite://{p}?mode=rwc");
        let opened = rt
            .block_on(
                AnyPoolOptions::new()
                    .max_connections(2)
                    .after_connect(|conn, _meta| {
                        Box::pin(async move {
                            conn.execute("PRAGMA busy_timeout = 30000").await?;
                            conn.execute("PRAGMA journal_mode = WAL").await?;
                            conn.execute("PRAGMA synchronous = NORMAL").await?;
                            conn.execute("PRAGMA foreign_keys = ON").await?;
                            Ok(())
                        })
                    })
                    .connect(&url),
            )
            .map_err(|source| RegistryError::Open { path: p.clone(), source })
            .and_then(|pool| {
                rt.block_on(sqlx::migrate!("./migrations/sqlite").run(&pool))
                    .map(|()| pool)
                    .map_err(|source| RegistryError::Migrate { path: p.clone(), source })
            });
        let _ = fs4::fs_std::FileExt::unlock(&lock);
        let pool = opened?;
        let native = SqliteConnectOptions::from_str(&format!("sqlite://{p}"))
            .map_err(|source| RegistryError::Open { path: p.clone(), source })?
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(30))
            .foreign_keys(true);
        let sqlite = rt
            .block_on(SqlitePoolOptions::new().max_connections(1).connect_with(native))
            .map_err(|source| RegistryError::Open { path: p.clone(), source })?;
        Ok(Self {
            pool,
            sqlite: Some(sqlite),
            rt,
            url: p.clone(),
            location: p,
            path: Some(path.to_path_buf()),
            dialect: Dialect::Sqlite,
        })
    }

    /// The SQLite file, `None` for a PostgreSQL registry.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Where the registry lives, for messages (a PostgreSQL URL without its password).
    pub fn location(&self) -> &str {
        &self.location
    }

    /// What [`Registry::open_url`] opens this registry again with (a PostgreSQL URL keeps its
    /// password: not for messages).
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn experiment_id(&self, name: &str) -> Result<i64> {
        self.rt.block_on(async {
            qy("INSERT INTO experiments (name, created_ms) VALUES (?, ?) ON CONFLICT(name) DO NOTHING")
                .bind(name)
                .bind(now_ms())
                .execute(&self.pool)
                .await
                .map_err(q("create experiment"))?;
            let row = qy("SELECT id FROM experiments WHERE name = ?")
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
            qy(
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
                qy("SELECT id, pid FROM runs WHERE status = 'running' AND host = ? AND pid IS NOT NULL")
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
                    qy("UPDATE runs SET status = 'killed', end_ms = ?, message = ? WHERE id = ? AND status = 'running'")
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
                    qy("UPDATE runs SET pid = ?, host = ? WHERE id = ?")
                        .bind(std::process::id() as i64)
                        .bind(hostname())
                        .bind(run)
                        .execute(&self.pool),
                )
                .map_err(q("take over run"))?;
        }
        self.rt
            .block_on(
                qy("UPDATE runs SET status = ?, end_ms = ?, message = ? WHERE id = ?")
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
                let old: Option<String> = qs("SELECT value FROM params WHERE run_id = ? AND key = ?")
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
                        qy("INSERT INTO params (run_id, key, value) VALUES (?, ?, ?)")
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
        // Multi-row inserts, 100 rows (600 binds) per statement, well under SQLite's limit. Only
        // placeholders are interpolated: the values travel as binds.
        let sql_for = |n: usize| {
            let mut sql = String::from("INSERT INTO metrics (run_id, key, step, time_ms, value, context) VALUES ");
            sql.push_str(&vec!["(?, ?, ?, ?, ?, ?)"; n].join(", "));
            sql
        };
        self.rt.block_on(async {
            // SQLite: the native driver (the Any driver's argument conversion makes batched
            // writes ~3× slower; measured in scripts/bench-registry.sh).
            if let Some(pool) = &self.sqlite {
                let mut tx = pool.begin().await.map_err(q("begin metrics"))?;
                for chunk in metrics.chunks(100) {
                    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql_for(chunk.len())));
                    for m in chunk {
                        query =
                            query.bind(run).bind(&m.key).bind(m.step).bind(m.time_ms).bind(m.value).bind(&m.context);
                    }
                    query.execute(&mut *tx).await.map_err(q("insert metrics"))?;
                }
                return tx.commit().await.map_err(q("commit metrics"));
            }
            let mut tx = self.pool.begin().await.map_err(q("begin metrics"))?;
            for chunk in metrics.chunks(100) {
                let mut query = qy(&sql_for(chunk.len()));
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
                qy(
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
            .block_on(qs("SELECT id FROM runs WHERE id LIKE ? LIMIT 2").bind(pattern).fetch_all(&self.pool))
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

    fn summary(row: &AnyRow) -> RunSummary {
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
    fn metric(row: &AnyRow) -> Metric {
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
            .block_on(qy(&sql).bind(experiment).bind(experiment).fetch_all(&self.pool))
            .map_err(q("list runs"))?;
        Ok(rows.iter().map(Self::summary).collect())
    }

    /// Sets (or replaces) tags: unlike params, tags are mutable labels.
    pub fn set_tags(&self, run: &str, tags: &[(String, String)]) -> Result<()> {
        self.rt.block_on(async {
            let mut tx = self.pool.begin().await.map_err(q("begin tags"))?;
            for (k, v) in tags {
                qy("INSERT INTO tags (run_id, key, value) VALUES (?, ?, ?) ON CONFLICT(run_id, key) DO UPDATE SET value = excluded.value")
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
            .block_on(qy("UPDATE runs SET deleted_ms = ? WHERE id = ?").bind(when).bind(run).execute(&self.pool))
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
        let c = query::compile(filter, order, self.dialect).map_err(RegistryError::BadQuery)?;
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
                    self.dialect.number(&f.sql)
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
        let mut qq = qy(&sql);
        for b in binds {
            qq = match b {
                query::Bind::Real(x) => qq.bind(x),
                query::Bind::Text(t) => qq.bind(t),
            };
        }
        let rows = self.rt.block_on(qq.fetch_all(&self.pool)).map_err(q("query runs"))?;
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
                qy(&format!(
                    "SELECT s.key, s.context, m.value, m.step, s.mn, s.mx, s.n FROM
                       (SELECT key, context, MIN(value) AS mn, MAX(value) AS mx, COUNT(*) AS n,
                               (SELECT {seq} FROM metrics x WHERE x.run_id = ? AND x.key = y.key AND x.context = y.context
                                ORDER BY step DESC, {seq} DESC LIMIT 1) AS last
                        FROM metrics y WHERE run_id = ? GROUP BY key, context) s
                     JOIN metrics m ON m.{seq} = s.last ORDER BY s.key, s.context",
                    seq = self.dialect.seq()
                ))
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
                qy(
                    "SELECT key, step, time_ms, value, context FROM metrics WHERE run_id = ? AND key = ? ORDER BY step, time_ms",
                )
                .bind(run)
                .bind(key)
                .fetch_all(&self.pool),
            )
            .map_err(q("metric history"))?;
        Ok(rows.iter().map(Self::metric).collect())
    }

    /// Metric rows of a run in insertion order, skipping the first `offset` (for exports that
    /// send only what is new: metrics are append-only, so this order never changes).
    pub fn metrics_in_order(&self, run: &str, offset: i64, limit: i64) -> Result<Vec<Metric>> {
        let sql = format!(
            "SELECT key, step, time_ms, value, context FROM metrics WHERE run_id = ? ORDER BY {} LIMIT ? OFFSET ?",
            self.dialect.seq()
        );
        let rows = self
            .rt
            .block_on(qy(&sql).bind(run).bind(limit).bind(offset).fetch_all(&self.pool))
            .map_err(q("metrics in order"))?;
        Ok(rows.iter().map(Self::metric).collect())
    }

    /// What an earlier `runs export mlflow` to `tracking_uri` sent for `run`, if it ran.
    pub fn mlflow_export(&self, run: &str, tracking_uri: &str) -> Result<Option<MlflowExport>> {
        let row = self
            .rt
            .block_on(
                qy("SELECT mlflow_experiment_id, mlflow_run_id, metric_rows_sent, artifacts_sent, updated_ms
                    FROM mlflow_exports WHERE run_id = ? AND tracking_uri = ?")
                .bind(run)
                .bind(tracking_uri)
                .fetch_optional(&self.pool),
            )
            .map_err(q("read mlflow export"))?;
        Ok(row.map(|r| MlflowExport {
            experiment_id: r.get(0),
            run_id: r.get(1),
            metric_rows_sent: r.get(2),
            artifacts_sent: serde_json::from_str(&r.get::<String, _>(3)).unwrap_or_default(),
            updated_ms: r.get(4),
        }))
    }

    /// Records (replacing) what has been sent to MLflow for `run`.
    pub fn set_mlflow_export(&self, run: &str, tracking_uri: &str, e: &MlflowExport) -> Result<()> {
        let arts = serde_json::to_string(&e.artifacts_sent).unwrap_or_else(|_| "{}".into());
        self.rt
            .block_on(
                qy("INSERT INTO mlflow_exports (run_id, tracking_uri, mlflow_experiment_id, mlflow_run_id, metric_rows_sent, artifacts_sent, updated_ms)
                    VALUES (?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT(run_id, tracking_uri) DO UPDATE SET mlflow_experiment_id = excluded.mlflow_experiment_id,
                      mlflow_run_id = excluded.mlflow_run_id, metric_rows_sent = excluded.metric_rows_sent,
                      artifacts_sent = excluded.artifacts_sent, updated_ms = excluded.updated_ms")
                .bind(run)
                .bind(tracking_uri)
                .bind(&e.experiment_id)
                .bind(&e.run_id)
                .bind(e.metric_rows_sent)
                .bind(arts)
                .bind(now_ms())
                .execute(&self.pool),
            )
            .map_err(q("record mlflow export"))?;
        Ok(())
    }

    pub fn run(&self, id_or_prefix: &str) -> Result<RunDetail> {
        let id = self.resolve(id_or_prefix)?;
        self.rt.block_on(async {
            let sql = format!("{} WHERE r.id = ?", Self::SUMMARY_SQL);
            let row = qy(&sql).bind(&id).fetch_one(&self.pool).await.map_err(q("read run"))?;
            let summary = Self::summary(&row);
            let extra = qy("SELECT message, config_json, components_json FROM runs WHERE id = ?")
                .bind(&id)
                .fetch_one(&self.pool)
                .await
                .map_err(q("read run"))?;
            let params = qy("SELECT key, value FROM params WHERE run_id = ? ORDER BY key")
                .bind(&id)
                .fetch_all(&self.pool)
                .await
                .map_err(q("read params"))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            // Last sample of each (key, context) series.
            let latest_metrics = qy(&format!(
                "SELECT m.key, m.step, m.time_ms, m.value, m.context FROM metrics m
                 JOIN (SELECT key, context, MAX({seq}) AS last FROM metrics WHERE run_id = ? GROUP BY key, context) l
                 ON m.{seq} = l.last ORDER BY m.key, m.context",
                seq = self.dialect.seq()
            ))
            .bind(&id)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read metrics"))?
            .iter()
            .map(Self::metric)
            .collect();
            let artifacts = qy(
                "SELECT path, kind, sha256, size_bytes, created_ms FROM artifacts WHERE run_id = ? ORDER BY created_ms, path",
            )
            .bind(&id)
            .fetch_all(&self.pool)
            .await
            .map_err(q("read artifacts"))?
            .iter()
            .map(|r| Artifact { path: r.get(0), kind: r.get(1), sha256: r.get(2), size_bytes: r.get(3), created_ms: r.get(4) })
            .collect();
            let tags = qy("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key")
                .bind(&id)
                .fetch_all(&self.pool)
                .await
                .map_err(q("read tags"))?
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect();
            let deleted_ms: Option<i64> = qs("SELECT deleted_ms FROM runs WHERE id = ?")
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

/// Creates database `name` on the PostgreSQL server of `admin_url` (a URL to an existing
/// database there, e.g. `…/postgres`) and returns the URL of the new one. For tests and setup
/// scripts: a registry needs an existing, empty or astroclip-migrated database.
pub fn create_postgres_database(admin_url: &str, name: &str) -> Result<String> {
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(RegistryError::BadQuery(format!("database name {name:?}: use letters, digits and _")));
    }
    let shown = redact(admin_url);
    let rt = Registry::runtime(&shown)?;
    rt.block_on(async {
        use sqlx::Connection;
        let mut conn = sqlx::AnyConnection::connect(admin_url)
            .await
            .map_err(|source| RegistryError::Open { path: shown.clone(), source })?;
        // The name is checked above (identifiers cannot be binds).
        conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).await.map_err(q("create database"))?;
        conn.close().await.map_err(q("close"))
    })?;
    let (base, query) = match admin_url.split_once('?') {
        Some((b, qs)) => (b, format!("?{qs}")),
        None => (admin_url, String::new()),
    };
    let cut = base.rfind('/').filter(|&i| i > base.find("://").map_or(0, |s| s + 2)).unwrap_or(base.len());
    Ok(format!("{}/{name}{query}", &base[..cut]))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fresh registries to run each test against: a SQLite file, and a new database on the
    /// PostgreSQL server named by `ASTROCLIP_TEST_POSTGRES` (an admin URL; `scripts/test.sh`
    /// starts a Debian PostgreSQL on loopback and sets it). With `ASTROCLIP_REQUIRE_POSTGRES=1`
    /// a missing server fails the test instead of testing SQLite only.
    pub(crate) fn fresh_locations(dir: &tempfile::TempDir) -> Vec<String> {
        let mut out = vec![dir.path().join("r.db").display().to_string()];
        match std::env::var("ASTROCLIP_TEST_POSTGRES") {
            Ok(admin) if !admin.is_empty() => {
                let name = format!("t_{}", uuid::Uuid::new_v4().simple());
                out.push(create_postgres_database(&admin, &name).unwrap());
            }
            _ => assert!(
                std::env::var("ASTROCLIP_REQUIRE_POSTGRES").is_err(),
                "ASTROCLIP_REQUIRE_POSTGRES is set but ASTROCLIP_TEST_POSTGRES is not"
            ),
        }
        out
    }

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
    fn postgres_urls_lose_their_password_in_messages() {
        assert_eq!(redact("postgres://alice:s3cret@db.example:5432/reg"), "postgres://alice:***@db.example:5432/reg");
        assert_eq!(redact("postgres://alice@db/reg"), "postgres://alice@db/reg");
        assert_eq!(redact("/home/a/registry.db"), "/home/a/registry.db");
        if let Ok(admin) = std::env::var("ASTROCLIP_TEST_POSTGRES") {
            let base = admin.rsplit_once('/').unwrap().0;
            let url = format!("{}/no_such_db_astroclip", base.replacen("://astroclip@", "://astroclip:pw@", 1));
            let err = Registry::open_url(&url).unwrap_err().to_string();
            assert!(err.contains("does not exist") && err.contains("createdb") && !err.contains(":pw@"), "{err}");
        }
    }

    #[test]
    fn sqlite_connections_use_wal_normal_sync_and_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::open(&dir.path().join("r.db")).unwrap();
        let (mode, sync, fk, busy): (String, i64, i64, i64) = reg.rt.block_on(async {
            let mut c = reg.pool.acquire().await.unwrap();
            let m: String = qs("PRAGMA journal_mode").fetch_one(&mut *c).await.unwrap();
            let s: i64 = qs("PRAGMA synchronous").fetch_one(&mut *c).await.unwrap();
            let f: i64 = qs("PRAGMA foreign_keys").fetch_one(&mut *c).await.unwrap();
            let b: i64 = qs("PRAGMA busy_timeout").fetch_one(&mut *c).await.unwrap();
            (m, s, f, b)
        });
        assert_eq!((mode.as_str(), sync, fk, busy), ("wal", 1, 1, 30000));
    }

    #[test]
    fn params_are_immutable_and_metrics_append_only() {
        let dir = tempfile::tempdir().unwrap();
        for loc in fresh_locations(&dir) {
            params_immutable_metrics_append_only(&Registry::open_url(&loc).unwrap());
        }
    }

    fn params_immutable_metrics_append_only(reg: &Registry) {
        let run = new_run(reg);
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
        let res = reg.rt.block_on(qy("DELETE FROM metrics").execute(&reg.pool));
        assert!(res.unwrap_err().to_string().contains("append-only"));
        let detail = reg.run(&run[..8]).unwrap();
        assert_eq!(detail.latest_metrics.len(), 1);
        assert_eq!(detail.latest_metrics[0].step, 249);
    }

    #[test]
    fn query_filters_orders_and_soft_deletes() {
        let dir = tempfile::tempdir().unwrap();
        for loc in fresh_locations(&dir) {
            query_filters_orders_soft_deletes(&Registry::open_url(&loc).unwrap());
        }
    }

    fn query_filters_orders_soft_deletes(reg: &Registry) {
        let runs: Vec<String> = (0..3).map(|_| new_run(reg)).collect();
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
        // `~` matches text literally: `_` and `%` are characters, not wildcards, and case
        // counts, on SQLite as on PostgreSQL.
        reg.set_tags(&runs[1], &[("owner".into(), "j_doe".into())]).unwrap();
        reg.set_tags(&runs[2], &[("owner".into(), "jxdoe 100%".into())]).unwrap();
        assert_eq!(ids(reg.query(Some("tags.owner ~ j_doe"), None, None, false).unwrap()), [runs[1].clone()]);
        assert_eq!(ids(reg.query(Some("tags.owner ~ '0%'"), None, None, false).unwrap()), [runs[2].clone()]);
        assert!(reg.query(Some("tags.owner ~ J_DOE"), None, None, false).unwrap().is_empty());
        assert!(reg.query(Some("tags.team ~ SPEC"), None, None, false).unwrap().is_empty());
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
        for loc in fresh_locations(&dir) {
            reopen_and_concurrent_opens(&loc);
        }
    }

    fn reopen_and_concurrent_opens(path: &str) {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let p = path.to_string();
                std::thread::spawn(move || Registry::open_url(&p).map(|_| ()))
            })
            .collect();
        for h in handles {
            h.join().unwrap().unwrap();
        }
        let reg = Registry::open_url(path).unwrap();
        let run = new_run(&reg);
        reg.set_status(&run, "finished", None).unwrap();
        drop(reg);
        let reg = Registry::open_url(path).unwrap();
        let runs = reg.list_runs(None).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, "finished");
        assert!(matches!(reg.resolve("zzz"), Err(RegistryError::RunNotFound(_))));
    }
}
