"""The web service: API with the test client, a real server on loopback driven by headless Chromium, and a bounded load test."""
import base64, io, json, os, shutil, socket, statistics, subprocess, sys, time
from contextlib import contextmanager
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx, pytest
from PIL import Image
from conftest import ROOT, ARTIFACTS, browser_page, cli_here
from lesion_analysis.core import CLASSES
from lesion_analysis.synthetic import make_synthetic
from lesion_analysis.datasets import read_table
from lesion_analysis.train import train, Recipe


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    "A small classifier trained in the test."
    d = tmp_path_factory.mktemp('serve'); make_synthetic(d/'data', n_per_class=6, size=64, seed=6)
    train(read_table(d/'data'/'labels.csv', images=d/'data'/'images'), d/'model', Recipe(size=64, bs=16, freeze_epochs=0, epochs=1, lr=1e-3))
    return d/'model'

@pytest.fixture(scope='module')
def server(model):
    "`lesion-analysis serve` on a free loopback port."
    with serving(model) as (url, _): yield url

@contextmanager
def serving(model, *options):
    "Run `lesion-analysis serve MODEL OPTIONS` on a free loopback port, yield its URL and process, then stop it."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    exe = Path(sys.executable).parent/'lesion-analysis'
    proc = subprocess.Popen([str(exe), 'serve', str(model), '--port', str(port), *map(str, options)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}'
    for _ in range(240):
        try:
            if httpx.get(url + '/health', timeout=1).status_code == 200: break
        except httpx.HTTPError: time.sleep(0.5)
    else:
        proc.kill(); pytest.fail(f"the server did not start: {proc.stdout.read()[-3000:]}")
    try: yield url, proc
    finally: proc.terminate(); proc.wait(10)

PROBE = """
import json, sys, threading, time, urllib.request
url, stop, out = sys.argv[1], threading.Event(), []
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
while not stop.is_set():
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(url + '/health', timeout=10) as r: status = r.status
    except Exception as e: status = getattr(e, 'code', repr(e))
    out.append((status, time.perf_counter() - t0))
    time.sleep(0.05)
print(json.dumps(out))
"""

@contextmanager
def health_probe(url):
    "Check `url/health` every 50 ms, each on a new connection as a load balancer does, from another process (so that the load's client threads do not delay the check), until the block ends; yield the list of (status, seconds) it fills then."
    proc, checks = subprocess.Popen([sys.executable, '-c', PROBE, url], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True), []
    try: yield checks
    finally: checks += json.loads(proc.communicate(timeout=30)[0])

def test_api_answers_and_errors(model, shared):
    from fastapi.testclient import TestClient
    from lesion_analysis.serve import create_app
    c = TestClient(create_app(model, max_upload_mb=0.5))
    img = (shared/'lesions'/'images'/'PH2_IMD008.jpg').read_bytes()
    j = c.post('/predict', files={'file': ('a.jpg', img, 'image/jpeg')}, data={'gradcam': 'true'}).json()
    assert list(j['probabilities']) == CLASSES and j['top_class'] in CLASSES and j['model']['arch'] == 'tf_efficientnet_lite0'
    assert Image.open(io.BytesIO(base64.b64decode(j['gradcam_png']))).size == Image.open(io.BytesIO(img)).size
    assert set(j['unk']) >= {'flagged', 'score', 'threshold'}
    for f, status in [(('x.jpg', b'GIF89a' + b'\0' * 20, 'image/gif'), 400), (('y.jpg', img[:1000], 'image/jpeg'), 400),
                      (('z.jpg', b'\xff' * (2**20), 'image/jpeg'), 413)]:
        r = c.post('/predict', files={'file': f})
        assert r.status_code == status and r.json()['error'], (f[0], r.text)
    assert c.get('/model').json()['classes'] and c.get('/openapi.json').status_code == 200

def test_browser_upload_shows_probabilities_and_heatmap(server, shared):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser, page = browser_page(p)
        page.goto(server + '/')
        assert 'not a diagnosis' in page.inner_text('#disclaimer')
        page.set_input_files('#file', str(shared/'lesions'/'images'/'ISIC_0024468.jpg'))
        page.wait_for_selector('#bars .bar', timeout=60_000)
        page.wait_for_function("document.getElementById('heatmap').naturalWidth > 0", timeout=60_000)
        assert page.locator('#bars .bar').count() == 9 and 'Top class' in page.inner_text('#top')
        page.screenshot(path=str(ARTIFACTS/'serve_page.png'), full_page=True)
        browser.close()
    assert (ARTIFACTS/'serve_page.png').stat().st_size > 10_000

def test_browser_metadata_fields(shared, tmp_path):
    "A model with metadata: the page shows its fields, sends them, and says which value it treated as missing."
    from playwright.sync_api import sync_playwright
    from lesion_analysis.datasets import read_padufes
    pad = read_padufes(shared/'padufes'/'metadata.csv', images=shared/'padufes'/'images').groupby('label').head(10).reset_index(drop=True)
    train(pad, tmp_path/'fusion', Recipe(size=48, bs=16, freeze_epochs=0, epochs=1, lr=1e-3, metadata='age,sex,site'))
    with serving(tmp_path/'fusion') as (url, _):
        with sync_playwright() as p:
            browser, page = browser_page(p)
            page.goto(url + '/')
            page.wait_for_selector('#meta select[name=site]', timeout=30_000)
            page.fill('#meta input[name=age]', '150')
            page.select_option('#meta select[name=sex]', 'female')
            page.set_input_files('#file', pad.image[0])
            page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60_000)
            assert "age='150': outside 0..120: treated as missing" in page.inner_text('#status') and page.locator('#bars .bar').count() == 9
            page.screenshot(path=str(ARTIFACTS/'serve_page_metadata.png'), full_page=True)
            browser.close()

def test_load_200_requests_8_clients(server, shared):
    names = ['ISIC_0024468.jpg', 'PH2_IMD008.jpg', 'ISIC_0000290.jpg', 'ISIC_0024511.jpg']
    imgs = {n: (shared/'lesions'/'images'/n).read_bytes() for n in names}
    post = lambda cl, n: cl.post(server + '/predict', files={'file': (n, imgs[n], 'image/jpeg')}, timeout=120)
    with httpx.Client() as cl: single = {n: post(cl, n).json()['probabilities'] for n in names}
    def one(i):
        n = names[i % len(names)]
        with httpx.Client() as cl:
            t0 = time.perf_counter(); r = post(cl, n); dt = time.perf_counter() - t0
        return n, r.status_code, (r.json()['probabilities'] if r.status_code == 200 else r.text), dt
    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool: res = list(pool.map(one, range(200)))
    wall = time.perf_counter() - t0
    errors = [r for r in res if r[1] != 200]
    assert not errors, errors[:3]
    for n, _, probs, _ in res:
        assert all(abs(probs[c] - single[n][c]) < 1e-5 for c in CLASSES), n
    lat = sorted(r[3] for r in res)
    figures = dict(requests=200, clients=8, errors=0, p50_ms=round(1000 * statistics.median(lat), 1),
                   p95_ms=round(1000 * lat[int(0.95 * len(lat)) - 1], 1), requests_per_s=round(200 / wall, 1))
    ARTIFACTS.mkdir(exist_ok=True); (ARTIFACTS/'serve_load.json').write_text(json.dumps(figures, indent=2))
    print(figures)

@pytest.fixture(scope='module')
def exported(model, tmp_path_factory):
    "The small classifier exported for ONNX Runtime with `lesion-analysis export`."
    from conftest import cli
    out = tmp_path_factory.mktemp('export')/'onnx'
    r = cli('export', model, '--out', out)
    assert r.returncode == 0 and 'exported' in r.stdout, r.stderr
    return out

def test_export_onnx_predicts_and_serves_as_pytorch(model, exported, shared, tmp_path):
    "An exported model directory: `predict` and the service run it in ONNX Runtime with PyTorch's answers; what it cannot do is refused clearly."
    from fastapi.testclient import TestClient
    from conftest import cli
    from lesion_analysis.serve import create_app
    images = [shared/'lesions'/'images'/f for f in ('PH2_IMD008.jpg', 'PH2_IMD002.jpg', 'PH2_IMD006.jpg')]
    for m, name in ((model, 'torch.csv'), (exported, 'onnx.csv')):
        r = cli('predict', m, *images, '--tta', 'flips', '--out', tmp_path/name)
        assert r.returncode == 0, r.stderr
    import pandas as pd
    a, b = (pd.read_csv(tmp_path/f).set_index('image') for f in ('torch.csv', 'onnx.csv'))
    assert len(a) == 3 and (a - b).abs().to_numpy().max() < 1e-4
    img = images[0].read_bytes()
    answers = [TestClient(create_app(m)).post('/predict', files={'file': ('a.jpg', img, 'image/jpeg')}, data={'tta': 'paper'}).json() for m in (model, exported)]
    info = TestClient(create_app(exported)).get('/model').json()
    assert info['compute']['runtime'] == 'onnx' and info['explanations'] is False
    assert max(abs(answers[0]['probabilities'][c] - answers[1]['probabilities'][c]) for c in CLASSES) < 1e-4
    r = TestClient(create_app(exported)).post('/predict', files={'file': ('a.jpg', img, 'image/jpeg')}, data={'gradcam': 'true'})
    assert r.status_code == 422 and 'ONNX Runtime computes no gradients' in r.json()['error']
    for args, message in (((tmp_path, '--out', tmp_path/'x'), 'not a model directory'),
                          ((model, '--out', tmp_path/'x', '--quantize', 'int8'), 'give some with --calibration'),
                          ((model, '--out', exported), 'already holds a model')):
        r = cli_here('export', *args)
        assert r.returncode == 2 and message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr

def test_browser_exported_model_with_api_key(exported, shared, tmp_path):
    "The page on an exported model behind an API key: it asks for the key, sends it, shows the probabilities and says why there is no Grad-CAM."
    from playwright.sync_api import sync_playwright
    key = tmp_path/'key'; key.write_text('k' * 32 + '\n')
    with serving(exported, '--api-key-file', key) as (url, _), sync_playwright() as p:
        browser, page = browser_page(p)
        page.goto(url + '/')
        page.wait_for_selector('#keyrow:not([hidden])', timeout=30_000)
        assert 'ONNX Runtime' in page.inner_text('#maphead')
        page.set_input_files('#file', str(shared/'lesions'/'images'/'ISIC_0024468.jpg'))
        page.wait_for_selector('#status.error', timeout=60_000)
        assert 'API key is required' in page.inner_text('#status')
        page.fill('#key', 'k' * 32)
        page.set_input_files('#file', str(shared/'lesions'/'images'/'PH2_IMD008.jpg'))
        page.wait_for_function("document.getElementById('status').textContent.startsWith('done')", timeout=60_000)
        assert page.locator('#bars .bar').count() == 9 and 'Top class' in page.inner_text('#top')
        page.screenshot(path=str(ARTIFACTS/'serve_page_onnx_key.png'), full_page=True)
        browser.close()

def test_overload_is_shed_and_health_answers(model, shared, tmp_path):
    "64 clients sending paper-TTA requests at once to a queue of 8: the excess is answered 503 with Retry-After, the served stay within seconds, /health within a second throughout."
    img = (shared/'lesions'/'images'/'PH2_IMD008.jpg').read_bytes()
    with serving(model, '--max-queue', '8') as (url, _):
        def one(i):
            t0 = time.perf_counter()
            r = httpx.post(url + '/predict', files={'file': ('x.jpg', img, 'image/jpeg')}, data={'tta': 'paper'}, timeout=120)
            return r.status_code, r.headers.get('retry-after'), time.perf_counter() - t0
        with health_probe(url) as health, ThreadPoolExecutor(64) as pool: res = list(pool.map(one, range(128)))
    served, shed = [r for r in res if r[0] == 200], [r for r in res if r[0] == 503]
    assert served and shed and len(served) + len(shed) == len(res), {r[0] for r in res}
    assert all(r[1] == '1' for r in shed)
    lat = sorted(r[2] for r in served)
    figures = dict(clients=64, requests=len(res), served=len(served), shed=len(shed), served_p50_s=round(statistics.median(lat), 2),
                   served_p95_s=round(lat[int(.95 * len(lat)) - 1], 2), health_max_s=round(max((d for _, d in health), default=float('inf')), 3), health_checks=len(health))
    ARTIFACTS.mkdir(exist_ok=True); (ARTIFACTS/'serve_overload.json').write_text(json.dumps(figures, indent=2)); print(figures)
    assert figures['served_p95_s'] < 10 and figures['health_max_s'] < 1 and len(health) >= 5 and all(s == 200 for s, _ in health), health
