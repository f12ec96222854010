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

def cli_here(*args):
    "Run `lesion-analysis ARGS` in this process, its output captured, warnings ignored as `cli` ignores them: for bad input, which must fail fast and say why, without a new process that imports the library (8 s each here)."
    import contextlib, io, warnings, torch
    from lesion_analysis.cli import main
    out, err, threads = io.StringIO(), io.StringIO(), torch.get_num_threads()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter('ignore')
        try: code = main(list(map(str, args)))
        except SystemExit as e: code = e.code if isinstance(e.code, int) else 1
        finally: torch.set_num_threads(threads)  # as before, whatever the command set
    return subprocess.CompletedProcess(['lesion-analysis', *map(str, args)], code, out.getvalue(), err.getvalue())

def synthetic(tmp_path_factory, n_per_class:int=5, seed:int=3) -> Path:
    "A fresh folder of tiny synthetic images (40 px, 2 per lesion) with their labels.csv."
    from lesion_analysis.synthetic import make_synthetic
    d = tmp_path_factory.mktemp('syn'); make_synthetic(d, n_per_class=n_per_class, size=40, seed=seed)
    return d

def train_command(syn:Path, out, recipe:list, *extra) -> list:
    "The arguments of `lesion-analysis train` on the synthetic images in `syn` into `out` with `recipe`, cached beside them."
    return ['train', syn/'labels.csv', '--images', syn/'images', '--out', out, '--cache', syn/'cache', *recipe, *extra]

ARTIFACTS = ROOT/'test_artifacts'  # screenshots and figures a test leaves for a person to look at

def browser_page(p):
    "A page of headless Debian chromium."
    chromium = shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(chromium).exists(): pytest.fail("Debian's chromium is not installed (.ci/run installs it with apt)")
    ARTIFACTS.mkdir(exist_ok=True)
    browser = p.chromium.launch(executable_path=chromium, args=['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'])
    return browser, browser.new_page(viewport={'width': 1100, 'height': 800})
