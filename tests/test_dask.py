"""Batch prediction and preprocessing on Dask, end to end on real images: a local cluster of 2 workers gives the output
of one process (same rows, order, probabilities to 1e-6, same skipped-file report); a worker killed with SIGKILL in the
middle of a run loses and doubles no row; a run killed whole resumes from the partitions it had written; and the bad
inputs: a scheduler that does not answer, no workers, a model directory a worker cannot read."""
import os, shutil, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd, psutil, pytest
from conftest import cli
from lesion_analysis.core import CLASSES, LesionDataError
from lesion_analysis.synthetic import make_synthetic

N_IMAGES = 240

@pytest.fixture(scope='module')
def setup(tmp_path_factory, shared):
    "A tiny model, and a table of real images (one of them truncated)."
    d = tmp_path_factory.mktemp('dask'); make_synthetic(d/'syn', n_per_class=5, size=40, seed=4)
    r = cli('train', d/'syn'/'labels.csv', '--images', d/'syn'/'images', '--out', d/'model', '--cache', d/'cache',
            '--size', '40', '--bs', '16', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-3')
    assert r.returncode == 0, r.stderr
    lesions = shared/'lesions'
    images = [str(lesions/'images'/i) for i in pd.read_csv(lesions/'labels.csv').image[:N_IMAGES]]
    (d/'cut.jpg').write_bytes(Path(images[0]).read_bytes()[:400])
    pd.DataFrame({'image': images[:100] + [str(d/'cut.jpg')] + images[100:]}).to_csv(d/'table.csv', index=False)
    return d

def predict_args(d, out, *extra): return ['predict', d/'model', d/'table.csv', '--out', out, '--tta', 'flips', '--partition', '4', *extra]

@pytest.fixture(scope='module')
def single(setup):
    "The prediction of one process, and its skipped-file report."
    r = cli(*predict_args(setup, setup/'single.csv'))
    assert r.returncode == 0, r.stderr
    return pd.read_csv(setup/'single.csv'), pd.read_csv(setup/'single_skipped.csv')

def assert_same(out, single):
    "`out` holds the same rows in the same order as the single-process run, probabilities to 1e-6, and the same skipped files."
    preds, skipped = single
    got = pd.read_csv(out)
    assert got.image.tolist() == preds.image.tolist()
    pd.testing.assert_frame_equal(got, preds, check_exact=False, atol=1e-6, rtol=0)
    pd.testing.assert_frame_equal(pd.read_csv(Path(out).with_name(Path(out).stem + '_skipped.csv')), skipped)
    assert not Path(f'{out}.parts').exists()

def test_local_cluster_matches_one_process(setup, single):
    r = cli(*predict_args(setup, setup/'dask.csv', '--workers', '2'))
    assert r.returncode == 0, r.stderr
    assert len(single[0]) == N_IMAGES and single[1].image.tolist() == [str(setup/'cut.jpg')]
    assert_same(setup/'dask.csv', single)

def start(args):
    "`lesion-analysis ARGS` started in its own process group."
    exe = Path(sys.executable).parent/'lesion-analysis'
    return subprocess.Popen([str(exe if exe.exists() else shutil.which('lesion-analysis')), *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, env={**os.environ, 'PYTHONWARNINGS': 'ignore'})

def wait_for_parts(out, n:int, proc, timeout:float=120) -> int:
    "Wait until at least `n` partitions of the run writing `out` are finished; return how many are."
    t0 = time.time()
    while time.time() - t0 < timeout:
        done = len(list(Path(f'{out}.parts').glob('part-*.json'))) if Path(f'{out}.parts').is_dir() else 0
        if done >= n: return done
        assert proc.poll() is None, f"the run ended before {n} partitions: {proc.communicate()[1][-2000:]}"
        time.sleep(0.02)
    raise TimeoutError(f"{n} partitions not finished in {timeout} s")

def dask_workers(proc) -> list:
    "The Dask worker processes of the local cluster that `proc` started."
    return [c for c in psutil.Process(proc.pid).children(recursive=True) if 'spawn_main' in ' '.join(c.cmdline())]

def test_a_killed_worker_loses_and_doubles_no_row(setup, single):
    out, partitions = setup/'killed.csv', -(-(N_IMAGES + 1) // 4)
    proc = start(predict_args(setup, out, '--workers', '2'))
    done = wait_for_parts(out, 3, proc)
    workers = dask_workers(proc)
    assert len(workers) == 2, workers
    os.kill(workers[0].pid, signal.SIGKILL)            # kill -9 one worker while it has partitions to do
    assert done < partitions, "the run was over before the kill: give it more images"
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-3000:]
    assert not psutil.pid_exists(workers[0].pid) or psutil.Process(workers[0].pid).status() == psutil.STATUS_ZOMBIE
    assert_same(out, single)

def test_a_run_killed_whole_resumes_from_its_partitions(setup, single):
    out = setup/'crashed.csv'
    proc = start(predict_args(setup, out, '--workers', '2'))
    wait_for_parts(out, 3, proc)
    os.killpg(proc.pid, signal.SIGKILL)                 # the client and its workers, as a machine that goes down
    proc.wait()
    kept = len(list(Path(f'{out}.parts').glob('part-*.json')))
    assert not out.exists() and kept >= 3
    r = cli(*predict_args(setup, out, '--workers', '2'))
    assert r.returncode == 0, r.stderr
    assert f"resuming, {kept} of" in r.stderr
    assert_same(out, single)

def test_preprocess_on_dask_matches_the_process_pool(setup, tmp_path):
    a = cli('preprocess', setup/'table.csv', '--out', tmp_path/'pool', '--size', '64')
    b = cli('preprocess', setup/'table.csv', '--out', tmp_path/'dask', '--size', '64', '--workers', '2')
    assert a.returncode == 0 and b.returncode == 0, a.stderr + b.stderr
    (ta,), (tb,) = (tmp_path/'pool').glob('*/table.csv'), (tmp_path/'dask').glob('*/table.csv')
    pa, pb = pd.read_csv(ta), pd.read_csv(tb)
    assert pa.original_image.tolist() == pb.original_image.tolist() and len(pa) == N_IMAGES
    assert [Path(p).read_bytes() for p in pa.image] == [Path(p).read_bytes() for p in pb.image]
    assert pd.read_csv(ta.with_name('skipped.csv')).equals(pd.read_csv(tb.with_name('skipped.csv')))

@pytest.mark.parametrize('command', ['predict', 'preprocess'])
def test_a_scheduler_that_does_not_answer(setup, tmp_path, command):
    args = predict_args(setup, tmp_path/'p.csv') if command == 'predict' else ['preprocess', setup/'table.csv', '--out', tmp_path/'c']
    r = cli(*args, '--scheduler', 'tcp://127.0.0.1:9')
    assert r.returncode == 2 and 'no Dask scheduler answers at tcp://127.0.0.1:9' in r.stderr and 'Traceback' not in r.stderr

def test_no_workers(setup, tmp_path):
    r = cli(*predict_args(setup, tmp_path/'p.csv', '--workers', '0'))
    assert r.returncode == 2 and 'workers must be at least 1, not 0' in r.stderr

def test_a_model_directory_a_worker_cannot_read(setup, tmp_path):
    from lesion_analysis.infer import Classifier, predict
    shutil.copytree(setup/'model', tmp_path/'model')
    clf = Classifier(tmp_path/'model')
    (tmp_path/'model'/'model.safetensors').unlink()   # gone by the time the workers load it (as on a worker that cannot see it)
    with pytest.raises(LesionDataError, match=r'model\.safetensors is missing.*\(read by the Dask worker at tcp://'):
        predict(clf, pd.read_csv(setup/'table.csv').head(8), workers=2, progress=False)
