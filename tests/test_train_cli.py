"`lesion-analysis train` end to end on tiny synthetic data, and its bad inputs."
import dataclasses, json
from pathlib import Path
import pandas as pd, pytest, torch
from conftest import cli, cli_here
from lesion_analysis.synthetic import make_synthetic

@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    d = tmp_path_factory.mktemp('syn'); make_synthetic(d, n_per_class=5, size=40, seed=3)
    return d

TINY = ['--size', '40', '--bs', '16', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-3']

def test_the_default_size_comes_with_its_progressive_resizing():
    "Classification's default is 224 px trained at 160 px first; --size alone trains at that size throughout, --progressive 0 turns it off; a resumed run keeps its own."
    from lesion_analysis.cli import parser, recipe_from
    from lesion_analysis.train import Recipe
    args = lambda *o: parser(['train']).parse_args(['train', 'table.csv', '--out', 'm', *o])
    got = [recipe_from(args(*o)) for o in ((), ('--size', '160'), ('--progressive', '0'), ('--progressive', '192'), ('--task', 'segmentation'))]
    assert [(r.size, r.progressive) for r in got] == [(224, 160), (160, None), (224, None), (224, 192), (224, None)]
    old = {k: v for k, v in dataclasses.asdict(Recipe(size=160)).items() if k != 'progressive'}  # a run recorded before progressive resizing
    assert (recipe_from(args(), base=old).size, recipe_from(args(), base=old).progressive) == (160, None)
    assert (recipe_from(args('--progressive', '96'), base=old).progressive) == 96

def test_segmentation_trains_at_its_own_rate_and_epochs_and_lr_0_asks_lr_find():
    "Segmentation's default learning rate (a fixed 1e-3) and epochs (12) were chosen by cross-validation; --lr 0 runs lr_find instead; other tasks find theirs."
    from lesion_analysis.cli import parser, recipe_from
    args = lambda *o: parser(['train']).parse_args(['train', 'table.csv', '--out', 'm', *o])
    got = [recipe_from(args(*o)) for o in ((), ('--lr', '3e-4'), ('--task', 'segmentation'), ('--task', 'segmentation', '--lr', '0', '--epochs', '4'), ('--task', 'detection'))]
    assert [(r.lr, r.epochs) for r in got] == [(None, 6), (3e-4, 6), (1e-3, 12), (0, 4), (None, 6)]
    help = ' '.join(cli_here('train', '--help').stdout.split())
    assert "(default: lr_find's suggestion; 1e-3 for segmentation)" in help and "(default: 6; 12 for segmentation)" in help

def test_train_writes_a_loadable_model_dir(syn, tmp_path):
    out = tmp_path/'model'
    r = cli('train', syn/'labels.csv', '--images', syn/'images', '--out', out, *TINY)
    assert r.returncode == 0, r.stderr
    assert 'validation balanced accuracy' in r.stdout
    for f in ('model.safetensors', 'config.json', 'history.csv', 'history.png'): assert (out/f).is_file(), f
    assert not (out/'export.pkl').exists()  # the pickle only on request (--export-pickle)
    cfg = json.loads((out/'config.json').read_text())
    assert cfg['arch'] == 'tf_efficientnet_lite0' and cfg['size'] == 40 and len(cfg['classes']) == 9
    from lesion_analysis.modeldir import load_model_dir
    model, _ = load_model_dir(out)
    assert model(torch.zeros(1, 3, 40, 40)).shape == (1, 9)
    # an existing model is never overwritten without --force
    stamp = (out/'model.safetensors').stat().st_mtime_ns
    r = cli('train', syn/'labels.csv', '--images', syn/'images', '--out', out, *TINY)
    assert r.returncode == 2 and 'already holds a model' in r.stderr and '--force' in r.stderr
    assert (out/'model.safetensors').stat().st_mtime_ns == stamp
    assert cli('train', syn/'labels.csv', '--images', syn/'images', '--out', out, '--force', *TINY).returncode == 0
    assert (out/'model.safetensors').stat().st_mtime_ns != stamp

@pytest.mark.parametrize('args,message', [
    (['--arch', 'resnet_nonexistent'], "unknown timm architecture 'resnet_nonexistent'"),
    (['--schedule', 'cosine'], "unknown schedule 'cosine'"),
    (['--lr', '-0.01'], "lr -0.01 must be positive (or 0: lr_find's suggestion)"),
])
def test_train_bad_options(syn, tmp_path, args, message):
    r = cli_here('train', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'m', *TINY, *args)
    assert r.returncode == 2 and message in r.stderr and 'Traceback' not in r.stderr

def test_train_weights_that_do_not_fit(syn, tmp_path):
    torch.save({'conv.weight': torch.zeros(4, 3, 3, 3)}, tmp_path/'other.pth')
    r = cli_here('train', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'m', *TINY, '--pretrained', tmp_path/'other.pth')
    assert r.returncode == 2 and 'other.pth' in r.stderr and 'weights do not fit' in r.stderr

def test_train_class_without_training_images(syn, tmp_path):
    df = pd.read_csv(syn/'labels.csv')
    df['is_valid'] = df.label == 'DF'   # every DF image in validation
    df.to_csv(tmp_path/'t.csv', index=False)
    r = cli_here('train', tmp_path/'t.csv', '--images', syn/'images', '--out', tmp_path/'m', *TINY)
    assert r.returncode == 2 and "['DF'] have no training images" in r.stderr

def test_train_needs_labels(syn, tmp_path):
    pd.read_csv(syn/'labels.csv')[['image']].to_csv(tmp_path/'t.csv', index=False)
    r = cli_here('train', tmp_path/'t.csv', '--images', syn/'images', '--out', tmp_path/'m', *TINY)
    assert r.returncode == 2 and 'no label column' in r.stderr

def test_init_from_a_trained_model(syn, tmp_path):
    "--init: the body always, the head when the classes match; fold ensembles and other architectures refused."
    from safetensors.torch import load_file
    a = tmp_path/'a'
    assert cli('train', syn/'labels.csv', '--images', syn/'images', '--out', a, *TINY).returncode == 0
    still = ['--size', '40', '--bs', '16', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-12']  # weights all but unchanged by training
    r = cli('train', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'b', *still, '--init', a)
    assert r.returncode == 0 and 'its body and head' in r.stdout, r.stderr
    wa, wb = load_file(str(a/'model.safetensors')), load_file(str(tmp_path/'b'/'model.safetensors'))
    conv, head = '0.model.conv_stem.weight', list(wa)[-1]
    assert torch.allclose(wa[conv], wb[conv], atol=1e-6) and torch.allclose(wa[head], wb[head], atol=1e-6)
    assert json.loads((tmp_path/'b'/'config.json').read_text())['init'] == dict(model=str(a), loaded='all')
    two = pd.read_csv(syn/'labels.csv'); two = two[two.label.isin(['MEL', 'NV'])]; two.to_csv(tmp_path/'two.csv', index=False)
    r = cli('train', tmp_path/'two.csv', '--images', syn/'images', '--out', tmp_path/'c', *still, '--init', a)
    assert r.returncode == 2 and 'make no full batch of 16: lower the batch size' in r.stderr  # 8 training images
    r = cli('train', tmp_path/'two.csv', '--images', syn/'images', '--out', tmp_path/'c', *still, '--bs', '4', '--init', a)
    assert r.returncode == 0 and 'a new head' in r.stdout, r.stderr
    wc = load_file(str(tmp_path/'c'/'model.safetensors'))
    assert torch.allclose(wa[conv], wc[conv], atol=1e-6) and wc[head].shape[0] == 2
    r = cli('train', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'d', *TINY, '--init', a, '--arch', 'resnet18')
    assert r.returncode == 2 and 'holds a tf_efficientnet_lite0' in r.stderr
