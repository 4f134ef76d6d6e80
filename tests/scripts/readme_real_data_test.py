#!/usr/bin/python3
"""Runs the README's "Train on PASCAL VOC / Cityscapes" commands as written, at tiny size, against
the real-format samples in ../shared/data (exit 77 = skipped, logged to $BFCN_SKIP_LOG, when that
folder is absent; a failure under CI=true, as for the C++ tests).

usage: readme_real_data_test.py BUILD_DIR SOURCE_DIR

The two bash blocks after the README's "<!-- tested: ..." marker run unchanged except for their
variable lines (BFCN, VOC, CITY, WEIGHTS, RUNS, SET), which point at the build, the samples, a
random-init torchvision ResNet-18 state dict (standing in for the ImageNet download), a temp folder
and a 2-iteration schedule. Checks: every command succeeds, each run leaves best.h5 and eval.json,
the W1A2 models are exported and the VOC val predictions are scored.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def readme_blocks(readme):
    text = open(readme).read()
    marker = text.find("<!-- tested: tests/scripts/readme_real_data_test.py")
    if marker < 0:
        fail("README.md has no '<!-- tested: tests/scripts/readme_real_data_test.py' marker")
    blocks = re.findall(r"```bash\n(.*?)```", text[marker:], re.S)
    if len(blocks) < 2:
        fail("expected a VOC and a Cityscapes bash block after the marker")
    return blocks[0], blocks[1]


def substitute(block, values):
    out = []
    seen = set()
    for line in block.splitlines():
        m = re.match(r"^([A-Z]+)=", line)
        if m and m.group(1) in values:
            out.append("%s=%s" % (m.group(1), values[m.group(1)]))
            seen.add(m.group(1))
        else:
            out.append(line)
    return "\n".join(out) + "\n", seen


def link_tree(dst, parts):
    """dst/<rel> -> src for every (rel, src): a Cityscapes root from the two sample folders."""
    for rel, src in parts:
        os.makedirs(os.path.dirname(os.path.join(dst, rel)), exist_ok=True)
        os.symlink(src, os.path.join(dst, rel))


def main():
    build, source = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    shared = os.path.normpath(os.path.join(source, "..", "shared", "data"))
    voc = os.path.join(shared, "voc_sample", "VOCdevkit", "VOC2012")
    city_train = os.path.join(shared, "cityscapes_sample")
    city_val = os.path.join(shared, "cityscapes_sample_tiny")
    if not all(os.path.isdir(p) for p in (voc, city_train, city_val)):
        reason = "%s (the real-format VOC/Cityscapes samples) is absent" % shared
        if os.environ.get("CI") == "true":  # as the C++ tests: missing data fails under CI
            fail("CI=true: a missing dependency must not skip: " + reason)
        print("BFCN-SKIPPED: scripts:readme_real_data | missing dependency | " + reason)
        if os.environ.get("BFCN_SKIP_LOG"):
            with open(os.environ["BFCN_SKIP_LOG"], "a") as log:
                log.write("scripts:readme_real_data | missing dependency | %s\n" % reason)
        sys.exit(77)
    voc_block, city_block = readme_blocks(os.path.join(source, "README.md"))

    tmp = tempfile.mkdtemp(prefix="bfcn_readme_test_")
    try:
        weights = os.path.join(tmp, "resnet18-random.pth")
        subprocess.run(["/usr/bin/python3", "-c",
                        "import sys, torch, torchvision; torch.manual_seed(0); "
                        "torch.save(torchvision.models.resnet18().state_dict(), sys.argv[1])",
                        weights], check=True)
        city = os.path.join(tmp, "cityscapes")  # train frames + the tiny val frame, one root
        link_tree(city, [("leftImg8bit/train", os.path.join(city_train, "leftImg8bit", "train")),
                         ("gtFine/train", os.path.join(city_train, "gtFine", "train")),
                         ("leftImg8bit/val", os.path.join(city_val, "leftImg8bit", "val")),
                         ("gtFine/val", os.path.join(city_val, "gtFine", "val"))])
        runs = os.path.join(tmp, "runs")
        tiny = ("(--set train.iterations=2 --set train.batch=2 --set 'data.augment.crop=[128,128]' "
                "--set train.eval_interval=2 --set train.checkpoint_interval=2)")
        values = {"BFCN": os.path.join(build, "bfcn"), "VOC": voc, "CITY": city,
                  "WEIGHTS": weights, "RUNS": runs, "SET": tiny}
        for name, block, prefix in (("VOC", voc_block, "voc12"), ("Cityscapes", city_block, "city")):
            script, seen = substitute(block, values)
            for var in ("BFCN", "RUNS", "SET"):
                if var not in seen:
                    fail("the %s block sets no %s= line" % (name, var))
            print("== README %s block (variables substituted):\n%s" % (name, script))
            r = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=source,
                               env=dict(os.environ, OMP_NUM_THREADS="2"))
            if r.returncode != 0:
                fail("the README's %s commands failed (exit %d)" % (name, r.returncode))
            for v in ("fp32", "w2a2", "w1a2"):
                run = os.path.join(runs, "%s_%s" % (prefix, v))
                for f in ("best.h5", "eval.json"):
                    if not os.path.exists(os.path.join(run, f)):
                        fail("%s block: %s/%s missing" % (name, run, f))
                miou = json.load(open(os.path.join(run, "eval.json")))["miou"]
                if not 0.0 <= miou <= 1.0:
                    fail("%s %s: mIoU %s out of range" % (name, v, miou))
            if not os.path.exists(os.path.join(runs, prefix + "_w1a2", "model.bfcn")):
                fail("%s block exported no model.bfcn" % name)
        preds = os.listdir(os.path.join(runs, "voc12_w1a2", "val_pred"))
        if "2007_000129.png" not in preds:
            fail("VOC val prediction 2007_000129.png missing (got %s)" % preds)
        if not os.listdir(os.path.join(runs, "city_w1a2", "frankfurt_pred")):
            fail("no Cityscapes val predictions")
        print("PASS: README VOC and Cityscapes commands ran at tiny size against " + shared)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
