"""`--precision` and `--layout` end to end: training and prediction in fp32 and `auto`, what the config and history record, the
per-model reduced-precision check, the fallback where bf16 is not native, and `fp16` refused on a CPU."""
import json, warnings
from unittest import mock
import numpy as np, pandas as pd, pytest, torch
from safetensors.torch import load_file
from conftest import cli
from lesion_analysis.synthetic import make_synthetic
from lesion_analysis.learner import compute_plan, reduced_precision

TINY = ['--size', '40', '--bs', '16', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-3']
no_bf16 = mock.patch.multiple(torch.cpu, _is_avx512_bf16_supported=lambda: False, _is_amx_tile_supported=lambda: False)
no_gpu = mock.patch.object(torch.cuda, 'is_available', lambda: False)  # a CPU-only machine, also where the tests run beside a GPU

@pytest.fixture(scope='module')
def syn(tmp_path_factory):
    d = tmp_path_factory.mktemp('syn'); make_synthetic(d, n_per_class=5, size=40, seed=4)
    return d

TRAINED = ['fp32', 'auto'] + (['bf16'] if reduced_precision('cpu') == 'bf16' else [])  # bf16 where this CPU has it

@pytest.fixture(scope='module')
def models(syn, tmp_path_factory):
    "A model trained with each of --precision fp32, auto, and bf16 where native."
    d = tmp_path_factory.mktemp('models')
    for p in TRAINED:
        r = cli('train', syn/'labels.csv', '--images', syn/'images', '--out', d/p, '--precision', p, *TINY)
        assert r.returncode == 0, r.stderr
        assert f"computed in {compute_plan(p, training=True)['precision']}" in r.stdout
    return d

def test_config_and_history_record_the_precision(models):
    for p in TRAINED:
        cfg = json.loads((models/p/'config.json').read_text())
        plan = compute_plan(p, device=cfg['compute']['device'], training=True)  # a GPU's is recorded with its index (cuda:0)
        assert cfg['compute'] == plan
        hist = pd.read_csv(models/p/'history.csv')
        assert set(hist.precision) == {plan['precision']} and set(hist.layout) == {plan['layout']}
        assert {t.dtype for t in load_file(str(models/p/'model.safetensors')).values() if t.is_floating_point()} == {torch.float32}
        check = cfg['precision_check']
        if compute_plan()['precision'] == 'fp32': assert check is None  # nothing to check on a machine without reduced precision
        else: assert check['precision'] == compute_plan()['precision'] and check['items'] > 0 and isinstance(check['passed'], bool)

@pytest.mark.parametrize('model', TRAINED)
def test_each_model_predicts_in_fp32_and_auto(models, syn, tmp_path, model):
    "Whatever precision trained it, a model predicts in either; auto agrees with fp32 (it is fp32 unless the model passed its check)."
    preds = {}
    for p in ('fp32', 'auto'):
        r = cli('predict', models/model, syn/'images', '--out', tmp_path/f'{p}.csv', '--precision', p, '--priors', 'keep')
        assert r.returncode == 0, r.stderr
        preds[p] = pd.read_csv(tmp_path/f'{p}.csv').set_index('image').sort_index().to_numpy()
    assert preds['fp32'].shape[0] == len(pd.read_csv(syn/'labels.csv'))
    assert (preds['fp32'].argmax(1) == preds['auto'].argmax(1)).mean() >= .99
    assert np.quantile(np.abs(preds['fp32'] - preds['auto']).max(1), .99) <= .01

def test_bf16_predictions_of_a_model_that_passed_agree_with_fp32(models, syn):
    "Explicit bf16 on a model whose check passed agrees with fp32 on the top class; on one that failed it warns (CPUs with bf16 only)."
    from lesion_analysis.infer import Classifier, predict
    if compute_plan()['precision'] != 'bf16': pytest.skip('no native bf16 here')
    df = pd.DataFrame({'image': sorted(map(str, (syn/'images').glob('*.jpg')))})
    for m in TRAINED:
        cfg = json.loads((models/m/'config.json').read_text())
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter('always'); bf = Classifier(models/m, precision='bf16')
        assert any('differ from fp32' in str(x.message) for x in w) != cfg['precision_check']['passed']
        p32, pbf = (predict(c, df, progress=False, rescale=False)[c.classes].to_numpy() for c in (Classifier(models/m, precision='fp32'), bf))
        agreement = (p32.argmax(1) == pbf.argmax(1)).mean()
        if cfg['precision_check']['passed']: assert agreement >= .99

def test_auto_is_fp32_where_bf16_is_not_native(syn, tmp_path):
    "On a CPU without bf16 instructions (its checks mocked, any GPU hidden) nothing runs in reduced precision: training, the check, prediction."
    from lesion_analysis.datasets import read_table
    from lesion_analysis.train import train, Recipe
    from lesion_analysis.learner import AutocastPrecision
    from lesion_analysis.infer import Classifier
    df = read_table(syn/'labels.csv', images=syn/'images')
    with no_bf16, no_gpu:
        learn, cfg = train(df, tmp_path/'m', Recipe(size=40, bs=16, epochs=1, freeze_epochs=0, lr=1e-3), cache=tmp_path/'cache')
        assert Classifier(tmp_path/'m', runtime='torch').plan == dict(device='cpu', precision='fp32', layout='channels_last', runtime='torch')
        assert Classifier(tmp_path/'m').plan == dict(device='cpu', precision='fp32', layout='channels_last', runtime='torch')  # nothing exported yet
        assert Classifier(tmp_path/'m').for_job().plan == dict(device='cpu', precision='fp32', layout='contiguous', runtime='onnx')  # the CPU default for a service or a large job
        with pytest.warns(UserWarning, match='emulated'): Classifier(tmp_path/'m', precision='bf16')
    assert cfg['compute'] == dict(device='cpu', precision='fp32', layout='channels_last') and cfg['precision_check'] is None
    assert not any(isinstance(cb, AutocastPrecision) for cb in learn.cbs)
    assert set(pd.read_csv(tmp_path/'m'/'history.csv').precision) == {'fp32'}

@pytest.mark.skipif(torch.cuda.is_available(), reason='fp16 runs on a GPU')
@pytest.mark.parametrize('command', ['train', 'predict'])
def test_fp16_on_a_cpu_is_refused_before_any_work(syn, models, tmp_path, command):
    out = tmp_path/('m' if command == 'train' else 'p.csv')
    args = [syn/'labels.csv', '--images', syn/'images', *TINY] if command == 'train' else [models/'fp32', syn/'images']
    r = cli(command, *args, '--out', out, '--precision', 'fp16')
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and 'fp16' in r.stderr and 'needs a CUDA GPU' in r.stderr and 'choose auto' in r.stderr
    assert not out.exists()

def test_unknown_precision_is_a_usage_error(syn, tmp_path):
    r = cli('predict', tmp_path/'none', syn/'images', '--out', tmp_path/'p.csv', '--precision', 'half')
    assert r.returncode == 2 and "invalid choice: 'half'" in r.stderr
