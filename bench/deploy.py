"""ONNX Runtime against PyTorch on the CPU: speed of the network, and what int8 quantisation costs in accuracy.

On the default recipe's model (bench/models.py's `recipe`, Lite0 trained at 160 px on the shared lesions), side by side in one
run, alternating the runtimes each round (median of `--rounds`):
- the network alone on decoded, normalised tensors, at 160 and 224 px (the same weights; the network takes any size): batch-1
  latency and batch-32 throughput of PyTorch fp32 eager (default layout), the fastest PyTorch path (channels-last, and
  channels-last with bf16 autocast on a CPU that has bf16), ONNX Runtime fp32 and ONNX Runtime int8 (static quantisation,
  calibrated on 64 training-split images);
- equality and accuracy on the 311 validation images: the largest probability difference of ONNX Runtime fp32 from PyTorch
  (no TTA and the paper's TTA), and balanced accuracy and macro AUC (lesion-bootstrap intervals) of PyTorch, ONNX fp32 and int8,
  with the top-class agreement of int8 with fp32.

    python bench/deploy.py [--rounds 5]
"""
import argparse, statistics, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, torch
from common import lesions, report, with_interval, RESULTS
from lesion_analysis import datasets as ds
from lesion_analysis.learner import reduced_precision, autocast_for
from lesion_analysis.modeldir import OnnxNetwork
from lesion_analysis.infer import Classifier, predict, export_model, quantize_graph
from lesion_analysis.metrics import balanced_accuracy, macro_auc

MODEL = RESULTS/'models'/'recipe'

def runners(clf:Classifier, calibration:list) -> dict:
    "{name: callable on a normalised batch}: the network in each runtime and precision, at `clf`'s size."
    net, bf16 = clf.model, reduced_precision('cpu') == 'bf16'
    graph, _, onnx_fp32 = clf.onnx_graph()
    onnx_int8 = OnnxNetwork(quantize_graph(clf, graph, calibration)[0])
    def torch_run(layout, precision='fp32'):
        fmt = torch.channels_last if layout == 'channels_last' else torch.contiguous_format
        def run(x):
            net.to(memory_format=fmt)
            with torch.no_grad(), autocast_for(dict(device='cpu', precision=precision)): return net(x.contiguous(memory_format=fmt))
        return run
    runs = {'pytorch_fp32_eager': torch_run('contiguous'), 'pytorch_channels_last': torch_run('channels_last')}
    if bf16: runs['pytorch_channels_last_bf16'] = torch_run('channels_last', 'bf16')
    return {**runs, 'onnxruntime_fp32': onnx_fp32, 'onnxruntime_int8': onnx_int8}

def speed(runs:dict, x:torch.Tensor, rounds:int) -> dict:
    "Batch-1 latency (ms, median) and batch-32 throughput (images/s, median) of each runner, alternating runners each round."
    out = {}
    for bs, reps in ((1, 20), (32, 2)):
        xb, times = x[:bs], {k: [] for k in runs}
        for k, run in runs.items(): run(xb)  # warm-up
        for _ in range(rounds):
            for k, run in runs.items():
                t0 = time.perf_counter()
                for _ in range(reps): run(xb)
                times[k].append((time.perf_counter() - t0) / reps)
        med = {k: statistics.median(v) for k, v in times.items()}
        base = med['pytorch_fp32_eager']
        fastest_torch = min(v for k, v in med.items() if k.startswith('pytorch'))
        out[f'batch_{bs}'] = {k: dict(**({'ms': round(v * 1000, 2)} if bs == 1 else {'images_per_s': round(bs / v, 1)}),
                                     vs_fp32_eager=round(base / v, 2), vs_fastest_pytorch=round(fastest_torch / v, 2)) for k, v in med.items()}
        print(f'batch {bs}:', {k: v['vs_fp32_eager'] for k, v in out[f'batch_{bs}'].items()}, flush=True)
    return out

def accuracy(valid:pd.DataFrame, groups, models:dict, truth) -> dict:
    "Balanced accuracy and macro AUC (with intervals) of each model's predictions of `valid`, and ONNX's differences from PyTorch."
    probs = {k: {tta: predict(c, valid, tta=tta, progress=False)[c.classes].to_numpy() for tta in ('none', 'paper')} for k, c in models.items()}
    figs = {k: dict(balanced_accuracy=with_interval(lambda t, q: balanced_accuracy(q, t), truth, p['none'], groups),
                    macro_auc=with_interval(lambda t, q: macro_auc(q, t), truth, p['none'], groups)) for k, p in probs.items()}
    ref = probs['pytorch_fp32']
    for k in ('onnxruntime_fp32', 'onnxruntime_int8'):
        figs[k].update(max_probability_difference={tta: float(np.abs(probs[k][tta] - ref[tta]).max()) for tta in ref},
                       top_class_agreement=round(float((probs[k]['none'].argmax(1) == ref['none'].argmax(1)).mean()), 4))
    return figs

def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--rounds', type=int, default=5)
    a = p.parse_args()
    torch.manual_seed(0)
    clf = Classifier(MODEL, precision='fp32')
    vp = pd.read_csv(MODEL/'valid_preds.csv')
    d = lesions()
    table = ds.read_table(d/'labels.csv', images=d/'images')
    train_images = table.image.astype(str)[~table.image.astype(str).isin(vp.image)].sample(64, random_state=0).tolist()
    figs = dict(model=str(MODEL), threads=torch.get_num_threads(), bf16_cpu=reduced_precision('cpu') == 'bf16', speed={})
    for size in (160, 224):
        c = clf if size == clf.size else Classifier(model=clf.model, config={**clf.config, 'size': size, 'preprocess': {**clf.config['preprocess'], 'size': size}})
        x = c.normalise(c.to_batch([c.prepare(i) for i in vp.image[:32]])).as_subclass(torch.Tensor)
        figs['speed'][f'{size}px'] = speed(runners(c, train_images), x, a.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        models = dict(pytorch_fp32=clf, onnxruntime_fp32=Classifier(export_model(MODEL, Path(tmp)/'fp32')),
                      onnxruntime_int8=Classifier(export_model(MODEL, Path(tmp)/'int8', 'int8', train_images)))
        groups = vp.image.map(dict(zip(table.image.astype(str), ds.lesion_groups(table)))).to_numpy()
        figs['accuracy'] = accuracy(vp[['image']], groups, models, vp.label.map(clf.classes.index).to_numpy())
    report("deploy", figs)

if __name__ == '__main__': main()
