"""A training run as a library object: settings -> data, net, optimizer, train -> model file,
run.json and report. The command line calls this; Python users can too (bareprop.run).

config.py    RunConfig, its checks (ConfigError), the net and optimizer it describes
runner.py    run(config) -> RunResult: the whole run, and its output folder
manifest.py  run.json
modelfile.py model.npz
"""

from .config import ConfigError, RunConfig
from .runner import RunResult, run

__all__ = ["ConfigError", "RunConfig", "RunResult", "run"]
