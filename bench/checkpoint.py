"""What the per-epoch checkpoint costs: seconds per epoch with and without it, side by side in one run.

The default recipe's network (tf_efficientnet_lite0, 128 px, batch 32) on 640 of the shared lesion images, fitted in
rounds of 2 epochs alternately with and without `learner.Checkpoint` (weights, optimiser state, the best epoch's weights,
the generators), 3 rounds each; the checkpoint is written atomically to the results folder, as in a model directory.

    python bench/checkpoint.py [--rounds 3]
"""
import argparse, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd
from common import lesions, report, RESULTS
from lesion_analysis.datasets import read_table, split_by_lesion
from lesion_analysis.learner import History, KeepBest, Checkpoint, arch_stats, task_learner
from lesion_analysis.classify import Classification
from lesion_analysis.train import Recipe

def main():
    p = argparse.ArgumentParser(description=__doc__); p.add_argument('--rounds', type=int, default=3)
    a = p.parse_args()
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images')
    df = split_by_lesion(df[df.label != 'UNK'].sample(640, random_state=0), valid_pct=0.2, seed=0)
    r = Recipe(size=128)
    task = Classification(r)
    cached, _ = task.cached(df, RESULTS/'cache')
    dls = task.dls(cached, arch_stats(r.arch))
    learn = task_learner(dls, task.model(dls), r.arch, **task.learner_kwargs(dls))
    learn.unfreeze()
    seconds = {'checkpoint': [], 'none': []}
    with tempfile.TemporaryDirectory(dir=RESULTS) as tmp, learn.no_bar(), learn.no_logging():
        ckpt = Path(tmp)/'checkpoint.pt'
        for i in range(a.rounds):
            for kind in ('checkpoint', 'none'):
                hist = History(); hist.stage = 'unfrozen'
                cbs = [hist, KeepBest()] + ([Checkpoint(ckpt, lr=1e-3)] if kind == 'checkpoint' else [])
                t0 = time.perf_counter(); learn.fit_one_cycle(2, 1e-3, cbs=cbs)  # the whole fit: the checkpoint is written after the History times the epoch
                seconds[kind].append((time.perf_counter() - t0) / 2)
        size = ckpt.stat().st_size
    mean = {k: float(np.mean(v)) for k, v in seconds.items()}
    report('checkpoint', dict(images=len(df), size=128, epochs_each=2 * a.rounds, seconds_per_epoch={k: round(v, 2) for k, v in mean.items()},
                              ratio_with_to_without=round(mean['checkpoint'] / mean['none'], 3), checkpoint_mb=round(size / 2**20, 1)))

if __name__ == '__main__': main()
