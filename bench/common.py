"Shared helpers of the benchmarks: the shared data, timing, and writing results."
import dataclasses, json, os, platform, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing as mp
from pathlib import Path
import torch
from lesion_analysis.core import atomic_write, shared_data, share_cores
from lesion_analysis.metrics import grouped_bootstrap
from lesion_analysis.train import train, data_fingerprint

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

def with_interval(fn, y, p, groups, n:int=1000) -> dict:
    "`fn(y, p)` with its 95% bootstrap interval over whole `groups` (lesions), rounded."
    lo, hi = grouped_bootstrap(fn, y, p, groups, n)
    return dict(value=round(float(fn(y, p)), 4), ci=[round(lo, 4), round(hi, 4)])

def train_once(df, out:Path, recipe, retrain:bool=False, **kwargs) -> float|None:
    "Train `recipe` on table `df` into model directory `out` (passing `kwargs` to `train`) unless it holds that recipe trained on that table, or `retrain`; the training minutes, or None when reused."
    stamp = out/'variant.json'
    trained = json.loads(json.dumps(dict(recipe=dataclasses.asdict(recipe), data=data_fingerprint(df))))  # the data: images, labels, masks or boxes, split
    if not retrain and (out/'config.json').is_file() and stamp.is_file() and json.loads(stamp.read_text()) == trained: return None
    t0 = time.time(); train(df, out, recipe, cache=RESULTS/'cache', force=True, **kwargs)
    with atomic_write(stamp) as tmp: tmp.write_text(json.dumps(trained, indent=1))
    return round((time.time() - t0) / 60, 1)

def pin_cores(counter, jobs:int):
    "Pool initializer: pin this worker to its contiguous share of the cores (DataLoader workers inherit it) and size its threads."
    with counter.get_lock(): slot, counter.value = counter.value, counter.value + 1
    cores = sorted(os.sched_getaffinity(0)); n = max(1, len(cores) // jobs)
    os.sched_setaffinity(0, cores[slot % jobs * n:(slot % jobs + 1) * n] or cores)
    share_cores(1)
    mp.set_start_method('fork', force=True)  # a spawned worker inherits 'spawn': its DataLoader workers fork, as in a plain process
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False  # fp32 as on a CPU

def run_jobs(fn, jobs:list, n:int) -> list:
    "`fn` of each of `jobs` (argument tuples), on `n` processes pinned to their share of the cores."
    if n <= 1: return [fn(*j) for j in jobs]
    ctx = mp.get_context('spawn')
    with ProcessPoolExecutor(n, mp_context=ctx, initializer=pin_cores, initargs=(ctx.Value('i', 0), n)) as pool: return list(pool.map(fn, *zip(*jobs)))
