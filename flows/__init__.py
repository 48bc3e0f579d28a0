"""Prefect flows: thin orchestration over `mona_pipeline`. The library never imports this package.

Importing `flows` sets defaults (each one only where the environment does not set it) before
Prefect or TensorFlow is imported, so a new user's first `python -m flows.sort ...` works as is.
"""

import os

_DEFAULTS = {
    # Library modules log through logging.getLogger("mona_pipeline..."): show those lines in Prefect runs...
    "PREFECT_LOGGING_EXTRA_LOGGERS": "mona_pipeline",
    # ... and only there: the same modules log outside any flow run too (the CLI, a stage's set-up check),
    # where Prefect's API handler would warn for each line that it has no run to send it to.
    "PREFECT_LOGGING_TO_API_WHEN_MISSING_FLOW": "ignore",
    # Without PREFECT_API_URL a flow starts a temporary local API; on a fresh PREFECT_HOME and 2 CPU
    # cores its first start (database migrations) takes longer than Prefect's default 20 s wait.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "90",
    # Nothing leaves the machine.
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    # TensorFlow's C++ log on a machine without a GPU is only noise ("Unable to register cuFFT
    # factory", "Could not find cuda drivers") that reads like failures; its real errors reach Python
    # as exceptions. TF_CPP_MIN_LOG_LEVEL=0 shows everything again.
    "TF_CPP_MIN_LOG_LEVEL": "3",
}
for _name, _value in _DEFAULTS.items():
    os.environ.setdefault(_name, _value)
