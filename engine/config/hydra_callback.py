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

from engine.fileio import atomic_write_text

from .secrets import MIN_SCRUB_LEN, redact, redact_override, redact_urls, scrub, secret_values, url_credentials


class RedactSecrets(Callback):
    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        subdir = config.hydra.output_subdir
        if subdir is None:
            return
        out = Path(config.hydra.runtime.output_dir) / subdir
        task = OmegaConf.to_container(config, resolve=False)
        task.pop("hydra", None)
        redacted = redact(task)
        overrides = OmegaConf.to_container(config.hydra.overrides, resolve=False)
        literal = [_override_value(o) for group in overrides.values() for o in group if redact_override(o) != o]
        # Secret values: the environment's, plus any typed on the command line under a secret key
        # (Hydra also copies overrides into hydra.job.override_dirname).
        typed = {v for v in literal if len(v) >= MIN_SCRUB_LEN}
        # user:password and query tokens of URLs (in the config or typed), whole and the password alone
        for cred in url_credentials(" ".join(literal)) + _url_credentials_in(task):
            typed.update(p for p in (cred, *cred.split(":", 1)[1:]) if len(p) >= MIN_SCRUB_LEN)
        secrets = sorted(set(secret_values(redacted, os.environ)) | typed, key=lambda v: (-len(v), v))
        saved = [out / name for name in ("config.yaml", "hydra.yaml", "overrides.yaml")]
        if str(config.hydra.get("mode")) == "RunMode.MULTIRUN":
            # the sweeper saved the sweep's config (task overrides included) before any job ran
            saved.append(Path(config.hydra.sweep.dir) / "multirun.yaml")
        for path in saved:
            name = path.name
            if not path.exists():
                continue
            text = path.read_text()
            # Most runs have nothing to redact, and re-reading and re-dumping the files through
            # OmegaConf was one of the larger costs of a short run: rewrite only when needed.
            structural = {"config.yaml": redacted != task, "multirun.yaml": redacted != task or bool(literal)}.get(
                name, bool(literal))
            if not structural and not any(s in text for s in secrets) and redact_urls(text) == text:
                continue
            if name == "config.yaml":
                text = OmegaConf.to_yaml(OmegaConf.create(redacted))
            elif name == "multirun.yaml":
                loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
                hydra_part = loaded.pop("hydra", {})
                ov = hydra_part.get("overrides", {})
                for k in ("task", "hydra"):
                    if isinstance(ov.get(k), list):
                        ov[k] = [redact_override(str(o)) for o in ov[k]]
                text = OmegaConf.to_yaml(OmegaConf.create({"hydra": hydra_part, **redact(loaded)}))
            elif name == "overrides.yaml":
                listed = OmegaConf.to_container(OmegaConf.load(path)) or []
                text = OmegaConf.to_yaml(OmegaConf.create([redact_override(str(o)) for o in listed]))
            else:
                loaded = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
                ov = loaded.get("hydra", {}).get("overrides", {})
                for k in ("task", "hydra"):
                    if isinstance(ov.get(k), list):
                        ov[k] = [redact_override(str(o)) for o in ov[k]]
                text = OmegaConf.to_yaml(OmegaConf.create(loaded))
            atomic_write_text(path, redact_urls(scrub(text, secrets)))


def _url_credentials_in(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [c for v in node.values() for c in _url_credentials_in(v)]
    if isinstance(node, list):
        return [c for v in node for c in _url_credentials_in(v)]
    return url_credentials(node) if isinstance(node, str) else []


def _override_value(text: str) -> str:
    return text.split("=", 1)[1] if "=" in text else ""
