"`lesion-analysis train --task segmentation`, `segment`, and metadata models through `predict`, end to end, with bad inputs."
import hashlib, json, re
from pathlib import Path
import cv2, numpy as np, pandas as pd, pytest
from conftest import cli

TINY = ['--size', '64', '--bs', '8', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-3']

def digest(files) -> dict: return {str(f): hashlib.md5(Path(f).read_bytes()).hexdigest() for f in files}

@pytest.fixture(scope='module')
def pairs(shared, tmp_path_factory):
    "16 real pairs plus three bad ones: a mask of another size, a non-binary mask, an empty mask."
    d, seg = tmp_path_factory.mktemp('pairs'), shared/'segmentation'
    df = pd.read_csv(seg/'pairs.csv').head(16)
    rows = [dict(image=str(seg/i), mask=str(seg/m), split_group=g) for i, m, g in zip(df.image, df['mask'], df.split_group)]
    h, w = cv2.imread(rows[0]['image']).shape[:2]
    bad = {'wrong_size.png': np.zeros((h + 3, w), np.uint8) + 255, 'photo.png': cv2.imread(rows[0]['image'], cv2.IMREAD_GRAYSCALE),
           'empty.png': np.zeros((h, w), np.uint8)}
    for name, m in bad.items():
        cv2.imwrite(str(d/name), m); rows.append(dict(image=rows[0]['image'], mask=str(d/name), split_group=f'bad_{name}'))
    pd.DataFrame(rows).to_csv(d/'pairs.csv', index=False)
    return d

@pytest.fixture(scope='module')
def seg_model(pairs, tmp_path_factory):
    "`train --task segmentation` on the pairs: the model directory and the training run's output."
    out = tmp_path_factory.mktemp('seg')/'model'
    return out, cli('train', pairs/'pairs.csv', '--task', 'segmentation', '--out', out, *TINY)

def test_segmentation_train_and_segment(pairs, seg_model, tmp_path):
    given = digest([*pd.read_csv(pairs/'pairs.csv').image.unique(), *pd.read_csv(pairs/'pairs.csv')['mask']])
    seg, r = seg_model
    assert r.returncode == 0, r.stderr
    assert 'validation Jaccard' in r.stdout and '3 pairs skipped' in r.stdout
    reasons = pd.read_csv(seg/'skipped.csv').reason.str.cat(sep=' | ')
    assert re.search('but (its )?image', reasons) and 'not a binary mask' in reasons and 'empty mask' in reasons, reasons
    cfg = json.loads((seg/'config.json').read_text())
    assert (cfg['format'], cfg['task'], cfg['model']) == ('lesion_analysis.model/2', 'segmentation', 'unet') and cfg['recipe']['loss'] == 'dice_ce'
    imgs = list(pd.read_csv(pairs/'pairs.csv').image[:3])
    r = cli('segment', seg, *imgs, pairs/'not_there.jpg', '--out', tmp_path/'masks', '--tta', 'flips')
    assert r.returncode == 0, r.stderr
    masks = pd.read_csv(tmp_path/'masks'/'masks.csv')
    assert len(masks) == 3 and {'x0', 'y0', 'x1', 'y1', 'lesion_found'} <= set(masks.columns)
    for img, m in zip(imgs, masks['mask']):
        arr = cv2.imread(m, cv2.IMREAD_UNCHANGED)
        assert arr.shape == cv2.imread(img).shape[:2] and set(np.unique(arr)) <= {0, 255}
        assert Path(m).name == f'{Path(img).stem}_mask.png' and (tmp_path/'masks'/f'{Path(img).stem}_overlay.jpg').is_file()
    assert digest(given) == given  # nothing the user gave was modified

def test_segment_refuses_a_classifier_and_bad_tta(pairs, tmp_path):
    (tmp_path/'m').mkdir()
    img = pd.read_csv(pairs/'pairs.csv').image[0]
    r = cli('segment', tmp_path/'m', img, '--out', tmp_path/'x')
    assert r.returncode == 2 and 'not a model directory' in r.stderr and 'Traceback' not in r.stderr
    r = cli('segment', tmp_path/'m', img, '--out', tmp_path/'x', '--tta', 'rotate')
    assert r.returncode == 2 and 'invalid choice' in r.stderr

def test_metadata_model_predicts_with_bad_metadata(shared, tmp_path):
    pad = shared/'padufes'
    pd.read_csv(pad/'metadata.csv').groupby('diagnostic').head(8).to_csv(tmp_path/'meta.csv', index=False)
    assert cli('index', '--padufes', tmp_path/'meta.csv', '--padufes-images', pad/'images', '--out', tmp_path/'table.csv').returncode == 0
    meta = pd.read_csv(tmp_path/'table.csv')
    r = cli('train', tmp_path/'table.csv', '--metadata', 'auto', '--out', tmp_path/'fusion', *TINY)
    assert r.returncode == 0, r.stderr
    cfg = json.loads((tmp_path/'fusion'/'config.json').read_text())
    assert 'age' in cfg['metadata']['columns'] and cfg['recipe']['meta_dropout'] == 0.3
    known = meta.site.dropna().iloc[0]
    odd = meta.head(4).assign(age=[130, -1, 'old', 50], site=['moon', known, None, known])
    odd.to_csv(tmp_path/'odd.csv', index=False)
    r = cli('predict', tmp_path/'fusion', tmp_path/'odd.csv', '--out', tmp_path/'p.csv')
    assert r.returncode == 0, r.stderr
    assert len(pd.read_csv(tmp_path/'p.csv')) == 4 and 'metadata values treated as missing' in r.stdout
    problems = pd.read_csv(tmp_path/'p_metadata_problems.csv')
    assert set(problems.field) == {'age', 'site'} and len(problems) == 3  # 130, -1, moon ('old' is missing from reading the table on)

def test_lesion_crop_model_is_served_with_its_segmenter(seg_model, shared, tmp_path):
    "A classifier trained on lesion crops found by the segmenter: refused alone, served with it, the lesion box in the answer."
    from fastapi.testclient import TestClient
    from lesion_analysis.core import LesionDataError
    from lesion_analysis.serve import create_app
    from lesion_analysis.synthetic import make_synthetic
    seg, _ = seg_model
    make_synthetic(tmp_path/'syn', n_per_class=5, size=48, seed=2)
    r = cli('train', tmp_path/'syn'/'labels.csv', '--images', tmp_path/'syn'/'images', '--out', tmp_path/'crops',
            '--lesion-margin', '0.2', '--segmenter', seg, *TINY[:2], '--bs', '16', *TINY[4:])
    assert r.returncode == 0, r.stderr
    with pytest.raises(LesionDataError, match='serve it with a segmentation model'): create_app(tmp_path/'crops')
    client = TestClient(create_app(tmp_path/'crops', segmenter=seg))
    photo = (shared/'lesions'/'images'/'ISIC_0024468.jpg').read_bytes()
    j = client.post('/predict', files={'file': ('a.jpg', photo, 'image/jpeg')}, data={'gradcam': 'true'}).json()
    assert {'x0', 'y0', 'x1', 'y1', 'lesion_found'} <= set(j['lesion']) and len(j['gradcam_png']) > 100
    assert client.get('/model').json()['lesion_crops'] is True
