"""Grad-CAM speed: milliseconds per 224 px image against a forward pass of the same model, measured side by side (best of N).

    python bench/interpret.py [--model recipe] [--repeats 10]
"""
import argparse, time
import torch
from common import report, RESULTS
from lesion_analysis.infer import Classifier
from lesion_analysis.interpret import gradcam, guided_gradcam

def best_ms(fn, n):
    "Fastest of `n` runs of `fn`, in milliseconds."
    ts = []
    for _ in range(n): t0 = time.perf_counter(); fn(); ts.append(time.perf_counter() - t0)
    return round(min(ts) * 1000, 1)

def main():
    p = argparse.ArgumentParser(description=__doc__); p.add_argument('--model', default='recipe'); p.add_argument('--repeats', type=int, default=10)
    a = p.parse_args()
    clf = Classifier(RESULTS/'models'/a.model)
    x = torch.rand(1, 3, 224, 224)
    fwd = best_ms(lambda: clf.predict_batch(x), a.repeats)
    cam = best_ms(lambda: gradcam(clf, x, 0), a.repeats)
    ggc = best_ms(lambda: guided_gradcam(clf, x, 0), a.repeats)
    report('interpret', dict(arch=clf.config['arch'], size=224, forward_ms=fwd, gradcam_ms=cam, gradcam_vs_forward=round(cam / fwd, 2),
                             guided_gradcam_ms=ggc, torch_threads=torch.get_num_threads()))

if __name__ == '__main__': main()
