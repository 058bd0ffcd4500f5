"""Entry point for `python app.py` and Hugging Face Spaces (README front matter: app_file: app.py)."""

import sys

from webapp.cli import main

if __name__ == "__main__":
    sys.exit(main(["serve", *sys.argv[1:]]))
