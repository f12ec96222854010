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

def test_segmentation_train_and_segment(pairs, tmp_path):
    given = digest([*pd.read_csv(pairs/'pairs.csv').image.unique(), *pd.read_csv(pairs/'pairs.csv')['mask']])
    r = cli('train', pairs/'pairs.csv', '--task', 'segmentation', '--out', tmp_path/'seg', *TINY)
    assert r.returncode == 0, r.stderr
    assert 'validation Jaccard' in r.stdout and '3 pairs skipped' in r.stdout
    reasons = pd.read_csv(tmp_path/'seg'/'skipped.csv').reason.str.cat(sep=' | ')
    assert re.search('but (its )?image', reasons) and 'not a binary mask' in reasons and 'empty mask' in reasons, reasons
    cfg = json.loads((tmp_path/'seg'/'config.json').read_text())
    assert cfg['format'] == 'lesion_analysis.segmenter/1' and cfg['recipe']['loss'] == 'dice_ce'
    imgs = list(pd.read_csv(pairs/'pairs.csv').image[:3])
    r = cli('segment', tmp_path/'seg', *imgs, pairs/'not_there.jpg', '--out', tmp_path/'masks', '--tta', 'flips')
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
