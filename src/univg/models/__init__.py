"""Models: loading Qwen2-VL / Qwen2.5-VL (`loading`), the torchvision-free processor (`processor`), its pixel
budget and image-token count (`budget`), the tiny offline checkpoint (`tiny`, `tokenizer`). Submodules but
`budget` import torch and transformers; import them directly."""
