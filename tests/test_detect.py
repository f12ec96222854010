"The lesion detector end to end through the command line: training from a box table with bad rows, detect, lesion-centred crops from the detector's boxes, the service returning the box, and bad input."
import json
import numpy as np, pandas as pd
import pytest
from conftest import cli, cli_here, synthetic

TINY = ['--size', '64', '--bs', '8', '--freeze-epochs', '1', '--epochs', '1', '--lr', '1e-3', '--seed', '0']

@pytest.fixture(scope='module')
def detector(tmp_path_factory):
    "Synthetic images with their boxes, a few bad rows added, and a RetinaNet trained on them."
    syn = synthetic(tmp_path_factory)
    boxes = pd.read_csv(syn/'boxes.csv')
    first = boxes.image[0]
    bad = pd.DataFrame([dict(image=first, x0=30, y0=10, x1=20, y1=30, label='MEL'),        # inverted
                        dict(image=first, x0=5, y0=5, x1=5, y1=9, label='MEL'),            # empty
                        dict(image=first, x0=500, y0=500, x1=600, y1=600, label='MEL'),    # wholly outside the image: dropped when read
                        dict(image=boxes.image[1], x0=-10, y0=-10, x1=30, y1=30, label=boxes.label[1]),  # partly outside: clipped
                        dict(image='missing.jpg', x0=1, y0=1, x1=9, y1=9, label='NV'),
                        dict(image=boxes.image[2], x0=None, y0=None, x1=None, y1=None, label='NV')])
    pd.concat([boxes, bad]).to_csv(syn/'boxes_bad.csv', index=False)
    out = syn.parent/'det'
    r = cli('train', syn/'boxes_bad.csv', '--images', syn/'images', '--task', 'detection', '--out', out, '--cache', syn/'cache', *TINY)
    assert r.returncode == 0, r.stderr[-2000:]
    return syn, out, r.stdout

def test_train_reports_bad_rows_and_figures(detector):
    syn, out, stdout = detector
    assert 'validation mAP@0.5' in stdout and 'top-3' in stdout
    skipped = pd.read_csv(out/'skipped.csv')
    reasons = ' | '.join(skipped.reason)
    assert len(skipped) == 4 and reasons.count('empty or inverted box') == 2 and 'file not found' in reasons and 'a coordinate is missing' in reasons
    cfg = json.loads((out/'config.json').read_text())
    assert cfg['task'] == 'detection' and cfg['recipe']['detector'] == 'retinanet' and set(cfg['valid']) >= {'map_50', 'map', 'mean_iou', 'top1', 'top3'}
    assert cfg['boxes']['dropped'] == 1 and 'model.safetensors' in cfg['sha256']  # the box wholly outside its image
    vd = pd.read_csv(out/'valid_detections.csv')
    assert len(vd) == cfg['valid']['images'] and vd.iou.between(0, 1).all()

def test_detect_writes_boxes_and_overlays(detector, tmp_path):
    syn, out, _ = detector
    (tmp_path/'in').mkdir()
    imgs = sorted((syn/'images').glob('*.jpg'))[:4]
    for p in imgs: (tmp_path/'in'/p.name).write_bytes(p.read_bytes())
    (tmp_path/'in'/'broken.jpg').write_bytes(b'not a jpeg')
    r = cli('detect', out, tmp_path/'in', '--out', tmp_path/'found', '--min-score', '0')
    assert r.returncode == 0, r.stderr[-2000:]
    assert '4 images' in r.stdout and '1 skipped' in r.stdout
    found = pd.read_csv(tmp_path/'found'/'detections.csv')
    assert set(found.image.map(lambda p: p.split('/')[-1])) == {p.name for p in imgs}
    top = found[found['rank'] == 0]
    assert len(top) == 4 and (top.x0 < top.x1).all() and (top.x1 <= 40).all() and top.label.isin(json.loads((out/'config.json').read_text())['classes']).all()
    assert len(list((tmp_path/'found').glob('*_boxes.jpg'))) == 4 and 'broken.jpg' in pd.read_csv(tmp_path/'found'/'skipped.csv').image[0]

def test_detector_feeds_lesion_crops_and_the_service(detector, tmp_path):
    syn, out, _ = detector
    r = cli('train', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'crops', '--cache', syn/'cache', '--lesion-margin', '0.2',
            '--segmenter', out, '--size', '40', '--bs', '16', '--freeze-epochs', '0', '--epochs', '1', '--lr', '1e-3')
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads((tmp_path/'crops'/'config.json').read_text())['preprocess']['lesion_margin'] == 0.2
    from fastapi.testclient import TestClient
    from lesion_analysis.serve import create_app
    client = TestClient(create_app(tmp_path/'crops', segmenter=out))
    img = sorted((syn/'images').glob('*.jpg'))[0].read_bytes()
    j = client.post('/predict', files={'file': ('x.jpg', img, 'image/jpeg')}).json()
    assert {'x0', 'y0', 'x1', 'y1', 'lesion_label', 'lesion_score'} <= set(j['lesion']) and j['lesion']['x1'] <= 40
    alone = TestClient(create_app(out))  # the detector served on its own: its boxes, the top box's class, the boxes drawn
    assert alone.get('/model').json()['task'] == 'detection'
    j = alone.post('/predict', files={'file': ('x.jpg', img, 'image/jpeg')}, data={'gradcam': 'true'}).json()
    assert j['boxes'] and j['top_class'] == j['boxes'][0]['label'] and j['top_probability'] == j['boxes'][0]['score'] and j['gradcam_png']
    assert all(0 <= b['x0'] < b['x1'] <= 40 for b in j['boxes']) and 'not probabilities' in j['scores_are']

def test_detection_bad_input(detector, tmp_path):
    syn, out, _ = detector
    pd.DataFrame([dict(image='x.jpg', x0=1, y0=1, x1=0, y1=5, label='MEL')]).to_csv(tmp_path/'all_bad.csv', index=False)
    img = sorted((syn/'images').glob('*.jpg'))[0]
    for args, message in [(['predict', out, img, '--out', tmp_path/'p.csv'], 'holds a detection model, not a classification or binary model'),
                          (['explain', out, img, '--out', tmp_path/'e'], 'holds a detection model'),
                          (['detect', syn.parent/'nowhere', img, '--out', tmp_path/'d'], 'not a model directory'),
                          (['train', tmp_path/'all_bad.csv', '--images', syn/'images', '--task', 'detection', '--out', tmp_path/'m', *TINY], 'no usable box'),
                          (['train', syn/'labels.csv', '--images', syn/'images', '--task', 'detection', '--out', tmp_path/'m', *TINY], "missing column(s) ['x0', 'y0', 'x1', 'y1']"),
                          (['train', syn/'boxes.csv', '--images', syn/'images', '--task', 'detection', '--detector', 'yolo', '--out', tmp_path/'m', *TINY], "unknown detector 'yolo'")]:
        r = cli_here(*args)
        assert r.returncode != 0 and message in r.stderr and 'Traceback' not in r.stderr, (args[0], r.stderr[-1500:])
    assert not (tmp_path/'m'/'config.json').exists() and not (tmp_path/'p.csv').exists()
