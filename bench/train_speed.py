"""Training speed: images per second of a training epoch through the library against a bare PyTorch loop.

Same model (tf_efficientnet_lite0 with fastai's head), batch size, image size and images (the preprocessed shared lesion
images), measured side by side in one run, alternating, best of `--repeats`. The library runs `lesion_dls` + `lesion_learner`
+ `fit` (JPEG decoding, padding, normalisation, optimiser and callbacks): in fp32 with the default memory layout and without
augmentation (the like-for-like figure of the library's own overhead), with its default precision and layout (`auto`: fp32
and channels-last on a CPU, fp16 mixed precision on a GPU) without and with the 2019 augmentation on the CPU, and in bf16 with
channels-last (not the default: see bench/precision_cv.py). The bare loop
decodes the same JPEGs with PIL, pads, normalises, and runs forward, backward and an Adam step in fp32, default layout.

    python bench/train_speed.py [--batches 12] [--size 160] [--bs 32] [--repeats 2]
"""
import argparse, time
import numpy as np, pandas as pd, torch, torch.nn.functional as F
from PIL import Image
from fastai.vision.all import Callback, create_timm_model
from common import lesions, report, RESULTS
from lesion_analysis.datasets import read_table, split_by_lesion
from lesion_analysis.preprocess import preprocess
from lesion_analysis.data import lesion_dls
from lesion_analysis.learner import arch_stats, compute_plan
from lesion_analysis.classify import lesion_learner

class TrainTimer(Callback):
    "Wall time of the training phase of each epoch."
    def before_train(self): self.t0 = time.perf_counter()
    def after_train(self): self.seconds = time.perf_counter() - self.t0

def library(df, size, bs, aug, precision='auto', layout='auto'):
    "Images per second of one training epoch through lesion_dls + lesion_learner + fit, in `precision` and `layout`."
    dls = lesion_dls(df, size=size, bs=bs, aug=aug, stats=arch_stats('tf_efficientnet_lite0'))
    learn = lesion_learner(dls); learn.unfreeze(); learn.to_precision(precision, layout)
    t = TrainTimer()
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-4, cbs=t)
    return len(dls.train) * bs / t.seconds

def bare(df, size, bs, vocab):
    "Images per second of a plain PyTorch training loop over the same files."
    mean, std = (torch.tensor(s).view(1, 3, 1, 1) for s in arch_stats('tf_efficientnet_lite0'))
    model = create_timm_model('tf_efficientnet_lite0', len(vocab), pretrained=False)[0].train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    tr = df[~df.is_valid].sample(frac=1, random_state=0)
    def load(p):
        x = torch.from_numpy(np.asarray(Image.open(p).convert('RGB'))).permute(2, 0, 1).float() / 255
        h, w = x.shape[1:]
        return F.pad(x, ((size - w) // 2, size - w - (size - w) // 2, (size - h) // 2, size - h - (size - h) // 2))
    n = len(tr) // bs * bs
    t0 = time.perf_counter()
    for i in range(0, n, bs):
        b = tr.iloc[i:i + bs]
        x = (torch.stack([load(p) for p in b.image]) - mean) / std
        y = torch.tensor([vocab.index(l) for l in b.label])
        loss = F.cross_entropy(model(x), y); opt.zero_grad(); loss.backward(); opt.step()
    return n / (time.perf_counter() - t0)

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--batches', type=int, default=12); p.add_argument('--size', type=int, default=160)
    p.add_argument('--bs', type=int, default=32); p.add_argument('--repeats', type=int, default=2)
    a = p.parse_args()
    d = lesions()
    df = read_table(d/'labels.csv', images=d/'images'); df = df[df.label != 'UNK']
    df = preprocess(df.sample(a.batches * a.bs + 32, random_state=0), RESULTS/'cache', size=a.size)
    df['is_valid'] = False; df.loc[df.index[-32:], 'is_valid'] = True     # a token validation set; only training is timed
    vocab = [c for c in ['MEL', 'NV', 'BCC', 'AK', 'BKL', 'DF', 'VASC', 'SCC'] if c in set(df.label)]
    runs = {'bare_fp32': lambda: bare(df, a.size, a.bs, vocab),
            'library_fp32_contiguous_no_aug': lambda: library(df, a.size, a.bs, 'none', 'fp32', 'contiguous'),
            'library_default_no_aug': lambda: library(df, a.size, a.bs, 'none'),
            'library_default_isic2019_aug': lambda: library(df, a.size, a.bs, 'isic2019'),
            'library_bf16_no_aug': lambda: library(df, a.size, a.bs, 'none', 'bf16')}
    seen = {k: [] for k in runs}
    for _ in range(a.repeats):
        for k, run in runs.items(): seen[k].append(run())
        print({k: [round(v, 1) for v in vs] for k, vs in seen.items()}, flush=True)
    best = {k: round(max(v), 2) for k, v in seen.items()}
    report('train_speed', dict(size=a.size, bs=a.bs, batches=a.batches, repeats=a.repeats, default_compute=compute_plan(training=True), images_per_s=best,
                               **{f'{k}_vs_bare': round(best[k] / best['bare_fp32'], 3) for k in runs if k != 'bare_fp32'}))

if __name__ == '__main__': main()
