import os, shutil, subprocess, sys
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]

@pytest.fixture(scope='session')
def shared():
    "The shared data folder beside the checkout."
    from lesion_analysis.core import shared_data
    d = shared_data('', start=ROOT, missing_ok=True)
    if d is None: pytest.fail("../shared/data not found beside the checkout (set LESION_ANALYSIS_SHARED)")
    return d

def cli(*args, cwd=None, timeout=600):
    "Run the installed `lesion-analysis ARGS` in a subprocess and return the completed process."
    exe = Path(sys.executable).parent/'lesion-analysis'
    exe = str(exe) if exe.exists() else shutil.which('lesion-analysis')
    assert exe, "the lesion-analysis console script is not installed (pip install -e .)"
    return subprocess.run([exe, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=timeout, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
