"""Where a demo run's logs go: everything into DIR/logs/, the terminal keeps only the stage lines.

Libraries log at INFO, warn about deprecations and draw their own bars (weights loading, datasets);
a newcomer's terminal should show one line per stage and one progress bar inside it, and the full
record should stay on disk for whoever wants to read it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path

LOG_FILE = "demo.log"


@contextlib.contextmanager
def logs_to_folder(folder: Path) -> Iterator[Path]:
    """Send every log record and warning to `folder/demo.log` while the block runs, and nothing to the
    terminal; library progress bars are off. Restores the previous handlers afterwards."""
    import datasets
    import transformers

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOG_FILE
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    hf_logging = transformers.utils.logging
    hf_level = hf_logging.get_verbosity()
    hf_logging.disable_default_handler()
    hf_logging.enable_propagation()
    hf_logging.set_verbosity_info()
    hf_logging.disable_progress_bar()
    datasets.disable_progress_bars()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    logging.captureWarnings(True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            yield path
    finally:
        logging.captureWarnings(False)
        datasets.enable_progress_bars()
        hf_logging.enable_progress_bar()
        hf_logging.set_verbosity(hf_level)
        hf_logging.disable_propagation()
        hf_logging.enable_default_handler()
        root.handlers, root.level = saved_handlers, saved_level
        handler.close()
