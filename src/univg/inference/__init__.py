"""Inference: `predictor.Predictor`, batched multi-image grounding shared by the CLI, evaluation, server and demo;
`draw` renders its boxes."""
