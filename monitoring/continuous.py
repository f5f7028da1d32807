"""Continuous training enters by the rollout: with --rollout canary or shadow (CFPB_ROLLOUT),
a version a run has just pushed becomes the canary or the shadow next to stable, instead of
replacing it; python -m monitoring.rollout auto later promotes it or rolls it back.

With the default, replace, nothing here runs: the server's latest policy swaps to the push.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.config import PipelineConfig

# Light to import (the continuous-training DAG file computes its paths here): the modules that
# change the rollout are imported where they are used.

MODEL_NAME = "cfpb"  # the name scripts/serve.sh serves the pushed model under


def model_config_path(config: PipelineConfig) -> Path:
    return Path(config.rollout_model_config or Path(config.output_dir) / "models.config")


def rollout_path(config: PipelineConfig) -> Path:
    return Path(config.rollout_file or model_config_path(config).parent / "rollout.json")


def target(config: PipelineConfig):
    from monitoring import rollout_actions

    return rollout_actions.Target(
        model_config_path(config),
        rollout_path(config),
        None,
        config.rollout_server_url or None,
        Path(config.rollout_token_file) if config.rollout_token_file else None,
    )


def enter_after_push(config: PipelineConfig, store, run_id: str) -> str | None:
    """After a run: the one line saying how the version it pushed entered the rollout (or why
    it did not); None with --rollout replace."""
    if config.rollout == "replace":
        return None
    from monitoring import rollout_actions
    from monitoring.serving_state import ServingChangeError

    try:
        pushed = rollout_actions.pushed_version(store, run_id)
    except KeyError as error:
        return f"rollout: {error.args[0]}"
    if pushed is None:
        return f"rollout {config.rollout}: run {run_id} pushed no new version; nothing entered"
    version, base_path = pushed
    percent = config.rollout_canary_percent if config.rollout == "canary" else 0.0
    fraction = config.rollout_shadow_fraction if config.rollout == "shadow" else None
    where = target(config)

    def read(found):
        return rollout_actions.current_or_new(found, Path(base_path), MODEL_NAME)

    def decide(state):
        if str(state.base_path.resolve()) != str(Path(base_path).resolve()):
            raise ServingChangeError(
                f"{where.model_config} serves {state.base_path}, but run {run_id} pushed to "
                f"{base_path}: point --rollout-model-config at the server's model config"
            )
        return rollout_actions.entering(
            state, version, percent, fraction, f"continuous training (run {run_id})"
        )

    try:
        change, applied, execution = rollout_actions.execute(where, store, decide, read)
    except rollout_actions.AlreadyInForceError as unchanged:
        return f"rollout {config.rollout}: {unchanged}"
    except ServingChangeError as error:
        return f"error: rollout {config.rollout}: version {version} did not enter: {error}"
    return "rollout: " + rollout_actions.summary(change, applied, execution, where)
