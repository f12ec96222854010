"One-vs-rest models end to end through the command line: training (a split, and folds), prediction, evaluation, the combination with a multi-class model in predict and ensemble, and bad input."
import json
import numpy as np, pandas as pd
import pytest
from conftest import cli, cli_here, synthetic, train_command

TINY = ['--size', '40', '--bs', '16', '--freeze-epochs', '0', '--epochs', '1', '--lr', '1e-3', '--seed', '0']

@pytest.fixture(scope='module')
def models(tmp_path_factory):
    "Synthetic images, a multi-class model and a melanoma-vs-rest model trained on them."
    syn = synthetic(tmp_path_factory)
    out = tmp_path_factory.mktemp('models')
    multi = cli(*train_command(syn, out/'multi', TINY))
    assert multi.returncode == 0, multi.stderr[-2000:]
    mel = cli(*train_command(syn, out/'mel', [*TINY, '--task', 'binary', '--positive', 'MEL']))
    assert mel.returncode == 0, mel.stderr[-2000:]
    assert 'MEL vs rest: validation AUC' in mel.stdout
    return syn, out, mel.stdout

def test_binary_model_predicts_and_is_evaluated(models):
    syn, out, _ = models
    cfg = json.loads((out/'mel'/'config.json').read_text())
    assert cfg['task'] == 'binary' and cfg['positive'] == ['MEL'] and cfg['classes'] == ['MEL', 'rest']
    vp = lambda m: sorted(pd.read_csv(out/m/'valid_preds.csv').image)
    assert vp('mel') == vp('multi')  # the same lesion-grouped split as the multi-class model
    r = cli('predict', out/'mel', syn/'labels.csv', '--images', syn/'images', '--out', out/'mel.csv')
    assert r.returncode == 0, r.stderr[-2000:]
    preds = pd.read_csv(out/'mel.csv')
    assert list(preds.columns) == ['image', 'MEL'] and len(preds) == len(pd.read_csv(syn/'labels.csv')) and preds.MEL.between(0, 1).all()
    r = cli('evaluate', syn/'labels.csv', out/'mel.csv', '--out', out/'mel_eval', '--bootstrap', '100', '--threshold', '0.3')
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'MEL vs rest' in r.stdout and 'specificity@sens0.90' in r.stdout and 'sensitivity@0.3' in r.stdout
    figures = pd.read_csv(out/'mel_eval'/'binary.csv').set_index('figure')
    assert (figures.ci_low <= figures.value + 1e-9).all() and (figures.value <= figures.ci_high + 1e-9).all()
    assert (out/'mel_eval'/'report.html').is_file() and (out/'mel_eval'/'roc.png').is_file()
    s = json.loads((out/'mel_eval'/'summary.json').read_text())
    assert s['positives'] == int((pd.read_csv(syn/'labels.csv').label == 'MEL').sum()) and s['notes'] == []  # lesion ids from the truth table

def test_binary_combines_with_multiclass(models):
    syn, out, _ = models
    inputs = [syn/'labels.csv', '--images', syn/'images']
    for args in (['predict', out/'multi', *inputs, '--out', out/'multi.csv'], ['predict', out/'mel', *inputs, '--out', out/'mel_alone.csv'],
                 ['predict', out/'multi', *inputs, '--binary', out/'mel', '--out', out/'combined.csv'],
                 ['ensemble', out/'multi', out/'mel', '--input', *inputs, '--out', out/'ens_models.csv'],
                 ['ensemble', out/'multi.csv', out/'mel_alone.csv', '--out', out/'ens_csvs.csv']):
        r = cli(*args)
        assert r.returncode == 0, (args, r.stderr[-2000:])
    multi, mel = pd.read_csv(out/'multi.csv').set_index('image'), pd.read_csv(out/'mel_alone.csv').set_index('image')
    combined = pd.read_csv(out/'combined.csv').set_index('image')
    from lesion_analysis.infer import prior_shift
    k = int((multi > 0).any().sum())  # the multi-class model's classes: the binary probability is re-expressed for MEL's share, 1/k
    assert np.allclose(combined.MEL, (multi.MEL + prior_shift(mel.MEL.loc[multi.index], .5, 1 / k)) / 2, atol=1e-6)  # the mean of the two models' melanoma probability
    assert np.allclose(combined.sum(axis=1), 1, atol=1e-6)
    rest = [c for c in multi if c != 'MEL' and multi[c].sum() > 0]
    assert np.allclose(combined[rest].div(combined[rest].sum(axis=1), axis=0), multi[rest].div(multi[rest].sum(axis=1), axis=0), atol=1e-6)  # proportions kept
    for name in ('ens_models.csv', 'ens_csvs.csv'):
        ens = pd.read_csv(out/name).set_index('image').loc[combined.index, combined.columns]
        assert np.allclose(ens, combined, atol=1e-6), name

def test_binary_folds_for_a_group(tmp_path_factory):
    syn = synthetic(tmp_path_factory, seed=4)
    out = syn.parent/'malignant'
    r = cli(*train_command(syn, out, [*TINY, '--task', 'binary', '--positive', 'SCC,MEL,BCC', '--folds', '2']))
    assert r.returncode == 0, r.stderr[-2000:]
    assert 'MEL+BCC+SCC vs rest: out-of-fold AUC' in r.stdout
    cfg = json.loads((out/'config.json').read_text())
    assert cfg['positive'] == ['MEL', 'BCC', 'SCC'] and len(cfg['folds']) == 2 and len(cfg['valid']['auc_ci']) == 2
    r = cli('predict', out, syn/'labels.csv', '--images', syn/'images', '--out', syn.parent/'mal.csv')
    assert r.returncode == 0, r.stderr[-2000:]
    assert list(pd.read_csv(syn.parent/'mal.csv').columns) == ['image', 'MEL+BCC+SCC']

def test_binary_bad_input(models, tmp_path):
    syn, out, _ = models
    bad = [(train_command(syn, tmp_path/'a', [*TINY, '--task', 'binary']), 'needs its positive class'),
           (train_command(syn, tmp_path/'b', [*TINY, '--task', 'binary', '--positive', 'MEL,MELANOMA']), "unknown positive class(es) ['MELANOMA']"),
           (train_command(syn, tmp_path/'c', [*TINY, '--positive', 'MEL']), 'positive classes are for the binary task'),
           (['predict', out/'mel', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'p.csv', '--unk'], 'UNK flagging (--unk) is for multi-class models'),
           (['predict', out/'mel', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'p.csv', '--binary', out/'multi'], 'is a binary model: give a multi-class model first'),
           (['predict', out/'multi', syn/'labels.csv', '--images', syn/'images', '--out', tmp_path/'p.csv', '--binary', out/'multi'], 'is not a binary model'),
           (['serve', out/'mel'], 'is a binary model: serve a multi-class model')]
    pd.read_csv(syn/'labels.csv').query("label != 'DF'").to_csv(tmp_path/'no_df.csv', index=False)
    bad.append((['train', tmp_path/'no_df.csv', '--images', syn/'images', '--out', tmp_path/'d', '--cache', syn/'cache', *TINY, '--task', 'binary', '--positive', 'DF'],
                'no image labelled DF'))
    pd.DataFrame({'image': ['x', 'y'], 'MEL': [.2, .7]}).to_csv(tmp_path/'bin.csv', index=False)
    pd.DataFrame({'image': ['x', 'y'], 'label': ['NV', 'NV']}).to_csv(tmp_path/'truth.csv', index=False)
    bad.append((['evaluate', tmp_path/'truth.csv', tmp_path/'bin.csv', '--out', tmp_path/'e'], 'need positive and negative images'))
    bad.append((['evaluate', tmp_path/'truth.csv', tmp_path/'bin.csv', '--out', tmp_path/'e', '--model', out/'mel'], '--model (stability, out-of-distribution scores) is for multi-class'))
    for args, message in bad:
        r = (cli if args[0] == 'serve' else cli_here)(*args)  # a service that failed to refuse would not return
        assert r.returncode != 0 and message in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr[-1500:])
    assert not any((tmp_path/d/'config.json').exists() for d in 'abcd') and not (tmp_path/'p.csv').exists()
