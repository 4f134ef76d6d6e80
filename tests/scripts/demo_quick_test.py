#!/usr/bin/python3
"""End-to-end test of scripts/demo.sh --quick at tiny sizes (DEMO_TINY=1) in a temp folder.

usage: demo_quick_test.py BUILD_DIR SOURCE_DIR

Runs the demo with BUILD_DIR/bfcn (no install, no build), then checks the report: the accuracy /
speed table has one row per model (FP32, W2A2, W1A2) with numbers in it, the per-class IoU table
has a row per class with a value per model, every image the report names exists and decodes as a
PNG, report.json agrees, and a second run skips every finished stage.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

from PIL import Image


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def table_after(lines, heading):
    """The rows (cells lists) of the first markdown table after `heading`, header excluded."""
    try:
        i = next(k for k, l in enumerate(lines) if l.startswith(heading))
    except StopIteration:
        fail("report.md has no section '%s'" % heading)
    rows = []
    k = i + 1
    while k < len(lines) and not lines[k].startswith("|"):
        k += 1
    while k < len(lines) and lines[k].startswith("|"):
        rows.append([c.strip() for c in lines[k].strip().strip("|").split("|")])
        k += 1
    if len(rows) < 2 or not set(rows[1][0]) <= set("-"):
        fail("no markdown table after '%s'" % heading)
    return rows[0], rows[2:]


def is_number(text):
    return re.fullmatch(r"[+-]?[0-9]+(\.[0-9]+)?", text) is not None


def main():
    build, source = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
    bfcn = os.path.join(build, "bfcn")
    if not os.path.exists(bfcn):
        fail(bfcn + " not built")
    tmp = tempfile.mkdtemp(prefix="bfcn_demo_test_")
    try:
        out = os.path.join(tmp, "demo")
        env = dict(os.environ, BFCN=bfcn, DEMO_OUT=out, DEMO_RUNS=os.path.join(tmp, "runs"),
                   DEMO_DATA=os.path.join(tmp, "data"), DEMO_TINY="1", DEMO_THREADS="2")
        cmd = [os.path.join(source, "scripts", "demo.sh"), "--quick"]
        r = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(r.stdout)
        if r.returncode != 0:
            fail("demo.sh --quick exited %d" % r.returncode)
        if "estimated time" not in r.stdout:
            fail("demo.sh printed no time estimate")

        report = os.path.join(out, "report.md")
        if not os.path.exists(report):
            fail(report + " missing")
        text = open(report).read()
        lines = text.splitlines()
        if "Quick first look" not in text:
            fail("the quick report does not say it is a quick first look")

        header, rows = table_after(lines, "## Accuracy")
        labels = [row[0].split(" ")[0] for row in rows]
        if labels != ["FP32", "W2A2", "W1A2"]:
            fail("accuracy table rows are %s, expected FP32, W2A2, W1A2" % labels)
        for row in rows:
            if len(row) != len(header):
                fail("row %s has %d cells, header %d" % (row[0], len(row), len(header)))
            if not is_number(row[header.index("val mIoU %")]):
                fail("row %s: mIoU '%s' is not a number" % (row[0], row[1]))
        for col in ("bit-conv ms 64²", "our FP32 ms 96²", "oneDNN fp32 ms 64²", "speed-up 96²",
                    "model file", "paper drop (VOC12)"):
            if col not in header:
                fail("accuracy table has no column '%s' (%s)" % (col, header))
        for row in rows[1:]:  # quantized rows: a bit-conv time and a speed-up
            if not is_number(row[header.index("bit-conv ms 64²")]):
                fail("row %s has no bit-conv time" % row[0])
        paper = [row[header.index("paper drop (VOC12)")] for row in rows]
        if paper[1:] != ["-2.8", "-7.0"]:
            fail("paper drops %s, expected -2.8 (W2A2) and -7.0 (W1A2)" % paper)

        data = json.load(open(os.path.join(tmp, "data", "dataset.json")))
        cheader, crows = table_after(lines, "## Per-class IoU")
        if cheader[1:] != ["FP32", "W2A2", "W1A2"]:
            fail("per-class table columns %s" % cheader)
        if [r[0] for r in crows] != data["classes"]:
            fail("per-class rows %s, expected the dataset's classes %s" %
                 ([r[0] for r in crows], data["classes"]))
        for row in crows:
            if not all(is_number(c) or c == "n/a" for c in row[1:]):
                fail("per-class row %s has a non-number" % row)
        if not any(is_number(c) for row in crows for c in row[1:]):
            fail("per-class table holds no IoU at all")

        images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", text)
        if sorted(images) != ["curves.png", "panel.png"]:
            fail("report names images %s, expected curves.png and panel.png" % images)
        for name in images:
            path = os.path.join(out, name)
            if not os.path.exists(path):
                fail(path + " named by the report does not exist")
            with Image.open(path) as im:
                if im.format != "PNG":
                    fail("%s is %s, not PNG" % (path, im.format))
                im.load()
                if im.width < 200 or im.height < 100:
                    fail("%s is only %dx%d" % (path, im.width, im.height))
        with Image.open(os.path.join(out, "panel.png")) as im:  # 5 columns of >= 192 px tiles
            if im.width < 5 * 192:
                fail("panel.png is %d px wide, expected 5 tiles of >= 192 px" % im.width)

        rj = json.load(open(os.path.join(out, "report.json")))
        if [r["label"] for r in rj["rows"]] != ["FP32", "W2A2", "W1A2"] or not rj["quick"]:
            fail("report.json rows/quick flag wrong")
        # Deployability: each exported model checked against its checkpoint (bfcn export --verify).
        for r in rj["rows"][1:]:
            v = r.get("runtime_vs_training")
            if not isinstance(v, dict) or not isinstance(v.get("label_agreement"), (int, float)) or \
                    not 0.0 <= v["label_agreement"] <= 1.0 or v.get("images", 0) < 1:
                fail("report.json row %s has no export --verify result: %s" % (r["label"], v))
        if "Runtime vs training engine" not in text:
            fail("report does not give the runtime-vs-training label agreement")
        # The int8 stem: both stems through the runtime on the val split, where the CPU has VNNI.
        version = subprocess.run([bfcn, "--version"], stdout=subprocess.PIPE, text=True).stdout
        has_vnni = re.search(r"^cpu features:.*avx512vnni", version, re.M) is not None
        if has_vnni:
            sheader, srows = table_after(lines, "## The int8 stem")
            if [row[0] for row in srows] != ["W2A2", "W1A2"]:
                fail("int8 stem table rows %s, expected W2A2, W1A2" % [row[0] for row in srows])
            for row in srows:
                if len(row) != len(sheader) or not all(is_number(c.rstrip(" %")) for c in row[1:]):
                    fail("int8 stem row %s is not all numbers under %s" % (row, sheader))
            for r in rj["int8_stem"]:
                if not 0.0 <= r["label_agreement"] <= 1.0 or not r["network_ms_int8_stem"] > 0:
                    fail("report.json int8_stem entry %s" % r)
        elif "## The int8 stem" in text or rj["int8_stem"]:
            fail("the int8 stem is reported on a CPU without VNNI")
        if "## Wall time per stage" not in text or "train_w1a2" not in text:
            fail("report has no wall time of the stages")

        # Bad input: exit 1 with a message naming the missing folder / file.
        runs = os.path.join(tmp, "runs")
        bad = subprocess.run([bfcn, "report", "--dir", out, "--run", "W2A2=" + tmp + "/nowhere"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if bad.returncode != 1 or tmp + "/nowhere" not in bad.stdout:
            fail("report on a missing run folder: exit %d, '%s'" % (bad.returncode, bad.stdout))
        os.rename(os.path.join(out, "eval_w1a2.json"), os.path.join(tmp, "eval_w1a2.json"))
        bad = subprocess.run([bfcn, "report", "--dir", out, "--out", os.path.join(tmp, "r2"),
                              "--run", "W1A2=" + os.path.join(runs, "fashion_seg_w1a2")],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if bad.returncode != 1 or "eval_w1a2.json" not in bad.stdout:
            fail("report without eval_w1a2.json: exit %d, '%s'" % (bad.returncode, bad.stdout))
        os.rename(os.path.join(tmp, "eval_w1a2.json"), os.path.join(out, "eval_w1a2.json"))

        r2 = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        print(r2.stdout)
        if r2.returncode != 0:
            fail("second demo.sh --quick exited %d" % r2.returncode)
        for s in ("data", "train_fp32", "train_w2a2", "train_w1a2", "eval", "export", "bench",
                  "infer", "stem"):
            if not re.search(r"\] %s\s+done in an earlier run" % s, r2.stdout):
                fail("second run did not skip stage " + s)
        print("PASS: demo --quick report with 3 rows, per-class IoU, curves and panel")
    finally:
        if os.environ.get("DEMO_TEST_KEEP") != "1":
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
