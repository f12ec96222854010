"""`lesion-analysis train --processes 2`: data-parallel training on 2 CPU processes (gloo) through torchrun, Accelerate and
fastai's DistributedTrainer, checked against one process: one model directory written by rank 0 alone, the same split,
class weights, learning rate and best epoch on both ranks, the validation figure gathered across ranks equal to a
single-process evaluation of the saved weights, each process on its share of the cores; and the bad inputs."""
import json
import numpy as np, pandas as pd, pytest, torch
from fastai.vision.all import Learner
from sklearn.metrics import balanced_accuracy_score
from conftest import cli, synthetic, train_command
from lesion_analysis.core import available_cores
from lesion_analysis.datasets import read_inputs
from lesion_analysis.preprocess import preprocess
from lesion_analysis.data import lesion_dls
from lesion_analysis.modeldir import load_model_dir

TINY = ['--size', '40', '--bs', '16', '--freeze-epochs', '1', '--epochs', '2', '--loss', 'inverse']

@pytest.fixture(scope='module')
def syn(tmp_path_factory): return synthetic(tmp_path_factory, n_per_class=8)

def train_args(syn, out, *extra): return train_command(syn, out, TINY, *extra)

@pytest.fixture(scope='module')
def runs(syn):
    "The same recipe trained on 2 processes and on 1."
    for name, extra in (('two', ['--processes', '2']), ('one', [])):
        r = cli(*train_args(syn, syn/name, *extra), timeout=300)
        assert r.returncode == 0, r.stderr[-3000:]
        assert r.stdout.count('validation balanced accuracy') == 1  # rank 0 speaks for the run
    return syn/'two', syn/'one'

def single_process_probs(out, syn):
    "The saved model of `out` evaluated by this (one) process on its validation images, through the training pipeline."
    cfg, vp = json.loads((out/'config.json').read_text()), pd.read_csv(out/'valid_preds.csv')
    df = read_inputs(syn/'labels.csv', syn/'images')
    df['is_valid'] = df.image.isin(vp.image)
    cached = preprocess(df, syn/'cache', size=40, side='longer', crop=True, workers=1)
    dls = lesion_dls(cached, size=40, bs=16, aug=cfg['recipe']['aug'], stats=(cfg['stats']['mean'], cfg['stats']['std']))
    model, _ = load_model_dir(out)
    probs, targs = Learner(dls, model, loss_func=torch.nn.CrossEntropyLoss()).get_preds(dl=dls.valid)
    return probs.softmax(1).numpy(), targs.numpy(), dls.valid.items.original_image.tolist()  # the model gives logits

def test_one_model_directory_written_by_rank_0(runs):
    two, one = runs
    assert sorted(p.name for p in two.iterdir()) == sorted(p.name for p in one.iterdir())  # nothing twice, nothing left over
    assert not (two/'run.json').exists() and not (two/'checkpoint.pt').exists()

def test_ranks_agree_and_match_one_process(runs):
    two, one = runs
    c2, c1 = (json.loads((d/'config.json').read_text()) for d in runs)
    d = c2['distributed']
    assert (d['processes'], d['backend'], d['bs_per_process'], d['lr_factor']) == (2, 'gloo', 8, 2.0)
    assert d['threads_per_process'] == max(1, available_cores() // 2)
    ranks = d['ranks']
    assert len(ranks) == 2 and ranks[0] == ranks[1]  # split, class weights, learning rate and best epoch
    assert ranks[0]['class_weights'] is not None and ranks[0]['best_epoch'] == c2['valid']['best_epoch']
    assert c2['lr'] == pytest.approx(ranks[0]['lr']) and c2['lr_find'] == pytest.approx(c2['lr'] / 2)
    assert c2['recipe']['bs'] == c1['recipe']['bs'] == 16 and 'distributed' not in c1
    # the same lesion-grouped split as one process
    assert sorted(pd.read_csv(two/'valid_preds.csv').image) == sorted(pd.read_csv(one/'valid_preds.csv').image)

def test_gathered_validation_equals_single_process_evaluation(runs, syn):
    two, _ = runs
    cfg, hist = json.loads((two/'config.json').read_text()), pd.read_csv(two/'history.csv')
    gathered = hist.balanced_accuracy[cfg['valid']['best_epoch']]  # computed during training, from both ranks' halves
    probs, targs, images = single_process_probs(two, syn)
    assert len(probs) == cfg['data']['n_valid']  # the whole validation set, no padding
    bacc = balanced_accuracy_score(targs, probs.argmax(1))
    assert gathered == pytest.approx(bacc, abs=1e-4) and cfg['valid']['balanced_accuracy'] == pytest.approx(bacc, abs=1e-4)
    vp = pd.read_csv(two/'valid_preds.csv').set_index('image').loc[images, cfg['classes']]
    np.testing.assert_allclose(vp.to_numpy(), probs, atol=1e-5)

def test_distributed_model_predicts(runs, syn, tmp_path):
    r = cli('predict', runs[0], syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'p.csv')
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(tmp_path/'p.csv')) == len(pd.read_csv(syn/'labels.csv'))

@pytest.mark.parametrize('extra,message', [
    (['--processes', '2', '--bs', '15'], 'a batch of 15 does not split evenly among 2 processes'),
    (['--processes', '2', '--bs', '128'], 'make no full batch of 128 among 2 processes'),
    (['--processes', str(available_cores() + 1)], 'more processes than the'),
])
def test_bad_process_counts(syn, tmp_path, extra, message):
    r = cli(*train_args(syn, tmp_path/'m', *extra), timeout=300)
    assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert r.stderr.count('error:') == 1  # one line, not one per process
