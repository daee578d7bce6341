"""Pure grounding logic shared by every part of univg: boxes, parsing, resizing, rewards, phi, metrics.

No torch and no I/O here, so the trainer's reward and the evaluator's score are the same code.
"""
