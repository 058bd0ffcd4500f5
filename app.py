"""Entry point for `python app.py` and Hugging Face Spaces (README front matter: app_file: app.py).

A Space installs only requirements.txt (the CPU dependencies), not this project: the packages
``webapp``, ``engines``, ``reports`` and ``prompts`` are imported from this folder, and the engines
are found through ``engines.registry.BUILTIN`` because no ``ghostprobe-studio`` distribution exists.
"""

import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parent)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)  # also under `python -I app.py`, which leaves the script's folder out

from webapp.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
