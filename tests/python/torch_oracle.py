"""PyTorch oracle for tests/autograd/torch_parity_test.cpp.

Usage: /usr/bin/python3 torch_oracle.py DIR
DIR/manifest.json lists cases {name, op, params, inputs: [shape...], diff: [bool...]}; each input i
is DIR/<name>_in<i>.f32 and the upstream gradient DIR/<name>_gout.f32 (raw little-endian f32).
Writes DIR/<name>_out.f32, DIR/<name>_gin<i>.f32 for every differentiable input and, for ops with
side outputs (batch-norm running statistics), DIR/<name>_extra<k>.f32. All cases in one process
because importing torch dominates the cost.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F


def load(path, shape):
    a = np.fromfile(path, dtype="<f4")
    return torch.from_numpy(a.reshape(shape).copy())


def save(path, t):
    t.detach().contiguous().numpy().astype("<f4").tofile(path)


def run_case(case, xs):
    op, p = case["op"], case["params"]
    extras = []
    if op == "conv2d":
        bias = xs[2] if len(xs) > 2 else None
        y = F.conv2d(xs[0], xs[1], bias, stride=p["stride"], padding=p["pad"],
                     dilation=p["dilation"], groups=p["groups"])
    elif op == "batch_norm2d":
        rm, rv = xs[3].clone(), xs[4].clone()
        y = F.batch_norm(xs[0], rm, rv, xs[1], xs[2], training=p["training"],
                         momentum=p["momentum"], eps=p["eps"])
        extras = [rm, rv]
    elif op == "max_pool2d":
        y = F.max_pool2d(xs[0], p["kernel"], p["stride"], p["pad"], ceil_mode=p["ceil_mode"])
    elif op == "avg_pool2d":
        y = F.avg_pool2d(xs[0], p["kernel"], p["stride"], p["pad"], ceil_mode=p["ceil_mode"],
                         count_include_pad=p["count_include_pad"])
    elif op == "upsample_bilinear":
        y = F.interpolate(xs[0], size=p["size"], mode="bilinear",
                          align_corners=p["align_corners"])
    elif op == "softmax_cross_entropy":
        weight = xs[2] if len(xs) > 2 else None
        y = F.cross_entropy(xs[0], xs[1].long(), weight=weight, ignore_index=p["ignore_index"])
        y = y.reshape(1)
    else:
        raise ValueError("torch_oracle: unknown op '%s' in case '%s'" % (op, case["name"]))
    return y, extras


def main():
    d = sys.argv[1]
    torch.set_num_threads(1)
    with open(os.path.join(d, "manifest.json")) as f:
        cases = json.load(f)
    for case in cases:
        name = case["name"]
        xs = []
        for i, (shape, diff) in enumerate(zip(case["inputs"], case["diff"])):
            t = load(os.path.join(d, "%s_in%d.f32" % (name, i)), shape)
            xs.append(t.requires_grad_(bool(diff)))
        y, extras = run_case(case, xs)
        gout = load(os.path.join(d, name + "_gout.f32"), list(y.shape))
        y.backward(gout)
        save(os.path.join(d, name + "_out.f32"), y)
        for i, x in enumerate(xs):
            if case["diff"][i]:
                save(os.path.join(d, "%s_gin%d.f32" % (name, i)), x.grad)
        for k, e in enumerate(extras):
            save(os.path.join(d, "%s_extra%d.f32" % (name, k)), e)


if __name__ == "__main__":
    main()
