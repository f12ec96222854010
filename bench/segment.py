"""Lesion segmentation on real image and mask pairs, cross-validated: the default U-Net with each mask TTA against Otsu.

Every one of the 814 pairs of shared/data/segmentation is scored once, at its original size against its ground-truth
mask, by the fold model of bench/accuracy.py's `default` candidate (the CLI's default recipe) that did not train on it
(5 lesion-grouped folds; a fold not yet scored there is trained here, and fold 0's model when only its scores are here),
and by Otsu's threshold on the blue channel, the classical baseline. Per method: mean Jaccard with its lesion-bootstrap
95% interval, median, 10th percentile, minimum, Dice, failures under 0.65 (the ISIC challenge's), the mean per source,
and the paired difference from Otsu on the same images; then milliseconds per image of each mask TTA with `segment`'s
defaults (fold 0's model, on --timed of its held-out images, the image already decoded).

    python bench/segment.py [--timed 20]

bench/crops.py finds lesions with fold 0's model (trained on 4/5 of the pairs).
"""
import argparse, time
import numpy as np, pandas as pd
from common import report, RESULTS
from accuracy import OUT, pairs_table, run_seg_fold, read_scores, mean_ci, recipe_default
from lesion_analysis.core import load_image, write_csv
from lesion_analysis.datasets import kfold_by_lesion, lesion_groups
from lesion_analysis.metrics import mask_jaccard
from lesion_analysis.segment import Segmenter, SEG_TTA, read_mask, otsu_blue

FOLDS, SEED = 5, 42  # bench/accuracy.py's folds
SEGMENTER = OUT/'segmentation'/'default'/'fold_0'  # the model bench/crops.py uses

def distribution(j, groups) -> dict:
    "Summary of per-image Jaccard indices `j` of lesions `groups`."
    j = np.asarray(j)
    return dict(jaccard=mean_ci(j, groups), median=round(float(np.median(j)), 4), p10=round(float(np.quantile(j, .1)), 4),
                min=round(float(j.min()), 4), failures_under_065=int((j < 0.65).sum()), failure_rate=round(float((j < 0.65).mean()), 4),
                dice=round(float((2 * j / (1 + j)).mean()), 4))

def otsu_scores(pairs:pd.DataFrame) -> pd.Series:
    "Jaccard of Otsu's threshold on the blue channel for each image of `pairs`, by image path."
    def score(img_path, mask_path):
        img = load_image(img_path)
        return mask_jaccard(otsu_blue(img), read_mask(mask_path, img.shape))
    return pd.Series([score(i, m) for i, m in zip(pairs.image, pairs['mask'])], index=pairs.image)

def unet_scores() -> tuple:
    "Held-out Jaccard of the default recipe's fold models for each image (rows) and mask TTA (columns), raw masks, and each fold model's training minutes; folds not yet scored are trained, and fold 0's model if it is not here (timed, and bench/crops.py's)."
    s = read_scores([run_seg_fold(OUT, 'default', {}, f, FOLDS, SEED, None, with_model=f == 0) for f in range(FOLDS)])
    return s[~s.clean].pivot(index='image', columns='tta', values='jaccard')[list(SEG_TTA)], s.groupby('fold').train_minutes.first().tolist()

def ms_per_image(pairs:pd.DataFrame, n:int) -> dict:
    "Median milliseconds of `Segmenter.predict` per decoded image with each mask TTA, on the first `n` images fold 0 held out; how it computed."
    seg, imgs = Segmenter(SEGMENTER), [load_image(i) for i in pairs[pairs.fold == 0].image[:n]]
    seg.predict(imgs[:1])  # warm-up
    def ms(tta):
        t = []
        for img in imgs: t0 = time.perf_counter(); seg.predict([img], tta); t.append((time.perf_counter() - t0) * 1000)
        return round(float(np.median(t)), 1)
    return dict(images=len(imgs), plan=seg.plan, **{tta: ms(tta) for tta in SEG_TTA})

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--timed', type=int, default=20, help='images timed with each TTA')
    a = p.parse_args()
    pairs = kfold_by_lesion(pairs_table(), FOLDS, SEED)
    unet, minutes = unet_scores()
    t0 = time.time()
    res = pairs.set_index('image')[['dataset']].assign(group=lesion_groups(pairs).to_numpy(), otsu_blue=otsu_scores(pairs)).join(unet)
    otsu_seconds = round(time.time() - t0, 1)
    write_csv(res.reset_index(), RESULTS/'segment_per_image.csv')
    methods = ['otsu_blue', *SEG_TTA]
    figures = dict(pairs=len(res), folds=FOLDS, seed=SEED, recipe_default=recipe_default('segmentation'), train_minutes_per_fold=minutes,
                   otsu_seconds=otsu_seconds, methods={m: distribution(res[m], res.group) for m in methods},
                   vs_otsu={m: mean_ci((res[m] - res.otsu_blue).to_numpy(), res.group) for m in SEG_TTA},
                   by_dataset={d: {m: round(float(g[m].mean()), 4) for m in methods} for d, g in res.groupby('dataset')},
                   ms_per_image=ms_per_image(pairs, a.timed))
    report('segment', figures)

if __name__ == '__main__': main()
