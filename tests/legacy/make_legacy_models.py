"""Made once, at commit 4d17eeb (the model-directory layout of release 809b1aa, before the module split), to check that model directories written by that
release still load and predict identically: `python tests/legacy/make_legacy_models.py` there. Never re-run it on later
code (it would only compare the code with itself). Tiny timm test networks, untrained-from-scratch, a few hundred KB each."""
import json, shutil, sys
from pathlib import Path
import numpy as np, pandas as pd, cv2
from lesion_analysis.core import write_csv, save_jpeg
from lesion_analysis.synthetic import make_synthetic
from lesion_analysis.datasets import read_table, split_by_lesion
from lesion_analysis.train import train_classifier, Recipe
from lesion_analysis.infer import Classifier, predict
from lesion_analysis.segment import train_segmenter, Segmenter, otsu_blue

HERE = Path(__file__).parent
work = Path(sys.argv[1] if len(sys.argv) > 1 else '/tmp/legacy_work')
shutil.rmtree(work, ignore_errors=True)
make_synthetic(work/'data', n_per_class=4, size=64, seed=3)
df = split_by_lesion(read_table(work/'data'/'labels.csv', images=work/'data'/'images'), seed=3)
r = dict(arch='test_efficientnet', pretrained=None, size=64, bs=16, lr=1e-3, freeze_epochs=0, epochs=1, seed=3)
probe = sorted(df.image)[:6]
(HERE/'images').mkdir(parents=True, exist_ok=True)
for p in probe: shutil.copy(p, HERE/'images'/Path(p).name)
inputs = pd.DataFrame(dict(image=[str(HERE/'images'/Path(p).name) for p in probe])).merge(
    df.assign(image=[str(HERE/'images'/Path(p).name) for p in df.image])[['image', 'age', 'sex', 'site']], on='image')
write_csv(inputs.assign(image=[Path(p).name for p in inputs.image]), HERE/'inputs.csv')
for name, extra in [('classifier', {}), ('fusion', dict(metadata='age,sex,site'))]:
    train_classifier(df, work/name, Recipe(**r, **extra), force=True)
    out = HERE/name; shutil.rmtree(out, ignore_errors=True); out.mkdir()
    for f in ('config.json', 'model.safetensors', 'valid_preds.csv'): shutil.copy(work/name/f, out/f)
    preds = predict(Classifier(out), inputs, tta='flips')
    write_csv(preds.assign(image=[Path(p).name for p in preds.image]), out/'expected_flips.csv')
# segmentation: masks from Otsu's threshold of the synthetic images (only the weights matter here)
pairs = []
for p in df.image:
    m = work/'masks'/(Path(p).stem + '.png'); m.parent.mkdir(exist_ok=True)
    cv2.imwrite(str(m), otsu_blue(cv2.imread(p)[..., ::-1]).astype(np.uint8) * 255)
    pairs.append(dict(image=p, mask=str(m)))
seg_df = df[['image', 'lesion_id', 'is_valid']].merge(pd.DataFrame(pairs), on='image')
train_segmenter(seg_df, work/'segmenter', Recipe(task='segmentation', **r), force=True)
out = HERE/'segmenter'; shutil.rmtree(out, ignore_errors=True); out.mkdir()
for f in ('config.json', 'model.safetensors'): shutil.copy(work/'segmenter'/f, out/f)
maps = Segmenter(out).predict([str(HERE/'images'/Path(p).name) for p in probe], tta='flips')
np.savez_compressed(out/'expected_flips.npz', *[m.astype(np.float32) for m in maps])
print({p.name: p.stat().st_size for p in HERE.rglob('*') if p.is_file()})
