"""The lesion detector on real images (the Skin-10 paper's detection-based classification), against the image classifier.

The shared lesions are split as in `bench/binary.py` (no UNK, 15% of the lesions for validation, seed 42); the detectors
train on the training images that have a box in `../shared/data/boxes/boxes.csv` (boxes from real lesion masks) and are
scored on the validation images that have one:
- mAP at IoU 0.5 and over IoU 0.5:0.95 (torchmetrics, pycocotools), mean IoU of the top box with the true box;
- detection-based classification, the class of the top box: balanced accuracy, top-1 and top-3 accuracy, against the image
  classifier of `bench/binary.py` (the recipe at the same size class, trained on the same split) on the same images;
- lesion-centred crops from the RetinaNet's top boxes (`--lesion-margin 0.2`, the detector finding the boxes of every image,
  training and validation) against frame crops, same recipe and budget, as `bench/crops.py` measured for the U-Net.

    python bench/detect.py [--size 256] [--epochs 4] [--retrain] [--bootstrap 1000]
"""
import argparse, json, time
import numpy as np, pandas as pd
from common import lesions, report, with_interval, train_once, RESULTS
from lesion_analysis.core import shared_data
from lesion_analysis import datasets as ds
from lesion_analysis.train import Recipe
from lesion_analysis.detect import read_boxes, Detector
from lesion_analysis.infer import Classifier, predict
from lesion_analysis.metrics import balanced_accuracy

MODELS = RESULTS/'models'/'detect'
CLASSIFIER = RESULTS/'models'/'binary'/'multiclass'  # bench/binary.py's multi-class model: the same split

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--size', type=int, default=256); p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--retrain', action='store_true'); p.add_argument('--bootstrap', type=int, default=1000)
    p.add_argument('--detectors', nargs='+', default=['retinanet', 'faster_rcnn'])
    a = p.parse_args()
    d, data = lesions(), shared_data('')
    table = ds.read_table(d/'labels.csv', images=d/'images')
    split = ds.split_by_lesion(table[table.label != 'UNK'].reset_index(drop=True), valid_pct=0.15, seed=42)
    boxes = read_boxes(data/'boxes'/'boxes.csv', data)
    keyed = split.set_index(split.image.map(lambda s: str(s)))
    boxes = boxes[boxes.image.isin(keyed.index)].reset_index(drop=True)
    boxes = boxes.assign(is_valid=keyed.loc[boxes.image, 'is_valid'].to_numpy(), split_group=keyed.loc[boxes.image, 'split_group'].to_numpy())
    print(f"{len(boxes)} shared lesion images with a box: {int((~boxes.is_valid).sum())} training, {int(boxes.is_valid.sum())} validation", flush=True)
    figures, minutes = {}, {}
    for kind in a.detectors:
        out = MODELS/kind
        minutes[kind] = train_once(boxes, out, Recipe(task='detection', detector=kind, size=a.size, bs=16, freeze_epochs=1, epochs=a.epochs, seed=42), a.retrain)
        v = json.loads((out/'config.json').read_text())['valid']
        figures[kind] = {k: round(v[k], 4) for k in ('map_50', 'map', 'mean_iou', 'balanced_accuracy', 'top1', 'top3')}
        print(kind, figures[kind], f"trained in {minutes[kind]} min" if minutes[kind] else 'already trained', flush=True)
    # detection-based classification against the image classifier, on the same validation images, with lesion-bootstrap intervals
    valid = boxes[boxes.is_valid].reset_index(drop=True)
    groups = valid.split_group.to_numpy()
    clf = Classifier(CLASSIFIER)
    probs = predict(clf, valid[['image']], progress=False)[clf.classes].to_numpy()
    truth = valid.label.to_numpy()
    rank = np.argsort(-probs, 1)
    top_k = lambda k: np.array([t in np.array(clf.classes)[r[:k]] for t, r in zip(truth, rank)])
    y_idx = np.array([clf.classes.index(t) for t in truth])
    comparison = {'image classifier (recipe, 128 px)': dict(
        balanced_accuracy=with_interval(lambda t, q: balanced_accuracy(q, t), y_idx, probs, groups, a.bootstrap),
        top1=round(float(top_k(1).mean()), 4), top3=round(float(top_k(3).mean()), 4))}
    for kind in figures:
        vd = pd.read_csv(MODELS/kind/'valid_detections.csv').set_index('image').loc[valid.image]
        pred = vd.top_label.fillna('none').to_numpy()
        comparison[f'{kind}, class of the top box'] = dict(
            balanced_accuracy=with_interval(lambda t, q: float(pd.Series(q == t).groupby(t).mean().mean()), truth, pred, groups, a.bootstrap),
            top1=figures[kind]['top1'], top3=figures[kind]['top3'])
    # lesion-centred crops from the RetinaNet's boxes against frame crops (bench/binary.py's multi-class model), same recipe and budget
    base = json.loads((CLASSIFIER/'config.json').read_text())['recipe']
    crop_recipe = Recipe(**{**base, 'lesion_margin': 0.2})
    det = Detector(MODELS/'retinanet')
    t0 = time.time(); found = det.lesion_boxes(split); boxes_minutes = round((time.time() - t0) / 60, 1)
    print(f"RetinaNet boxes for {len(found)} images in {boxes_minutes} min ({int(found.lesion_found.sum())} found)", flush=True)
    minutes['lesion crops'] = train_once(found, MODELS/'crops-classifier', crop_recipe, a.retrain)
    crops = {}
    for name, m in (('frame crops', CLASSIFIER), ('lesion crops from the RetinaNet', MODELS/'crops-classifier')):
        c = Classifier(m); vp = pd.read_csv(m/'valid_preds.csv')
        pr = c.rescale(vp[c.classes].to_numpy())
        g = vp.image.map(dict(zip(split.image.astype(str), ds.lesion_groups(split)))).to_numpy()
        crops[name] = with_interval(lambda t, q: balanced_accuracy(q, t), vp.label.map(c.classes.index).to_numpy(), pr, g, a.bootstrap)
    print(pd.DataFrame(figures).T.to_markdown()); print(pd.DataFrame(comparison).T.to_markdown()); print(pd.DataFrame(crops).T.to_markdown())
    report('detect', dict(images=dict(train=int((~boxes.is_valid).sum()), valid=len(valid)), size=a.size, epochs=f"1 frozen + {a.epochs}",
                          training_minutes=minutes, detectors=figures, classification_on_the_same_images=comparison,
                          lesion_crops=dict(balanced_accuracy=crops, note='validation images of the whole split (311), priors rescaled; boxes found by the RetinaNet',
                                            boxes_minutes=boxes_minutes, boxes_found=int(found.lesion_found.sum()), images=len(found))))

if __name__ == '__main__':
    main()
