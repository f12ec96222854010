"""Precision on a CUDA GPU (issue 21): the recipe trained with `--precision fp32`, `fp16` and `bf16` (and `auto`) on the same
lesion-grouped split and seed, then each fp32-trained model's predictions in fp16 and bf16 against fp32, and prediction
throughput (`predict_speed.speed_figures`: JPEG decoding included, against a bare fp32 forward pass) at batch 32 and 1.

The images are the labelled ones of shared/data/segmentation (HAM10000, ISIC 2017, PH2; classes with at least 20 images),
so that one run carries one folder to the GPU machine. On a machine without a CUDA GPU it says so and measures nothing.

    python bench/gpu_precision.py [--size 160] [--epochs 3]
"""
import argparse, sys, time
import pandas as pd, torch
from common import report, RESULTS
from predict_speed import agreement, speed_figures
from lesion_analysis.core import shared_data
from lesion_analysis.datasets import read_mask_pairs, split_by_lesion
from lesion_analysis.learner import compute_plan
from lesion_analysis.train import Recipe, train
from lesion_analysis.infer import Classifier, predict

OUT = RESULTS/'models'/'gpu_precision'

def labelled_images() -> pd.DataFrame:
    "The segmentation pairs' images with their class, classes of at least 20 images, split by lesion."
    df = read_mask_pairs(shared_data('segmentation')/'pairs.csv')[['image', 'label', 'split_group', 'dataset']]
    return split_by_lesion(df[df.label.map(df.label.value_counts()) >= 20].reset_index(drop=True), valid_pct=0.2)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--size', type=int, default=160); p.add_argument('--epochs', type=int, default=3)
    a = p.parse_args()
    if not torch.cuda.is_available(): print("no CUDA GPU on this machine: nothing measured"); return 1
    df, r, fig = labelled_images(), Recipe(size=a.size, epochs=a.epochs), dict(gpu=torch.cuda.get_device_name(0), training={})
    fig['auto_plan'] = dict(training=compute_plan(training=True), prediction=compute_plan())
    for prec in ('fp32', 'fp16', 'bf16', 'auto'):
        t0 = time.time(); _, cfg = train(df, OUT/prec, r, cache=OUT/'cache', force=True, precision=prec)
        fig['training'][prec] = dict(minutes=round((time.time() - t0) / 60, 2), compute=cfg['compute'], balanced_accuracy=round(cfg['valid']['balanced_accuracy'], 4),
                                     precision_check=cfg.get('precision_check'))
        print(prec, fig['training'][prec], flush=True)
    valid = df[df.is_valid].reset_index(drop=True)[['image']]
    clfs = {p: Classifier(OUT/'fp32', precision=p) for p in ('fp32', 'fp16', 'bf16')}
    probs = {p: predict(c, valid, rescale=False, progress=False)[c.classes].to_numpy() for p, c in clfs.items()}
    fig['prediction_vs_fp32'] = {p: agreement(probs['fp32'], probs[p]) for p in ('fp16', 'bf16')}
    fig['auto_predicts_in'] = Classifier(OUT/'fp32').plan
    print(fig['prediction_vs_fp32'], flush=True)
    fig['speed'] = speed_figures(OUT/'fp32', valid.image.tolist(), 2)
    report('gpu_precision', dict(images=len(df), n_valid=len(valid), size=a.size, epochs=f'1 frozen + {a.epochs}', **fig))

if __name__ == '__main__': sys.exit(main())
