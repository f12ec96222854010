"""One-vs-rest models and their ensemble with the multi-class model, the ISIC-2017 ResNet paper's table on the shared lesions.

The paper reports melanoma AUC, seborrheic-keratosis AUC and their mean for a multi-class model, two binary models (melanoma vs
the rest, seborrheic keratosis vs the rest) and their ensemble. Here BKL (benign keratosis, which holds the seborrheic keratoses)
stands for seborrheic keratosis. Every model gets the same lesion-grouped split (the shared lesions without UNK, 15% of the
lesions for validation, seed 42) and the same budget (the recipe at --size px, 1 frozen + --epochs epochs); each is predicted
on the validation images as `predict` does it (temperature, then priors rescaled: the library's default), and the ensemble is
`infer.combine_binary` (each group's probability the mean of the two models', the binary one re-expressed for the multi-class
model's footing; the other classes sharing the rest), beside the same without the re-expression.
Intervals: 95% lesion bootstrap.

    python bench/binary.py [--size 128] [--epochs 3] [--retrain] [--bootstrap 1000]
"""
import argparse
import numpy as np, pandas as pd
from common import lesions, report, with_interval, train_once, RESULTS
from lesion_analysis import datasets as ds
from lesion_analysis.train import Recipe
from lesion_analysis.infer import Classifier, predict, combine_binary
from lesion_analysis.metrics import binary_auc, balanced_accuracy, binary_figures

MODELS = RESULTS/'models'/'binary'
POSITIVES = ('MEL', 'BKL')

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--size', type=int, default=128); p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--retrain', action='store_true'); p.add_argument('--bootstrap', type=int, default=1000)
    a = p.parse_args()
    d = lesions()
    table = ds.read_table(d/'labels.csv', images=d/'images')
    df = ds.split_by_lesion(table[table.label != 'UNK'].reset_index(drop=True), valid_pct=0.15, seed=42)
    valid = df[df.is_valid].reset_index(drop=True)
    groups = ds.lesion_groups(valid).to_numpy()
    base = dict(size=a.size, freeze_epochs=1, epochs=a.epochs, seed=42)
    models, minutes = {}, {}
    for name, r in [('multiclass', Recipe(**base)), *((f'binary-{c}', Recipe(task='binary', positive=c, **base)) for c in POSITIVES)]:
        minutes[name] = train_once(df, MODELS/name, r, a.retrain)
        models[name] = Classifier(MODELS/name)
        print(f"{name}: {'trained in %.1f min' % minutes[name] if minutes[name] else 'already trained'}", flush=True)
    multi = models['multiclass']
    probs = predict(multi, valid, progress=False)[multi.classes].to_numpy()
    binary = {c: predict(models[f'binary-{c}'], valid, progress=False)[c].to_numpy() for c in POSITIVES}
    ways = {'multi-class': probs, 'ensemble': combine_binary(probs, multi.classes, binary, balanced=True),
            **{f'ensemble, {c} model only': combine_binary(probs, multi.classes, {c: binary[c]}, balanced=True) for c in POSITIVES},
            'ensemble, binary probabilities as they are (no prior shift)': combine_binary(probs, multi.classes, binary)}
    y = {c: (valid.label == c).to_numpy() for c in POSITIVES}
    auc = lambda s: {c: with_interval(binary_auc, y[c], s[c], groups, a.bootstrap) for c in POSITIVES}
    table_rows = {'multi-class': auc({c: probs[:, multi.classes.index(c)] for c in POSITIVES}), 'binary': auc(binary),
                  **{k: auc({c: p[:, multi.classes.index(c)] for c in POSITIVES}) for k, p in ways.items() if k != 'multi-class'}}
    for row in table_rows.values(): row['mean'] = round(np.mean([row[c]['value'] for c in POSITIVES]), 4)
    targs = valid.label.map(multi.classes.index).to_numpy()
    bacc = {k: with_interval(lambda t, q: balanced_accuracy(q, t), targs, p, groups, a.bootstrap) for k, p in ways.items()}
    operating = {c: binary_figures(y[c], binary[c], groups=groups, n_boot=a.bootstrap).round(4).to_dict('index') for c in POSITIVES}
    print(pd.DataFrame({k: {f'{c} AUC': f"{v[c]['value']:.3f} ({v[c]['ci'][0]:.3f}-{v[c]['ci'][1]:.3f})" for c in POSITIVES} | {'mean': f"{v['mean']:.3f}"}
                        for k, v in table_rows.items()}).T.to_markdown())
    report('binary', dict(split=dict(train=int((~df.is_valid).sum()), valid=len(valid), valid_lesions=int(len(set(groups))),
                                     valid_positives={c: int(y[c].sum()) for c in POSITIVES}),
                          recipe=dict(base, note='the library recipe otherwise (Lite0, ImageNet weights, isic2019 augmentation, one-cycle)'),
                          training_minutes=minutes, auc=table_rows, balanced_accuracy_8_classes=bacc, binary_operating_points=operating,
                          paper=dict(source='ISIC-2017 ResNet paper, table of melanoma / seborrheic keratosis AUC', multiclass=[84.3, 96.9, 90.6],
                                     binary=[85.5, 97.0, 91.3], ensemble=[85.4, 97.6, 91.5])))

if __name__ == '__main__':
    main()
