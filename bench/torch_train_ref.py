#!/usr/bin/python3
"""PyTorch peer for `bfcn bench train`: times SGD training steps of FCN-8s on a torchvision
ResNet-18 (FP32, or W1A2 with DoReFa fake-quant as autograd Functions, paper.md section 6) on
synthetic tensors, with the same batch, input size and threads, and prints one JSON line:
{"model", "img_s", "step_ms", "peak_rss_mb"}. Peak RSS is this process's ru_maxrss."""
import argparse
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision


class QuantizeK(torch.autograd.Function):
    """round(x*n)/n with an identity (straight-through) gradient."""

    @staticmethod
    def forward(ctx, x, k):
        n = float(2 ** k - 1)
        return torch.round(x * n) / n

    @staticmethod
    def backward(ctx, g):
        return g, None


class SignScale(torch.autograd.Function):
    """1-bit weights: E*sign(W), E = mean|W| (constant), sign(0)=+1, identity gradient."""

    @staticmethod
    def forward(ctx, w):
        e = w.abs().mean()
        return torch.where(w >= 0, e, -e)

    @staticmethod
    def backward(ctx, g):
        return g


class QConv2d(nn.Conv2d):
    def forward(self, x):
        return F.conv2d(x, SignScale.apply(self.weight), self.bias, self.stride, self.padding,
                        self.dilation, self.groups)


class QAct(nn.Module):
    """DoReFa activation: quantize_2(clip(x, 0, 1)); the clip masks the gradient."""

    def forward(self, x):
        return QuantizeK.apply(torch.clamp(x, 0.0, 1.0), 2)


def quantize_resnet(m, first=True):
    """Every conv but the stem gets 1-bit weights; every ReLU becomes the 2-bit activation."""
    for name, child in m.named_children():
        if isinstance(child, nn.Conv2d) and not (first and name == "conv1"):
            q = QConv2d(child.in_channels, child.out_channels, child.kernel_size, child.stride,
                        child.padding, child.dilation, child.groups, child.bias is not None)
            q.weight.data.copy_(child.weight.data)
            setattr(m, name, q)
        elif isinstance(child, nn.ReLU):
            setattr(m, name, QAct())
        else:
            quantize_resnet(child, first=False)


class Fcn8s(nn.Module):
    def __init__(self, n_classes, quant):
        super().__init__()
        r = torchvision.models.resnet18()
        if quant:
            quantize_resnet(r)
        self.stem = nn.Sequential(r.conv1, r.bn1, r.relu, r.maxpool)
        self.layer1, self.layer2, self.layer3, self.layer4 = r.layer1, r.layer2, r.layer3, r.layer4
        self.score_layer2 = nn.Conv2d(128, n_classes, 1)
        self.score_layer3 = nn.Conv2d(256, n_classes, 1)
        self.score_layer4 = nn.Conv2d(512, n_classes, 1)

    def forward(self, x):
        h, w = x.shape[2:]
        c2 = self.layer2(self.layer1(self.stem(x)))
        c3 = self.layer3(c2)
        c4 = self.layer4(c3)
        s = self.score_layer4(c4)
        s = F.interpolate(s, size=c3.shape[2:], mode="bilinear", align_corners=False)
        s = s + self.score_layer3(c3)
        s = F.interpolate(s, size=c2.shape[2:], mode="bilinear", align_corners=False)
        s = s + self.score_layer2(c2)
        return F.interpolate(s, size=(h, w), mode="bilinear", align_corners=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["fp32", "w1a2"], default="fp32")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--height", type=int, default=256)
    ap.add_argument("--width", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--classes", type=int, default=21)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Fcn8s(a.classes, a.model == "w1a2").train()
    opt = torch.optim.SGD(model.parameters(), lr=0.001, momentum=0.9, weight_decay=1e-4)
    x = torch.randn(a.batch, 3, a.height, a.width)
    y = torch.randint(0, a.classes, (a.batch, a.height, a.width))

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y, ignore_index=255)
        loss.backward()
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(a.iters):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    times.sort()
    med = times[len(times) // 2]
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"model": a.model, "img_s": a.batch / med, "step_ms": med * 1e3,
                      "peak_rss_mb": rss_mb}))


if __name__ == "__main__":
    main()
