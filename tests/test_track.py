"""`lesion-analysis train --track mlflow|tensorboard` and `lesion-analysis compare`, read back with MLflow's own client and
TensorBoard's event reader: a fold ensemble as a run with its folds nested, a killed run resumed in the same MLflow run."""
import os
import pandas as pd, pytest
from mlflow import MlflowClient
from conftest import cli, synthetic, train_command
from test_resume import killed_at

os.environ.setdefault('MLFLOW_ALLOW_FILE_STORE', 'true')  # MLflow 3 opens its file store (the tracker's default) only when asked

TINY = ['--size', '40', '--bs', '16', '--freeze-epochs', '1', '--epochs', '2', '--lr', '1e-3']

@pytest.fixture(scope='module')
def syn(tmp_path_factory): return synthetic(tmp_path_factory, n_per_class=6)

def train_args(syn, out, *extra): return train_command(syn, out, TINY, *extra)

def runs(uri):
    c = MlflowClient(uri)
    return c, c.search_runs([c.get_experiment_by_name('lesion_analysis').experiment_id])

def test_fold_ensemble_tracked_in_mlflow_and_compared(syn, tmp_path):
    uri = (tmp_path/'mlruns').as_uri()
    r = cli(*train_args(syn, tmp_path/'f', '--folds', '2', '--track', 'mlflow', '--tracking-uri', uri))
    assert r.returncode == 0, r.stderr
    c, found = runs(uri)
    parent, = [x for x in found if 'mlflow.parentRunId' not in x.data.tags]
    folds = [x for x in found if x.data.tags.get('mlflow.parentRunId') == parent.info.run_id]
    assert len(folds) == 2 and all(x.info.status == 'FINISHED' for x in found)
    assert parent.data.params['folds'] == '2' and parent.data.params['epochs'] == '2' and 'valid/balanced_accuracy_ci_low' in parent.data.metrics
    assert {'model/config.json', 'model/oof_preds.csv'} <= {a.path for a in c.list_artifacts(parent.info.run_id, 'model')}
    assert [m.step for m in c.get_metric_history(folds[0].info.run_id, 'valid_loss')] == [0, 1, 2]
    assert 'model/model.safetensors' in {a.path for a in c.list_artifacts(folds[0].info.run_id, 'model')}
    # compare: model directories and the experiment's runs (its folds left out)
    assert cli(*train_args(syn, tmp_path/'one', '--loss', 'inverse')).returncode == 0
    r = cli('compare', tmp_path/'f', tmp_path/'one', '--experiment', 'lesion_analysis', '--tracking-uri', uri, '--out', tmp_path/'c.csv')
    assert r.returncode == 0, r.stderr
    t = pd.read_csv(tmp_path/'c.csv')
    assert len(t) == 3 and list(t.loss) == ['plain', 'inverse', 'plain'] and 'valid/balanced_accuracy' in t and 'epochs' not in t
    r = cli('compare')
    assert r.returncode == 2 and 'nothing to compare' in r.stderr

def test_killed_run_resumes_in_its_mlflow_run(syn, tmp_path):
    uri, out = (tmp_path/'mlruns').as_uri(), tmp_path/'m'
    track = ['--track', 'mlflow', '--tracking-uri', uri]
    killed_at('unfrozen', train_args(syn, out, *track))
    assert cli(*train_args(syn, out, '--resume', *track)).returncode == 0
    c, found = runs(uri)
    run, = found                                                                    # one run, not two
    assert run.info.status == 'FINISHED'
    assert [m.step for m in c.get_metric_history(run.info.run_id, 'valid_loss')] == [0, 1, 2]  # each epoch once

def test_tensorboard(syn, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    r = cli(*train_args(syn, tmp_path/'m', '--track', 'tensorboard', '--tracking-uri', tmp_path/'tb'))
    assert r.returncode == 0, r.stderr
    ea = EventAccumulator(str(tmp_path/'tb'/tmp_path.name/'m')); ea.Reload()
    steps = [e.step for e in ea.Scalars('train_loss')]
    assert steps == list(range(1, len(steps) + 1)) and len(ea.Scalars('valid_loss')) == 3
