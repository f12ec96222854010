"""Defaults chosen by lesion-grouped cross-validation, not by one split.

`segmentation`: each candidate recipe of `train --task segmentation` (the CLI's default, and the default with one lever
changed) is trained, fold by fold, on the same 5 lesion-grouped folds of the 814 shared image + mask pairs. Every image is
scored once, by the fold model that did not train on it, at its original size against its ground-truth mask, with each mask
TTA, raw and cleaned (`segment.clean_mask`: the largest region, holes filled). Per candidate, TTA and cleaning: the mean
Jaccard with its lesion-bootstrap 95% interval, the share of images under 0.65 (the ISIC challenge's failures), the mean per
source (HAM10000, ISIC 2017, PH2), and the paired difference from today's product (the default recipe, flips TTA, raw) with
its interval; per candidate, the training minutes of all folds on the machine it ran on.

Candidates run side by side with `--jobs N`, each process pinned to its share of the cores (its DataLoader workers and
torch threads follow); on a GPU they share it. Fold models and per-image scores stay in
bench/results/models/accuracy/ (not committed); a fold whose per-image scores are there is not retrained, and `--no-train`
summarises the folds scored so far (pairs compared on the images both scored).

    python bench/accuracy.py segmentation [--candidates default,size224,...] [--folds 5] [--seed 42] [--jobs 1]
"""
import argparse, os, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
import numpy as np, pandas as pd, torch
from common import report, RESULTS
from lesion_analysis.core import share_cores, shared_data, load_image, write_csv
from lesion_analysis.datasets import read_mask_pairs, kfold_by_lesion, lesion_groups
from lesion_analysis.metrics import grouped_bootstrap, mask_jaccard
from lesion_analysis.train import Recipe, train
from lesion_analysis.segment import Segmenter, SEG_TTA, read_mask, clean_mask

OUT = RESULTS/'models'/'accuracy'
SEG_CANDIDATES = {'default': {}, 'size224': dict(size=224), 'size288': dict(size=288), 'epochs12': dict(epochs=12),
                  'lite1': dict(arch='tf_efficientnet_lite1'), 'lite2': dict(arch='tf_efficientnet_lite2'),
                  'loss_ce': dict(loss='ce'), 'loss_dice_focal': dict(loss='dice_focal'),
                  'size224_epochs12': dict(size=224, epochs=12)}
BASELINE = ('default', 'flips', False)  # today's product: the default recipe, `segment`'s default TTA, no cleaning

def pin_cores(counter, jobs:int):
    "Pool initializer: pin this worker to its contiguous share of the cores (DataLoader workers inherit it) and size its threads."
    with counter.get_lock(): slot, counter.value = counter.value, counter.value + 1
    cores = sorted(os.sched_getaffinity(0)); n = max(1, len(cores) // jobs)
    os.sched_setaffinity(0, cores[slot % jobs * n:(slot % jobs + 1) * n] or cores)
    share_cores(1)
    mp.set_start_method('fork', force=True)  # a spawned worker inherits 'spawn': its DataLoader workers fork, as in a plain process
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as on a CPU

def pairs_table(limit:int|None=None) -> pd.DataFrame:
    "The shared image + mask pairs (the first `limit` only, for a quick run)."
    df = read_mask_pairs(shared_data('segmentation')/'pairs.csv')
    return df.head(limit).reset_index(drop=True) if limit else df

def score_fold(model, valid:pd.DataFrame) -> list:
    "Per-image Jaccard at original size of `model` on `valid`, for each mask TTA, raw and cleaned."
    seg, rows = Segmenter(model, precision='fp32'), []
    for img_path, mask_path, dataset, group in zip(valid.image, valid['mask'], valid.dataset, lesion_groups(valid)):
        img = load_image(img_path); truth = read_mask(mask_path, img.shape)
        for tta in SEG_TTA:
            mask = seg.predict([img], tta)[0] > 0.5
            rows += [dict(image=img_path, dataset=dataset, group=group, tta=tta, clean=c, jaccard=mask_jaccard(m, truth))
                     for c, m in ((False, mask), (True, clean_mask(mask)))]
    return rows

def run_fold(name:str, overrides:dict, fold:int, k:int, seed:int, limit:int|None) -> str:
    "Train candidate `name` on the other folds and score the images of `fold`; the per-image CSV (reused when it is already there)."
    out, scores = OUT/'segmentation'/name/f'fold_{fold}', OUT/'segmentation'/name/f'fold_{fold}.csv'
    if scores.is_file(): return str(scores)
    df, t0 = kfold_by_lesion(pairs_table(limit), k, seed), time.time()  # lesion-grouped, the same folds for every candidate
    train(df.assign(is_valid=df.fold == fold), out, Recipe(task='segmentation', seed=seed, **overrides), cache=OUT/'cache'/name/str(fold), force=True, precision='fp32')
    minutes = (time.time() - t0) / 60
    rows = score_fold(out, df[df.fold == fold])
    write_csv(pd.DataFrame(rows).assign(candidate=name, fold=fold, train_minutes=round(minutes, 2), device='cuda' if torch.cuda.is_available() else 'cpu'), scores)
    print(f'{name} fold {fold}: trained in {minutes:.1f} min', flush=True)
    return str(scores)

def mean_ci(j, groups) -> dict:
    "Mean of `j` with its lesion-bootstrap 95% interval."
    return dict(mean=round(float(np.mean(j)), 4), ci=[round(v, 4) for v in grouped_bootstrap(lambda t, p: t.mean(), j, j, groups)])

def summarise(scores:pd.DataFrame) -> dict:
    "Figures per candidate, TTA and cleaning, with the paired difference from `BASELINE`."
    base = scores.set_index(['candidate', 'tta', 'clean']).loc[BASELINE].set_index('image').jaccard
    out = {}
    for (name, tta, clean), g in scores.groupby(['candidate', 'tta', 'clean'], sort=False):
        d = (g.jaccard.to_numpy() - base.reindex(g.image).to_numpy())
        d, dg = d[~np.isnan(d)], g.group[~np.isnan(d)]
        minutes = g.drop_duplicates('fold').train_minutes
        out.setdefault(name, dict(folds=len(minutes), train_minutes=round(float(minutes.sum()), 1), device=g.device.iloc[0], results={}))
        out[name]['results'][f"{tta}{'+clean' if clean else ''}"] = dict(
            jaccard=mean_ci(g.jaccard.to_numpy(), g.group), under_065=round(float((g.jaccard < 0.65).mean()), 4),
            by_source={s: round(float(v), 4) for s, v in g.groupby('dataset').jaccard.mean().items()},
            vs_baseline=mean_ci(d, dg))
    return out

def best(summary:dict) -> dict:
    "The candidate, TTA and cleaning with the highest mean Jaccard."
    name, key, res = max(((n, k, r) for n, c in summary.items() for k, r in c['results'].items()), key=lambda t: t[2]['jaccard']['mean'])
    return dict(candidate=name, prediction=key, **res)

def segmentation(a):
    names = a.candidates.split(',')
    if unknown := set(names) - set(SEG_CANDIDATES): raise SystemExit(f"unknown candidates {sorted(unknown)}; choose from {list(SEG_CANDIDATES)}")
    pairs_table(a.limit)  # fails here, saying where it looked, when the shared data is absent
    base = {k: type(getattr(Recipe, k))(v) for k, v in (kv.split('=') for kv in a.base.split(',') if kv)}
    jobs = [(n, {**base, **SEG_CANDIDATES[n]}, f, a.folds, a.seed, a.limit) for f in range(a.folds) for n in names]  # fold by fold
    if a.no_train: files = [str(f) for n in names for f in sorted((OUT/'segmentation'/n).glob('fold_*.csv'))]
    elif a.jobs > 1:
        ctx = mp.get_context('spawn')
        with ProcessPoolExecutor(a.jobs, mp_context=ctx, initializer=pin_cores, initargs=(ctx.Value('i', 0), a.jobs)) as pool:
            files = list(pool.map(run_fold, *zip(*jobs)))
    else: files = [run_fold(*j) for j in jobs]
    scores = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    summary = summarise(scores)
    report('accuracy_segmentation', dict(pairs=int(scores.image.nunique()), folds=a.folds, seed=a.seed, base=base, candidates={n: SEG_CANDIDATES[n] for n in names},
                                         recipe_default=dict(size=Recipe.size, arch=Recipe.arch, epochs=f'{Recipe.freeze_epochs} frozen + {Recipe.epochs}'),
                                         baseline=dict(zip(('candidate', 'tta', 'clean'), BASELINE)), best=best(summary), summary=summary))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='what', required=True)
    s = sub.add_parser('segmentation', help='segmentation candidates')
    s.add_argument('--candidates', default=','.join(SEG_CANDIDATES)); s.add_argument('--folds', type=int, default=5)
    s.add_argument('--seed', type=int, default=42); s.add_argument('--jobs', type=int, default=1)
    s.add_argument('--limit', type=int, default=None, help='only the first N pairs (a quick check of the script)')
    s.add_argument('--no-train', action='store_true', help='summarise the folds already scored')
    s.add_argument('--base', default='', help='recipe fields for every candidate, key=value,... (a quick check: size=64,epochs=1)')
    a = p.parse_args()
    segmentation(a)

if __name__ == '__main__': main()
