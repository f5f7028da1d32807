"""A Pusher whose pushed model appears whole or not at all.

TFX's Pusher copies the model file by file into <base>/<version>/ (saved_model.pb last), so
a crash mid-copy leaves a partial folder in the serving directory. Here the copy goes to a
hidden staging folder on the same filesystem and is renamed into place in one step; a
staging folder left by a crash is removed by the next push. Remote destinations (gs://,
s3://) keep TFX's behaviour: object stores have no atomic folder rename.
"""

from __future__ import annotations

import json
import os
import shutil

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
        final = os.path.join(base, os.path.basename(staged))
        os.replace(staged, final)  # one rename: the version folder appears complete
        pushed.set_string_custom_property("pushed_destination", final)
        shutil.rmtree(staging, ignore_errors=True)
