#!/usr/bin/python3
"""Fresh-machine check: is every external file this build uses installed by scripts/deps.sh?

A machine keeps what earlier work installed by hand, so a green build there can hide a package
missing from the install list. This check reads what a configured build resolved: the *_LIBRARY,
*_INCLUDE_DIR, *_DIR (...) paths of CMakeCache.txt and the libraries on the targets' link lines
(absolute paths and -l flags), plus the Python modules that the repo's scripts and tests import.
Each file is mapped to the Debian package that owns it (dpkg -S); that package must be one of
deps.sh's PKGS or in the closure of their Depends/Pre-Depends (as installed). Anything else is
printed with its package and the line to add, and the exit code is 1.

  scripts/check_deps.py --build build [--deps scripts/deps.sh]
"""
import argparse
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# Always checked, whether or not a scan finds them: the oracles and peers the tests rely on.
PY_MODULES_ALWAYS = ["torch", "torchvision", "numpy", "PIL", "h5py"]
CACHE_KEY = re.compile(
    r"^[A-Za-z0-9_]+(_LIBRARY|_LIBRARIES|_INCLUDE_DIR|_INCLUDE_DIRS|_DIR|_EXECUTABLE)"
    r"[A-Za-z0-9_]*:[A-Z]+=(.+)$")
LIB_DIRS = ["/usr/lib/x86_64-linux-gnu", "/lib/x86_64-linux-gnu", "/usr/lib", "/lib",
            "/usr/lib/gcc/x86_64-linux-gnu/12"]


def listed_packages(deps_file):
    """The PKGS=( ... ) array of deps.sh (comments and blank lines ignored)."""
    text = Path(deps_file).read_text()
    m = re.search(r"^PKGS=\((.*?)^\)", text, re.S | re.M)
    if not m:
        sys.exit(f"check_deps: {deps_file}: no PKGS=( ... ) array found")
    words = []
    for line in m.group(1).splitlines():
        words += line.split("#", 1)[0].split()
    return words


def installed_graph():
    """name -> (depends alternatives list) and virtual name -> providers, for installed packages."""
    deps, provides = {}, {}
    block = {}

    def flush():
        if block.get("Package") and "install ok installed" in block.get("Status", ""):
            name = block["Package"]
            alts = []
            for field in ("Depends", "Pre-Depends"):
                for clause in block.get(field, "").split(","):
                    names = [re.sub(r"[\s(].*$", "", a.strip()).split(":")[0]
                             for a in clause.split("|") if a.strip()]
                    if names:
                        alts.append(names)
            deps[name] = deps.get(name, []) + alts
            for p in block.get("Provides", "").split(","):
                p = re.sub(r"[\s(].*$", "", p.strip()).split(":")[0]
                if p:
                    provides.setdefault(p, set()).add(name)

    key = None
    with open("/var/lib/dpkg/status", encoding="utf-8", errors="replace") as f:
        for line in f:
            if line == "\n":
                flush()
                block, key = {}, None
            elif line[0] in " \t" and key:
                block[key] += " " + line.strip()
            elif ":" in line:
                key, val = line.split(":", 1)
                block[key] = val.strip()
    flush()
    return deps, provides


def closure(roots, deps, provides):
    """Every installed package that installing `roots` pulls in (first installed alternative)."""
    def resolve(name):
        if name in deps:
            return [name]
        return sorted(provides.get(name, ()))

    seen, todo, not_installed = set(), [], []
    for r in roots:
        got = resolve(r)
        if not got:
            not_installed.append(r)
        todo += got
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        for alts in deps.get(p, []):
            for a in alts:
                got = resolve(a)
                if got:
                    todo += got
                    break
    return seen, not_installed


def build_files(build):
    """Absolute paths outside the repo that CMake resolved or the link lines name."""
    files = set()
    cache = Path(build) / "CMakeCache.txt"
    if not cache.is_file():
        sys.exit(f"check_deps: {cache} not found: configure first (cmake -S . -B {build})")
    for line in cache.read_text(errors="replace").splitlines():
        m = CACHE_KEY.match(line)
        if m:
            files.update(v for v in m.group(2).split(";") if v.startswith("/"))
    for link in Path(build).rglob("link.txt"):
        for tok in link.read_text().split():
            if tok.startswith("/"):
                files.add(tok)
            elif tok.startswith("-l") and len(tok) > 2:
                for d in LIB_DIRS:
                    for ext in (".so", ".a"):
                        cand = f"{d}/lib{tok[2:]}{ext}"
                        if os.path.exists(cand):
                            files.add(cand)
                            break
                    else:
                        continue
                    break
    repo, bld = str(REPO), str(Path(build).resolve())
    return sorted(f for f in files if os.path.exists(f) and not f.startswith((repo, bld))
                  and f.startswith(("/usr/", "/lib", "/etc/", "/opt/")))


def python_modules():
    """Third-party top-level modules imported by the repo's .py files, plus the oracle list."""
    mods = set(PY_MODULES_ALWAYS)
    local = {p.stem for p in REPO.rglob("*.py")}
    stdlib = set(sys.stdlib_module_names)
    for py in REPO.rglob("*.py"):
        if any(part.startswith(".") or part.startswith("build") for part in py.parts[len(REPO.parts):]):
            continue
        for m in re.finditer(r"^\s*(?:import|from)\s+([A-Za-z_][A-Za-z0-9_]*)", py.read_text(errors="replace"), re.M):
            name = m.group(1)
            if name not in stdlib and name not in local and name != "__future__":
                mods.add(name)
    found, missing = {}, []
    code = ("import importlib.util, sys\n"
            "for m in sys.argv[1:]:\n"
            "    s = importlib.util.find_spec(m)\n"
            "    print(m, s.origin if s and s.origin else (list(s.submodule_search_locations)[0] if s else '-'))\n")
    out = subprocess.run(["/usr/bin/python3", "-c", code, *sorted(mods)], capture_output=True,
                         text=True, check=False).stdout
    for line in out.splitlines():
        name, origin = line.split(" ", 1)
        if origin == "-":
            missing.append(name)
        else:
            found[name] = origin
    return found, missing


def owners(paths):
    """path -> owning packages (one dpkg -S call), trying the resolved path and its /usr-merged
    twin, since dpkg records a file under the name its package shipped it."""
    def candidates(f):
        r = os.path.realpath(f)
        return list(dict.fromkeys([f, r, re.sub(r"^/usr/lib/", "/lib/", r),
                                   re.sub(r"^/lib/", "/usr/lib/", r)]))

    every = sorted({c for f in paths for c in candidates(f)})
    out = subprocess.run(["dpkg", "-S", *every], capture_output=True, text=True).stdout
    owned = {}
    for line in out.splitlines():
        head, _, path = line.rpartition(": ")
        if head and path in every:
            owned.setdefault(path, set()).update(p.strip().split(":")[0] for p in head.split(","))
    result = {}
    for f in paths:
        for c in candidates(f):
            if c in owned:
                result[f] = owned[c]
                break
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--build", required=True, help="a configured CMake build folder")
    ap.add_argument("--deps", default=str(REPO / "scripts/deps.sh"),
                    help="deps.sh (or a copy) whose PKGS array is the install list")
    ap.add_argument("--no-python", action="store_true", help="skip the Python module check")
    args = ap.parse_args()

    listed = listed_packages(args.deps)
    deps, provides = installed_graph()
    covered, not_installed = closure(listed, deps, provides)
    problems = [f"listed package {p} is not installed: run scripts/deps.sh" for p in not_installed]

    files = build_files(args.build)
    what = {f: f"build file {f}" for f in files}
    if not args.no_python:
        mods, missing = python_modules()
        problems += [f"python module {m}: /usr/bin/python3 cannot import it; add the Debian package"
                     f" that ships it (python3-{m.lower()}) to PKGS in {args.deps}" for m in missing]
        for m, origin in mods.items():
            if origin.startswith(("/usr/", "/lib")):
                files.append(origin)
                what[origin] = f"python module {m} ({origin})"
            else:
                problems.append(f"python module {m} comes from {origin}, outside Debian's packages:"
                                f" /usr/bin/python3 must find it in a package listed in {args.deps}")
    owned = owners(files)
    uncovered = 0
    for f in files:
        pk = owned.get(f)
        if not pk or pk & covered:
            continue
        uncovered += 1
        p = sorted(pk)[0]
        problems.append(f"{what[f]} belongs to package {p}, which {args.deps} does not install"
                        f" (nor anything it depends on): add `{p}` to its PKGS list")
    for msg in problems:
        print("check_deps: " + msg)
    print(f"check_deps: {len(files)} files checked against {len(listed)} listed packages"
          f" ({len(covered)} with their dependencies): {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
