#!/usr/bin/env bash
# Rewrites recipe_tests/wheel_manifest.txt (the exact file list //recipe_tests:test_wheel expects)
# from the wheel that //:wheel builds. Run it after adding or removing a shipped file, and review
# the diff: it is the list of what users install.
set -euo pipefail
cd "$(dirname "$0")/.."
./bazelw build //:wheel >&2
bin=$(./bazelw info bazel-bin 2>/dev/null)
python3 - "$bin"/torchtune-*.whl > recipe_tests/wheel_manifest.txt <<'PYEOF'
import sys
import zipfile

for name in zipfile.ZipFile(sys.argv[1]).namelist():
    if ".dist-info/" not in name:
        print(name)
PYEOF
echo "wrote recipe_tests/wheel_manifest.txt ($(wc -l < recipe_tests/wheel_manifest.txt) files)" >&2
