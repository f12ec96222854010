"""Preprocessing speed: crop + resize to 224 of every shared lesion image, in one process and on the default process pool of all
cores (its server process started in the timing, as a first call of a session pays it), then a cached rerun.

    python bench/preprocess.py [--size 224] [--repeats 1]
"""
import argparse, os, shutil, tempfile
from pathlib import Path
from common import lesions, report, timed
from lesion_analysis.datasets import read_inputs
from lesion_analysis.preprocess import preprocess

def main():
    p = argparse.ArgumentParser(description=__doc__); p.add_argument('--size', type=int, default=224)
    a = p.parse_args()
    d = lesions(); df = read_inputs(d/'labels.csv', d/'images')
    work = Path(tempfile.mkdtemp(prefix='bench_pre_'))
    try:
        _, single = timed(preprocess, df, work/'single', size=a.size, workers=1)
        out, parallel = timed(preprocess, df, work/'parallel', size=a.size)  # workers=None: the process pool of all cores
        _, cached = timed(preprocess, df, work/'parallel', size=a.size)
    finally: shutil.rmtree(work)
    n = len(df)
    report('preprocess', dict(images=n, size=a.size, workers=os.cpu_count(), done=len(out), skipped=len(out.attrs['skipped']),
        single_process_s=round(single, 2), parallel_s=round(parallel, 2), cached_rerun_s=round(cached, 3),
        single_images_per_s=round(n/single, 1), parallel_images_per_s=round(n/parallel, 1),
        parallel_speedup=round(single/parallel, 2), cached_fraction=round(cached/parallel, 4)))

if __name__ == '__main__': main()
