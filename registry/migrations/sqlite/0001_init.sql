-- Experiment registry schema v1, after MLflow's tracking store: params immutable, metrics
-- append-only, runs soft-deleted. Never edit a released migration: add a new numbered one.
CREATE TABLE experiments (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_ms  INTEGER NOT NULL
);

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    experiment_id   INTEGER NOT NULL REFERENCES experiments(id),
    name            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'killed')),
    start_ms        INTEGER NOT NULL,
    end_ms          INTEGER,
    git_commit      TEXT,
    config_json     TEXT NOT NULL,
    data_hash       TEXT,
    components_json TEXT NOT NULL DEFAULT '[]',
    message         TEXT,
    deleted_ms      INTEGER
);
CREATE INDEX runs_experiment ON runs(experiment_id, start_ms);

CREATE TABLE params (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TRIGGER params_immutable BEFORE UPDATE ON params
BEGIN SELECT RAISE(ABORT, 'params are immutable'); END;

CREATE TABLE metrics (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    key     TEXT NOT NULL,
    step    INTEGER NOT NULL,
    time_ms INTEGER NOT NULL,
    value   REAL NOT NULL,
    context TEXT NOT NULL DEFAULT ''
);
CREATE INDEX metrics_run_key ON metrics(run_id, key, step);
CREATE TRIGGER metrics_no_update BEFORE UPDATE ON metrics
BEGIN SELECT RAISE(ABORT, 'metrics are append-only'); END;
CREATE TRIGGER metrics_no_delete BEFORE DELETE ON metrics
BEGIN SELECT RAISE(ABORT, 'metrics are append-only'); END;

CREATE TABLE artifacts (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    path        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  INTEGER NOT NULL,
    created_ms  INTEGER NOT NULL,
    PRIMARY KEY (run_id, path)
);
