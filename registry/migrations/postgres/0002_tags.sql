-- Tags (mutable key/value labels, as MLflow's): `runs tag`, and the run note under key `note`.
CREATE TABLE tags (
    run_id  TEXT NOT NULL REFERENCES runs(id),
    key     TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
CREATE INDEX params_key ON params(key, run_id);
