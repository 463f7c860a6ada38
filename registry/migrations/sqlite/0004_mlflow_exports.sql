-- Where each run was exported to MLflow (`astroclip runs export mlflow`): the MLflow run id and
-- how much was sent, so a second export sends only what is new. Metric rows are counted in
-- insertion order (metrics are append-only, so that order never changes).
CREATE TABLE mlflow_exports (
    run_id               TEXT NOT NULL REFERENCES runs(id),
    tracking_uri         TEXT NOT NULL,
    mlflow_experiment_id TEXT NOT NULL,
    mlflow_run_id        TEXT NOT NULL,
    metric_rows_sent     INTEGER NOT NULL DEFAULT 0,
    -- JSON object: artifact path -> sha256 of the uploaded version.
    artifacts_sent       TEXT NOT NULL DEFAULT '{}',
    updated_ms           INTEGER NOT NULL,
    PRIMARY KEY (run_id, tracking_uri)
);
