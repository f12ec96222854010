"""Training on real images: the CLI's default recipe against plain fastai, cross-validated on the shared lesion images.

Both train tf_efficientnet_lite0 from the offline ImageNet weights, on the same 5 lesion-grouped folds of the shared lesion
images (UNK dropped: 8 classes) for each seed, with the same number of epochs at the same input size; every image is
scored by the model of the fold that did not train on it.
- recipe: bench/accuracy.py's `default` candidate, the CLI's default recipe (its folds and scores are shared with
  accuracy.py: a fold either scored is reused), scored as `predict` scores it (no TTA, priors rescaled) and with priors kept.
- plain fastai: `fine_tune` with fastai's defaults (Resize, aug_transforms, unweighted cross-entropy, its learning rate and
  schedule) on the whole training part of the fold, keeping its last epoch, scored without and with the same prior rescaling
  (the class frequencies of its training images).
Balanced accuracy with its lesion-bootstrap 95% interval, macro AUC, and the paired difference from the recipe as `predict`
scores it; each fold's per-image scores go to bench/results/accuracy/classification/ (committed, like accuracy.py's), so a
run stopped part way goes on from the folds scored, and `--no-train` summarises the folds both have scored so far.

    python bench/train.py [--seeds 42] [--folds 5] [--no-train]
"""
import argparse, json, os, time
import numpy as np, pandas as pd, torch
from common import report
from accuracy import OUT, CLS_CANDIDATES, lesions_table, run_cls_fold, fold_files, read_scores, cls_summary, recipe_default
from lesion_analysis.core import atomic_write, write_csv, shared_data
from lesion_analysis.datasets import kfold_by_lesion, lesion_groups
from lesion_analysis.train import Recipe
from lesion_analysis.learner import arch_stats
from lesion_analysis.classify import lesion_learner
from lesion_analysis.infer import rescale_priors
from fastai.vision.all import (DataBlock, ImageBlock, CategoryBlock, ColReader, ColSplitter, Resize, aug_transforms, Normalize, set_seed)

PLAIN = 'plain_fastai'

def plain_settings() -> dict:
    "Plain fastai's budget: the CLI default recipe's final size, epochs and batch size."
    r = Recipe()
    return dict(arch=r.arch, size=r.size, freeze_epochs=r.freeze_epochs, epochs=r.epochs, bs=r.bs)

def plain_fastai(df:pd.DataFrame, fold:int, seed:int, s:dict) -> pd.DataFrame:
    "Probabilities for fold `fold` of `df` of `fine_tune` with fastai's defaults trained on the other folds (its last epoch)."
    set_seed(seed, reproducible=True)
    dblock = DataBlock(blocks=(ImageBlock, CategoryBlock), get_x=ColReader('image'), get_y=ColReader('label'), splitter=ColSplitter('is_valid'),
                       item_tfms=Resize(s['size']), batch_tfms=[*aug_transforms(), Normalize.from_stats(*arch_stats(s['arch']))])
    dls = dblock.dataloaders(df.assign(is_valid=df.fold == fold), bs=s['bs'], num_workers=0)  # the held-out fold only watched: nothing is chosen on it
    learn = lesion_learner(dls, s['arch'])
    with learn.no_bar():
        learn.fine_tune(s['epochs'], freeze_epochs=s['freeze_epochs'])
        probs = learn.get_preds()[0].numpy()
    classes, test = list(dls.vocab), df[df.fold == fold]
    priors = df[df.fold != fold].label.value_counts(normalize=True).reindex(classes).to_numpy()
    return pd.concat([pd.DataFrame(p, columns=classes).assign(image=test.image.to_numpy(), label=test.label.to_numpy(), group=lesion_groups(test).to_numpy(),
                                                              tta='none', rescale=rescale) for rescale, p in ((False, probs), (True, rescale_priors(probs, priors)))],
                     ignore_index=True)

def run_plain_fold(fold:int, k:int, seed:int, scored_only:bool=False) -> str|None:
    "Plain fastai's per-image scores of fold `fold` of `seed`'s folds (reused when scored with today's settings; None if not there and `scored_only`)."
    out, scores, record = fold_files(OUT, 'classification', PLAIN, f'seed_{seed}', f'fold_{fold}')
    s = plain_settings()
    if scores.is_file():
        if (then := json.loads(record.read_text())['settings']) != s: raise SystemExit(f"{scores}: scored with {then}, not {s}; move it and {record} away to retrain it")
        return str(scores)
    if scored_only: return None
    df, t0 = kfold_by_lesion(lesions_table(), k, seed), time.time()
    rows = plain_fastai(df, fold, seed, s)
    minutes = (time.time() - t0) / 60
    write_csv(rows.assign(image=[os.path.relpath(i, shared_data()) for i in rows.image], candidate=PLAIN, seed=seed, fold=fold,
                          train_minutes=round(minutes, 2), device='cuda' if torch.cuda.is_available() else 'cpu'), scores, float_format='%.5g')
    with atomic_write(record) as tmp: tmp.write_text(json.dumps(dict(model=PLAIN, settings=s), indent=1))
    print(f'{PLAIN} seed {seed} fold {fold}: trained in {minutes:.1f} min', flush=True)
    return str(scores)

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--seeds', default='42', help='comma-separated: each seed has its own folds')
    p.add_argument('--folds', type=int, default=5)
    p.add_argument('--no-train', action='store_true', help='summarise the folds already scored')
    a = p.parse_args()
    seeds = [int(s) for s in a.seeds.split(',')]
    lesions_table()  # fails here, saying where it looked, when the shared data is absent
    files = [file for s in seeds for f in range(a.folds)  # fold by fold, the recipe then plain fastai
             for file in (run_cls_fold(OUT, 'default', CLS_CANDIDATES['default'], f, a.folds, s, None, a.no_train), run_plain_fold(f, a.folds, s, a.no_train))]
    if not any(files): raise SystemExit("no fold scored yet: run without --no-train")
    scores = read_scores(files)
    scores = scores[scores.groupby(['seed', 'fold']).candidate.transform('nunique') == 2]  # the folds both have scored
    summary = cls_summary(scores[(scores.candidate == 'default') & (scores.tta == 'none') | (scores.candidate == PLAIN)])
    report('train', dict(images=int(scores.image.nunique()), folds=a.folds, seeds=seeds, recipe=recipe_default('classification'), plain_fastai=plain_settings(),
                         baseline='the recipe, as predict scores it: no TTA, priors rescaled', summary=summary))

if __name__ == '__main__': main()
