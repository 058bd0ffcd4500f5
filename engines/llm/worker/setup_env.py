#!/usr/bin/env python3
"""Build the GPU worker's own virtual environment for the official VideoLLaMA2 package.

Standard library only; run it with any Python 3.9+ (the environment gets that interpreter):

    python engines/llm/worker/setup_env.py --venv .venv-worker --videollama2 /path/to/VideoLLaMA2
    make worker-env VIDEOLLAMA2_SRC=/path/to/VideoLLaMA2          # the same, from the Makefile

What it installs, in one pip resolve:

- the torch build you name with ``--torch`` (default ``torch==2.14.1 torchvision==0.29.1``; on a
  V100 box pass a CUDA 11.8/12.x build, e.g. ``--torch "torch==2.2.0 torchvision==0.17.0
  --index-url https://download.pytorch.org/whl/cu118"``),
- ``requirements-videollama2.txt`` beside this file: the inference subset of the upstream pins
  (transformers 4.40.0, tokenizers 0.19.1, accelerate 0.26.1, timm 1.0.3, numpy 1.24.4, ...),
- the ``videollama2`` package itself with ``--no-deps`` (its own pyproject pins the training stack),
  from ``--videollama2``: a folder (a git clone, or GhostProbe's test copy in ../shared/vendor) or
  any pip requirement such as ``git+https://github.com/DAMO-NLP-SG/VideoLLaMA2@<commit>``.

A folder is built from a temporary copy, so a read-only source works; when the folder lacks the
``README.md`` its pyproject names (the vendored test copy leaves it out), the copy gets a one-line
placeholder so the build backend accepts it. The package's code is installed unmodified.

Reruns are cheap: ``<venv>/.worker-env-stamp`` holds a digest of everything above (script,
requirements, torch spec, source tree contents, Python version); when it matches, nothing is done.
Exit codes: 0 built or up to date, 2 bad input (one sentence on stderr), 1 pip failed.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REQUIREMENTS = HERE / "requirements-videollama2.txt"
DEFAULT_TORCH = "torch==2.14.1 torchvision==0.29.1"
STAMP = ".worker-env-stamp"
CHECK = ("import torch, transformers, videollama2; "
         "from videollama2 import model_init; "
         "from videollama2.mm_utils import process_video, tokenizer_multimodal_token, KeywordsStoppingCriteria; "
         "print(torch.__version__, transformers.__version__, videollama2.__file__)")


class UserError(Exception):
    pass


def _tree_digest(folder: Path) -> str:
    """Digest of a source folder's files (paths and bytes), ignoring VCS and cache folders."""
    h = hashlib.sha256()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in (".git", "__pycache__", "build", "dist") and not d.endswith(".egg-info"))
        for name in sorted(files):
            if name.endswith(".pyc"):
                continue
            p = Path(root) / name
            h.update(str(p.relative_to(folder)).encode() + b"\0")
            h.update(hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def source_spec(src: str) -> tuple[str, Path | None]:
    """(description for the digest, folder or None when src is a pip requirement)."""
    p = Path(src).expanduser()
    if p.is_dir():
        p = p.resolve()
        if not (p / "pyproject.toml").exists() and not (p / "setup.py").exists():
            raise UserError(f"{p} has no pyproject.toml or setup.py: point --videollama2 at the VideoLLaMA2 repository root.")
        if not (p / "videollama2" / "__init__.py").exists():
            raise UserError(f"{p} has no videollama2/ package: point --videollama2 at the VideoLLaMA2 repository root.")
        return f"dir:{_tree_digest(p)}", p  # the contents, not the path: the package is installed as a copy
    if os.sep in src or src.startswith("."):
        if not p.exists():
            raise UserError(f"The VideoLLaMA2 source folder {src} does not exist.")
    return f"pip:{src}", None


def env_key(python: str, torch_spec: str, src_desc: str, shown: str) -> dict[str, str]:
    ver = subprocess.run([python, "-c", "import sys; print('%d.%d.%d' % sys.version_info[:3])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    h = hashlib.sha256()
    for part in (Path(__file__).read_bytes(), REQUIREMENTS.read_bytes(), torch_spec.encode(), src_desc.encode(), ver.encode()):
        h.update(hashlib.sha256(part).digest())
    return {"digest": h.hexdigest(), "python": ver, "torch": torch_spec, "source": shown}


def _run(cmd: list[str], log) -> None:
    log(f"$ {shlex.join(cmd)}")
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = [ln for ln in r.stdout.splitlines() if "is ignored: it is neither a file nor a directory" not in ln]
    if r.returncode != 0:
        tail = "\n".join(lines[-40:])
        raise subprocess.CalledProcessError(r.returncode, cmd, output=tail)


def build(venv: Path, src: str, torch_spec: str, python: str, force: bool = False, log=print) -> dict:
    src_desc, folder = source_spec(src)
    key = env_key(python, torch_spec, src_desc, str(folder) if folder is not None else src)
    stamp = venv / STAMP
    py = venv / "bin" / "python"
    if not force and stamp.exists() and py.exists():
        try:
            old = json.loads(stamp.read_text())
        except ValueError:
            old = {}
        if old.get("digest") == key["digest"]:
            log(f"worker env {venv} is up to date ({old.get('versions', '')}).")
            return old
    t0 = time.monotonic()
    if venv.exists():
        shutil.rmtree(venv)
    _run([python, "-m", "venv", str(venv)], log)
    pip = [str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    _run(pip + shlex.split(torch_spec) + ["-r", str(REQUIREMENTS)], log)
    if folder is not None:
        with tempfile.TemporaryDirectory(prefix="videollama2-src-") as tmp:
            copy = Path(tmp) / "VideoLLaMA2"
            shutil.copytree(folder, copy, ignore=shutil.ignore_patterns(".git", "__pycache__", "*.pyc"))
            for sub in [copy, *[Path(r) for r, _, _ in os.walk(copy)]]:
                os.chmod(sub, 0o755)
            readme = copy / "README.md"
            if not readme.exists():
                readme.write_text("VideoLLaMA2 (README.md was absent from the source folder; placeholder written by "
                                  "GhostProbe's setup_env.py so the build backend accepts the pyproject).\n")
            _run(pip + ["--no-deps", str(copy)], log)
    else:
        _run(pip + ["--no-deps", src], log)
    r = subprocess.run([str(py), "-c", CHECK], capture_output=True, text=True, cwd=tempfile.gettempdir())
    if r.returncode != 0:
        raise subprocess.CalledProcessError(r.returncode, [str(py), "-c", CHECK], output=r.stderr[-4000:])
    key["versions"] = r.stdout.strip().splitlines()[-1]
    key["build_s"] = round(time.monotonic() - t0, 1)
    stamp.write_text(json.dumps(key, indent=1) + "\n")
    log(f"worker env {venv} built in {key['build_s']:.0f} s: torch transformers videollama2 = {key['versions']}")
    return key


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the VideoLLaMA2 worker's virtual environment (cached by a stamp).")
    ap.add_argument("--venv", default=".venv-worker", help="where to build it (default .venv-worker)")
    ap.add_argument("--videollama2", required=True, metavar="SRC",
                    help="VideoLLaMA2 repository folder, or a pip requirement such as git+https://...@commit")
    ap.add_argument("--torch", default=os.environ.get("WORKER_TORCH") or DEFAULT_TORCH,
                    help=f"pip arguments for torch (default {DEFAULT_TORCH!r}, or $WORKER_TORCH)")
    ap.add_argument("--python", default=sys.executable, help="interpreter for the venv (default: this one)")
    ap.add_argument("--force", action="store_true", help="rebuild even when the stamp matches")
    args = ap.parse_args(argv)
    venv = Path(args.venv).expanduser().absolute()
    venv.parent.mkdir(parents=True, exist_ok=True)
    lock_path = venv.parent / f"{venv.name}.lock"  # beside the venv, which a rebuild removes
    try:
        with open(lock_path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # one build at a time; a second caller then finds it up to date
            build(venv, args.videollama2, args.torch, args.python, force=args.force,
                  log=lambda m: print(m, flush=True))
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except subprocess.CalledProcessError as e:
        print(f"error: building the worker env failed at: {shlex.join(e.cmd)}\n{e.output or ''}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
