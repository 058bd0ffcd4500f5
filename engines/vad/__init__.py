"""Video anomaly detection (VAD) engines and their heatmaps.

- :mod:`engines.vad.motion` — the weights-free *motion map* engine (``motion``): the baseline's
  independent-motion evidence as a low-resolution per-pixel map and a per-frame score; CPU only.
- :mod:`engines.vad.verdict` — the documented rule that turns anomaly scores into a ghost-probing
  verdict (peak score inside the ego path vs the threshold).
- :mod:`engines.vad.heatmap` — maps blended over their frames, boxes drawn, a browser-playable
  H.264 MP4 written with PyAV, the most anomalous frames for a gallery.

Importing this package is cheap: OpenCV, PyAV, torch and anomalib load inside the functions.
"""
