-- Experiment registry schema v1 for PostgreSQL: the same tables, columns and rules as
-- migrations/sqlite/0001_init.sql (params immutable, metrics append-only, runs soft-deleted),
-- in PostgreSQL's dialect. `metrics.seq` is the insertion order SQLite keeps as `rowid`.
-- Never edit a released migration: add a new numbered one to both directories.
CREATE TABLE experiments (
    id          BIGSERIAL PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_ms  BIGINT NOT NULL
);

CREATE TABLE runs (
    id              TEXT PRIMARY KEY,
    experiment_id   BIGINT NOT NULL REFERENCES experiments(id),
    name            TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('running', 'finished', 'failed', 'killed')),
    start_ms        BIGINT NOT NULL,
    end_ms          BIGINT,
    git_commit      TEXT,
    config_json     TEXT NOT NULL,
    data_hash       TEXT,
    components_json TEXT NOT NULL DEFAULT '[]',
    message         TEXT,
    deleted_ms      BIGINT
);
CREATE INDEX runs_experiment ON runs(experiment_id, start_ms);

CREATE FUNCTION astroclip_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0];
END
$$;

CREATE TABLE params (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE TRIGGER params_immutable BEFORE UPDATE ON params
FOR EACH ROW EXECUTE FUNCTION astroclip_refuse('params are immutable');

CREATE TABLE metrics (
    seq     BIGSERIAL PRIMARY KEY,
    run_id  TEXT NOT NULL REFERENCES runs(id),
    key     TEXT NOT NULL,
    step    BIGINT NOT NULL,
    time_ms BIGINT NOT NULL,
    value   DOUBLE PRECISION NOT NULL,
    context TEXT NOT NULL DEFAULT ''
);
CREATE INDEX metrics_run_key ON metrics(run_id, key, step);
CREATE TRIGGER metrics_no_update BEFORE UPDATE ON metrics
FOR EACH ROW EXECUTE FUNCTION astroclip_refuse('metrics are append-only');
CREATE TRIGGER metrics_no_delete BEFORE DELETE ON metrics
FOR EACH ROW EXECUTE FUNCTION astroclip_refuse('metrics are append-only');

CREATE TABLE artifacts (
    run_id      TEXT NOT NULL REFERENCES runs(id),
    path        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    sha256      TEXT NOT NULL,
    size_bytes  BIGINT NOT NULL,
    created_ms  BIGINT NOT NULL,
    PRIMARY KEY (run_id, path)
);
