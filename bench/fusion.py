"""Metadata fusion: image-only against image + metadata, same recipe and budget, on PAD-UFES-20 and on the shared lesions.

PAD-UFES-20 (shared/data/padufes, 577 smartphone photos): split grouped by patient, 20% validation, every clinical field
(age, sex, site, Fitzpatrick, diameters, itch, grew, hurt, changed, bleed, elevation). Lesions (shared/data/lesions, UNK
dropped): split by `split_group`, 15% validation, age, sex and site where present. tf_efficientnet_lite0, offline weights.

    python bench/fusion.py [--size 160] [--epochs 4] [--datasets padufes,lesions]
"""
import argparse
from common import lesions, report
from variants import train_variant
from lesion_analysis.core import shared_data
from lesion_analysis.datasets import read_table, read_padufes, split_by_lesion

def tables(seed) -> dict:
    "Each benchmark table, split, with the metadata fields it offers."
    pad_dir, d = shared_data('padufes'), lesions()
    pad = split_by_lesion(read_padufes(pad_dir/'metadata.csv', images=pad_dir/'images'), valid_pct=0.2, seed=seed)
    les = read_table(d/'labels.csv', images=d/'images')
    les = split_by_lesion(les[les.label != 'UNK'], valid_pct=0.15, seed=seed)
    return dict(padufes=(pad, 'auto'), lesions=(les, 'age,sex,site'))

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--size', type=int, default=160); p.add_argument('--epochs', type=int, default=4)
    p.add_argument('--seed', type=int, default=42); p.add_argument('--datasets', default='padufes,lesions')
    a = p.parse_args()
    budget = dict(size=a.size, epochs=a.epochs, freeze_epochs=1, seed=a.seed)
    figures = dict(budget=budget, datasets={})
    for ds, (df, fields) in tables(a.seed).items():
        if ds not in a.datasets.split(','): continue
        res = figures['datasets'][ds] = dict(n_train=int((~df.is_valid).sum()), n_valid=int(df.is_valid.sum()), metadata=fields,
                                             present={c: round(float(df[c].notna().mean()), 3) for c in ('age', 'sex', 'site') if c in df})
        base = f'lesions-{a.size}-frame' if ds == 'lesions' else f'{ds}-{a.size}-image'   # the lesions baseline is bench/crops.py's
        res['image_only'] = train_variant(df, base, **budget)
        res['image_metadata'] = train_variant(df, f'{ds}-{a.size}-metadata', metadata=fields, **budget)
        print(ds, res, flush=True)
        report('fusion', figures)

if __name__ == '__main__': main()
