"""Standalone GPU worker for models that cannot share our environment (VideoLLaMA2, Video-LLaMA v1).

``server.py`` and ``adapters/`` use the standard library only at import time and import nothing of
ours: copy this folder next to the model's own checkout and run it in that model's environment.
See README.md in this folder.
"""
