#!/usr/bin/env python3
"""The libtorch phase of scripts/test.sh must reuse the default build: fails naming the crates
it would compile a second time.

Turning on `astroclip-cli/tch` adds burn-tch, tch and torch-sys and changes the features of the
burn crates that carry a `tch` feature; everything else must be shared with the workspace test
build. A crate whose features differ between the two builds (on the target or on the host side)
is compiled twice, with every crate above it: before the unification block in core/Cargo.toml
that was all of burn (burn-flex alone ~5 min), libsqlite3-sys and sqlx, ~20 min of CI.

It compares cargo's unit graphs (`--unit-graph`, a planning-only cargo flag that is unstable,
hence RUSTC_BOOTSTRAP=1 for these cargo calls only; nothing is compiled): a unit is identified
by package, target, mode, profile, features and those of its direct dependencies (cargo's own
artifact hash is recursive; one level names the crate where a difference starts). It also checks that README's default build
(`cargo build -p astroclip-cli`, run after the libtorch phase) reuses the test build's units.
"""
import hashlib
import json
import os
import subprocess
import sys

# Packages the libtorch phase may compile again: burn's tch-aware crates, what sits between
# them and us, and our own crates.
ALLOWED = {
    "burn", "burn-core", "burn-dispatch", "burn-tensor", "burn-nn", "burn-optim", "burn-linalg",
    "burn-store", "astroclip-core", "astroclip-cli", "astroclip-builtin", "astroclip-plugin-api",
}

WORKSPACE = ["test", "--workspace", "--no-run"]
TCH = ["test", "-p", "astroclip-core", "-p", "astroclip-cli", "--features", "astroclip-cli/tch",
       "--test", "plugin_tensor", "--test", "import", "--test", "cli", "--no-run"]
DEFAULT_BIN = ["build", "-p", "astroclip-cli"]


def unit_keys(args):
    """The units cargo would build for `args`, keyed by what decides their reuse."""
    env = dict(os.environ, RUSTC_BOOTSTRAP="1")
    out = subprocess.run(["cargo", *args, "--unit-graph", "-Z", "unstable-options"], env=env,
                         check=True, capture_output=True, text=True).stdout
    units = json.loads(out)["units"]

    def own(u):  # the profile's name (dev/test) does not change the artifact
        profile = {k: v for k, v in u["profile"].items() if k != "name"}
        return [u["pkg_id"], u["target"]["name"], u["target"]["kind"], u["mode"], u["features"], profile,
                u.get("platform")]

    def key(u):  # the unit and its direct dependencies: a changed crate is flagged itself,
        # not every crate above it
        ident = own(u) + [sorted(json.dumps(own(units[d["index"]])) for d in u["dependencies"])]
        return hashlib.sha256(json.dumps(ident).encode()).hexdigest()

    return {key(u): u for u in units}


def name(unit):
    return unit["pkg_id"].split("#")[-1].rsplit("@", 1)[0].split("/")[-1]


def main():
    base = unit_keys(WORKSPACE)
    base_pkgs = {u["pkg_id"] for u in base.values()}
    status = 0
    tch = unit_keys(TCH)
    again = sorted({name(u) for k, u in tch.items() if k not in base and u["pkg_id"] in base_pkgs} - ALLOWED)
    if again:
        print("turning on astroclip-cli/tch changes the build of crates the default build shares;",
              "each is compiled twice, with all that depends on it:", ", ".join(again), file=sys.stderr)
        print("unify their features in core/Cargo.toml's block (normal or build dependencies)", file=sys.stderr)
        status = 1
    rebuilt = sorted({name(u) for k, u in unit_keys(DEFAULT_BIN).items() if k not in base})
    if rebuilt:
        print("`cargo build -p astroclip-cli` does not reuse the test build:", ", ".join(rebuilt), file=sys.stderr)
        status = 1
    if status == 0:
        new = len({u["pkg_id"] for u in tch.values()} - base_pkgs)
        print(f"tch unification: the libtorch phase adds {new} packages (burn-tch, tch, torch-sys and "
              f"their dependencies) and rebuilds only {', '.join(sorted(ALLOWED))} and what depends on them")
    return status


if __name__ == "__main__":
    sys.exit(main())
