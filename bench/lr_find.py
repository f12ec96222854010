"""How many iterations lr_find needs: its valley suggestion against its number of iterations, on the real segmentation folds.

For each fold of `accuracy.py segmentation` (the same 5 lesion-grouped folds of the 814 shared pairs), the default
segmentation recipe's learner runs fastai's `lr_find` with each number of iterations in `--its` (the weights are restored
after each run), and its valley suggestion is recorded. With `--train N,...`, the default recipe is then trained on the
fold at the suggestion of N iterations and scored on the held-out images as `accuracy.py` scores (mean Jaccard at
original size, flips TTA, raw), so a suggestion is judged by the model it gives. Models stay in bench/results/models/accuracy/.

    python bench/lr_find.py [--folds 0,1,2] [--its 20,40,70,100] [--train 20,70] [--train-folds 1] [--seed 42]
"""
import argparse, contextlib, time
from unittest import mock
import pandas as pd
from common import report
from accuracy import OUT, pairs_table, run_seg_fold
import lesion_analysis.train as T
from lesion_analysis.datasets import kfold_by_lesion

class Found(Exception): "Raised once the finder has run: the recipe is not trained."

def suggestions(fold:int, its:list, seed:int) -> list:
    "The valley suggestion of `lr_find` at each number of iterations in `its`, on the default segmentation learner of `fold`."
    rows = []
    def finder(learn, out, epochs):
        for n in its:
            t0 = time.time(); valley = float(learn.lr_find(num_it=n, show_plot=False).valley)
            curve = dict(lr=[float(v) for v in learn.recorder.lrs], loss=[round(float(v), 5) for v in learn.recorder.losses])
            rows.append(dict(fold=fold, its=n, epoch_its=len(learn.dls.train), valley=valley, seconds=round(time.time() - t0, 1), curve=curve))
            print({k: v for k, v in rows[-1].items() if k != 'curve'}, flush=True)
        raise Found
    df = kfold_by_lesion(pairs_table(), 5, seed)
    with mock.patch.object(T, 'run_lr_find', finder), contextlib.suppress(Found):
        T.train(df.assign(is_valid=df.fold == fold), OUT/'lr_find'/f'fold_{fold}', T.Recipe(task='segmentation', seed=seed),
                cache=OUT/'cache'/'default'/str(fold), force=True, precision='fp32')
    return rows

def trained(row:dict, seed:int) -> dict:
    "Mean held-out Jaccard (flips TTA, raw) of the default recipe trained on `row`'s fold at `row`'s suggestion."
    scores = pd.read_csv(run_seg_fold(OUT, f"lr_find{row['its']}", dict(lr=row['valley']), row['fold'], 5, seed, None))
    flips = scores[(scores.tta == 'flips') & ~scores.clean]
    return dict(row, jaccard=round(float(flips.jaccard.mean()), 4), under_065=round(float((flips.jaccard < .65).mean()), 4),
                train_minutes=float(scores.train_minutes.iloc[0]))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--folds', default='0,1,2'); p.add_argument('--its', default='20,40,70,100')
    p.add_argument('--seed', type=int, default=42)
    p.add_argument('--train', default='', help='the numbers of iterations whose suggestions are trained and scored (comma-separated)')
    p.add_argument('--train-folds', default=None, help='the folds trained (default: all of --folds)')
    a = p.parse_args()
    its = [int(n) for n in a.its.split(',')]
    rows = [r for f in a.folds.split(',') for r in suggestions(int(f), its, a.seed)]
    train_its, train_folds = a.train.split(','), (a.train_folds or a.folds).split(',')
    rows = [trained(r, a.seed) if str(r['its']) in train_its and str(r['fold']) in train_folds else r for r in rows]
    print(pd.DataFrame(rows).drop(columns='curve').to_string(index=False))
    report('lr_find', dict(task='segmentation', recipe='default', seed=a.seed, rows=rows))

if __name__ == '__main__': main()
