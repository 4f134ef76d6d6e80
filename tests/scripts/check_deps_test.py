#!/usr/bin/python3
"""scripts/check_deps.py passes with deps.sh's full list and fails, naming the package and the
line to add, when one entry is removed (ocl-icd-opencl-dev, libhdf5-dev).
Usage: check_deps_test.py BUILD_DIR"""
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
build = sys.argv[1]
deps = (REPO / "scripts/deps.sh").read_text()


def check(deps_text):
    with tempfile.NamedTemporaryFile("w", suffix=".sh", delete=False) as f:
        f.write(deps_text)
    r = subprocess.run(["/usr/bin/python3", str(REPO / "scripts/check_deps.py"), "--build", build,
                        "--deps", f.name], capture_output=True, text=True)
    Path(f.name).unlink()
    return r.returncode, r.stdout + r.stderr


rc, out = check(deps)
assert rc == 0, f"full list should pass:\n{out}"
print("full list: passes")
cache = Path(build, "CMakeCache.txt").read_text()
# OpenCL is resolved only where bench/ was configured (oneDNN's config needs it); the ASan build
# leaves bench/ out, so there only libhdf5-dev's removal can be seen by the check.
checked = ["libhdf5-dev"]
if re.search(r"^OpenCL_LIBRARY:[A-Z]+=/", cache, re.M):
    checked.insert(0, "ocl-icd-opencl-dev")
else:
    print("this build did not resolve OpenCL (bench/ not configured): ocl-icd-opencl-dev not checked")
for pkg in checked:
    pkgs = re.search(r"^PKGS=\((.*?)^\)", deps, re.S | re.M)
    assert pkgs and re.search(rf"\s{re.escape(pkg)}\s", pkgs.group(1)), f"{pkg} not in PKGS"
    without = deps.replace(pkgs.group(1), re.sub(rf"(?<=\s){re.escape(pkg)}(?=\s)", "", pkgs.group(1)))
    rc, out = check(without)
    assert rc == 1, f"list without {pkg} should fail (rc {rc}):\n{out}"
    assert f"belongs to package {pkg}," in out and f"add `{pkg}`" in out, \
        f"failure without {pkg} should name it:\n{out}"
    print(f"without {pkg}: fails naming it")
print("check_deps_test: ok")
