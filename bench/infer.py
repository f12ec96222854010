"""Inference on real images with the models of bench/models.py: TTA kinds, prior rescaling, an ensemble, UNK separation, speed.

On the validation split of the training benchmark (the images in each model's valid_preds.csv):
balanced accuracy and macro AUC without TTA, with each TTA kind, with prior rescaling, and for the mean of two models;
the AUROC of the UNK score for the shared set's UNK images (a class held out of training) against the validation images
(throughput and precision: bench/predict_speed.py).

    python bench/infer.py [--models recipe,recipe-effective]
"""
import argparse, time
import numpy as np, pandas as pd, torch
from sklearn.metrics import balanced_accuracy_score
from common import lesions, report, RESULTS
from lesion_analysis.datasets import read_table
from lesion_analysis.infer import Classifier, predict, rescale_priors, ensemble, ood_auroc, model_unk_rule
from lesion_analysis.evaluation import table_outputs
from lesion_analysis.metrics import macro_auc

def scores(probs, labels, classes) -> dict:
    "Balanced accuracy and macro AUC of `probs` (n x classes) against class-name `labels`."
    y = np.array([classes.index(l) for l in labels])
    return dict(balanced_accuracy=round(balanced_accuracy_score(y, probs.argmax(1)), 4), macro_auc=round(macro_auc(probs, y), 4))

def main():
    p = argparse.ArgumentParser(description=__doc__); p.add_argument('--models', default='recipe,recipe-effective')
    a = p.parse_args()
    names = a.models.split(',')
    clfs = {n: Classifier(RESULTS/'models'/n) for n in names}
    valid = pd.read_csv(RESULTS/'models'/names[0]/'valid_preds.csv')[['image', 'label']]
    fig, preds = dict(n_valid=len(valid), models=names, accuracy={}), {}
    for n, clf in clfs.items():
        for tta in ('none', 'flips', 'paper', 'fastai'):
            t0 = time.perf_counter(); pr = predict(clf, valid, tta=tta, rescale=False, progress=False); secs = time.perf_counter() - t0
            probs = pr[clf.classes].to_numpy()
            fig['accuracy'][f'{n}/tta={tta}'] = dict(**scores(probs, valid.label, clf.classes), seconds=round(secs, 1))
            if tta == 'none':
                preds[n] = pr
                fig['accuracy'][f'{n}/rescaled priors'] = scores(rescale_priors(probs, clf.priors), valid.label, clf.classes)
            print(n, tta, fig['accuracy'][f'{n}/tta={tta}'], flush=True)
    classes = clfs[names[0]].classes
    fig['accuracy']['ensemble mean/tta=none'] = scores(ensemble([preds[n] for n in names])[classes].to_numpy(), valid.label, classes)
    # UNK: the shared set's UNK images were dropped from training, so they are a class the models never saw
    d = lesions(); les = read_table(d/'labels.csv', images=d/'images')
    unk_imgs = les[les.label == 'UNK']
    clf = clfs[names[0]]
    o_in, o_out = table_outputs(clf, valid.image)[0], table_outputs(clf, unk_imgs.image)[0]
    fig['unk'] = {}
    for m in ('maxprob', 'entropy'):
        s_in, s_out, rule = clf.ood(o_in, m), clf.ood(o_out, m), model_unk_rule(clf, m)
        fig['unk'][m] = dict(auroc=round(ood_auroc(s_in, s_out), 4), flagged_unk_images=f"{int((s_out > rule['threshold']).sum())}/{len(s_out)}")
    fig['unk']['n_unk_images'] = len(unk_imgs)
    report('infer', fig)

if __name__ == '__main__': main()
