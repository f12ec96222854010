"""The evaluation a reviewer asks for, on real images: the default recipe's model on the shared lesions' validation split,
and PAD-UFES-20 smartphone photos as the far shift.

- calibration: ECE, MCE, classwise ECE, Brier and negative log-likelihood before and after the temperature, the temperature
  fitted on one half of the validation lesions and measured on the other (both ways, averaged), beside the in-sample figures
  the model stores; what the temperature does to the top class once priors are rescaled after it, as the library does it
  (priors to the power 1/T) and as Bayes' rule taken literally would (plain priors);
- the full report (`evaluation.evaluation_report`): intervals, subgroups, the ISIC 2024 pAUC, stability under harmless changes,
  out-of-distribution scores against the near shift (the shared set's UNK images, a class the model never saw) and the far
  shift (PAD-UFES-20, smartphone photos of a different modality), and the score chosen as the default;
- PAD-UFES-20 as a test set: the dermoscopy model's figures on smartphone photos, by Fitzpatrick skin type, sex, age, site.

    python bench/evaluate.py [--retrain] [--bootstrap 1000]
"""
import argparse, json, time
import numpy as np, pandas as pd
from sklearn.model_selection import GroupKFold
from common import lesions, report, RESULTS
from lesion_analysis.core import shared_data
from lesion_analysis import datasets as ds
from lesion_analysis.train import train, Recipe
from lesion_analysis.infer import Classifier, predict, to_isic
from lesion_analysis.metrics import fit_temperature, calibration_errors, softmax_t, temperature_nll, balanced_accuracy
from lesion_analysis.evaluation import evaluation_report, choose_ood_score

MODEL = RESULTS/'models'/'evaluate-recipe'

def recipe_model(df, retrain:bool) -> Classifier:
    "The default recipe trained on the shared lesions (UNK held out) with this version's calibration and statistics, trained if absent."
    if retrain or not (MODEL/'config.json').is_file() or 'calibration' not in json.loads((MODEL/'config.json').read_text()):
        t0 = time.time(); train(df, MODEL, Recipe(), cache=RESULTS/'cache', force=True); print(f"trained in {(time.time() - t0) / 60:.1f} min", flush=True)
    return Classifier(MODEL)

def cross_fitted_calibration(vp:pd.DataFrame, classes, groups) -> dict:
    "ECE, MCE, classwise ECE, Brier and NLL before and after a temperature fitted on the other half of the lesions (two folds, averaged)."
    logits, y = np.log(np.clip(vp[classes].to_numpy(float), 1e-30, 1)), vp.label.map(classes.index).to_numpy()
    rows = []
    for fit, held in GroupKFold(2).split(logits, y, groups):
        T = fit_temperature(logits[fit], y[fit])
        for name, t in (('before', 1.), ('after', T)):
            rows.append(dict(stage=name, temperature=T, nll=temperature_nll(logits[held], y[held], t), **calibration_errors(softmax_t(logits[held], t), y[held])))
    return pd.DataFrame(rows).groupby('stage').mean().round(4).to_dict('index')

def rescaling_orders(vp:pd.DataFrame, clf:Classifier) -> dict:
    "Validation balanced accuracy and changed top classes, priors rescaled: uncalibrated, the library's order (priors^(1/T)), plain priors after T."
    logits, y = np.log(np.clip(vp[clf.classes].to_numpy(float), 1e-30, 1)), vp.label.map(clf.classes.index).to_numpy()
    rescaled = lambda p, pri: (p / pri) / (p / pri).sum(1, keepdims=True)
    T, pri = clf.temperature, clf.priors
    ways = {'uncalibrated': rescaled(softmax_t(logits), pri), 'library: priors^(1/T) after T': rescaled(softmax_t(logits, T), pri ** (1 / T)),
            'plain priors after T': rescaled(softmax_t(logits, T), pri)}
    top = ways['uncalibrated'].argmax(1)
    return {k: dict(balanced_accuracy=round(balanced_accuracy(p, y), 4), top_class_changed=round(float((p.argmax(1) != top).mean()), 4)) for k, p in ways.items()}

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--retrain', action='store_true'); p.add_argument('--bootstrap', type=int, default=1000)
    a = p.parse_args()
    d = lesions()
    table = ds.read_table(d/'labels.csv', images=d/'images')
    df = ds.split_by_lesion(table[table.label != 'UNK'], valid_pct=0.15, seed=42)
    clf = recipe_model(df, a.retrain)
    vp = pd.read_csv(MODEL/'valid_preds.csv')
    valid = table.set_index(table.image.map(lambda s: s.rsplit('/', 1)[-1])).loc[vp.image.map(lambda s: s.rsplit('/', 1)[-1])].reset_index(drop=True)
    t0 = time.time()
    cal = predict(clf, valid, progress=False)
    fig = dict(model=str(MODEL.relative_to(RESULTS.parent)), n_valid=len(valid), temperature=clf.temperature, stored_calibration=clf.config['calibration'],
               calibration_held_out=cross_fitted_calibration(vp, clf.classes, ds.lesion_groups(valid).to_numpy()),
               with_rescaled_priors=rescaling_orders(vp, clf))
    print(json.dumps(fig, indent=2), flush=True)
    preds = RESULTS/'evaluate'/'valid_preds_isic.csv'; preds.parent.mkdir(parents=True, exist_ok=True)
    to_isic(cal).to_csv(preds, index=False)
    pad = ds.read_padufes(shared_data('padufes')/'metadata.csv', images=shared_data('padufes')/'images')
    shifts = {'near: UNK images': table[table.label == 'UNK'].image.tolist(), 'far: PAD-UFES-20': pad.image.tolist()}
    s = evaluation_report(valid[['image', 'label']], preds, RESULTS/'evaluate', meta=valid, model=clf, shifts=shifts, n_boot=a.bootstrap)
    oo = pd.DataFrame(s['ood']['table'])
    fig.update(headline=s['intervals'], calibration_of_predictions=s['calibration']['predictions'], stability=s['stability'],
               ood=oo.round(4).to_dict('records'), ood_chosen=choose_ood_score(oo), ood_model_default=clf.ood_default, report_seconds=round(time.time() - t0))
    # PAD-UFES-20 as a test set: the dermoscopy model on smartphone photos, by skin type
    pad_preds = RESULTS/'evaluate_padufes'/'preds_isic.csv'; pad_preds.parent.mkdir(parents=True, exist_ok=True)
    to_isic(predict(clf, pad, progress=False)).to_csv(pad_preds, index=False)
    sp = evaluation_report(pad[['image', 'label']], pad_preds, RESULTS/'evaluate_padufes', meta=pad, n_boot=a.bootstrap)
    sub = pd.DataFrame(sp['subgroups'])
    fig['padufes'] = dict(headline=sp['intervals'], skin_type=sub[sub.subgroup == 'skin type'][['group', 'images', 'lesions', 'too_small', 'balanced_accuracy',
                          'balanced_accuracy_low', 'balanced_accuracy_high', 'macro_auc']].round(4).to_dict('records'))
    report('evaluate', fig)

if __name__ == '__main__': main()
