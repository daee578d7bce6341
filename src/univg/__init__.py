"""univg: an open implementation of UniVG-R1, reasoning-guided universal visual grounding."""

__version__ = "0.1.0"
