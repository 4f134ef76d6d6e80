#!/usr/bin/python3
"""PyTorch oracle for tests/layers/torchvision_parity_test.cpp.

For each case, builds a randomly initialised torchvision ResNet in eval mode (BN affine parameters
and running statistics randomised too, so BN is not the identity), adds an FCN-8s head made the
way layers/fcn.cpp makes it (1x1 score convs with bias on layer2/3/4, bilinear align_corners=False
upsampling and sums), and writes into OUT/<case>/:
  weights.h5 (params/ + buffers/, as scripts/convert_torchvision.py writes them, head included),
  input.f32 [1,3,S,S], feat1..feat4.f32, logits.f32 (raw little-endian float32), shapes.json.
Also writes OUT/backbone_only.h5 through the converter's command line (resnet18, random init).
"""
import argparse
import importlib.util
import json
import os

import torch
import torch.nn.functional as F
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location(
    "convert_torchvision", os.path.join(HERE, "..", "..", "scripts", "convert_torchvision.py"))
convert = importlib.util.module_from_spec(spec)
spec.loader.exec_module(convert)


def randomise_bn(model, gen):
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            c = m.num_features
            m.weight.data = torch.rand(c, generator=gen) + 0.5
            m.bias.data = torch.rand(c, generator=gen) * 0.4 - 0.2
            m.running_mean.data = torch.rand(c, generator=gen) * 0.4 - 0.2
            m.running_var.data = torch.rand(c, generator=gen) + 0.5


def run_case(out_dir, arch, size, seed, dilate, n_classes=21):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed + 1)
    model = getattr(torchvision.models, arch)(weights=None, replace_stride_with_dilation=dilate)
    randomise_bn(model, gen)
    expansion = 4 if arch == "resnet50" else 1
    heads = {
        "score_layer4": torch.nn.Conv2d(512 * expansion, n_classes, 1),
        "score_layer3": torch.nn.Conv2d(256 * expansion, n_classes, 1),
        "score_layer2": torch.nn.Conv2d(128 * expansion, n_classes, 1),
    }
    model.eval()
    x = torch.rand(1, 3, size, size, generator=gen)
    with torch.no_grad():
        y = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        feats = []
        for layer in (model.layer1, model.layer2, model.layer3, model.layer4):
            y = layer(y)
            feats.append(y)
        up = lambda t, ref: F.interpolate(t, size=ref.shape[2:], mode="bilinear", align_corners=False)
        s = heads["score_layer4"](feats[3])
        s3 = heads["score_layer3"](feats[2])
        s = up(s, s3) + s3
        s2 = heads["score_layer2"](feats[1])
        s = up(s, s2) + s2
        logits = up(s, x)
    os.makedirs(out_dir, exist_ok=True)
    params, buffers = convert.split_state(model)
    for name, conv in heads.items():
        params[name + ".weight"] = conv.weight
        params[name + ".bias"] = conv.bias
    convert.write_weights(os.path.join(out_dir, "weights.h5"), params, buffers, {"arch": arch})
    shapes = {}
    for name, t in [("input", x), ("feat1", feats[0]), ("feat2", feats[1]), ("feat3", feats[2]),
                    ("feat4", feats[3]), ("logits", logits)]:
        t.contiguous().numpy().astype("<f4").tofile(os.path.join(out_dir, name + ".f32"))
        shapes[name] = list(t.shape)
    with open(os.path.join(out_dir, "shapes.json"), "w") as f:
        json.dump(shapes, f)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--dilated-size", type=int, default=96)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    run_case(os.path.join(args.out_dir, "resnet18"), "resnet18", args.size, args.seed, None)
    run_case(os.path.join(args.out_dir, "resnet50"), "resnet50", args.size, args.seed + 10, None)
    # output_stride 8: torchvision's replace_stride_with_dilation = [False, True, True].
    run_case(os.path.join(args.out_dir, "resnet50_os8"), "resnet50", args.dilated_size,
             args.seed + 20, [False, True, True])
    convert.main(["--arch", "resnet18", "--random-init", "--seed", str(args.seed), "--out",
                  os.path.join(args.out_dir, "backbone_only.h5")])


if __name__ == "__main__":
    main()
