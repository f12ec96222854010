"""Fine-tuning from a trained model (seed 003's two stages) against ImageNet weights, on one source of the shared lesions.

The target is the Derm7pt images of the shared lesions (UNK dropped: 6 classes). A model is first trained on every other
source (UNK dropped) with the default recipe; then the target is cross-validated twice with the same recipe and budget,
5 lesion-grouped folds each: from ImageNet weights, and with `init` from that model (its body; a new head, since its 8
classes are not the target's 6). Reported: each variant's out-of-fold balanced accuracy with its lesion-bootstrap 95%
interval, and the paired interval of their difference on the same images.

    python bench/finetune.py [--size 128] [--epochs 3] [--folds 5]
"""
import argparse, time
import numpy as np, pandas as pd
from sklearn.metrics import balanced_accuracy_score
from common import lesions, report, RESULTS
from lesion_analysis.datasets import read_table, lesion_groups
from lesion_analysis.train import Recipe, train, train_folds
from lesion_analysis.metrics import grouped_bootstrap

MODELS = RESULTS/'models'

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--size', type=int, default=128); p.add_argument('--epochs', type=int, default=3); p.add_argument('--folds', type=int, default=5)
    p.add_argument('--seed', type=int, default=42)
    a = p.parse_args()
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images')
    df = df[df.label != 'UNK']
    target, others = df[df.dataset == 'Derm7pt'].reset_index(drop=True), df[df.dataset != 'Derm7pt']
    r = Recipe(size=a.size, epochs=a.epochs, seed=a.seed)
    t0 = time.time()
    _, pre = train(others, MODELS/'pretrain-not-derm7pt', r, cache=RESULTS/'cache', force=True)
    figures = dict(target=dict(images=len(target), classes=target.label.value_counts().to_dict()), pretrain=dict(images=len(others),
                   valid_balanced_accuracy=round(pre['valid']['balanced_accuracy'], 4), minutes=round((time.time() - t0) / 60, 1)),
                   size=a.size, epochs=f'1 frozen + {a.epochs}', folds=a.folds, variants={})
    oof = {}
    for name, init in (('imagenet', None), ('init', str(MODELS/'pretrain-not-derm7pt'))):
        t0 = time.time()
        cfg = train_folds(target, MODELS/f'derm7pt-{name}', a.folds, Recipe(size=a.size, epochs=a.epochs, seed=a.seed, init=init),
                          cache=RESULTS/'cache', force=True)
        v = cfg['valid']
        oof[name] = pd.read_csv(MODELS/f'derm7pt-{name}'/'oof_preds.csv').set_index('image').loc[target.image.astype(str)]
        figures['variants'][name] = dict(balanced_accuracy=round(v['balanced_accuracy'], 4), ci=[round(x, 4) for x in v['balanced_accuracy_ci']],
                                         macro_auc=round(v['macro_auc'], 4), minutes=round((time.time() - t0) / 60, 1))
        print(name, figures['variants'][name], flush=True)
    classes = sorted(target.label.unique())
    truth = target.label.map(classes.index).to_numpy()
    paired = np.stack([oof[n][classes].to_numpy().argmax(1) for n in ('init', 'imagenet')], 1)
    diff = lambda t, p: balanced_accuracy_score(t, p[:, 0]) - balanced_accuracy_score(t, p[:, 1])
    figures['init_minus_imagenet'] = dict(difference=round(diff(truth, paired), 4),
                                          ci=[round(x, 4) for x in grouped_bootstrap(diff, truth, paired, lesion_groups(target))])
    report('finetune', figures)

if __name__ == '__main__': main()
