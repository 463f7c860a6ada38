"""Reads runs back from an MLflow tracking server with MLflow's own Python client and compares
every value with what the astroclip registry holds (written by tests/roundtrip.rs).

usage: read_back.py <expected.json> <tracking uri> <download dir>

expected.json: [{"mlflow_run_id", "experiment", "name", "status", "params": {k: v},
"tags": {k: v}, "metrics": {key: [[step, value, timestamp_ms], ...]}, "artifacts": {path: sha256}}]
Exits non-zero, naming the first difference, when anything differs.
"""

import hashlib
import json
import sys

import mlflow
from mlflow.tracking import MlflowClient


def fail(msg):
    print(f"MISMATCH: {msg}")
    sys.exit(1)


def main():
    expected_path, uri, download = sys.argv[1:4]
    expected = json.load(open(expected_path))
    mlflow.set_tracking_uri(uri)
    client = MlflowClient(tracking_uri=uri)
    experiments = sorted({r["experiment"] for r in expected})
    # One search over the experiments, as a user comparing runs would do it.
    df = mlflow.search_runs(experiment_names=experiments, output_format="pandas")
    by_id = {row["run_id"]: row for _, row in df.iterrows()}
    n_params = n_rows = n_tags = n_art = 0
    for run in expected:
        rid = run["mlflow_run_id"]
        if rid not in by_id:
            fail(f"run {rid} not found by mlflow.search_runs in {experiments}")
        row = by_id[rid]
        got = client.get_run(rid)
        if got.info.run_name != run["name"]:
            fail(f"{rid}: run name {got.info.run_name!r} != {run['name']!r}")
        if got.info.status != run["status"]:
            fail(f"{rid}: status {got.info.status} != {run['status']}")
        exp = client.get_experiment(got.info.experiment_id)
        if exp.name != run["experiment"]:
            fail(f"{rid}: experiment {exp.name!r} != {run['experiment']!r}")
        if got.data.params != run["params"]:
            missing = set(run["params"].items()) ^ set(got.data.params.items())
            fail(f"{rid}: params differ: {sorted(missing)[:5]}")
        for k, v in run["params"].items():
            if row[f"params.{k}"] != v:
                fail(f"{rid}: search_runs params.{k} = {row[f'params.{k}']!r} != {v!r}")
        n_params += len(run["params"])
        for k, v in run["tags"].items():
            if got.data.tags.get(k) != v:
                fail(f"{rid}: tag {k} = {got.data.tags.get(k)!r} != {v!r}")
            if row[f"tags.{k}"] != v:
                fail(f"{rid}: search_runs tags.{k} differs")
        n_tags += len(run["tags"])
        if set(got.data.metrics) != set(run["metrics"]):
            fail(f"{rid}: metric keys differ: {sorted(set(got.data.metrics) ^ set(run['metrics']))[:5]}")
        for key, series in run["metrics"].items():
            hist = client.get_metric_history(rid, key)
            have = sorted((m.step, m.value, m.timestamp) for m in hist)
            want = sorted((s, v, t) for s, v, t in series)
            if have != want:
                fail(f"{rid}: history of {key}: {len(have)} rows, want {len(want)}; first diff "
                     f"{next((a, b) for a, b in zip(have + [None] * len(want), want + [None] * len(have)) if a != b)}")
            n_rows += len(have)
        listed = set()
        stack = [None]
        while stack:
            for f in client.list_artifacts(rid, stack.pop()):
                (stack.append(f.path) if f.is_dir else listed.add(f.path))
        if listed != set(run["artifacts"]):
            fail(f"{rid}: artifacts listed {sorted(listed)} != {sorted(run['artifacts'])}")
        for path, sha in run["artifacts"].items():
            local = mlflow.artifacts.download_artifacts(run_id=rid, artifact_path=path, dst_path=f"{download}/{rid}")
            digest = hashlib.sha256(open(local, "rb").read()).hexdigest()
            if digest != sha:
                fail(f"{rid}: artifact {path} sha256 {digest} != {sha}")
            n_art += 1
    print(f"ok: {len(expected)} runs, {n_params} params, {n_tags} tags, {n_rows} metric rows, "
          f"{n_art} artifacts read back by mlflow {mlflow.__version__}")


if __name__ == "__main__":
    main()
