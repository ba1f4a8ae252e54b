"""Runs a tiny training run from a JSON config (used by the kill-and-resume test)."""

import json
import sys

from tfdphpe.training import TrainConfig, train

if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        config = TrainConfig.from_dict(json.load(f))
    train(config, log=lambda line: print(line, flush=True))
