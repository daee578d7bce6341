"""Cold-start chain-of-thought data: a teacher writes chains, judges them, and the kept one is verified.

From Python::

    from univg.cot.runner import GenerateConfig, generate
    summary = generate(GenerateConfig("synth/train.jsonl", "cot/cot.jsonl", "http://127.0.0.1:8765/v1",
                                      "univg-offline-teacher"))
    summary.counts, summary.reasons, summary.cost

Modules: `prompts` (the template files, `--prompts DIR`), `request` (OpenAI chat messages with data
URLs), `client` (AsyncOpenAI with retries and a rate limit), `judge`, `verify`, `accounting` (prices,
budget, ledger), `runner` (the resumable run), `review` (the review page and its decisions),
`teacher` (the offline teacher). The command line is `univg cot generate|review|teacher|prompts`.
"""
