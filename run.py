"""rulebook's one entry point: `python run.py [overrides]` (see README.md)."""
import atexit
import gc

# At exit, mark every object permanent so that the interpreter's final collections skip them:
# walking them cost each run 35-60 ms (python benchmarks/claims.py). Objects
# are still freed; only finalizers of objects caught in reference cycles may not run, which
# Python never promised at exit, and everything rulebook writes is closed explicitly.
atexit.register(gc.freeze)

import hydra  # noqa: E402
from omegaconf import DictConfig  # noqa: E402

# Hydra's and OmegaConf's modules live as long as the process: later collections need not walk them.
gc.freeze()


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from engine.app import main as run_app

    return run_app(cfg)


if __name__ == "__main__":
    main()
    # A multirun runs every job even when some fail (each leaves error.json); the sweep's exit
    # code still says so, for a CI or a scheduler (engine/sweep/callbacks.py logged the line).
    from engine.sweep import callbacks  # noqa: E402

    if callbacks.FAILED_JOBS:
        raise SystemExit(1)
