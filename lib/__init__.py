"""Unsupervised 3D human pose estimation: data, networks, losses, trainer and metrics.

One small module per concern; see README.md for the layout.
"""
