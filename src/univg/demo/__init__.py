"""`univg demo`: the paper's story end to end on the synthetic world, on a laptop CPU, with no download.

`pretrain` builds the shipped base checkpoint (the stand-in for Qwen2-VL's own pretraining);
`pipeline` runs CoT-SFT, GRPO and difficulty-aware GRPO from it and evaluates every stage;
`report` writes the Table-4-style report.
"""
