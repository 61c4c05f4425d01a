"""The ztest suite's golden vectors are what the golden model gives today."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import FIXTURE_MODELS, REPO
from fqt.vectors import write_digits, write_fresh_head, write_vectors

HEADER = REPO / "tests" / "zephyr" / "engine" / "src" / "golden_vectors.h"


def test_committed_vectors_are_current(tmp_path: Path) -> None:
    fresh = tmp_path / "golden_vectors.h"
    write_vectors(FIXTURE_MODELS / "digits_cnn.tflite", fresh, count=8, seed=2407)
    assert fresh.read_text() == HEADER.read_text(), "regenerate with python -m fqt.vectors"


def test_app_default_model_is_current(tmp_path: Path) -> None:
    from fqt import cli

    assert cli.main(["import", str(FIXTURE_MODELS / "digits_cnn.tflite"), "-o", str(tmp_path)]) == 0
    for name in ("digits_cnn_blob.c", "digits_cnn_blob.h"):
        assert (tmp_path / name).read_text() == (REPO / "app" / "model" / name).read_text()


SENSOR_DIGITS = REPO / "app" / "src" / "sensor_digits.h"


def test_committed_sensor_digits_are_current(tmp_path: Path) -> None:
    pytest.importorskip("sklearn.datasets")
    fresh = tmp_path / "sensor_digits.h"
    write_digits(FIXTURE_MODELS / "digits_cnn.tflite", fresh, count=160, seed=2407)
    assert fresh.read_text() == SENSOR_DIGITS.read_text(), "regenerate with python -m fqt.vectors"


def test_committed_fresh_head_model_is_current(tmp_path: Path) -> None:
    write_fresh_head(FIXTURE_MODELS / "digits_cnn.tflite", tmp_path, seed=1)
    for name in ("digits_cnn_fresh_blob.c", "digits_cnn_fresh_blob.h"):
        committed = REPO / "app" / "model" / name
        assert (tmp_path / name).read_text() == committed.read_text(), (
            "regenerate with python -m fqt.vectors --fresh-head --seed 1"
        )
