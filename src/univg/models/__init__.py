"""Models: loading Qwen2-VL / Qwen2.5-VL (`loading`), the torchvision-free processor (`processor`), the tiny
offline checkpoint (`tiny`, `tokenizer`). Submodules import torch and transformers; import them directly."""
