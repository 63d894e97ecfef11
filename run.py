"""rulebook's one entry point: `python run.py [overrides]` (see README.md)."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base="1.3", config_path="conf", config_name="config")
def main(cfg: DictConfig):
    from engine.app import main as run_app

    return run_app(cfg)


if __name__ == "__main__":
    main()
