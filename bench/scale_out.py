"""Scaling out on this machine: data-parallel training through torchrun + Accelerate + fastai, and batch prediction on Dask.

Training, side by side in one run (alternating, best of `--repeats`), the same network (tf_efficientnet_lite0 with fastai's
head), images (the shared lesion images, preprocessed), global batch and number of steps, unfrozen, fp32:
- 1 process with all the cores' threads;
- N processes (all the cores, one each: the library's guard, `share_cores`), started by torchrun, joined through Accelerate
  (gloo), inside fastai's `distrib_ctx`;
- N processes each left with all the cores' threads (oversubscribed: what the guard prevents).
Each run is its own process (or processes), timed inside over the training phase of one epoch, after a warm-up epoch.

Prediction: images/s of `predict` on the shared lesion images in this process against a local Dask cluster of N workers
(each with its share of the cores), started by the run (`workers=N`: the cluster starts, each worker imports the library,
loads the model and warms up) and running already (`scheduler=`, warmed up by a first run); the fixed cost of a fresh
cluster is the difference of their times. The model is bench/results/models/recipe (from bench/models.py) when present, else a small model
trained here for the purpose (its weights do not change the speed).

    python bench/scale_out.py [--batches 8] [--size 128] [--bs 32] [--repeats 2] [--images 600]
"""
import argparse, json, os, subprocess, sys, tempfile, time
from pathlib import Path
import pandas as pd, torch
from common import lesions, report, RESULTS
from lesion_analysis.core import available_cores

HERE = Path(__file__).resolve()

def worker(a):
    "One training process (of a torchrun group, or alone): time one epoch of `a.batches` global batches, rank 0 writes the figure."
    from fastai.vision.all import Callback, CancelTrainException
    from lesion_analysis.datasets import read_table, split_by_lesion
    from lesion_analysis.preprocess import preprocess
    from lesion_analysis.data import lesion_dls
    from lesion_analysis.learner import arch_stats, join_process_group, data_parallel, rank_distrib
    from lesion_analysis.classify import lesion_learner
    n = join_process_group()                                  # sets this process's share of the cores
    if a.threads: torch.set_num_threads(a.threads)            # the oversubscribed variant overrides it
    df = read_table(lesions()/'labels.csv', lesions()/'images').head(a.batches * a.bs + 64)
    df = split_by_lesion(df, valid_pct=0.05, seed=0)
    df = preprocess(df, RESULTS/'cache', size=a.size, side='longer', workers=1)
    dls = lesion_dls(df, size=a.size, bs=a.bs // n, aug='none', stats=arch_stats('tf_efficientnet_lite0'))
    learn = lesion_learner(dls, arch=a.arch); learn.unfreeze()
    if a.infer: return write_rank0(a, n, inference_speed(learn, a, n))
    plan = learn.to_precision(a.precision)
    class Timer(Callback):
        "Wall time of the first `a.batches` training steps of an epoch (then on to validation)."
        def before_train(self): self.t0 = time.perf_counter()
        def after_batch(self):
            if self.training and self.iter + 1 >= a.batches: raise CancelTrainException
        def after_train(self): self.seconds = time.perf_counter() - self.t0
    t = Timer()
    with learn.no_bar(), learn.no_logging(), data_parallel(learn):
        learn.fit(2, 1e-4, cbs=t)                             # the first epoch warms up, the second is timed
    write_rank0(a, n, a.batches * a.bs / t.seconds, precision=plan['precision'])

def inference_speed(learn, a, n) -> float:
    "Images/s of forward passes (all processes together) on `a.batches` batches already decoded, in `a.precision` on the process's device."
    from lesion_analysis.learner import compute_plan, autocast_for, memory_format
    plan, model = compute_plan(a.precision, 'auto', learn.dls.device), learn.model.eval().to(learn.dls.device)
    model.to(memory_format=memory_format(plan))
    xs = [b[0].as_subclass(torch.Tensor).contiguous(memory_format=memory_format(plan)) for b, _ in zip(learn.dls.train, range(a.batches))]
    sync = torch.cuda.synchronize if learn.dls.device.type == 'cuda' else (lambda: None)
    with torch.no_grad(), autocast_for(plan):
        for x in xs[:2]: model(x)
        sync(); t0 = time.perf_counter()
        for x in xs: model(x)
        sync()
    return len(xs) * a.bs / (time.perf_counter() - t0)

def write_rank0(a, n, images_per_s, **extra):
    "Rank 0 (or the only process) writes what it measured to `a.out`."
    from lesion_analysis.learner import rank_distrib
    if rank_distrib() == 0:
        Path(a.out).write_text(json.dumps(dict(images_per_s=images_per_s, processes=n, threads=torch.get_num_threads(), **extra)))

def train_run(processes:int, threads:int|None, a, precision:str='fp32', infer:bool=False) -> dict:
    "Start one training (or with `infer`, forward-pass) configuration in its own process(es), in `precision`; return what rank 0 measured."
    with tempfile.TemporaryDirectory() as d:
        out = Path(d)/'res.json'
        args = [str(HERE), '--worker', '--out', str(out), '--batches', str(a.batches), '--size', str(a.size), '--bs', str(a.bs),
                '--threads', str(threads or 0), '--precision', precision, '--arch', a.arch, *(['--infer'] if infer else [])]
        launch = [sys.executable, '-m', 'torch.distributed.run', '--standalone', f'--nproc-per-node={processes}'] if processes > 1 else [sys.executable]
        env = {**os.environ, 'OMP_NUM_THREADS': str(threads or max(1, available_cores() // processes))}
        r = subprocess.run(launch + args, capture_output=True, text=True, env=env)
        if r.returncode: raise RuntimeError(r.stderr[-3000:])
        return json.loads(out.read_text())

def training(a) -> dict:
    "Images/s of the three training configurations, best of `a.repeats`, alternating."
    cores = available_cores()
    configs = {'1_process_all_threads': (1, cores), f'{cores}_processes_guarded': (cores, None), f'{cores}_processes_oversubscribed': (cores, cores)}
    best = {k: None for k in configs}
    for _ in range(a.repeats):
        for k, (p, t) in configs.items():
            res = train_run(p, t, a)
            if best[k] is None or res['images_per_s'] > best[k]['images_per_s']: best[k] = res
            print(k, res, flush=True)
    one, guarded, over = (best[k]['images_per_s'] for k in configs)
    return dict(configs={k: {**v, 'images_per_s': round(v['images_per_s'], 1)} for k, v in best.items()},
                guarded_vs_one_process=round(guarded / one, 3), oversubscribed_vs_one_process=round(over / one, 3),
                guarded_vs_oversubscribed=round(guarded / over, 3))

def bench_model() -> Path:
    "bench/models.py's recipe model, else a small model trained here."
    for m in (RESULTS/'models'/'recipe', RESULTS/'models'/'distributed'):
        if (m/'config.json').is_file(): return m
    r = subprocess.run(['lesion-analysis', 'train', lesions()/'labels.csv', '--images', lesions()/'images', '--out', m, '--cache', RESULTS/'cache',
                        '--size', '128', '--epochs', '1', '--freeze-epochs', '0', '--lr', '1e-3'], capture_output=True, text=True)
    if r.returncode: raise RuntimeError(r.stderr[-3000:])
    return m

def prediction(a) -> dict:
    "Images/s of `predict` here, on a fresh local Dask cluster of all the cores (`workers`), and on a running one (`scheduler`), warmed up."
    from distributed import LocalCluster
    from lesion_analysis.infer import Classifier, predict
    model, n = bench_model(), available_cores()
    table = pd.DataFrame({'image': [str(lesions()/'images'/i) for i in pd.read_csv(lesions()/'labels.csv').image[:a.images]]})
    clf = Classifier(model)
    with LocalCluster(n_workers=n, threads_per_worker=1, dashboard_address=None) as cluster:
        runs = {'this_process': dict(), f'dask_{n}_workers_fresh_cluster': dict(workers=n, partition=64),
                f'dask_{n}_workers_running_cluster': dict(scheduler=cluster.scheduler_address, partition=64)}
        predict(clf, table, progress=False, **runs[f'dask_{n}_workers_running_cluster'])  # its workers import the library, load the model, warm up
        best = {k: 0. for k in runs}
        for _ in range(a.repeats):
            for k, kw in runs.items():
                t0 = time.perf_counter(); predict(clf, table, progress=False, **kw); best[k] = max(best[k], len(table) / (time.perf_counter() - t0))
                print(k, round(best[k], 1), flush=True)
    fresh, running = (best[f'dask_{n}_workers_{c}_cluster'] for c in ('fresh', 'running'))
    return dict(model=str(model.relative_to(HERE.parent.parent)) if model.is_relative_to(HERE.parent.parent) else str(model), images=len(table),
                precision=clf.plan['precision'], images_per_s={k: round(v, 1) for k, v in best.items()},
                fresh_cluster_vs_this_process=round(fresh / best['this_process'], 3), running_cluster_vs_this_process=round(running / best['this_process'], 3),
                fresh_cluster_fixed_seconds=round(len(table) / fresh - len(table) / running, 2))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--batches', type=int, default=8); p.add_argument('--size', type=int, default=128); p.add_argument('--bs', type=int, default=32)
    p.add_argument('--repeats', type=int, default=2); p.add_argument('--images', type=int, default=600)
    p.add_argument('--worker', action='store_true', help=argparse.SUPPRESS); p.add_argument('--out', help=argparse.SUPPRESS)
    p.add_argument('--threads', type=int, default=0, help=argparse.SUPPRESS); p.add_argument('--precision', default='fp32', help=argparse.SUPPRESS)
    p.add_argument('--infer', action='store_true', help=argparse.SUPPRESS); p.add_argument('--arch', default='tf_efficientnet_lite0', help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.worker: return worker(a)
    report('scale_out', dict(cores=available_cores(), training=dict(size=a.size, global_batch=a.bs, timed_batches=a.batches, **training(a)),
                               prediction=prediction(a)))

if __name__ == '__main__': main()
