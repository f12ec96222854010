"""Lesion-centred crops: classification with the frame crop against crops around the lesion that the segmentation model finds.

Same recipe (tf_efficientnet_lite0, offline ImageNet weights), budget and lesion-grouped split (shared/data/lesions, UNK
dropped, 15% validation by `split_group`) for both; the lesion boxes come from the segmentation model of the CLI's default
recipe that bench/segment.py uses (fold 0 of bench/accuracy.py's `default` candidate: run segment.py first), the largest
predicted region (no mask TTA, for time) grown by --margin on each side. Balanced accuracy of each on the same validation
images with lesion-bootstrap intervals, and of their paired difference (same resamples).

    python bench/crops.py [--margin 0.2] [--size 160] [--epochs 4]
"""
import argparse, json, time
import numpy as np, pandas as pd
from common import lesions, report, with_interval, RESULTS
from variants import train_variant, MODELS
from lesion_analysis.core import write_csv
from lesion_analysis.datasets import read_table, split_by_lesion, lesion_groups
from lesion_analysis.metrics import balanced_accuracy
from lesion_analysis.segment import Segmenter
from segment import SEGMENTER

def paired_figures(df:pd.DataFrame, names:list, n:int=1000) -> dict:
    "Balanced accuracy of variants `names` (frame first) on their validation images with lesion-bootstrap intervals, and the second minus the first."
    classes = json.loads((MODELS/names[0]/'config.json').read_text())['classes']
    frame, lesion = (pd.read_csv(MODELS/v/'valid_preds.csv').set_index('image') for v in names)
    lesion, k = lesion.loc[frame.index], len(classes)
    y = frame.label.map(classes.index).to_numpy()
    probs = np.hstack([frame[classes].to_numpy(), lesion[classes].to_numpy()])
    groups = lesion_groups(df.set_index('image').loc[frame.index].reset_index()).to_numpy()
    bacc = lambda cols: lambda t, q: balanced_accuracy(q[:, cols], t)
    return {names[0]: with_interval(bacc(slice(0, k)), y, probs, groups, n), names[1]: with_interval(bacc(slice(k, None)), y, probs, groups, n),
            'difference': with_interval(lambda t, q: bacc(slice(k, None))(t, q) - bacc(slice(0, k))(t, q), y, probs, groups, n)}

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--margin', type=float, default=0.2); p.add_argument('--size', type=int, default=160)
    p.add_argument('--epochs', type=int, default=4); p.add_argument('--seed', type=int, default=42)
    a = p.parse_args()
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images')
    df = split_by_lesion(df[df.label != 'UNK'], valid_pct=0.15, seed=a.seed)
    if not (SEGMENTER/'config.json').is_file(): raise SystemExit(f"{SEGMENTER}: no segmentation model here; python bench/segment.py trains it")
    seg = Segmenter(SEGMENTER)
    t0 = time.time(); boxed = seg.lesion_boxes(df, tta='none'); box_minutes = round((time.time() - t0) / 60, 1)
    write_csv(boxed[['image', 'x0', 'y0', 'x1', 'y1', 'lesion_fraction', 'lesion_found']], RESULTS/'crops_boxes.csv')
    budget = dict(size=a.size, epochs=a.epochs, freeze_epochs=1, seed=a.seed)
    figures = dict(n_train=int((~df.is_valid).sum()), n_valid=int(df.is_valid.sum()), budget=budget, margin=a.margin,
                   segmenter=seg.config['valid'], lesion_found=round(float(boxed.lesion_found.mean()), 4),
                   median_lesion_fraction=round(float(boxed.lesion_fraction.median()), 4), box_minutes=box_minutes, variants={})
    names = [f'lesions-{a.size}-frame', f'lesions-{a.size}-lesion{a.margin}']
    for name, kw in zip(names, [{}, dict(lesion_margin=a.margin)]):
        figures['variants'][name] = train_variant(boxed, name, **budget, **kw)
        print(name, figures['variants'][name], flush=True)
        report('crops', figures)
    figures['balanced_accuracy'] = paired_figures(df, names)
    report('crops', figures)

if __name__ == '__main__': main()
