"`lesion-analysis predict`, `evaluate` and `ensemble` end to end, with bad inputs."
import json
from pathlib import Path
import numpy as np, pandas as pd, pytest
from conftest import cli, cli_here
from lesion_analysis.core import CLASSES
from lesion_analysis.synthetic import make_synthetic

@pytest.fixture(scope='module')
def model(tmp_path_factory):
    d = tmp_path_factory.mktemp('m'); make_synthetic(d/'syn', n_per_class=5, size=40, seed=4)
    r = cli('train', d/'syn'/'labels.csv', '--images', d/'syn'/'images', '--out', d/'model',
            '--size', '40', '--bs', '16', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-3')
    assert r.returncode == 0, r.stderr
    return d

@pytest.fixture(scope='module')
def preds(model):
    "The model's ISIC-layout predictions of its own training images."
    syn = model/'syn'
    r = cli('predict', model/'model', syn/'labels.csv', '--images', syn/'images', '--out', model/'a.csv')
    assert r.returncode == 0, r.stderr
    return model/'a.csv'

def test_predict_folder_with_a_bad_image(model, tmp_path, shared):
    folder = tmp_path/'imgs'; folder.mkdir()
    for n in ['ISIC_0024468.jpg', 'PH2_IMD008.jpg']: (folder/n).write_bytes((shared/'lesions'/'images'/n).read_bytes())
    (folder/'cut.jpg').write_bytes((shared/'lesions'/'images'/'PH2_IMD008.jpg').read_bytes()[:400])
    r = cli('predict', model/'model', folder, '--out', tmp_path/'p.csv', '--tta', 'paper', '--unk', 'maxprob')
    assert r.returncode == 0, r.stderr
    p = pd.read_csv(tmp_path/'p.csv')
    assert list(p.columns) == ['image', *CLASSES] and sorted(p.image) == ['ISIC_0024468', 'PH2_IMD008']
    assert ((p[CLASSES] >= 0) & (p[CLASSES] <= 1)).all().all()
    assert 'cut.jpg' in (tmp_path/'p_skipped.csv').read_text() and '1 skipped' in r.stdout

def test_predict_not_a_model(tmp_path, shared):
    r = cli_here('predict', tmp_path, shared/'lesions'/'images'/'PH2_IMD008.jpg', '--out', tmp_path/'p.csv')
    assert r.returncode == 2 and 'not a model directory' in r.stderr and str(tmp_path) in r.stderr

def test_evaluate_and_ensemble(model, preds, tmp_path):
    syn = model/'syn'
    (tmp_path/'a.csv').write_bytes(preds.read_bytes())
    assert cli('predict', model/'model', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'b.csv', '--tta', 'flips').returncode == 0
    r = cli('evaluate', syn/'labels.csv', tmp_path/'a.csv', '--out', tmp_path/'rep')
    assert r.returncode == 0, r.stderr
    for f in ('metrics.csv', 'metrics.md', 'confusion.png', 'roc.png', 'confused_pairs.csv'): assert (tmp_path/'rep'/f).is_file()
    assert 'Balanced multiclass accuracy' in r.stdout
    r = cli('ensemble', tmp_path/'a.csv', tmp_path/'b.csv', '--select', syn/'labels.csv', '--out', tmp_path/'e.csv')
    assert r.returncode == 0 and 'greedy selection' in r.stdout
    assert len(pd.read_csv(tmp_path/'e.csv')) == len(pd.read_csv(tmp_path/'a.csv'))
    r = cli('ensemble', tmp_path/'a.csv', tmp_path/'b.csv', preds, '--select', syn/'labels.csv', '--search', 'exhaustive', '--metric', 'macro_auc',
            '--out', tmp_path/'x.csv')
    assert r.returncode == 0 and 'exhaustive selection' in r.stdout and 'optimistic' in r.stdout, r.stderr
    sel = json.loads((tmp_path/'x_selection.json').read_text())
    assert sel['metric'] == 'macro_auc' and sel['chosen_on']['images'] == len(pd.read_csv(syn/'labels.csv'))
    assert len(pd.read_csv(tmp_path/'x_subsets.csv')) == 7                       # 3 members: 3 + 3 + 1 subsets
    r = cli('ensemble', tmp_path/'a.csv', tmp_path/'b.csv', '--select', syn/'labels.csv', '--search', 'exhaustive', '--max-size', '0', '--out', tmp_path/'y.csv')
    assert r.returncode != 0 and 'choose at least 1 member' in r.stderr and r.stderr.count('\n') <= 2, r.stderr

@pytest.mark.parametrize('change,message', [
    (lambda p: p.drop(columns='MEL'), "missing class column(s) ['MEL']"),
    (lambda p: p.assign(NV=np.nan), 'missing value(s)'),
    (lambda p: p.assign(NV=2.), 'outside [0, 1]'),
    (lambda p: pd.concat([p, p.head(1)]), 'duplicate image id(s)'),
    (lambda p: p.assign(extra=1.), "extra column(s) ['extra']"),
    (lambda p: pd.concat([p, p.head(1).assign(image='ISIC_9999999')]), "1 image id(s) not in the truth"),
])
def test_evaluate_bad_predictions(model, preds, tmp_path, change, message):
    syn = model/'syn'
    change(pd.read_csv(preds)).to_csv(tmp_path/'bad.csv', index=False)
    r = cli_here('evaluate', syn/'labels.csv', tmp_path/'bad.csv', '--out', tmp_path/'rep')
    assert r.returncode == 2 and message in r.stderr and 'bad.csv' in r.stderr and 'Traceback' not in r.stderr

def test_explain_images_and_confused_pairs(model, tmp_path, shared):
    img = shared/'lesions'/'images'/'PH2_IMD008.jpg'
    r = cli('explain', model/'model', img, tmp_path/'missing.jpg', '--method', 'gradcam', '--out', tmp_path/'ex')
    assert r.returncode == 0, r.stderr
    page = (tmp_path/'ex'/'index.html').read_text()
    assert page.count('<img') == 1 and 'missing.jpg' in page and 'skipped' in page
    r = cli('explain', model/'model', '--confused', model/'syn'/'labels.csv', '--images-dir', model/'syn'/'images', '--top', '2', '--out', tmp_path/'gal')
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path/'gal').glob('confused_*.png'))) == 2

@pytest.mark.parametrize('args,message', [
    (['--method', 'lime'], "unknown method 'lime'"),
    (['--target', 'tumour'], "class 'tumour' is not one of the model's classes"),   # codes and names are accepted (issue 19)
    (['--layer', '0.model.nope'], "no layer '0.model.nope'"),
])
def test_explain_bad_options(model, tmp_path, shared, args, message):
    r = cli_here('explain', model/'model', shared/'lesions'/'images'/'PH2_IMD008.jpg', '--out', tmp_path/'ex', *args)
    assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr
