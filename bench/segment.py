"""Lesion segmentation on real image and mask pairs: the U-Net with and without mask TTA, against Otsu on the blue channel.

Trains `lesion-analysis train --task segmentation` (tf_efficientnet_lite0 encoder from the offline ImageNet weights) on the
814 pairs of shared/data/segmentation, split by `split_group` (15% validation), and scores every validation image at its
original size against its ground-truth mask: mean Jaccard, Dice, and the per-image distribution (the ISIC challenge counted an
image under 0.65 as a failure).

    python bench/segment.py [--size 128] [--epochs 5]

The model directory is kept in bench/results/models/segmenter (not committed): bench/crops.py uses it.
"""
import argparse, time
import numpy as np, pandas as pd
from common import report, RESULTS
from lesion_analysis.core import load_image, shared_data, write_csv
from lesion_analysis.datasets import read_mask_pairs, split_by_lesion
from lesion_analysis.train import Recipe, train
from lesion_analysis.metrics import mask_jaccard
from lesion_analysis.segment import Segmenter, SEG_TTA, read_mask, otsu_blue

MODEL = RESULTS/'models'/'segmenter'

def distribution(j) -> dict:
    "Summary of per-image Jaccard indices."
    j = np.asarray(j)
    return dict(mean=round(float(j.mean()), 4), median=round(float(np.median(j)), 4), p10=round(float(np.quantile(j, .1)), 4),
                min=round(float(j.min()), 4), failures_under_065=int((j < 0.65).sum()), failure_rate=round(float((j < 0.65).mean()), 4),
                dice=round(float((2 * j / (1 + j)).mean()), 4))

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--size', type=int, default=128); p.add_argument('--epochs', type=int, default=5)
    p.add_argument('--bs', type=int, default=16); p.add_argument('--seed', type=int, default=42)
    a = p.parse_args()
    pairs = split_by_lesion(read_mask_pairs(shared_data('segmentation')/'pairs.csv'), valid_pct=0.15, seed=a.seed)
    t0 = time.time()
    _, cfg = train(pairs, MODEL, Recipe(task='segmentation', size=a.size, bs=a.bs, epochs=a.epochs, seed=a.seed),
                             cache=RESULTS/'cache', force=True)
    train_minutes = round((time.time() - t0) / 60, 1)
    seg, va = Segmenter(MODEL), pairs[pairs.is_valid].reset_index(drop=True)
    rows = []
    for img_path, mask_path, dataset in zip(va.image, va['mask'], va.dataset):
        img = load_image(img_path); truth = read_mask(mask_path, img.shape)
        row = dict(image=img_path, dataset=dataset, otsu_blue=mask_jaccard(otsu_blue(img), truth))
        for tta in SEG_TTA:
            t1 = time.perf_counter(); prob = seg.predict([img], tta)[0]
            row[tta], row[f'{tta}_ms'] = mask_jaccard(prob > 0.5, truth), (time.perf_counter() - t1) * 1000
        rows.append(row)
    res = pd.DataFrame(rows); write_csv(res, RESULTS/'segment_per_image.csv')
    methods = ['otsu_blue', *SEG_TTA]
    figures = dict(n_train=int((~pairs.is_valid).sum()), n_valid=len(va), size=a.size, epochs=f'1 frozen + {a.epochs}',
                   train_minutes=train_minutes, training_valid=cfg['valid'],
                   jaccard={m: distribution(res[m]) for m in methods},
                   by_dataset={d: {m: round(float(g[m].mean()), 4) for m in methods} for d, g in res.groupby('dataset')},
                   ms_per_image={t: round(float(res[f'{t}_ms'].median()), 1) for t in SEG_TTA})
    report('segment', figures)

if __name__ == '__main__': main()
