"""Cross-validated accuracy of training in bf16 against fp32 (both with the channels-last layout), on the same folds from the
same seeds: the measurement behind the default (`auto` trains in fp32 on a CPU).

Lesion-grouped, label-stratified folds (`kfold_by_lesion`, on `split_group`) of the shared lesion images (UNK dropped:
8 classes). Each fold's model is trained with the library's recipe twice, `--precision fp32` and `bf16`, at a reduced budget
(the options below); a fold already trained is reused, not retrained. The out-of-fold predictions (made in fp32, as every
validation prediction is) give each precision's balanced accuracy with a bootstrap 95% interval (images resampled), the
paired difference with its interval, and the training minutes. The models' reduced-precision checks are summed up too.

    python bench/precision_cv.py [--folds 5] [--size 128] [--epochs 3]
"""
import argparse, json
import numpy as np, pandas as pd
from scipy.stats import bootstrap
from sklearn.metrics import balanced_accuracy_score
from common import lesions, report, RESULTS
from lesion_analysis.datasets import read_table, kfold_by_lesion
from lesion_analysis.train import Recipe, train
from lesion_analysis.learner import compute_plan

OUT = RESULTS/'models'/'precision_cv'

def fold_model(df, fold, precision, r) -> dict:
    "Train (or reuse) the model of `fold` in `precision`; its config."
    out = OUT/precision/f'fold{fold}'
    if (out/'config.json').is_file(): return json.loads((out/'config.json').read_text())
    return train(df.assign(is_valid=df.fold == fold), out, r, cache=RESULTS/'cache', force=True, precision=precision)[1]

def oof(precision, folds) -> pd.DataFrame:
    "The out-of-fold predictions of `precision`'s fold models, one row per image."
    return pd.concat([pd.read_csv(OUT/precision/f'fold{f}'/'valid_preds.csv') for f in range(folds)]).set_index('image').sort_index()

def bacc_interval(*preds_and_truth, fn) -> list:
    "Percentile bootstrap 95% interval of `fn` over images resampled (paired across the arrays)."
    res = bootstrap(preds_and_truth, fn, paired=True, vectorized=False, n_resamples=1000, method='percentile', random_state=0)
    return [round(float(res.confidence_interval.low), 4), round(float(res.confidence_interval.high), 4)]

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--folds', type=int, default=5); p.add_argument('--size', type=int, default=128)
    p.add_argument('--epochs', type=int, default=3, help='unfrozen epochs, after one frozen epoch'); p.add_argument('--seed', type=int, default=42)
    a = p.parse_args()
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images')
    df = kfold_by_lesion(df[df.label != 'UNK'], k=a.folds, seed=a.seed)
    r = Recipe(size=a.size, epochs=a.epochs, seed=a.seed)
    precisions = ['fp32', 'bf16']
    cfgs = {p: [] for p in precisions}
    for f in range(a.folds):
        for prec in precisions:
            cfgs[prec].append(fold_model(df, f, prec, r))
            print(f'fold {f} {prec}: balanced accuracy {cfgs[prec][-1]["valid"]["balanced_accuracy"]:.4f}, {cfgs[prec][-1]["seconds"] / 60:.1f} min', flush=True)
    preds = {prec: oof(prec, a.folds) for prec in precisions}
    classes = cfgs['fp32'][0]['classes']
    truth = preds['fp32'].label.map(classes.index).to_numpy()
    pred = {prec: preds[prec].loc[preds['fp32'].index, classes].to_numpy().argmax(1) for prec in precisions}
    bacc = lambda y, yhat: balanced_accuracy_score(y, yhat)
    figures = dict(folds=a.folds, images=len(truth), recipe=dict(size=a.size, epochs=f'1 frozen + {a.epochs}', seed=a.seed),
                   plans={p: cfgs[p][0]['compute'] for p in precisions}, precisions={})
    for prec in precisions:
        figures['precisions'][prec] = dict(oof_balanced_accuracy=round(bacc(truth, pred[prec]), 4), interval_95=bacc_interval(truth, pred[prec], fn=bacc),
                                           per_fold=[round(c['valid']['balanced_accuracy'], 4) for c in cfgs[prec]],
                                           training_minutes=round(sum(c['seconds'] for c in cfgs[prec]) / 60, 1),
                                           precision_check_passed=[(c.get('precision_check') or {}).get('passed') for c in cfgs[prec]])
    diff = lambda y, a_, b_: bacc(y, a_) - bacc(y, b_)
    figures['bf16_minus_fp32'] = dict(balanced_accuracy=round(diff(truth, pred['bf16'], pred['fp32']), 4),
                                      interval_95=bacc_interval(truth, pred['bf16'], pred['fp32'], fn=diff),
                                      folds_lower=sum(b < f for b, f in zip(figures['precisions']['bf16']['per_fold'], figures['precisions']['fp32']['per_fold'])))
    figures['training_speedup_bf16_vs_fp32'] = round(figures['precisions']['fp32']['training_minutes'] / figures['precisions']['bf16']['training_minutes'], 2)
    report('precision_cv', figures)

if __name__ == '__main__': main()
