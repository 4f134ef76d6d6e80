#!/usr/bin/python3
"""Independent reference for the official Cityscapes pixel-level evaluation (numpy + PIL).

Restates cityscapesScripts' evalPixelLevelSemanticLabeling from the label table: a confusion
matrix over labelIds (GT = *_gtFine_labelIds.png, prediction = labelIds), then for every label
with ignoreInEval=False: tp = C[l,l], fn = sum_p C[l,p] - tp (every prediction, ignored ones
included), fp = sum over non-ignored GT rows g != l of C[g,l]; IoU = tp/(tp+fp+fn), NaN when 0/0;
mIoU = mean over the non-NaN classes. trainIds predictions are first converted to labelIds
(255 -> 0 'unlabeled'), as one would before submitting. Used by tests/eval as an oracle.

usage: cityscapes_eval_reference.py --gt-dir G --pred-dir P [--pred-format labelIds|trainIds]
prints JSON {"miou": ..., "per_class_iou": {...}, "n_images": ...} with full float precision.
"""
import argparse
import glob
import json
import math
import os
import sys

import numpy as np
from PIL import Image

# (name, labelId, trainId, ignoreInEval) from cityscapesScripts helpers/labels.py
LABELS = [
    ("unlabeled", 0, 255, True), ("ego vehicle", 1, 255, True),
    ("rectification border", 2, 255, True), ("out of roi", 3, 255, True),
    ("static", 4, 255, True), ("dynamic", 5, 255, True), ("ground", 6, 255, True),
    ("road", 7, 0, False), ("sidewalk", 8, 1, False), ("parking", 9, 255, True),
    ("rail track", 10, 255, True), ("building", 11, 2, False), ("wall", 12, 3, False),
    ("fence", 13, 4, False), ("guard rail", 14, 255, True), ("bridge", 15, 255, True),
    ("tunnel", 16, 255, True), ("pole", 17, 5, False), ("polegroup", 18, 255, True),
    ("traffic light", 19, 6, False), ("traffic sign", 20, 7, False),
    ("vegetation", 21, 8, False), ("terrain", 22, 9, False), ("sky", 23, 10, False),
    ("person", 24, 11, False), ("rider", 25, 12, False), ("car", 26, 13, False),
    ("truck", 27, 14, False), ("bus", 28, 15, False), ("caravan", 29, 255, True),
    ("trailer", 30, 255, True), ("train", 31, 16, False), ("motorcycle", 32, 17, False),
    ("bicycle", 33, 18, False),
]
EVAL_IDS = [lid for (_, lid, _, ign) in LABELS if not ign]
NAME = {lid: name for (name, lid, _, _) in LABELS}
TRAIN_TO_LABEL = {tid: lid for (_, lid, tid, ign) in LABELS if not ign}


def frame_id(path):
    parts = os.path.basename(path).split("_")
    return "_".join(parts[:3])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gt-dir", required=True)
    ap.add_argument("--pred-dir", required=True)
    ap.add_argument("--pred-format", default="labelIds", choices=["labelIds", "trainIds"])
    a = ap.parse_args()

    gts = sorted(glob.glob(os.path.join(a.gt_dir, "**", "*_gtFine_labelIds.png"), recursive=True))
    if not gts:
        sys.exit("no *_gtFine_labelIds.png under " + a.gt_dir)
    to_label = np.zeros(256, dtype=np.int64)  # trainId -> labelId; unknown/255 -> 0 (unlabeled)
    for tid, lid in TRAIN_TO_LABEL.items():
        to_label[tid] = lid
    conf = np.zeros((256, 256), dtype=np.int64)
    for g in gts:
        fid = frame_id(g)
        cands = glob.glob(os.path.join(a.pred_dir, "**", fid + "*.png"), recursive=True)
        if len(cands) != 1:
            sys.exit("expected one prediction for %s, found %d" % (fid, len(cands)))
        gt = np.array(Image.open(g), dtype=np.int64)
        pr = np.array(Image.open(cands[0]), dtype=np.int64)
        if gt.shape != pr.shape:
            sys.exit("size mismatch for " + fid)
        if a.pred_format == "trainIds":
            pr = to_label[pr]
        conf += np.bincount((gt * 256 + pr).ravel(), minlength=256 * 256).reshape(256, 256)

    ious = {}
    for lid in EVAL_IDS:
        tp = int(conf[lid, lid])
        fn = int(conf[lid, :].sum()) - tp
        others = [o for o in EVAL_IDS if o != lid]
        fp = int(conf[others, lid].sum())
        denom = tp + fp + fn
        ious[NAME[lid]] = float("nan") if denom == 0 else tp / denom
    valid = [v for v in ious.values() if not math.isnan(v)]
    miou = sum(valid) / len(valid) if valid else float("nan")
    out = {"miou": miou, "n_images": len(gts),
           "per_class_iou": {k: (None if math.isnan(v) else v) for k, v in ious.items()}}
    print(json.dumps(out))


if __name__ == "__main__":
    main()
