"""`lesion-analysis train --folds K` end to end on tiny synthetic data: lesion-grouped folds, out-of-fold predictions and
metrics, the fold ensemble used as one model directory (predict, explain, serve) and as members (ensemble), and a fold
ensemble killed in its second fold resumed without retraining the first."""
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest
from sklearn.metrics import balanced_accuracy_score
from conftest import cli, cli_here
from test_resume import killed_at
from lesion_analysis.core import CLASSES
from lesion_analysis.synthetic import make_synthetic

TINY = ['--size', '40', '--bs', '16', '--freeze-epochs', '0', '--epochs', '2', '--lr', '1e-3']

@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    d = tmp_path_factory.mktemp('syn'); make_synthetic(d, n_per_class=6, size=40, seed=3)  # 2 images per lesion
    return d

def fold_args(syn, out, *extra): return ['train', syn/'labels.csv', '--images', syn/'images', '--out', out, '--cache', syn/'cache', *TINY, '--folds', '3', *extra]

@pytest.fixture(scope='module')
def folds(syn):
    out = syn/'folds'
    r = cli(*fold_args(syn, out))
    assert r.returncode == 0, r.stderr
    assert 'out-of-fold balanced accuracy' in r.stdout and "each fold's last epoch); 3 fold models" in r.stdout
    return out

def test_out_of_fold_predictions_and_metrics(folds, syn):
    cfg = json.loads((folds/'config.json').read_text())
    assert cfg['folds'] == ['fold_0', 'fold_1', 'fold_2'] and not (folds/'run.json').exists()
    oof, table = pd.read_csv(folds/'oof_preds.csv'), pd.read_csv(syn/'labels.csv')
    assert len(oof) == len(table) and oof.image.map(lambda p: Path(p).name).sort_values().tolist() == sorted(table.image)  # every image once
    lesion = oof.image.map(lambda p: Path(p).name).map(dict(zip(table.image, table.lesion_id)))
    assert (oof.groupby(lesion).fold.nunique() == 1).all()                      # no lesion in two folds
    assert oof.groupby('fold').label.nunique().min() == len(CLASSES)            # stratified: every class in every fold
    bacc = balanced_accuracy_score(oof.label, oof[CLASSES].idxmax(axis=1))
    v = cfg['valid']
    assert v['balanced_accuracy'] == pytest.approx(bacc) and v['balanced_accuracy_ci'][0] <= bacc <= v['balanced_accuracy_ci'][1]
    assert (folds/'oof'/'metrics.md').is_file() and len(cfg['fold_valid']) == 3
    for f, fv in zip(cfg['folds'], cfg['fold_valid']):  # nothing chosen on the scored fold: each fold kept its last epoch
        hist = pd.read_csv(folds/f/'history.csv')
        assert fv['best_epoch'] == len(hist) - 1 and fv['balanced_accuracy'] == pytest.approx(hist.balanced_accuracy.iloc[-1], abs=1e-4)

def test_folds_refuse_early_stopping(syn, tmp_path):
    r = cli_here(*fold_args(syn, tmp_path/'f', '--patience', '1'))
    assert r.returncode == 2 and 'early stopping (patience 1)' in r.stderr and 'Traceback' not in r.stderr and not (tmp_path/'f').exists()

def test_fold_ensemble_is_a_model_directory(folds, syn, tmp_path):
    r = cli('predict', folds, syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'p.csv', '--priors', 'keep', '--precision', 'fp32')
    assert r.returncode == 0, r.stderr
    mean = pd.read_csv(tmp_path/'p.csv').set_index('image')
    each = []
    for f in ('fold_0', 'fold_1', 'fold_2'):
        assert cli('predict', folds/f, syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/f'{f}.csv', '--priors', 'keep',
                   '--precision', 'fp32', '--uncalibrated').returncode == 0      # a fold ensemble averages its folds' uncalibrated probabilities
        each.append(pd.read_csv(tmp_path/f'{f}.csv').set_index('image').loc[mean.index])
    np.testing.assert_allclose(mean.to_numpy(), sum(each).to_numpy() / 3, atol=1e-5)   # the mean of the folds' probabilities
    img = syn/'images'/pd.read_csv(syn/'labels.csv').image[0]
    r = cli('explain', folds, img, '--out', tmp_path/'ex')
    assert r.returncode == 0 and (tmp_path/'ex'/'index.html').is_file(), r.stderr
    r = cli('ensemble', folds, '--input', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'e.csv')
    assert r.returncode == 0 and '3 members' in r.stdout, r.stderr               # its folds are the members
    from fastapi.testclient import TestClient
    from lesion_analysis.serve import create_app
    c = TestClient(create_app(folds))
    j = c.post('/predict', files={'file': ('a.jpg', img.read_bytes(), 'image/jpeg')}, data={'gradcam': 'true'}).json()
    assert list(j['probabilities']) == CLASSES and j['gradcam_png']
    assert c.get('/model').json()['folds'] == ['fold_0', 'fold_1', 'fold_2']

def test_killed_fold_ensemble_resumes_keeping_finished_folds(folds, syn, tmp_path):
    out = tmp_path/'f'
    killed_at('second_run', fold_args(syn, out))
    assert (out/'fold_0'/'config.json').is_file() and not (out/'fold_1'/'config.json').exists() and not (out/'config.json').exists()
    r = cli('predict', out, syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'p.csv')
    assert r.returncode == 2 and 'training has not finished' in r.stderr
    stamp = (out/'fold_0'/'model.safetensors').stat().st_mtime_ns
    r = cli(*fold_args(syn, out, '--resume'))
    assert r.returncode == 0, r.stderr
    assert (out/'fold_0'/'model.safetensors').stat().st_mtime_ns == stamp       # the finished fold was not retrained
    a, b = pd.read_csv(out/'oof_preds.csv'), pd.read_csv(folds/'oof_preds.csv')
    np.testing.assert_allclose(a[CLASSES].to_numpy(), b[CLASSES].to_numpy(), atol=1e-5)  # as the run never stopped
    r = cli(*fold_args(syn, out, '--resume'))
    assert r.returncode == 2 and 'nothing to resume' in r.stderr
