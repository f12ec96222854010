"""The web service under concurrent load, over loopback: PyTorch and ONNX Runtime, one image per forward pass (the service
before micro-batching) and micro-batched (the default), with 1, 8 and 32 clients; then 64 clients sending paper-TTA requests
to the default service, which sheds what it cannot answer in time.

Each configuration is a real `lesion-analysis serve` process on the default recipe's model (bench/models.py's `recipe`, 160 px),
started the same way; the clients (threads of this process sharing one HTTP client with kept-alive connections, so that
they take little of the CPU the service runs on) post validation JPEGs of the shared lesions to `/predict` (no Grad-CAM, no TTA) and each
sends `--per-client` requests (at least 48 in all). Reported: requests/s, p50 and p95 latency, and the ratio to PyTorch one
image per pass at the same client count. The service's queue is raised to 64 for these runs, so that nothing is shed and the
figures are throughput; the overload run keeps the defaults and reports what was served and shed, the served p95, and the
slowest `/health` answer during the load.

    python bench/serve_load.py [--per-client 6]
"""
import argparse, socket, statistics, subprocess, sys, threading, time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
import httpx, pandas as pd
from common import report, RESULTS

MODEL = RESULTS/'models'/'recipe'
CONFIGS = {'pytorch_one_per_pass': ['--runtime', 'torch', '--batch-ms', '0', '--max-batch', '1'],
           'pytorch_micro_batched': ['--runtime', 'torch'],
           'onnx_one_per_pass': ['--runtime', 'onnx', '--batch-ms', '0', '--max-batch', '1'],
           'onnx_micro_batched': ['--runtime', 'onnx']}

@contextmanager
def serving(*options):
    "`lesion-analysis serve MODEL OPTIONS` on a free loopback port; yield its URL."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    exe = Path(sys.executable).parent/'lesion-analysis'
    proc = subprocess.Popen([str(exe), 'serve', str(MODEL), '--port', str(port), *options], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f'http://127.0.0.1:{port}'
    for _ in range(600):
        try:
            if httpx.get(url + '/health', timeout=1).status_code == 200: break
        except httpx.HTTPError: time.sleep(0.2)
    try: yield url
    finally: proc.terminate(); proc.wait(30)

def load(url:str, files:list, clients:int, requests:int, tta:str='none') -> list:
    "`(status, seconds)` of `requests` posts of `files` (in turn, read beforehand) to /predict by `clients` concurrent clients on kept-alive connections."
    data = [(f.name, f.read_bytes()) for f in files]
    with httpx.Client(limits=httpx.Limits(max_connections=clients), timeout=300) as client:
        def one(i):
            name, body = data[i % len(data)]
            t0 = time.perf_counter()
            r = client.post(url + '/predict', files={'file': (name, body, 'image/jpeg')}, data={'tta': tta})
            return r.status_code, time.perf_counter() - t0
        with ThreadPoolExecutor(clients) as pool: return list(pool.map(one, range(requests)))

def figures(res:list, wall:float) -> dict:
    "Requests/s, p50 and p95 (ms) of the served requests, and how many were shed."
    lat = sorted(s for code, s in res if code == 200)
    return dict(requests_per_s=round(len(lat) / wall, 1), p50_ms=round(1000 * statistics.median(lat)), p95_ms=round(1000 * lat[max(0, int(.95 * len(lat)) - 1)]),
                served=len(lat), shed=sum(code == 503 for code, _ in res))

def overload(url:str, files:list) -> dict:
    "64 clients, 2 paper-TTA requests each, against the default queue, with /health polled throughout."
    health, done = [], []
    def poll():
        while not done:
            t0 = time.perf_counter(); httpx.get(url + '/health', timeout=30); health.append(time.perf_counter() - t0); time.sleep(0.05)
    poller = threading.Thread(target=poll); poller.start()
    t0 = time.perf_counter(); res = load(url, files, 64, 128, 'paper'); wall = time.perf_counter() - t0
    done.append(True); poller.join()
    return dict(**figures(res, wall), health_max_ms=round(1000 * max(health)), health_checks=len(health))

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--per-client', type=int, default=6)
    a = p.parse_args()
    files = [Path(i) for i in pd.read_csv(MODEL/'valid_preds.csv').image[:64]]
    out = {}
    for name, options in CONFIGS.items():
        with serving(*options, '--max-queue', '64') as url:
            load(url, files, 4, 8)  # warm-up
            for clients in (1, 8, 32):
                n = max(48, clients * a.per_client)
                t0 = time.perf_counter(); res = load(url, files, clients, n); wall = time.perf_counter() - t0
                out.setdefault(f'{clients}_clients', {})[name] = figures(res, wall)
                print(name, clients, out[f'{clients}_clients'][name], flush=True)
    for k, v in out.items():
        for name in v: v[name]['vs_pytorch_one_per_pass'] = round(v[name]['requests_per_s'] / v['pytorch_one_per_pass']['requests_per_s'], 2)
    shed = {}
    for name in ('pytorch_micro_batched', 'onnx_micro_batched'):
        with serving(*CONFIGS[name]) as url:
            load(url, files, 4, 8)
            shed[name] = overload(url, files); print('overload', name, shed[name], flush=True)
    report('serve_load', dict(model=str(MODEL), load=out, overload_64_clients_paper_tta=shed))

if __name__ == '__main__': main()
