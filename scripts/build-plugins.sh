#!/usr/bin/env bash
# Builds the named native example plugins (plugins/examples/<id>/) and lays
# each out as an installable plugin directory under target/plugins/<id>/: the library plus a
# plugin.toml pinning its SHA-256 (a native library's hash depends on the build, so its
# manifest is written here, not committed). Also builds astroclip-wasm-host. Debug profiles:
# the tests build the same artifacts, and the plugins' work runs in the host.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/plugins
# The interface the SDK implements: the newest frozen version module.
api=$(sed -n 's/^pub const VERSION: &str = "\(.*\)";/\1/p' "$(ls plugins/sdk/src/since_v*.rs | sort -V | tail -1)")
mkdir -p "$out"
# Tests run this concurrently: one build at a time, or two `cp`s race on the same file.
exec 9>"$out/.build.lock"
flock 9
for id in "$@"; do
    src=plugins/examples/$id
    cargo build --offline --quiet --manifest-path "$src/Cargo.toml" --target-dir target/plugin-examples
    lib=target/plugin-examples/debug/libastroclip_plugin_${id//-/_}.so
    mkdir -p "$out/$id"
    cp "$lib" "$out/$id/$id.so"
    sha=$(sha256sum "$out/$id/$id.so" | cut -d' ' -f1)
    kinds=""
    for k in "ArrayTokenizer:tokenizer" "GraphEncoder:encoder" "GraphLoss:loss" "ArrayProbe:probe"; do
        grep -q "impl ${k%%:*} for" "$src/src/lib.rs" && kinds="${kinds:+$kinds, }\"${k##*:}\""
    done
    modality=$(sed -n 's/.*const MODALITY: &.static str = "\(.*\)";/\1/p' "$src/src/lib.rs" | head -1)
    cat > "$out/$id/plugin.toml" <<TOML
[plugin]
id = "$id"
version = "$(sed -n 's/^version = "\(.*\)"/\1/p' "$src/Cargo.toml" | head -1)"
api_version = "$api"
kinds = [$kinds]
${modality:+modality = \"$modality\"}

[entry]
carrier = "native"
file = "$id.so"
sha256 = "$sha"
TOML
    echo "$out/$id"
done
cargo build --offline --quiet --manifest-path plugins/wasm/Cargo.toml --bin astroclip-wasm-host
