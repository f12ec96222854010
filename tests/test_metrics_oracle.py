"""The ISIC metric table against the official scorer, `isic-challenge-scoring` 5.6.0, as a test oracle.

The scorer needs pandas<3, so it runs in its own virtual environment (made once in .venv-isic/ beside the checkout; the
library itself never imports it)."""
import json, subprocess, sys, warnings
from pathlib import Path
import numpy as np, pandas as pd, pytest
from conftest import ROOT
from lesion_analysis.core import CLASSES
from lesion_analysis.metrics import isic_metrics, balanced_multiclass_accuracy, METRIC_COLUMNS

VENV = ROOT/'.venv-isic'
ORACLE = '''
import json, sys
import pandas as pd
from isic_challenge_scoring.classification import ClassificationScore, ClassificationMetric
from isic_challenge_scoring import metrics
from isic_challenge_scoring.load_csv import parse_truth_csv, parse_csv, sort_rows
truth, preds, mode = sys.argv[1:4]
if mode == 'full':
    s = ClassificationScore.from_file(__import__('pathlib').Path(truth), __import__('pathlib').Path(preds), ClassificationMetric.BALANCED_ACCURACY)
    print(json.dumps(dict(per_category=s.per_category.to_dict(), macro=s.macro_average.to_dict(), bma=float(s.aggregate['balanced_accuracy']))))
else:
    t, w = parse_truth_csv(open(truth)); p = parse_csv(open(preds), t.columns); sort_rows(t); sort_rows(p)
    print(json.dumps(dict(bma=float(metrics.balanced_multiclass_accuracy(t, p, w.score_weight)))))
'''

@pytest.fixture(scope='session')
def oracle():
    "A function running the official scorer on two CSVs; the venv is created on first use."
    py = VENV/'bin'/'python'
    if not py.exists():
        subprocess.run([sys.executable, '-m', 'venv', str(VENV)], check=True)
        r = subprocess.run([str(py), '-m', 'pip', 'install', '-q', 'isic-challenge-scoring==5.6.0', 'pandas<3'], capture_output=True, text=True)
        assert r.returncode == 0, f"could not install the official scorer into {VENV}: {r.stderr[-2000:]}"
    def run(truth, preds, mode='full'):
        r = subprocess.run([str(py), '-c', ORACLE, str(truth), str(preds), mode], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout)
    return run

def fixture_csvs(tmp_path, seed, n=80, ties=0, halves=0, hard=False):
    "Truth with every class present, and predictions with `ties` tied argmax rows and `halves` values of exactly 0.5."
    rng = np.random.default_rng(seed)
    labels = np.r_[np.arange(9), rng.integers(0, 9, n - 9)]
    truth = pd.DataFrame(np.eye(9)[labels], columns=CLASSES).assign(image=[f'ISIC_{i:07d}' for i in range(n)])
    logits = rng.normal(size=(n, 9)) + (1.5 if not hard else .3) * np.eye(9)[labels]
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    for i in range(ties): probs[i, :] = 0; probs[i, [i % 9, (i + 4) % 9]] = .5           # tied maximum, exactly 0.5 too
    for i in range(ties, ties + halves): probs[i, labels[i]] = .5
    preds = pd.DataFrame(probs, columns=CLASSES).assign(image=[f'ISIC_{i:07d}.jpg' for i in range(n)])
    t, p = tmp_path/f'truth{seed}.csv', tmp_path/f'preds{seed}.csv'
    truth[['image', *CLASSES]].to_csv(t, index=False); preds[['image', *CLASSES]].to_csv(p, index=False)
    return t, p

@pytest.mark.parametrize('seed,ties,halves,hard', [(0, 0, 0, False), (1, 6, 5, False), (2, 3, 10, True), (3, 12, 0, True)])
def test_isic_table_matches_official_scorer(oracle, tmp_path, seed, ties, halves, hard):
    t, p = fixture_csvs(tmp_path, seed, ties=ties, halves=halves, hard=hard)
    ref = oracle(t, p)
    ours = isic_metrics(t, p)
    official = pd.DataFrame(ref['per_category']).loc[CLASSES, METRIC_COLUMNS]
    np.testing.assert_allclose(ours.loc[CLASSES, METRIC_COLUMNS].to_numpy(), official.to_numpy(), atol=1e-6)
    np.testing.assert_allclose(ours.loc['mean', METRIC_COLUMNS].to_numpy(), pd.Series(ref['macro'])[METRIC_COLUMNS].to_numpy(), atol=1e-6)
    assert abs(balanced_multiclass_accuracy(t, p) - ref['bma']) < 1e-6

def test_balanced_accuracy_with_classes_absent_from_truth(oracle, tmp_path):
    t, p = fixture_csvs(tmp_path, 7, n=60, ties=4)
    truth = pd.read_csv(t)
    truth.loc[truth.SCC == 1, 'MEL'] = 1.; truth.loc[truth.SCC == 1, 'SCC'] = 0.   # no SCC left in the truth
    truth.loc[truth.DF == 1, 'NV'] = 1.; truth.loc[truth.DF == 1, 'DF'] = 0.       # nor DF
    truth.to_csv(t, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert abs(balanced_multiclass_accuracy(t, p) - oracle(t, p, 'bma')['bma']) < 1e-6
