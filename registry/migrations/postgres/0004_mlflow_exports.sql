-- Where each run was exported to MLflow (`astroclip runs export mlflow`): the MLflow run id and
-- how much was sent, so a second export sends only what is new. Metric rows are counted in
-- insertion order (metrics are append-only, so that order never changes).
CREATE TABLE mlflow_exports (
    run_id               TEXT NOT NULL REFERENCES runs(id),
    tracking_uri         TEXT NOT NULL,
    mlflow_experiment_id TEXT NOT NULL,
    mlflow_run_id        TEXT NOT NULL,
    metric_rows_sent     BIGINT NOT NULL DEFAULT 0,
    -- JSON object: artifact path -> sha256 of the uploaded version.
    artifacts_sent       TEXT NOT NULL DEFAULT '{}',
    updated_ms           BIGINT NOT NULL,
    PRIMARY KEY (run_id, tracking_uri)
);

-- Text as a number, NULL when it is not one (`runs list --where "params.x > 1"` over params
-- stored as text); a plain cast would abort the whole query on the first non-number.
CREATE FUNCTION astroclip_number(t TEXT) RETURNS DOUBLE PRECISION
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    RETURN t::DOUBLE PRECISION;
EXCEPTION WHEN others THEN
    RETURN NULL;
END
$$;
