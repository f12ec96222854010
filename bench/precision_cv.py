"""Cross-validated accuracy of training in reduced precision against fp32, on the same folds from the same seeds: the
measurement behind `auto` (on a CPU it trains in fp32; on a GPU in mixed precision).

Lesion-grouped, label-stratified folds (`kfold_by_lesion`, on `split_group`) of the shared lesion images (UNK dropped:
8 classes). Each fold's model is trained with the library's recipe once per precision (`--precisions`: fp32 first, the
reference), at a reduced budget on a CPU (the options below; `--size 0 --epochs 0` is the CLI's default recipe); a fold
already trained is reused, not retrained. fp32 is true fp32 on a GPU too (TF32 off). The out-of-fold predictions (made in
fp32, as every validation prediction is) give each precision's balanced accuracy with a bootstrap 95% interval (images
resampled), the paired difference from fp32 with its interval, and the training minutes (not a speed comparison when
`--jobs` trains side by side). The models' reduced-precision checks are summed up too. The summary covers the folds every
precision has finished, so a run cut short (`--no-train` afterwards) still reports what it measured.

Models go to bench/results/models/precision_cv/ on a CPU and precision_cv_cuda/ on a GPU, figures to
bench/results/precision_cv.json and precision_cv_cuda.json.

    python bench/precision_cv.py [--precisions fp32,bf16] [--folds 5] [--size 128] [--epochs 3] [--jobs 1] [--no-train]
    python bench/precision_cv.py --precisions fp32,auto,fp16 --size 0 --epochs 0 --jobs 3    # on a GPU
"""
import argparse, json
import pandas as pd, torch
from scipy.stats import bootstrap
from sklearn.metrics import balanced_accuracy_score
from common import lesions, report, run_jobs, RESULTS
from lesion_analysis.datasets import read_table, kfold_by_lesion
from lesion_analysis.train import Recipe, train
from lesion_analysis.learner import PRECISIONS

NAME = 'precision_cv' + ('_cuda' if torch.cuda.is_available() else '')
OUT = RESULTS/'models'/NAME

def fold_dir(precision, fold): return OUT/precision/f'fold{fold}'

def fold_model(df, fold, precision, r) -> dict:
    "Train (or reuse) the model of `fold` in `precision`; its config."
    out = fold_dir(precision, fold)
    if not (out/'config.json').is_file():
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as on a CPU
        train(df.assign(is_valid=df.fold == fold), out, r, cache=RESULTS/'cache', force=True, precision=precision)
    cfg = json.loads((out/'config.json').read_text())
    print(f'fold {fold} {precision} (computed in {cfg["compute"]["precision"]}): balanced accuracy '
          f'{cfg["valid"]["balanced_accuracy"]:.4f}, {cfg["seconds"] / 60:.1f} min', flush=True)
    return cfg

def finished_folds(precisions, folds) -> list:
    "The folds every one of `precisions` has a model for."
    return [f for f in range(folds) if all((fold_dir(p, f)/'config.json').is_file() for p in precisions)]

def oof(precision, folds) -> pd.DataFrame:
    "The out-of-fold predictions of `precision`'s models of `folds`, one row per image."
    return pd.concat([pd.read_csv(fold_dir(precision, f)/'valid_preds.csv') for f in folds]).set_index('image').sort_index()

def bacc_interval(*preds_and_truth, fn) -> list:
    "Percentile bootstrap 95% interval of `fn` over images resampled (paired across the arrays)."
    res = bootstrap(preds_and_truth, fn, paired=True, vectorized=False, n_resamples=1000, method='percentile', random_state=0)
    return [round(float(res.confidence_interval.low), 4), round(float(res.confidence_interval.high), 4)]

def summary(precisions, folds, recipe) -> dict:
    "Each precision's out-of-fold balanced accuracy over the `folds` all have finished, and its paired difference from fp32."
    cfgs = {p: [json.loads((fold_dir(p, f)/'config.json').read_text()) for f in folds] for p in precisions}
    preds = {p: oof(p, folds) for p in precisions}
    classes, index = cfgs['fp32'][0]['classes'], preds['fp32'].index
    truth = preds['fp32'].label.map(classes.index).to_numpy()
    pred = {p: preds[p].loc[index, classes].to_numpy().argmax(1) for p in precisions}
    bacc = lambda y, yhat: balanced_accuracy_score(y, yhat)
    diff = lambda y, a_, b_: bacc(y, a_) - bacc(y, b_)
    out = dict(folds=folds, images=len(truth), recipe=recipe, plans={p: cfgs[p][0]['compute'] for p in precisions}, precisions={})
    for p in precisions:
        per_fold = [round(c['valid']['balanced_accuracy'], 4) for c in cfgs[p]]
        out['precisions'][p] = dict(oof_balanced_accuracy=round(bacc(truth, pred[p]), 4), interval_95=bacc_interval(truth, pred[p], fn=bacc),
                                    per_fold=per_fold, training_minutes=round(sum(c['seconds'] for c in cfgs[p]) / 60, 1),
                                    precision_check_passed=[(c.get('precision_check') or {}).get('passed') for c in cfgs[p]])
        if p != 'fp32': out['precisions'][p]['minus_fp32'] = dict(
            balanced_accuracy=round(diff(truth, pred[p], pred['fp32']), 4), interval_95=bacc_interval(truth, pred[p], pred['fp32'], fn=diff),
            folds_lower=sum(b < f for b, f in zip(per_fold, out['precisions']['fp32']['per_fold'])))
    return out

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--precisions', default='fp32,bf16', help='comma-separated, fp32 first (the reference)')
    p.add_argument('--folds', type=int, default=5); p.add_argument('--size', type=int, default=128, help="0: the recipe's default")
    p.add_argument('--epochs', type=int, default=3, help="unfrozen epochs, after one frozen epoch; 0: the recipe's default")
    p.add_argument('--seed', type=int, default=42); p.add_argument('--jobs', type=int, default=1, help='processes, each pinned to its share of the cores')
    p.add_argument('--no-train', action='store_true', help='summarise the folds already trained')
    a = p.parse_args()
    precisions = a.precisions.split(',')
    if precisions[0] != 'fp32' or not set(precisions) <= set(PRECISIONS): raise SystemExit(f"--precisions: fp32 first, then any of {list(PRECISIONS)}")
    r = Recipe(size=a.size or None, epochs=a.epochs or None, seed=a.seed)
    if not a.no_train:
        d = lesions()
        df = read_table(d/'labels.csv', images=d/'images')
        df = kfold_by_lesion(df[df.label != 'UNK'], k=a.folds, seed=a.seed)
        run_jobs(fold_model, [(df, f, prec, r) for prec in precisions for f in range(a.folds)], a.jobs)  # fp32's folds first
    folds = finished_folds(precisions, a.folds)
    if not folds: raise SystemExit(f'no fold has a model in every one of {precisions} under {OUT}')
    recipe = dict(size=a.size or 'default', epochs=f"{r.freeze_epochs} frozen + {a.epochs or 'default'}", seed=a.seed)
    report(NAME, summary(precisions, folds, recipe))

if __name__ == '__main__': main()
