"""GPU throughput, for a machine with CUDA GPUs: images/s of training and of inference at 224 and 384 px, on one GPU and
on all of them (one process per GPU, started by torchrun, data-parallel through Accelerate and fastai's `distrib_ctx`,
NCCL), in the library's default precision on a GPU (fp16 mixed precision, channels-last).

Training: one epoch's first `--batches` steps of the global batch `--bs`, after a warm-up epoch (the images are the shared
lesion images, preprocessed, decoded by the DataLoader: the input pipeline is included). Inference: forward passes of the
same network on `--batches` batches already decoded (the model alone). Each configuration runs in its own processes
(see `scale_out.py`, whose worker it uses). On a machine without a CUDA GPU it says so and measures nothing.

    python bench/gpu.py [--sizes 224,384] [--batches 20] [--bs 128] [--arch tf_efficientnet_lite0]
"""
import argparse, sys
import torch
from common import report
from scale_out import train_run

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--sizes', default='224,384'); p.add_argument('--batches', type=int, default=20); p.add_argument('--bs', type=int, default=128)
    p.add_argument('--arch', default='tf_efficientnet_lite0')
    a = p.parse_args()
    if not torch.cuda.is_available():
        print("no CUDA GPU on this machine: nothing measured (run bench/gpu.py where GPUs are)"); return 1
    gpus, figures = torch.cuda.device_count(), {}
    for size in map(int, a.sizes.split(',')):
        a.size = size
        for n in sorted({1, gpus}):
            for task in ('training', 'inference'):
                res = train_run(n, None, a, precision='auto', infer=task == 'inference')
                figures[f'{task}_{size}px_{n}_gpu'] = res
                print(task, size, n, res, flush=True)
        if gpus > 1:
            for task in ('training', 'inference'):
                figures[f'{task}_{size}px_scaling'] = round(figures[f'{task}_{size}px_{gpus}_gpu']['images_per_s'] / figures[f'{task}_{size}px_1_gpu']['images_per_s'], 3)
    report('gpu', dict(gpus=gpus, gpu=torch.cuda.get_device_name(0), arch=a.arch, global_batch=a.bs, timed_batches=a.batches, **figures))

if __name__ == '__main__': sys.exit(main())
