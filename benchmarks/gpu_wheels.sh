#!/usr/bin/env bash
# Fetch, on a machine with pip access, the wheels gpu_all.sh needs on a GPU node whose image
# already holds torch, triton, numpy, pyarrow, pillow, click, fsspec, xxhash, tqdm and
# scikit-learn (Python 3.12, x86-64, no network there). They land in .whl/ (git-ignored
# through .git/info/exclude), about 10 MB: carry that folder to the GPU node.
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
mkdir -p .whl
platforms=(--platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64
           --platform manylinux2014_x86_64 --platform manylinux1_x86_64 --platform any)
for spec in orjson rapidfuzz open-clip-torch ftfy wcwidth; do
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    "${platforms[@]}" -d .whl "$spec"
done
du -sh .whl
