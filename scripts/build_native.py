"""Compile the record fast path (``src/neotool_common/records/fast.py``) with mypyc, beside its source.

The compiled module, ``neotool_common.records._fast_native``, is ``fast.py`` as it is plus the SHA-256 of its
sources (``native.SOURCES``: fast.py and the modules whose types it is compiled against);
:mod:`neotool_common.records.native` uses it only while the digests agree, so a source edited after the build
falls back to the interpreted module instead of running stale code. The compiler works on a copy of ``src/`` in a
temporary directory: nothing but the extension modules lands in the tree. ``make install`` and ``make test`` run
this script (it needs a C compiler, the Python headers, mypy and setuptools); so does the Dockerfile.

    python scripts/build_native.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src"
RECORDS = Path("neotool_common", "records")
NAME = "_fast_native"
# Errors in the modules the build reaches (the whole package, through its __init__) are not the build's to report:
# `make types` checks them. Only the compiled module itself must type-check, so a dependency's new release cannot
# break an image build of an unchanged fast.py.
MYPYC = [sys.executable, "-m", "mypyc", "--follow-imports=silent"]


sys.path.insert(0, str(SRC))  # the digest of this tree's sources, whatever is installed
from neotool_common.records.native import source_digest  # noqa: E402


def main() -> int:
    source = (SRC / RECORDS / "fast.py").read_bytes()
    digest = source_digest(SRC / RECORDS)
    suffix = sysconfig.get_config_var("EXT_SUFFIX")
    for old in (SRC / RECORDS).glob(f"{NAME}*{suffix}"):
        old.unlink()
    with tempfile.TemporaryDirectory(prefix="neotool-native-") as build:
        tree = Path(build, "src")
        shutil.copytree(SRC, tree, ignore=shutil.ignore_patterns("__pycache__", "*.so", "schemas"))
        stamp = f'\nSOURCE_DIGEST = "{digest}"  # of native.SOURCES, written by scripts/build_native.py\n'
        (tree / RECORDS / f"{NAME}.py").write_bytes(source + stamp.encode())
        done = subprocess.run(
            [*MYPYC, "--config-file", str(ROOT / "pyproject.toml"), str(RECORDS / f"{NAME}.py")],
            cwd=tree,
            env=dict(os.environ, MYPYPATH=str(tree)),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            sys.stderr.write(done.stdout + done.stderr)
            print(f"build_native: mypyc failed with exit code {done.returncode}", file=sys.stderr)
            return 1
        built = sorted((tree / RECORDS).glob(f"{NAME}*{suffix}"))
        for extension in built:
            shutil.copy2(extension, SRC / RECORDS / extension.name)
    if not built:
        print("build_native: mypyc wrote no extension module", file=sys.stderr)
        return 1
    print(f"build_native: {', '.join(p.name for p in built)} from sources {digest[:12]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
