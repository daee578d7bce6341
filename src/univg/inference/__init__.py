"""Inference: `predictor.Predictor`, batched multi-image grounding shared by the CLI, evaluation, the server
and the demo; `endpoint.EndpointPredictor`, the same interface over an OpenAI-compatible endpoint; `draw`
renders their boxes."""
