"Training runs shared by the comparison benchmarks: one recipe, one budget, one split, trained once per variant."
import json
import pandas as pd
from common import RESULTS, train_once
from lesion_analysis.train import Recipe
from lesion_analysis.metrics import macro_auc, balanced_accuracy

MODELS = RESULTS/'models'

def train_variant(df, name:str, segmenter=None, **overrides) -> dict:
    "Validation figures of `Recipe(**overrides)` trained on `df` into bench/results/models/NAME (reused when trained with the same recipe on the same table)."
    out = MODELS/name
    minutes = train_once(df, out, Recipe(**overrides), segmenter=segmenter)
    cfg = json.loads((out/'config.json').read_text())
    v = pd.read_csv(out/'valid_preds.csv')
    probs, targs = v[cfg['classes']].to_numpy(), v.label.map({c: i for i, c in enumerate(cfg['classes'])}).to_numpy()
    return dict(balanced_accuracy=round(balanced_accuracy(probs, targs), 4), macro_auc=round(macro_auc(probs, targs), 4),
                n_valid=len(v), best_epoch=cfg['valid']['best_epoch'], minutes=minutes, reused_from_earlier_run=minutes is None)
