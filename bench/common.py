"Shared helpers of the benchmarks: the shared data, timing, and writing results."
import json, os, platform, sys, time
from pathlib import Path
import torch
from lesion_analysis.core import atomic_write, shared_data

RESULTS = Path(__file__).parent/'results'

def lesions():
    "The shared real lesion images folder."
    return shared_data('lesions')  # raises, saying where it looked and what to set, when it is absent

def machine() -> dict:
    "What the figures were measured on."
    return dict(cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), platform=platform.platform(),
                python=platform.python_version(), torch=torch.__version__, cuda=torch.cuda.is_available())

def timed(fn, *args, **kwargs):
    "Run `fn` and return `(result, seconds)`."
    t0 = time.perf_counter(); res = fn(*args, **kwargs)
    return res, time.perf_counter() - t0

def report(name:str, figures:dict) -> Path:
    "Print `figures` and write them with the machine description to bench/results/NAME.json."
    out = RESULTS/f'{name}.json'; out.parent.mkdir(exist_ok=True)
    doc = dict(benchmark=name, date=time.strftime('%Y-%m-%d %H:%M'), machine=machine(), command=' '.join(['python', *sys.argv]), **figures)
    with atomic_write(out) as tmp: tmp.write_text(json.dumps(doc, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str)); print(f"written to {out}")
    return out
