"`lesion-analysis evaluate` with a model: the HTML report rendered in headless Chromium, the temperature and the out-of-distribution score through predict and serve, and bad inputs."
import json, shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest
from conftest import cli, synthetic, train_command, ARTIFACTS, browser_page

@pytest.fixture(scope='module')
def run(tmp_path_factory):
    "A tiny model trained on synthetic images with metadata, and its predictions of its labelled images."
    syn = synthetic(tmp_path_factory, n_per_class=6, seed=5)
    labels = pd.read_csv(syn/'labels.csv').query("label != 'UNK'")   # a model without an UNK class flags UNK by its score
    rng = np.random.default_rng(0)
    labels.assign(sex=rng.choice(['female', 'male', ''], len(labels)), age=rng.choice([30, 50, 70, np.nan], len(labels))).to_csv(syn/'labels.csv', index=False)
    r = cli(*train_command(syn, syn/'model', ['--size', '40', '--bs', '16', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-3']))
    assert r.returncode == 0, r.stderr
    r = cli('predict', syn/'model', syn/'labels.csv', '--images', syn/'images', '--out', syn/'preds.csv')
    assert r.returncode == 0, r.stderr
    return syn

def far_images(shared, tmp_path, n=6) -> Path:
    "A folder of `n` PAD-UFES-20 smartphone photos (a modality the model never saw)."
    d = tmp_path/'far'; d.mkdir()
    for p in sorted((shared/'padufes'/'images').glob('*.jpg'))[:n]: shutil.copy(p, d/p.name)
    return d

def test_report_renders_in_chromium(run, shared, tmp_path):
    out = tmp_path/'report'
    r = cli('evaluate', run/'labels.csv', run/'preds.csv', '--out', out, '--model', run/'model', '--images', run/'images',
            '--ood', f'smartphone={far_images(shared, tmp_path)}', '--bootstrap', '50')
    assert r.returncode == 0, r.stderr
    s = json.loads((out/'summary.json').read_text())
    assert {'intervals', 'calibration', 'subgroups', 'stability', 'ood'} <= set(s)
    assert [g['subgroup'] for g in s['subgroups']].count('sex') == 3                      # female, male and missing
    assert s['ood']['model_default'] and len(s['ood']['table']) == 5
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser, page = browser_page(p)
        requests = []
        page.on('request', lambda q: requests.append(q.url))
        page.goto((out/'report.html').as_uri())
        imgs = page.eval_on_selector_all('img', 'els => els.map(e => [e.alt, e.complete && e.naturalWidth > 0])')
        assert len(imgs) == 5 and all(ok for _, ok in imgs), imgs
        assert [h for h in page.eval_on_selector_all('h2', 'els => els.map(e => e.textContent)')][:4] == [
            'Headline figures (95% lesion-bootstrap intervals)', 'ISIC metric table', 'Confusion and ROC', 'Calibration (15 bins on the top-class confidence)']
        assert all(u.startswith(('file:', 'data:')) for u in requests), requests      # nothing from the network
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS/'evaluation_report.png'), full_page=True)
        browser.close()
    assert (ARTIFACTS/'evaluation_report.png').stat().st_size > 20_000

def test_temperature_and_unk_score_in_predict(run, tmp_path):
    cfg = json.loads((run/'model'/'config.json').read_text())
    assert cfg['calibration']['temperature'] > 0 and cfg['ood']['default']
    outs = {}
    for name, extra in (('calibrated', []), ('uncalibrated', ['--uncalibrated'])):
        r = cli('predict', run/'model', run/'labels.csv', '--images', run/'images', '--out', tmp_path/f'{name}.csv', '--priors', 'keep', '--unk', *extra)
        assert r.returncode == 0, r.stderr
        outs[name] = pd.read_csv(tmp_path/f'{name}.csv').set_index('image')
    a, b = outs['calibrated'], outs['uncalibrated']
    classes = cfg['classes']
    flagged = a.UNK > a[classes].max(axis=1)
    assert (a[classes][~flagged].idxmax(axis=1) == b[classes][~flagged].idxmax(axis=1)).all()   # the temperature moves no top class
    if abs(cfg['calibration']['temperature'] - 1) > 1e-3: assert not np.allclose(a[classes], b[classes])

def test_serve_reports_temperature_and_score(run):
    from fastapi.testclient import TestClient
    from lesion_analysis.serve import create_app
    c = TestClient(create_app(run/'model'))
    info = c.get('/model').json()
    cfg = json.loads((run/'model'/'config.json').read_text())
    assert info['calibration']['temperature'] == pytest.approx(cfg['calibration']['temperature']) and info['unk_rule']['method'] == cfg['ood']['default']
    img = sorted((run/'images').glob('*.jpg'))[0]
    j = c.post('/predict', files={'file': ('x.jpg', img.read_bytes(), 'image/jpeg')}).json()
    assert j['unk']['method'] == cfg['ood']['default'] and j['temperature'] == pytest.approx(cfg['calibration']['temperature'])
    raw = TestClient(create_app(run/'model', calibrated=False, unk_method='mahalanobis')).post('/predict', files={'file': ('x.jpg', img.read_bytes(), 'image/jpeg')}).json()
    assert raw['temperature'] == 1 and raw['unk']['method'] == 'mahalanobis'

@pytest.mark.parametrize('args,message', [
    (['--model', 'MODEL', '--ood', 'nonsense'], "give NAME=INPUTS"),
    (['--ood', 'x=y'], "--ood needs the --model"),
    (['--model', 'MODEL', '--images', 'IMAGES', '--ood', 'x=nowhere/'], "nowhere"),
    (['--model', 'MODEL', '--ood', 'x=IMAGES'], "could be read, e.g. SYN_"),                # image paths relative, no --images
])
def test_evaluate_bad_options(run, tmp_path, args, message):
    r = cli('evaluate', run/'labels.csv', run/'preds.csv', '--out', tmp_path/'r', *[a.replace('MODEL', str(run/'model')).replace('IMAGES', str(run/'images')) for a in args])
    assert r.returncode != 0 and r.stderr.count('\n') <= 2, r.stderr
    assert message in r.stderr

def test_model_without_validation_predictions_says_so(run, tmp_path):
    bare = tmp_path/'bare'; shutil.copytree(run/'model', bare); (bare/'valid_preds.csv').unlink()
    r = cli('evaluate', run/'labels.csv', run/'preds.csv', '--out', tmp_path/'r', '--model', bare, '--images', run/'images',
            '--ood', f'self={run/"images"}', '--bootstrap', '20')
    assert r.returncode == 0, r.stderr
    assert 'an UNK threshold cannot be fitted' in r.stdout
    r = cli('predict', bare, run/'labels.csv', '--images', run/'images', '--out', tmp_path/'p.csv', '--unk')
    assert r.returncode != 0 and 'cannot be fitted' in r.stderr and r.stderr.count('\n') <= 2, r.stderr
