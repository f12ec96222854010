"""Training runs killed with SIGKILL at every stage (lr_find, the frozen stage, the unfrozen stage, while writing a checkpoint,
while saving the model, and at a random moment), then resumed with `lesion-analysis train --resume`: each ends with the
history and weights of the run that was never stopped."""
import json, os, random, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest, torch
from safetensors.torch import load_file
from conftest import cli, synthetic, train_command

# Runs `lesion-analysis ARGS` with a hook that SIGKILLs the process at POINT: nothing is cleaned up, as with kill -9.
DRIVER = r'''
import os, signal, sys
point, args = sys.argv[1], sys.argv[2:]
die = lambda: os.kill(os.getpid(), signal.SIGKILL)
import torch, fastai.callback.schedule as sched, lesion_analysis.learner as L, lesion_analysis.modeldir as M
def after(cls, name, when):
    "Run `when(self)` after `cls.name`, and die if it says so."
    f = getattr(cls, name)
    def g(self, *a, **k):
        res = f(self, *a, **k)
        if when(self): die()
        return res
    setattr(cls, name, g)
if point == 'lr_find': after(sched.LRFinder, 'after_batch', lambda self: self.train_iter == 5)
if point in ('frozen', 'unfrozen'): after(L.History, 'after_batch', lambda self: self.stage == point and self.epoch == 1 and self.iter == 1)
if point == 'second_run':  # the second training run of the process (a fold ensemble's second fold), in its second epoch
    runs = []
    after(L.History, '__init__', lambda self: runs.append(self) and False)
    after(L.History, 'after_batch', lambda self: len(runs) == 2 and self.epoch == 1 and self.iter == 1)
if point == 'writing':  # the third checkpoint: half its bytes, then killed before the atomic rename
    real, n = torch.save, [0]
    def half_then_die(obj, f, *a, **k):
        real(obj, f, *a, **k); n[0] += 1
        if n[0] == 3:
            with open(f, 'r+b') as fh: fh.truncate(os.path.getsize(f) // 2)
            die()
    torch.save = half_then_die
if point == 'saving':  # the model's weights written, not its config
    real_save = M.save_file
    def save_then_die(*a, **k): real_save(*a, **k); die()
    M.save_file = save_then_die
from lesion_analysis.cli import main
main(args)
'''

RECIPE = ['--size', '40', '--bs', '16', '--freeze-epochs', '2', '--epochs', '3']  # no --lr: lr_find runs

@pytest.fixture(scope='module')
def syn(tmp_path_factory): return synthetic(tmp_path_factory, n_per_class=5)

def train_args(syn, out, *extra): return train_command(syn, out, RECIPE, *extra)

@pytest.fixture(scope='module')
def whole(syn):
    "The run that was never stopped."
    out = syn/'whole'
    r = cli(*train_args(syn, out))
    assert r.returncode == 0, r.stderr
    return out

def killed_at(point, args):
    "Run `lesion-analysis ARGS` and SIGKILL it at `point` (see DRIVER)."
    p = subprocess.run([sys.executable, '-c', DRIVER, point, *map(str, args)], capture_output=True, text=True,
                       timeout=600, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})
    assert p.returncode == -signal.SIGKILL, (p.returncode, p.stderr[-2000:])

def assert_same_run(out, whole):
    "Same history (but for the times) and weights within 1e-5 as the run never stopped; no checkpoint or run file left."
    drop_time = lambda d: pd.read_csv(d/'history.csv').drop(columns='seconds')
    pd.testing.assert_frame_equal(drop_time(out), drop_time(whole), atol=1e-5)
    a, b = load_file(str(out/'model.safetensors')), load_file(str(whole/'model.safetensors'))
    assert a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-5) for k in a)
    assert not (out/'checkpoint.pt').exists() and not (out/'run.json').exists()
    assert json.loads((out/'config.json').read_text())['valid'] == json.loads((whole/'config.json').read_text())['valid']

@pytest.mark.parametrize('point', ['lr_find', 'frozen', 'unfrozen', 'writing', 'saving'])
def test_killed_run_resumes_to_the_same_model(point, syn, whole, tmp_path):
    out = tmp_path/'m'
    killed_at(point, train_args(syn, out))
    assert not (out/'config.json').exists()
    r = cli(*train_args(syn, out, '--resume'))
    assert r.returncode == 0, r.stderr
    assert_same_run(out, whole)

def test_killed_at_a_random_moment(syn, whole, tmp_path):
    out = tmp_path/'m'
    p = subprocess.Popen(['lesion-analysis', *map(str, train_args(syn, out))], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(random.uniform(6, 16)); p.kill(); p.wait()
    if not (out/'config.json').exists():  # killed before the end (else it finished first: a finished model is not resumed)
        r = cli(*train_args(syn, out, '--resume'))
        assert r.returncode == 0, r.stderr
    assert_same_run(out, whole)

def test_an_unfinished_run_is_no_model(syn, tmp_path):
    out = tmp_path/'m'
    killed_at('frozen', train_args(syn, out))
    # every command that loads a model refuses it, in one line that says what to do
    r = cli('predict', out, syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'p.csv')
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and 'training has not finished' in r.stderr and '--resume' in r.stderr
    # training over it again needs --resume or --force
    r = cli(*train_args(syn, out))
    assert r.returncode == 2 and 'unfinished training run' in r.stderr and '--resume' in r.stderr and '--force' in r.stderr
    # a resumed run must be the run that was started: recipe, precision and table
    r = cli(*train_args(syn, out, '--resume', '--epochs', '5', '--loss', 'inverse'))
    assert r.returncode == 2 and 'epochs 3, now 5' in r.stderr and 'loss plain, now inverse' in r.stderr
    t = pd.read_csv(syn/'labels.csv'); t.iloc[:-1].to_csv(tmp_path/'fewer.csv', index=False)
    r = cli('train', tmp_path/'fewer.csv', *train_args(syn, out, '--resume')[2:])
    assert r.returncode == 2 and 'another table or split' in r.stderr
    assert cli(*train_args(syn, out, '--resume')).returncode == 0
    r = cli(*train_args(syn, out, '--resume'))
    assert r.returncode == 2 and 'nothing to resume' in r.stderr
