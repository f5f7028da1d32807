"""Version discovery, policies, labels and hot swaps, with a stand-in for model loading."""

from __future__ import annotations

import pytest

from serving import versions
from serving.errors import ServingError
from serving.versions import Model, ModelSettings, VersionPolicy


def make_version(base, version: int, content: bytes = b"model") -> None:
    folder = base / str(version)
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(content)


class FakeServable:
    """Loads unless saved_model.pb says 'broken'."""

    def __init__(self, name: str, version: int, path: str):
        with open(f"{path}/saved_model.pb", "rb") as handle:
            if handle.read() == b"broken":
                raise ValueError("not a SavedModel")
        self.name, self.version, self.path = name, version, path

    def warm_up(self) -> int:
        return 1


class FakeBatcher:
    closed = False

    def close(self, wait: bool = True) -> None:
        self.closed = True


@pytest.fixture
def model(tmp_path, monkeypatch):
    monkeypatch.setattr(versions, "Servable", FakeServable)
    changes = []
    found = Model(
        ModelSettings("cfpb", str(tmp_path)),
        lambda servable: FakeBatcher(),
        on_change=lambda *args: changes.append(args),
    )
    found.changes = changes
    return found


def test_only_integer_folders_are_versions(tmp_path):
    make_version(tmp_path, 3)
    make_version(tmp_path / ".staging", 9)
    (tmp_path / "notes").mkdir()
    (tmp_path / "12").write_text("a file, not a folder")
    (tmp_path / "٣").mkdir()  # a digit, but not an ASCII one
    assert versions.list_versions(str(tmp_path)) == {3: str(tmp_path / "3")}
    assert versions.list_versions(str(tmp_path / "missing")) == {}


def test_version_policies():
    assert VersionPolicy.parse("latest").select([1, 5, 3]) == {5}
    assert VersionPolicy.parse("latest:2").select([1, 5, 3]) == {5, 3}
    assert VersionPolicy.parse("all").select([1, 5]) == {1, 5}
    assert VersionPolicy.parse("specific:1,3").select([1, 2, 5]) == {1}
    for bad in ("newest", "latest:x", "specific", "all:2"):
        with pytest.raises(ValueError):
            VersionPolicy.parse(bad)


def test_tf_servings_model_config_file(tmp_path):
    config = tmp_path / "versions.config"
    config.write_text(
        'model_config_list { config { name: "cfpb" base_path: "serving_model" '
        "model_version_policy { specific { versions: 1 versions: 2 } } "
        'version_labels { key: "stable" value: 1 } version_labels { key: "canary" value: 2 } } }'
    )
    (settings,) = versions.read_model_config(str(config))
    assert settings.name == "cfpb" and settings.base_path == str(tmp_path / "serving_model")
    assert settings.policy == VersionPolicy("specific", versions=(1, 2))
    assert settings.labels == {"stable": 1, "canary": 2}


def test_a_new_version_is_loaded_before_the_old_one_is_unloaded(model, tmp_path):
    make_version(tmp_path, 1)
    model.poll()
    first = model.available[1]
    make_version(tmp_path, 2)
    model.poll()
    assert list(model.available) == [2] and first.batcher.closed
    assert [c[1] for c in model.changes] == [[1], [1, 2], [2]]  # never without a version
    assert model.resolve()[0].servable.version == 2
    with pytest.raises(ServingError) as raised:
        model.resolve(version=1)
    assert raised.value.http_status == 404


def test_a_broken_version_is_refused_until_it_changes(model, tmp_path):
    make_version(tmp_path, 1)
    make_version(tmp_path, 2, b"broken")
    model.poll()
    assert list(model.available) == [1]
    assert model.states[2].state == "END" and "not a SavedModel" in model.states[2].error
    (tmp_path / "3").mkdir()  # being copied: no saved_model.pb yet, so not even tried
    model.poll()
    assert 3 not in model.states and list(model.available) == [1]
    (tmp_path / "2" / "saved_model.pb").write_bytes(b"fixed, and longer")
    model.poll()
    assert list(model.available) == [2]


def test_labels_resolve_to_loaded_versions(model, tmp_path):
    model.settings = ModelSettings(
        "cfpb", str(tmp_path), VersionPolicy("all"), {"stable": 1, "canary": 2, "gone": 7}
    )
    make_version(tmp_path, 1)
    make_version(tmp_path, 2)
    model.poll()
    assert model.resolve(label="stable")[0].servable.version == 1
    assert model.resolve(label="canary") == (model.available[2], "canary")
    for label in ("gone", "beta"):
        with pytest.raises(ServingError):
            model.resolve(label=label)
    assert [s[:2] for s in model.status()] == [(2, "AVAILABLE"), (1, "AVAILABLE")]
