"""A Hydra callback that keeps secrets out of the run directory's saved `.hydra/` files.

Hydra writes config.yaml, hydra.yaml and overrides.yaml before the job starts, with the command
line as typed; on_job_start runs right after, so this rewrites them redacted: values of
secret-looking keys become "***" and values of the environment's secrets are scrubbed.
Register in conf/config.yaml:

    hydra:
      callbacks:
        redact_secrets:
          _target_: engine.config.hydra_callback.RedactSecrets
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from .secrets import redact, redact_override, scrub, secret_values


class RedactSecrets(Callback):
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = config.hydra.output_subdir
        if subdir is None:
            return
        out = Path(config.hydra.runtime.output_dir) / subdir
        task = OmegaConf.to_container(config, resolve=False)
        task.pop("hydra", None)
        secrets = secret_values(redact(task), os.environ)
        for name in ("config.yaml", "hydra.yaml", "overrides.yaml"):
            path = out / name
            if not path.exists():
                continue
            if name == "config.yaml":
                text = OmegaConf.to_yaml(OmegaConf.create(redact(task)))
            elif name == "overrides.yaml":
                overrides = OmegaConf.to_container(OmegaConf.load(path)) or []
                text = OmegaConf.to_yaml(OmegaConf.create([redact_override(str(o)) for o in overrides]))
            else:
                loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
                ov = loaded.get("hydra", {}).get("overrides", {})
                for k in ("task", "hydra"):
                    if isinstance(ov.get(k), list):
                        ov[k] = [redact_override(str(o)) for o in ov[k]]
                text = OmegaConf.to_yaml(OmegaConf.create(loaded))
            path.write_text(scrub(text, secrets))
