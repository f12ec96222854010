"The lesion-analysis command end to end: help, index on the real label files, bad input, and the demo."
import hashlib, json
from pathlib import Path
import pandas as pd, pytest
from conftest import cli, ROOT

def test_help_lists_subcommands():
    r = cli('--help')
    assert r.returncode == 0
    for sub in ('index', 'demo'): assert sub in r.stdout

from lesion_analysis.cli import COMMANDS

@pytest.mark.parametrize('sub', sorted(COMMANDS))
def test_every_subcommand_has_help(sub):
    r = cli(sub, '--help')
    assert r.returncode == 0 and 'usage: lesion-analysis ' + sub in r.stdout

def test_index_real_formats(shared, tmp_path):
    f = shared/'formats'
    out = tmp_path/'table.csv'
    r = cli('index', '--isic2019', f/'ISIC_2019_Training_GroundTruth.csv', '--isic2019-meta', f/'ISIC_2019_Training_Metadata.csv',
            '--ham10000', f/'HAM10000_metadata.csv', '--ham-akiec', 'isic2019', '--derm7pt', f/'derm7pt_consistent_meta.csv',
            '--valid-pct', '0.2', '--out', out)
    assert r.returncode == 0, r.stderr
    df = pd.read_csv(out)
    assert len(df) == 25_331 + 1_011
    assert df[df.source == 'ISIC-2019'].label.value_counts()['MEL'] == 4_522
    assert 'MEL' in r.stdout and 'derm7pt' in r.stdout and '26342 images written' in r.stdout
    g = df.lesion_id.fillna(df.image)
    assert not set(g[df.is_valid]) & set(g[~df.is_valid])

def _digest(folder):
    return {p: hashlib.md5(p.read_bytes()).hexdigest() for p in Path(folder).rglob('*') if p.is_file()}

@pytest.mark.parametrize('content,problem', [
    ('', 'the file is empty'),
    ('image,label\na.jpg,MEL\na.jpg,NV\n', "duplicate image id(s) ['a.jpg']"),
    ('image,label\na.jpg,melanoma-ish\n', "unknown label(s) ['melanoma-ish']"),
    ('image,diagnosis\na.jpg,x\n', "missing column(s) ['label']"),
    ('image,label\n', 'has a header but no rows'),
])
def test_index_bad_tables(tmp_path, content, problem):
    (tmp_path/'in').mkdir(); bad = tmp_path/'in'/'bad.csv'; bad.write_text(content)
    before = _digest(tmp_path/'in')
    r = cli('index', '--table', bad, '--out', tmp_path/'out.csv')
    assert r.returncode == 2
    assert str(bad) in r.stderr and problem in r.stderr and 'Traceback' not in r.stderr
    assert _digest(tmp_path/'in') == before and not (tmp_path/'out.csv').exists()

def test_index_missing_images_and_skip(shared, tmp_path):
    t = tmp_path/'t.csv'
    pd.DataFrame({'image': ['ISIC_0024468.jpg', 'not_there.jpg'], 'label': ['AK', 'NV']}).to_csv(t, index=False)
    r = cli('index', '--table', t, '--table-images', shared/'lesions'/'images', '--out', tmp_path/'o.csv')
    assert r.returncode == 2 and 'not_there.jpg' in r.stderr and '--skip-missing' in r.stderr  # the command line's own option (issue 19)
    r = cli('index', '--table', t, '--table-images', shared/'lesions'/'images', '--skip-missing', '--out', tmp_path/'o.csv')
    assert r.returncode == 0 and '1 skipped' in r.stdout
    assert len(pd.read_csv(tmp_path/'o.csv')) == 1 and 'not_there.jpg' in (tmp_path/'o_skipped.csv').read_text()

def test_index_folder_without_images(tmp_path):
    (tmp_path/'tree'/'MEL').mkdir(parents=True); (tmp_path/'tree'/'MEL'/'notes.txt').write_text('x')
    r = cli('index', '--folder', tmp_path/'tree', '--out', tmp_path/'o.csv')
    assert r.returncode == 2 and 'no image files found' in r.stderr

def test_index_needs_a_source(tmp_path):
    r = cli('index', '--out', tmp_path/'o.csv')
    assert r.returncode == 2 and 'at least one source' in r.stderr

def test_demo_end_to_end(tmp_path):
    out = tmp_path/'demo'
    r = cli('demo', '--out', out, '--n-per-class', '12', '--size', '64', '--epochs', '2', '--bs', '16')
    assert r.returncode == 0, r.stderr[-2000:]
    m = json.loads((out/'metrics.json').read_text())
    assert m['balanced_accuracy'] > 1 / 9 and m['n_valid'] > 0
    assert 'validation balanced accuracy' in r.stdout
    for f in ('table.csv', 'model/history.csv', 'model/history.png', 'model/model.safetensors', 'model/config.json'): assert (out/f).exists(), f
    assert len(list((out/'data'/'images').glob('*.jpg'))) >= 108 and list((out/'confused').glob('confused_*.png'))
    assert not [p for p in tmp_path.iterdir() if p != out]  # everything under --out

def test_preprocess_folder_with_bad_files(shared, tmp_path):
    src = tmp_path/'in'; src.mkdir()
    names = ['PH2_IMD008.jpg', 'ISIC_0000290.jpg', 'ISIC_0024468.jpg']
    for n in names: (src/n).write_bytes((shared/'lesions'/'images'/n).read_bytes())
    (src/'truncated.jpg').write_bytes((shared/'lesions'/'images'/names[0]).read_bytes()[:600])
    (src/'fake.jpg').write_text('<html>not an image</html>')
    before = _digest(src)
    r = cli('preprocess', src, '--out', tmp_path/'cache', '--size', '96', '--workers', '2')
    assert r.returncode == 0, r.stderr
    assert '3 images' in r.stdout and '2 skipped' in r.stdout
    [cache] = (tmp_path/'cache').iterdir()
    table, skipped = pd.read_csv(cache/'table.csv'), pd.read_csv(cache/'skipped.csv')
    assert sorted(Path(p).name for p in table.original_image) == sorted(names)
    assert set(Path(p).name for p in skipped.image) == {'truncated.jpg', 'fake.jpg'} and skipped.reason.notna().all()
    assert (table[['crop_x1', 'crop_y1']].to_numpy() <= table[['orig_width', 'orig_height']].to_numpy()).all()
    assert _digest(src) == before
    stamps = {p: p.stat().st_mtime_ns for p in cache.glob('*.jpg')}
    assert cli('preprocess', src, '--out', tmp_path/'cache', '--size', '96').returncode == 0
    assert {p: p.stat().st_mtime_ns for p in cache.glob('*.jpg')} == stamps

def test_preprocess_bad_table(tmp_path):
    (tmp_path/'t.csv').write_text('file,label\na.jpg,MEL\n')
    r = cli('preprocess', tmp_path/'t.csv', '--out', tmp_path/'cache')
    assert r.returncode == 2 and "missing column(s) ['image']" in r.stderr and 't.csv' in r.stderr

def test_preprocess_when_every_image_is_bad(tmp_path):
    (tmp_path/'in').mkdir(); (tmp_path/'in'/'fake.jpg').write_text('not an image')
    r = cli('preprocess', tmp_path/'in', '--out', tmp_path/'cache', '--size', '64')
    assert r.returncode == 0, r.stderr
    assert '0 images' in r.stdout and '1 skipped' in r.stdout
