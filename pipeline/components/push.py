"""A Pusher whose pushed model appears whole or not at all.

TFX's Pusher copies the model file by file into <base>/<version>/ (saved_model.pb last), so
a crash mid-copy leaves a partial folder in the serving directory. Here the copy goes to a
hidden staging folder on the same filesystem and is renamed into place in one step; a
staging folder left by a crash is removed by the next push. Remote destinations (gs://,
s3://) keep TFX's behaviour: object stores have no atomic folder rename.

Into each local version folder, beside the SavedModel, it writes the model card
(model_card.json and model_card.html, model_card.py beside this file) from the Evaluator's
summary in the blessing folder, before the rename: model and card appear together. Model
servers load saved_model.pb and variables/ and ignore other files in a version folder.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from tfx.components.pusher.executor import Executor as TfxPusherExecutor
from tfx.types import artifact_utils, standard_component_specs

STAGING_DIR = ".staging"


class AtomicPusherExecutor(TfxPusherExecutor):
    def Do(self, input_dict, output_dict, exec_properties) -> None:  # noqa: N802 (TFX API)
        key = standard_component_specs.PUSH_DESTINATION_KEY
        destination = json.loads(exec_properties[key])
        # The proto's JSON form, with either field-name spelling.
        filesystem = destination.get("filesystem", {})
        base = filesystem.pop("baseDirectory", None) or filesystem.get("base_directory")
        if not base or "://" in base:
            super().Do(input_dict, output_dict, exec_properties)
            return
        staging = os.path.join(base, STAGING_DIR)
        shutil.rmtree(staging, ignore_errors=True)  # whatever a crashed push left
        filesystem["base_directory"] = staging
        super().Do(input_dict, output_dict, {**exec_properties, key: json.dumps(destination)})

        pushed = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if pushed.get_int_custom_property("pushed") != 1:
            return
        staged = pushed.get_string_custom_property("pushed_destination")
        blessing = artifact_utils.get_single_instance(
            input_dict[standard_component_specs.MODEL_BLESSING_KEY]
        )
        final = os.path.join(base, os.path.basename(staged))
        write_model_card(Path(staged), Path(final), blessing, pushed)
        os.replace(staged, final)  # one rename: the version folder appears complete
        pushed.set_string_custom_property("pushed_destination", final)
        shutil.rmtree(staging, ignore_errors=True)


def write_model_card(staged: Path, final: Path, blessing, pushed) -> None:
    """model_card.json and .html in the staged version folder (which will be `final`)."""
    from pipeline.components import model_card
    from pipeline.components.evaluator import SUMMARY_FILE

    summary_path = Path(blessing.uri) / SUMMARY_FILE
    if not summary_path.is_file():  # a blessing from before model cards: nothing to describe
        return
    summary = json.loads(summary_path.read_text())
    card_json, card_html = model_card.render(
        summary,
        {
            "version": final.name,
            "destination": str(final),
            "blessing_id": blessing.id,
            "pushed_model_id": pushed.id,
        },
    )
    (staged / model_card.CARD_JSON).write_text(card_json, encoding="utf-8")
    (staged / model_card.CARD_HTML).write_text(card_html, encoding="utf-8")
