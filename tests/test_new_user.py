"""What a new user hit (issue 19), one test per item: each failed on the release before the fix."""
import io, json, os, re, signal, socket, subprocess, sys, time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
import httpx, numpy as np, pandas as pd, pytest
from PIL import Image
from conftest import cli, cli_here, ROOT
from test_serve import serving
from lesion_analysis.core import CLASSES, LesionDataError
from lesion_analysis.synthetic import make_synthetic
from lesion_analysis.datasets import read_table
from lesion_analysis.train import train, Recipe

EXE = str(Path(sys.executable).parent/'lesion-analysis')

@pytest.fixture(scope='module')
def data(tmp_path_factory):
    "Synthetic images with very unequal classes (so that prior rescaling changes some answers), and a model trained on them."
    d = tmp_path_factory.mktemp('user')
    df = make_synthetic(d/'syn', n_per_class=3, size=48, seed=11)
    nv = make_synthetic(d/'nv', n_per_class=24, size=48, classes=['NV'], seed=12)
    table = pd.concat([df, nv.assign(image=[f'../../nv/images/{i}' for i in nv.image])], ignore_index=True)
    table.to_csv(d/'syn'/'table.csv', index=False)
    train(read_table(d/'syn'/'table.csv', images=d/'syn'/'images'), d/'model', Recipe(size=48, bs=16, freeze_epochs=0, epochs=1, lr=1e-3))
    return d

def images(data, n=6) -> list:
    return sorted((data/'syn'/'images').glob('*.jpg'))[:n]

# 1. EXIF orientation
def test_exif_orientation_is_honoured_by_predict_and_the_service(data, tmp_path):
    from fastapi.testclient import TestClient
    from lesion_analysis.serve import create_app
    src = np.asarray(Image.open(images(data)[0]).resize((64, 48)))
    Image.fromarray(src).save(tmp_path/'upright.png')
    exif = Image.Exif(); exif[0x0112] = 6                       # stored turned a quarter, to be shown turned back
    Image.fromarray(src).transpose(Image.Transpose.ROTATE_90).save(tmp_path/'sideways.png', exif=exif)
    r = cli('predict', data/'model', tmp_path/'upright.png', tmp_path/'sideways.png', '--out', tmp_path/'p.csv')
    assert r.returncode == 0, r.stderr
    p = pd.read_csv(tmp_path/'p.csv').set_index('image')[CLASSES]
    np.testing.assert_allclose(p.loc['sideways'], p.loc['upright'], atol=1e-5)
    client = TestClient(create_app(data/'model'))
    answers = [client.post('/predict', files={'file': (f.name, f.read_bytes(), 'image/png')}).json()['probabilities']
               for f in (tmp_path/'upright.png', tmp_path/'sideways.png')]
    assert answers[0] == pytest.approx(answers[1], abs=1e-5)

# 2. a stale <out>.parts folder
def test_partitions_of_another_job_are_not_reused(data, tmp_path):
    from lesion_analysis.infer import open_parts, write_part
    imgs = images(data)
    out = tmp_path/'p.csv'
    fake = pd.DataFrame({'image': [str(p) for p in imgs[:3]], **{c: 1. / 9 for c in CLASSES}})
    write_part(open_parts(out, 'another job'), 0, (fake, [], []))   # left by an interrupted run of some other model
    r = cli('predict', data/'model', *imgs, '--out', out)
    assert r.returncode == 0, r.stderr
    assert 'another prediction run' in r.stderr and 'starting afresh' in r.stderr
    assert cli('predict', data/'model', *imgs, '--out', tmp_path/'fresh.csv').returncode == 0
    pd.testing.assert_frame_equal(pd.read_csv(out), pd.read_csv(tmp_path/'fresh.csv'))
    assert not Path(f'{out}.parts').exists()

# 3. a folder with a sub-folder; a label column prediction does not need
def test_predict_reads_a_folder_as_its_images(data, tmp_path):
    folder = tmp_path/'in'; (folder/'old').mkdir(parents=True)
    a, b = images(data, 2)
    (folder/'top.jpg').write_bytes(a.read_bytes()); (folder/'old'/'inside.jpg').write_bytes(b.read_bytes())
    r = cli('predict', data/'model', folder, '--out', tmp_path/'p.csv')
    assert r.returncode == 0, r.stderr
    assert pd.read_csv(tmp_path/'p.csv').image.tolist() == ['top'] and '1 images predicted' in r.stdout
    assert cli('predict', data/'model', folder, '--recursive', '--out', tmp_path/'r.csv').returncode == 0
    assert sorted(pd.read_csv(tmp_path/'r.csv').image) == ['inside', 'top']
    pd.DataFrame({'image': ['top.jpg'], 'label': ['old']}).to_csv(tmp_path/'t.csv', index=False)
    r = cli('predict', data/'model', tmp_path/'t.csv', '--images', folder, '--out', tmp_path/'t_p.csv')
    assert r.returncode == 0, r.stderr

# 4. explain shows what predict reports
def test_explain_explains_the_predicted_class(data, tmp_path):
    from lesion_analysis.infer import Classifier, predict
    from lesion_analysis.interpret import explain
    clf = Classifier(data/'model')
    df = pd.DataFrame({'image': [str(p) for p in images(data, 12)]})
    reported = predict(clf, df, progress=False)
    raw = predict(clf, df, progress=False, rescale=False)
    assert (reported[clf.classes].to_numpy().argmax(1) != raw[clf.classes].to_numpy().argmax(1)).any(), "rescaling changes some answers here"
    for p, row in zip(df.image, reported[clf.classes].to_numpy()):
        e = explain(clf, p)
        assert e['target'] == clf.classes[row.argmax()]
        assert e['probs'][e['target']] == pytest.approx(row.max(), abs=1e-4)

# 5. large uploads: bounded memory and answer
def test_large_uploads_are_decoded_at_reduced_scale(data, tmp_path):
    small = Image.open(images(data)[0]).resize((300, 300))
    big = io.BytesIO(); small.resize((9000, 9000), Image.BILINEAR).save(big, 'JPEG', quality=90)
    body = big.getvalue()
    with serving(data/'model') as (url, proc):
        status = lambda: Path(f'/proc/{proc.pid}/status').read_text()
        before = int(re.search(r'VmHWM:\s+(\d+)', status())[1])
        def send(_):
            return httpx.post(url + '/predict', files={'file': ('big.jpg', body, 'image/jpeg')}, data={'gradcam': 'true'}, timeout=300)
        with ThreadPoolExecutor(4) as pool: answers = list(pool.map(send, range(4)))
        peak = int(re.search(r'VmHWM:\s+(\d+)', status())[1])
    assert all(a.status_code == 200 for a in answers), answers[0].text[:300]
    assert max(len(a.content) for a in answers) < 2_000_000                  # the overlay comes back at a bounded size
    assert (peak - before) / 1024 < 600, f"peak memory grew by {(peak - before) / 1024:.0f} MB for four 9000x9000 uploads"

# 6. uploads that try the service
def test_uploads_that_try_the_service(data, tmp_path):
    from fastapi.testclient import TestClient
    from lesion_analysis.serve import create_app
    jpg = images(data)[0].read_bytes()
    client = TestClient(create_app(data/'model', max_upload_mb=1))
    r = client.post('/predict', files=[('file', ('a.jpg', jpg, 'image/jpeg')), ('file', ('b.jpg', jpg, 'image/jpeg'))])
    assert r.status_code == 400 and "2 'file' fields" in r.json()['error']
    def chunks():                                              # no length given, 30 MiB in all
        for _ in range(30): yield b'x' * 2**20
    r = client.post('/predict', content=chunks(), headers={'content-type': 'multipart/form-data; boundary=b'})
    assert r.status_code == 413
    evil = '<img src=x onerror=alert(1)>.jpg'
    r = client.post('/predict', files={'file': (evil, b'not an image', 'image/jpeg')})
    assert r.status_code == 400 and evil not in r.text
    assert evil not in client.get('/').text
    with serving(data/'model', '--upload-timeout', '2') as (url, _):
        host, port = url.split('//')[1].split(':')
        with socket.create_connection((host, int(port)), timeout=20) as s:
            s.sendall(b'POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=b\r\nContent-Length: 100000\r\n\r\n--b\r\n')
            t0 = time.time(); reply = s.recv(4096).decode(errors='replace')
        assert ' 408 ' in reply.split('\r\n')[0] and time.time() - t0 < 15

# 7. a malformed model directory
@pytest.mark.parametrize('damage,message', [
    (lambda d: (d/'model.safetensors').write_bytes((d/'model.safetensors').read_bytes()[:4000]), 'model.safetensors: modified or truncated'),
    (lambda d: (d/'config.json').write_text('[1, 2, 3]'), 'a JSON list where an object is expected'),
    (lambda d: (d/'config.json').write_text(json.dumps({k: v for k, v in json.loads((d/'config.json').read_text()).items() if k != 'classes'})), 'no classes'),
])
def test_a_malformed_model_directory_is_one_line(data, tmp_path, damage, message):
    import shutil
    m = tmp_path/'m'; shutil.copytree(data/'model', m); damage(m)
    for args in (['predict', m, images(data)[0], '--out', tmp_path/'p.csv'], ['explain', m, images(data)[0], '--out', tmp_path/'e'],
                 ['serve', m, '--port', '1']):
        r = (cli if args[0] == 'serve' else cli_here)(*args)  # a service that failed to refuse would not return
        assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr, (args[0], r.stderr[-500:])
        assert len(r.stderr.strip().splitlines()) == 1

# 8. every skipped input is reported; nothing predicted is an error
def test_skipped_inputs_are_reported_at_every_stage(data, tmp_path):
    folder = tmp_path/'in'; folder.mkdir()
    (folder/'good.jpg').write_bytes(images(data)[0].read_bytes())
    (folder/'empty.jpg').write_bytes(b''); (folder/'loop.jpg').symlink_to(folder/'loop.jpg')
    r = cli('predict', data/'model', folder, '--out', tmp_path/'p.csv')
    assert r.returncode == 0 and '2 skipped' in r.stdout, r.stdout + r.stderr
    skipped = pd.read_csv(tmp_path/'p_skipped.csv')
    assert sorted(Path(p).name for p in skipped.image) == ['empty.jpg', 'loop.jpg'] and skipped.reason.notna().all()
    r = cli('predict', data/'model', folder/'empty.jpg', folder/'loop.jpg', '--out', tmp_path/'none.csv')
    assert r.returncode == 2 and 'nothing predicted' in r.stderr and not (tmp_path/'none.csv').exists()
    r = cli('explain', data/'model', folder/'good.jpg', folder/'empty.jpg', folder/'loop.jpg', '--out', tmp_path/'e')
    assert r.returncode == 0 and '1 images explained' in r.stdout and '2 skipped' in r.stdout, r.stdout + r.stderr
    segmenter = ROOT/'tests'/'legacy'/'segmenter'
    r = cli('segment', segmenter, folder, '--out', tmp_path/'masks', '--tta', 'none')
    assert r.returncode == 0 and '2 skipped' in r.stdout, r.stdout + r.stderr
    assert sorted(Path(p).name for p in pd.read_csv(tmp_path/'masks'/'skipped.csv').image) == ['empty.jpg', 'loop.jpg']
    r = cli('segment', segmenter, folder/'empty.jpg', '--out', tmp_path/'none', '--tta', 'none')
    assert r.returncode == 2 and 'nothing segmented' in r.stderr

# 9. Ctrl-C
def test_ctrl_c_is_one_line_and_exit_130(data, tmp_path):
    p = subprocess.Popen([EXE, 'train', data/'syn'/'table.csv', '--images', data/'syn'/'images', '--out', tmp_path/'m', '--size', '48',
                          '--epochs', '5000', '--lr', '1e-3'], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as from a terminal, even when pytest runs in the background
    time.sleep(12); p.send_signal(signal.SIGINT)  # long before 5000 epochs are done, however fast the machine
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err[-2000:]
    assert 'Traceback' not in err and len(err.strip().splitlines()) == 1 and 'interrupted' in err
    assert not (tmp_path/'m'/'config.json').exists()           # no half-finished model a later command would take

# 10. command-line errors speak command-line; train can skip; a semicolon table
def test_errors_speak_the_command_line(data, tmp_path):
    t = pd.read_csv(data/'syn'/'table.csv')
    pd.concat([t, t.head(1).assign(image='missing.jpg')]).to_csv(tmp_path/'t.csv', index=False)
    r = cli('train', tmp_path/'t.csv', '--images', data/'syn'/'images', '--out', tmp_path/'m', '--size', '48', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-3')
    assert r.returncode == 2 and '--skip-missing' in r.stderr and '=True' not in r.stderr
    r = cli('train', tmp_path/'t.csv', '--images', data/'syn'/'images', '--out', tmp_path/'m', '--size', '48', '--epochs', '1', '--freeze-epochs', '0',
            '--lr', '1e-3', '--skip-missing')
    assert r.returncode == 0, r.stderr
    assert 'missing.jpg' in (tmp_path/'m'/'skipped.csv').read_text()
    r = cli('train', data/'syn'/'table.csv', '--images', data/'syn'/'images', '--out', tmp_path/'m')
    assert r.returncode == 2 and '--force' in r.stderr and 'force=True' not in r.stderr
    (tmp_path/'semi.csv').write_text('image;site\n' + '\n'.join(f'{i};back' for i in t.image[:6]))
    r = cli('predict', data/'model', tmp_path/'semi.csv', '--images', data/'syn'/'images', '--out', tmp_path/'s.csv')
    assert r.returncode == 0 and len(pd.read_csv(tmp_path/'s.csv')) == 6, r.stderr

# 11. outputs follow the umask
def test_outputs_follow_the_umask(data, tmp_path):
    r = subprocess.run([EXE, 'predict', data/'model', images(data)[0], '--out', tmp_path/'p.csv'], capture_output=True, text=True,
                       preexec_fn=lambda: os.umask(0o022))
    assert r.returncode == 0, r.stderr
    assert (tmp_path/'p.csv').stat().st_mode & 0o777 == 0o644
    assert all(f.stat().st_mode & 0o777 == 0o644 for f in (data/'model').iterdir() if f.is_file())   # written under pytest's umask 022

# 12. help and usage errors are fast
def test_help_answers_in_well_under_a_second():
    for args in (['--help'], ['predict']):
        t0 = time.perf_counter(); r = subprocess.run([EXE, *args], capture_output=True, text=True)
        assert time.perf_counter() - t0 < 1.0 and r.returncode in (0, 2)

# 13. quiet logs when not on a terminal
def test_logs_are_quiet_off_a_terminal(data, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'PYTHONWARNINGS'}
    r = subprocess.run([EXE, 'train', data/'syn'/'table.csv', '--images', data/'syn'/'images', '--out', tmp_path/'m', '--size', '48',
                        '--epochs', '1', '--freeze-epochs', '1'], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    log = r.stdout + r.stderr
    assert '\r' not in log and '█' not in log, log[-500:]
    assert 'Warning' not in r.stderr, r.stderr[-1500:]

# 14. class names as people write them
def test_class_names_people_use(data, tmp_path):
    t = pd.read_csv(data/'syn'/'labels.csv')
    t.assign(label=t.label.map({'BKL': 'benign keratosis', 'MEL': 'Melanoma', 'NV': 'melanocytic nevus'}).fillna(t.label)).to_csv(tmp_path/'t.csv', index=False)
    r = cli('index', '--table', tmp_path/'t.csv', '--out', tmp_path/'i.csv')
    assert r.returncode == 0, r.stderr
    assert set(pd.read_csv(tmp_path/'i.csv').label) == set(t.label)
    r = cli('explain', data/'model', images(data)[0], '--target', 'melanoma', '--out', tmp_path/'e')
    assert r.returncode == 0 and 'for <b>MEL</b>' in (tmp_path/'e'/'index.html').read_text(), r.stderr

# 15. the demo: a proportionate learning-rate finder, outputs outside the checkout
def test_demo_finder_and_default_folder(data, tmp_path):
    from lesion_analysis.data import lesion_dls
    from lesion_analysis.classify import lesion_learner
    from lesion_analysis.train import run_lr_find
    from lesion_analysis.cli import parser
    learn = lesion_learner(lesion_dls(read_table(data/'syn'/'table.csv', images=data/'syn'/'images'), size=48, bs=16, stats=((.5,) * 3, (.5,) * 3)))
    run_lr_find(learn, tmp_path, epochs=5)                     # the demo's 1 frozen + 4 epochs
    assert len(learn.recorder.losses) <= max(20, 5 * len(learn.dls.train)) < 100  # no more than the training itself here, not 100
    assert parser(['demo']).parse_args(['demo']).out is None   # the demo writes into a new temporary folder, not the checkout
    assert 'measured' in (ROOT/'README.md').read_text().split('lesion-analysis demo')[0][-400:]

# 16. a model directory holds what the model needs
def test_model_directory_holds_what_it_needs(data, tmp_path):
    assert sorted(f.name for f in (data/'model').iterdir()) == ['config.json', 'history.csv', 'history.png', 'model.safetensors', 'ood.safetensors', 'valid_preds.csv']
    r = cli('train', data/'syn'/'table.csv', '--images', data/'syn'/'images', '--out', tmp_path/'m', '--size', '48', '--epochs', '1',
            '--freeze-epochs', '0', '--lr', '1e-3', '--export-pickle')
    assert r.returncode == 0 and (tmp_path/'m'/'export.pkl').is_file(), r.stderr

# 17. the README's Python example outside the checkout
def test_shared_data_not_found_is_a_clear_message(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != 'LESION_ANALYSIS_SHARED'}
    r = subprocess.run([sys.executable, '-c', "from lesion_analysis.core import shared_data\nshared_data('lesions')"], capture_output=True,
                       text=True, cwd=tmp_path, env=env)
    assert r.returncode == 1 and 'LesionDataError' in r.stderr and 'set LESION_ANALYSIS_SHARED' in r.stderr and 'TypeError' not in r.stderr

# 18. plots say what they show; guided Grad-CAM is readable; a CPU-only install is documented
def test_plots_and_install_docs(data):
    import matplotlib; matplotlib.use('Agg')
    from lesion_analysis.metrics import plot_confusion
    from lesion_analysis.infer import Classifier
    from lesion_analysis.interpret import explain, explanation_figure
    truth = pd.DataFrame({'image': ['a', 'b', 'c'], 'MEL': [1., 1., 0.], 'NV': [0., 0., 1.]})
    preds = pd.DataFrame({'image': ['a', 'b', 'c'], 'MEL': [.9, .2, .1], 'NV': [.1, .8, .9]})
    ax = plot_confusion(truth, preds)
    assert '0.50\n(1)' in [t.get_text() for t in ax.texts] and 'count' in ax.get_title()
    clf = Classifier(data/'model')
    e = explain(clf, images(data)[0], method='gradcam')
    fig = explanation_figure(e, 'gradcam')
    assert len(fig.axes) == 3 and f"gradcam for {e['target']}" in fig.axes[1].get_title()       # image, overlay, colour bar
    g = explain(clf, images(data)[0], method='guided-gradcam')['map']
    assert np.percentile(g[g > 0], 99) > 0.9
    assert 'whl/cpu' in (ROOT/'README.md').read_text()
