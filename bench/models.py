"""The single-split models the inference, deployment and service benchmarks run on.

tf_efficientnet_lite0 trained with the library's recipe at 160 px (1 frozen + 5 epochs) on the shared lesion images (UNK
dropped: 8 classes), split by lesion (`split_group`, 15% validation, seed 42): `recipe` (plain cross-entropy, the default)
and `recipe-effective` (effective-number class weights); `recipe-oversample` and `recipe-sgdr` on request. Each goes to
bench/results/models/NAME (not committed), reused when already trained with the same recipe on the same table
(variants.py). Their validation figures go to bench/results/models.json; those validation images also chose each model's
best epoch, so the figures flatter it: bench/train.py gives the cross-validated comparison with plain fastai.

    python bench/models.py [--variants recipe,recipe-effective] [--size 160] [--epochs 5]
"""
import argparse
from common import lesions, report
from variants import train_variant
from lesion_analysis.datasets import read_table, split_by_lesion

VARIANTS = {'recipe': {}, 'recipe-effective': dict(loss='effective'), 'recipe-oversample': dict(oversample=True),
            'recipe-sgdr': dict(schedule='sgdr', cycles=2, cycle_len=2, cycle_mult=1)}

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--variants', default='recipe,recipe-effective', help=f'comma-separated, from {",".join(VARIANTS)}')
    p.add_argument('--size', type=int, default=160); p.add_argument('--epochs', type=int, default=5); p.add_argument('--seed', type=int, default=42)
    a = p.parse_args()
    if unknown := set(a.variants.split(',')) - set(VARIANTS): raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images')
    df = split_by_lesion(df[df.label != 'UNK'], valid_pct=0.15, seed=a.seed)
    figures = dict(n_train=int((~df.is_valid).sum()), n_valid=int(df.is_valid.sum()), size=a.size, epochs=f'1 frozen + {a.epochs}', variants={})
    for name in a.variants.split(','):
        figures['variants'][name] = train_variant(df, name, size=a.size, epochs=a.epochs, freeze_epochs=1, seed=a.seed, **VARIANTS[name])
        report('models', figures)

if __name__ == '__main__': main()
