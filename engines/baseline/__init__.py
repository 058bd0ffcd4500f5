"""Weights-free ghost-probing baseline: optical flow, ego-motion compensation, blob tracks (CPU).

``config.BaselineConfig`` holds every parameter; ``detector`` does the work; ``engine`` registers
it as the "baseline" engine. Importing this package stays cheap (OpenCV loads on first use).
"""
