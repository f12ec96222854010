#!/usr/bin/env bash
# CI: build the wheel from the repository, install it into a fresh virtual environment (reusing the installed dependencies),
# and check that it imports, that `lesion-analysis --help` works, and that it holds the package's modules only.
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
python -m build --wheel --outdir "$work/dist" . >/dev/null
wheel=$(ls "$work"/dist/lesion_analysis-*.whl)
python - "$wheel" <<'PY'
import sys, zipfile
names = zipfile.ZipFile(sys.argv[1]).namelist()
extra = [n for n in names if not (n.startswith('lesion_analysis/') and n.endswith('.py')) and '.dist-info/' not in n]
assert not extra, f"the wheel holds more than the package's modules: {extra[:10]}"
print(f"{sys.argv[1].rsplit('/', 1)[-1]}: {len(names)} files, modules only")
PY
python -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install -q --no-deps "$wheel"
cd "$work"   # away from the checkout, so that only the installed wheel can be imported
"$work/venv/bin/python" -c "import lesion_analysis, sys; p = lesion_analysis.__file__; assert p.startswith('$work/venv'), p; print('imported', lesion_analysis.__version__, 'from', p)"
"$work/venv/bin/python" -c "from lesion_analysis.train import task_for; from lesion_analysis.modeldir import model_builder; task_for('segmentation'); task_for('detection'); model_builder('fusion'); model_builder('detector'); print('tasks and networks found through the entry points')"
"$work/venv/bin/lesion-analysis" --help >/dev/null && echo "lesion-analysis --help works from the wheel"
