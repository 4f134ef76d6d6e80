#!/usr/bin/python3
"""Convert a torchvision ResNet state_dict to BFCN's HDF5 weight layout.

Parameters go to the group "params", BN running statistics to "buffers", under torchvision's
dotted names stored as nested HDF5 groups ("layer1.0.conv1.weight" -> /params/layer1/0/conv1/weight,
with the full key kept in the dataset attribute "bfcn_key"). The classifier (fc.*) and
num_batches_tracked are dropped. Load the result with `bfcn train --init-from w.h5`.

  convert_torchvision.py --arch resnet18 --random-init --seed 0 --out r18_random.h5
  convert_torchvision.py --arch resnet50 --state-dict resnet50-11ad3fa6.pth --out r50.h5
  convert_torchvision.py --arch resnet18 --pretrained --out r18_imagenet.h5   # needs internet
"""
import argparse
import os
import sys


def write_weights(path, params, buffers, attrs=None):
    """Writes {name: tensor-like} dicts atomically (path.tmp, then rename)."""
    import h5py
    import numpy as np

    tmp = path + ".tmp"
    try:
        with h5py.File(tmp, "w") as f:
            for k, v in (attrs or {}).items():
                f.attrs[k] = np.string_(str(v))
            for group, tensors in (("params", params), ("buffers", buffers)):
                for name, t in tensors.items():
                    arr = t.detach().cpu().numpy() if hasattr(t, "detach") else np.asarray(t)
                    if arr.dtype.kind == "f":
                        arr = arr.astype(np.float32)
                    key = group + "/" + name
                    ds = f.create_dataset("/" + group + "/" + name.replace(".", "/"), data=arr)
                    ds.attrs["bfcn_key"] = np.string_(key)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def split_state(model):
    """(params, buffers) dicts of a torchvision model, without fc.* and num_batches_tracked."""
    keep = lambda n: not n.startswith("fc.") and not n.endswith("num_batches_tracked")
    params = {n: p for n, p in model.named_parameters() if keep(n)}
    buffers = {n: b for n, b in model.named_buffers() if keep(n)}
    return params, buffers


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--arch", required=True, choices=["resnet18", "resnet34", "resnet50"])
    src = ap.add_mutually_exclusive_group(required=True)
    src.add_argument("--random-init", action="store_true", help="torchvision's random init (tests)")
    src.add_argument("--state-dict", metavar="FILE.pth", help="a saved torchvision state_dict")
    src.add_argument("--pretrained", action="store_true",
                     help="download torchvision's ImageNet weights (IMAGENET1K_V1; needs internet)")
    ap.add_argument("--seed", type=int, default=0, help="seed for --random-init")
    ap.add_argument("--out", required=True, metavar="W.h5")
    args = ap.parse_args(argv)

    import torch
    import torchvision

    ctor = getattr(torchvision.models, args.arch)
    if args.pretrained:
        model = ctor(weights="IMAGENET1K_V1")
        source = "torchvision %s IMAGENET1K_V1" % args.arch
    else:
        torch.manual_seed(args.seed)
        model = ctor(weights=None)
        source = "torchvision %s random init seed %d" % (args.arch, args.seed)
        if args.state_dict:
            sd = torch.load(args.state_dict, map_location="cpu")
            if isinstance(sd, dict) and "state_dict" in sd:
                sd = sd["state_dict"]
            sd = {k[len("module."):] if k.startswith("module.") else k: v for k, v in sd.items()}
            missing, unexpected = model.load_state_dict(sd, strict=False)
            missing = [m for m in missing if not m.startswith("fc.")]
            if missing or unexpected:
                sys.exit("%s: does not look like a torchvision %s state_dict: missing %s, "
                         "unexpected %s" % (args.state_dict, args.arch, missing[:10], unexpected[:10]))
            source = "%s (%s)" % (args.state_dict, args.arch)
    model.eval()
    params, buffers = split_state(model)
    write_weights(args.out, params, buffers,
                  {"format": "bfcn-weights", "arch": args.arch, "source": source})
    n = sum(p.numel() for p in params.values())
    print("%s: %d params tensors (%d values), %d buffers from %s" %
          (args.out, len(params), n, len(buffers), source))


if __name__ == "__main__":
    main()
