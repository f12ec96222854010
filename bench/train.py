"""Training on real images: the library's recipe against plain fastai defaults, in one run, on the shared lesion images.

Both train tf_efficientnet_lite0 from the offline ImageNet weights on the same lesion-grouped split (`split_group`, 15%
validation, UNK dropped: 8 classes) for the same number of epochs, and are scored on the same validation images.

    python bench/train.py [--epochs 5] [--size 160] [--variants plain,recipe,recipe-effective]

The model directories are kept under bench/results/models/ (not committed) for the inference benchmark.
"""
import argparse, dataclasses, time
import numpy as np, pandas as pd, torch
from sklearn.metrics import balanced_accuracy_score, recall_score
from common import lesions, report, RESULTS
from lesion_analysis.core import write_csv
from lesion_analysis.datasets import read_table, split_by_lesion
from lesion_analysis.train import Recipe, train
from lesion_analysis.learner import arch_stats
from lesion_analysis.classify import lesion_learner
from lesion_analysis.metrics import macro_auc
from fastai.vision.all import (DataBlock, ImageBlock, CategoryBlock, ColReader, ColSplitter, Resize, aug_transforms, Normalize, set_seed)

MODELS = RESULTS/'models'

def plain_fastai(df, size, epochs, bs, seed):
    "vision_learner + fine_tune with fastai's defaults (Resize, aug_transforms, unweighted loss, its learning rate), offline weights."
    set_seed(seed, reproducible=True)
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('image'), get_y=ColReader('label'),
                       splitter=ColSplitter('is_valid'), item_tfms=Resize(size),
                       batch_tfms=[*aug_transforms(), Normalize.from_stats(*arch_stats('tf_efficientnet_lite0'))])
    dls = dblock.dataloaders(df, bs=bs, num_workers=0)
    learn = lesion_learner(dls, 'tf_efficientnet_lite0')
    learn.fine_tune(epochs, freeze_epochs=1)
    probs, targs = learn.get_preds()
    return probs.numpy(), targs.numpy(), list(dls.vocab)

VARIANTS = {'recipe': {}, 'recipe-effective': dict(loss='effective'), 'recipe-oversample': dict(oversample=True),
            'recipe-sgdr': dict(schedule='sgdr', cycles=2, cycle_len=2, cycle_mult=1)}

def recipe_run(df, name, size, epochs, bs, seed):
    "The library's recipe with the overrides of variant `name`."
    r = Recipe(size=size, epochs=epochs, bs=bs, seed=seed, **VARIANTS[name])
    learn, cfg = train(df, MODELS/name, r, cache=RESULTS/'cache', force=True)
    v = pd.read_csv(MODELS/name/'valid_preds.csv')
    return v[cfg['classes']].to_numpy(), v.label.map({c: i for i, c in enumerate(cfg['classes'])}).to_numpy(), cfg['classes']

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--epochs', type=int, default=5, help='unfrozen epochs, after one frozen epoch, for every variant')
    p.add_argument('--size', type=int, default=160); p.add_argument('--bs', type=int, default=32); p.add_argument('--seed', type=int, default=42)
    p.add_argument('--variants', default='plain,recipe,recipe-effective')
    a = p.parse_args()
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images')
    df = split_by_lesion(df[df.label != 'UNK'], valid_pct=0.15, seed=a.seed)
    figures = dict(n_train=int((~df.is_valid).sum()), n_valid=int(df.is_valid.sum()), size=a.size, epochs=f'1 frozen + {a.epochs}', variants={})
    for name in a.variants.split(','):
        t0 = time.time()
        probs, targs, vocab = plain_fastai(df, a.size, a.epochs, a.bs, a.seed) if name == 'plain' else recipe_run(df, name, a.size, a.epochs, a.bs, a.seed)
        pred = probs.argmax(1)
        figures['variants'][name] = dict(balanced_accuracy=round(balanced_accuracy_score(targs, pred), 4), macro_auc=round(macro_auc(probs, targs), 4),
            recall=dict(zip(vocab, np.round(recall_score(targs, pred, labels=range(len(vocab)), average=None, zero_division=0), 3).tolist())),
            minutes=round((time.time() - t0) / 60, 1))
        print(name, figures['variants'][name], flush=True)
        report('train', figures)

if __name__ == '__main__': main()
