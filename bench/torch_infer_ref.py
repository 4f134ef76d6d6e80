#!/usr/bin/python3
"""PyTorch peer for `bfcn bench runtime`: times FP32 inference of the same FCN-8s/ResNet-18 (or
-34) network (eval mode, torch.inference_mode, batch 1) at the same input size and threads, and
prints one JSON line: {"arch", "ms", "ms_all", "threads", "torch"}. ms is the median of --reps
timed forwards after one warm-up; the model definition is shared with torch_train_ref.py."""
import argparse
import json
import os
import sys
import time

import torch
import torchvision

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_train_ref import Fcn8s  # noqa: E402  (same network as the training peer)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--arch", choices=["fcn8s_r18", "fcn8s_r34"], default="fcn8s_r18")
    ap.add_argument("--height", type=int, default=512)
    ap.add_argument("--width", type=int, default=512)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--classes", type=int, default=21)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Fcn8s(a.classes, quant=False)
    if a.arch == "fcn8s_r34":  # same head on the deeper trunk
        r = torchvision.models.resnet34()
        model.stem = torch.nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        model.layer1, model.layer2, model.layer3, model.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
    model.eval()
    x = torch.randn(1, 3, a.height, a.width)
    times = []
    with torch.inference_mode():
        model(x)  # warm-up
        for _ in range(max(1, a.reps)):
            t0 = time.perf_counter()
            model(x)
            times.append((time.perf_counter() - t0) * 1e3)
    ms = sorted(times)[len(times) // 2]
    print(json.dumps({"arch": a.arch, "ms": ms, "ms_all": times, "threads": a.threads,
                      "torch": torch.__version__}))


if __name__ == "__main__":
    main()
