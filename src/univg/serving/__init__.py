"""`univg serve`: an OpenAI-compatible and grounding HTTP API over the Predictor, with a web page.

`app.create_app` builds the FastAPI application; `scheduler` batches requests that arrive together,
`safety` holds every check hostile input meets (images, URLs, text), `protocol` the request and reply
models, `metrics` the Prometheus counters, and `static/index.html` the page served at ``/``.
"""
