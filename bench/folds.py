"""Cross-validation on real images: a 5-fold ensemble against the single model, on held-out images neither saw.

The split is bench/models.py's (shared lesions, UNK dropped: 8 classes, lesion-grouped on `split_group`, 15% validation, seed
42). `train_folds` trains the default recipe at bench/models.py's budget (160 px, 1 frozen + 5 epochs) on 5 lesion-grouped
folds of the training part only; the validation images stay out of every fold. Reported: the out-of-fold balanced accuracy
with its lesion-bootstrap 95% interval, and on the held-out validation images the fold ensemble and the single model
(bench/models.py's `recipe`, trained here if absent), both predicted by `Classifier` as `lesion-analysis predict` would, with
lesion-bootstrap intervals and the paired interval of their difference.

    python bench/folds.py [--folds 5] [--epochs 5] [--size 160]
"""
import argparse, time
import numpy as np, pandas as pd
from sklearn.metrics import balanced_accuracy_score
from common import lesions, report, RESULTS
from lesion_analysis.datasets import read_table, split_by_lesion, lesion_groups
from lesion_analysis.train import Recipe, train, train_folds
from lesion_analysis.infer import Classifier, predict
from lesion_analysis.metrics import grouped_bootstrap, macro_auc

MODELS = RESULTS/'models'

def held_out(model, valid):
    "Balanced accuracy, its lesion-bootstrap interval, macro AUC and the predicted labels of `model` on table `valid`."
    clf = Classifier(model, precision='fp32')
    probs = predict(clf, valid, progress=False)[clf.classes].to_numpy()
    targs = valid.label.map(clf.classes.index).to_numpy()
    bacc = lambda t, p: balanced_accuracy_score(t, p.argmax(1))
    return dict(balanced_accuracy=round(bacc(targs, probs), 4), ci=[round(v, 4) for v in grouped_bootstrap(bacc, targs, probs, lesion_groups(valid))],
                macro_auc=round(macro_auc(probs, targs), 4)), probs, targs

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--folds', type=int, default=5); p.add_argument('--epochs', type=int, default=5); p.add_argument('--size', type=int, default=160)
    p.add_argument('--seed', type=int, default=42)
    a = p.parse_args()
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images')
    df = split_by_lesion(df[df.label != 'UNK'], valid_pct=0.15, seed=a.seed)
    train_part, valid = df[~df.is_valid].drop(columns='is_valid'), df[df.is_valid].reset_index(drop=True)
    r = Recipe(size=a.size, epochs=a.epochs, seed=a.seed)
    t0 = time.time()
    cfg = train_folds(train_part, MODELS/'folds', a.folds, r, cache=RESULTS/'cache', force=True)
    minutes = round((time.time() - t0) / 60, 1)
    if not (MODELS/'recipe'/'config.json').is_file(): train(df, MODELS/'recipe', r, cache=RESULTS/'cache', force=True)
    ens, p_ens, targs = held_out(MODELS/'folds', valid)
    one, p_one, _ = held_out(MODELS/'recipe', valid)
    diff = lambda t, p: balanced_accuracy_score(t, p[:, 0].astype(int)) - balanced_accuracy_score(t, p[:, 1].astype(int))
    paired = np.stack([p_ens.argmax(1), p_one.argmax(1)], 1)
    v = cfg['valid']
    report('folds', dict(n_train=len(train_part), n_valid=len(valid), size=a.size, epochs=f'1 frozen + {a.epochs}', folds=a.folds,
                         out_of_fold=dict(balanced_accuracy=round(v['balanced_accuracy'], 4), ci=[round(x, 4) for x in v['balanced_accuracy_ci']],
                                          macro_auc=round(v['macro_auc'], 4), per_fold=[round(f['balanced_accuracy'], 4) for f in cfg['fold_valid']]),
                         held_out=dict(fold_ensemble=ens, single_model=one,
                                       difference=round(ens['balanced_accuracy'] - one['balanced_accuracy'], 4),
                                       difference_ci=[round(x, 4) for x in grouped_bootstrap(diff, targs, paired, lesion_groups(valid))]),
                         minutes_all_folds=minutes))

if __name__ == '__main__': main()
