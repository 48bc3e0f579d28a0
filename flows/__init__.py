"""Prefect flows: thin orchestration over `mona_pipeline`. The library never imports this package."""

import os

# Library modules log through logging.getLogger("mona_pipeline..."): show those lines in Prefect runs.
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "mona_pipeline")
