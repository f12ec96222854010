"Training runs shared by the comparison benchmarks: one recipe, one budget, one split, trained once per variant."
import dataclasses, json, time
import numpy as np, pandas as pd
from common import RESULTS
from lesion_analysis.core import atomic_write
from lesion_analysis.train import Recipe, train, data_fingerprint
from lesion_analysis.metrics import macro_auc, balanced_accuracy

MODELS = RESULTS/'models'

def train_variant(df, name:str, segmenter=None, **overrides) -> dict:
    "Validation figures of `Recipe(**overrides)` trained on `df` into bench/results/models/NAME (reused when trained with the same recipe on the same table)."
    r, out = Recipe(**overrides), MODELS/name
    cfg_file, variant_file = out/'config.json', out/'variant.json'
    variant = json.loads(json.dumps(dict(recipe=dataclasses.asdict(r), data=data_fingerprint(df))))  # the data: images, labels, lesion boxes, split
    reused = cfg_file.is_file() and variant_file.is_file() and json.loads(variant_file.read_text()) == variant
    t0 = time.time()
    if not reused:
        train(df, out, r, cache=RESULTS/'cache', force=True, segmenter=segmenter)
        with atomic_write(variant_file) as tmp: tmp.write_text(json.dumps(variant, indent=1))
    cfg = json.loads(cfg_file.read_text())
    v = pd.read_csv(out/'valid_preds.csv')
    probs, targs = v[cfg['classes']].to_numpy(), v.label.map({c: i for i, c in enumerate(cfg['classes'])}).to_numpy()
    return dict(balanced_accuracy=round(balanced_accuracy(probs, targs), 4), macro_auc=round(macro_auc(probs, targs), 4),
                n_valid=len(v), best_epoch=cfg['valid']['best_epoch'], minutes=round((time.time() - t0) / 60, 1) if not reused else None,
                reused_from_earlier_run=reused)
