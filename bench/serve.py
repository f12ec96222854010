"""The web service's requests per second, side by side in one run: the same model served in PyTorch fp32 with the default
memory layout (the service before the precision choice), in PyTorch's default precision and layout, in PyTorch's reduced
precision on this machine, and with the defaults (on a CPU: ONNX Runtime, the graph exported at an earlier load).

A FastAPI TestClient posts validation JPEGs of the shared lesions one request at a time to `/predict` (upload, decoding,
preprocessing, the forward pass and the JSON answer; no Grad-CAM), alternating the apps, best of `--repeats`. Needs the model
of bench/models.py.

    python bench/serve.py [--model recipe] [--images 48] [--repeats 2]
"""
import argparse, time
from pathlib import Path
import pandas as pd
from fastapi.testclient import TestClient
from common import report, RESULTS
from lesion_analysis.learner import compute_plan
from lesion_analysis.serve import create_app

def requests_per_s(client, files) -> float:
    "Requests per second of posting each of `files` to /predict, one at a time."
    t0 = time.perf_counter()
    for f in files:
        r = client.post('/predict', files={'file': (f.name, f.read_bytes(), 'image/jpeg')})
        assert r.status_code == 200, r.text
    return len(files) / (time.perf_counter() - t0)

def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument('--model', default='recipe'); p.add_argument('--images', type=int, default=48); p.add_argument('--repeats', type=int, default=2)
    a = p.parse_args()
    model = RESULTS/'models'/a.model
    files = [Path(i) for i in pd.read_csv(model/'valid_preds.csv').image[:a.images]]
    reduced = compute_plan()['precision']
    apps = {'torch_fp32_contiguous': dict(precision='fp32', layout='contiguous', runtime='torch'), 'torch_default': dict(runtime='torch'),
            f'torch_{reduced}': dict(precision=reduced, runtime='torch'), 'default': {}}
    clients = {k: TestClient(create_app(model, **kw)) for k, kw in apps.items()}
    best = {k: 0. for k in apps}
    for _ in range(a.repeats):
        for k, c in clients.items():
            requests_per_s(c, files[:4])  # warm-up
            best[k] = max(best[k], requests_per_s(c, files))
        print({k: round(v, 2) for k, v in best.items()}, flush=True)
    report('serve', dict(model=a.model, images=len(files), repeats=a.repeats, requests_per_s={k: round(v, 2) for k, v in best.items()},
                         plans={k: c.get('/model').json()['compute'] for k, c in clients.items()},
                         **{f'{k}_vs_torch_fp32_contiguous': round(v / best['torch_fp32_contiguous'], 3) for k, v in best.items() if k != 'torch_fp32_contiguous'}))

if __name__ == '__main__': main()
