"""Data: the sample schema, readers for the real formats, image/video loading, prompts, synthetic world."""
