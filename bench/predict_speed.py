"""Prediction in each precision and runtime: how its answers compare with fp32, and its throughput against a bare fp32 forward pass.

On the models of bench/models.py (`--models`; `recipe` is the default recipe, trained in fp32 with channels-last, and a model
trained with `--precision bf16` may sit beside it): the model's own reduced-precision check from training, and `predict` in
this machine's reduced precision (bf16 on a CPU with bf16 instructions) against fp32 on every validation image. Then
throughput, side by side in one run, best of `--repeats`: `predict` (JPEG decoding, preprocessing, batching and the forward
pass) in PyTorch fp32 with the default layout (the library before the precision choice), in PyTorch's default precision and
layout, in PyTorch's reduced precision, and with the defaults (on a CPU: ONNX Runtime, the graph exported at an earlier load),
against a bare fp32 forward pass on the already decoded, preprocessed and normalised tensors, at batch 32 and at batch 1, on
`--images` validation images (all of them by default: a few hundred milliseconds of work made the ratio swing by 1.5x). Each
ratio is best against best; its range and median over the repeats (each repeat times every configuration in turn, so each
repeat's ratio pairs timings taken close together) show the noise of this shared machine.

    python bench/predict_speed.py [--models recipe,recipe-bf16] [--repeats 3] [--images N]
"""
import argparse, time
import numpy as np, pandas as pd, torch
from common import report, RESULTS
from lesion_analysis.learner import reduced_precision
from lesion_analysis.infer import Classifier, predict

REDUCED = reduced_precision('cuda' if torch.cuda.is_available() else 'cpu')

def agreement(a, b) -> dict:
    "How probability arrays `b` agree with `a`: top class, and the largest probability difference per image."
    d = np.abs(a - b).max(1)
    return dict(top_class_agreement=round(float((a.argmax(1) == b.argmax(1)).mean()), 4), median_difference=round(float(np.median(d)), 4),
                p99_difference=round(float(np.quantile(d, .99)), 4), max_difference=round(float(d.max()), 4),
                images_within_0_01=round(float((d <= .01).mean()), 4))

def precision_figures(path, valid) -> dict:
    "The model's own check, and `predict` in the reduced precision against fp32 on every validation image."
    clfs = {p: Classifier(path, precision=p, runtime='torch') for p in ('fp32', REDUCED)}
    probs = {p: predict(c, valid, rescale=False, progress=False)[c.classes].to_numpy() for p, c in clfs.items()}
    return dict(trained_in=clfs['fp32'].config['compute'], model_check=clfs['fp32'].config.get('precision_check'),
                auto_predicts_in=Classifier(path).for_job().plan, **{f'predict_{REDUCED}_vs_fp32': agreement(probs['fp32'], probs[REDUCED])})

def speed_figures(path, images, repeats) -> dict:
    "Images/s of `predict` in each precision against a bare fp32 forward pass on decoded tensors, at batch 32 and 1, configurations alternating in each repeat."
    ref = Classifier(path, precision='fp32', layout='contiguous', runtime='torch')
    imgs, n, figs = pd.DataFrame({'image': images}), len(images), {}
    x = ref.normalise(ref.to_batch([ref.prepare(i) for i in imgs.image])).as_subclass(torch.Tensor)
    for bs in (32, 1):
        def bare():
            with torch.no_grad():
                for i in range(0, n, bs): ref.model(x[i:i + bs])
        runs = {'bare_fp32_forward': bare}
        for name, kw in (('predict_torch_fp32_contiguous', dict(precision='fp32', layout='contiguous', runtime='torch')),
                         ('predict_torch_default', dict(runtime='torch')), (f'predict_torch_{REDUCED}', dict(precision=REDUCED, runtime='torch')),
                         ('predict_default', {})):
            clf = Classifier(path, **kw).for_job()  # the default for a service or a job of thousands of images: ONNX Runtime on a CPU
            runs[name] = lambda clf=clf: predict(clf, imgs, bs=bs, rescale=False, progress=False)
        for run in runs.values(): run()  # warm-up
        rates = {k: [] for k in runs}
        for _ in range(repeats):
            for k, run in runs.items():
                t0 = time.perf_counter(); run(); rates[k].append(n / (time.perf_counter() - t0))
        ratios = {k: np.array(v) / np.array(rates['bare_fp32_forward']) for k, v in rates.items() if k != 'bare_fp32_forward'}
        figs[f'batch_{bs}'] = dict(images=n, repeats=repeats, images_per_s={k: round(max(v), 1) for k, v in rates.items()},
                                   **{f'{k}_vs_bare': round(max(rates[k]) / max(rates['bare_fp32_forward']), 3) for k in ratios},
                                   ratio_range_over_repeats={k: [round(r.min(), 2), round(r.max(), 2)] for k, r in ratios.items()},
                                   ratio_median_over_repeats={k: round(float(np.median(r)), 2) for k, r in ratios.items()})
        print(f'batch {bs}:', figs[f'batch_{bs}'], flush=True)
    return figs

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--models', default='recipe,recipe-bf16'); p.add_argument('--repeats', type=int, default=3); p.add_argument('--images', type=int)
    a = p.parse_args()
    names = [n for n in a.models.split(',') if (RESULTS/'models'/n/'config.json').is_file()]
    valid = pd.read_csv(RESULTS/'models'/names[0]/'valid_preds.csv')[['image']]
    fig = dict(n_valid=len(valid), reduced_precision=REDUCED, precision={})
    if REDUCED:
        for n in names:
            fig['precision'][n] = precision_figures(RESULTS/'models'/n, valid)
            print(n, fig['precision'][n], flush=True)
    fig['speed'] = dict(model=names[0], default_plan=Classifier(RESULTS/'models'/names[0]).for_job().plan,
                        **speed_figures(RESULTS/'models'/names[0], valid.image.tolist()[:a.images], a.repeats))
    report('predict_speed', fig)

if __name__ == '__main__': main()
