"""Files the fqt package needs at run time, found from the installed package (a wheel, an
editable install or a checkout alike), never through repository paths.

The default demo model
    DEFAULT_MODEL is package data: fqt/data/digits_cnn.tflite, a byte copy of the
    project's fixture tests/fixtures/models/digits_cnn.tflite (make_models.py writes
    both; tests/python/test_package.py checks they are identical).

The host binaries (libfqt.so for fqt.native, fqt_host_device for `fqt demo`)
    1. $FQT_NATIVE_LIB / $FQT_HOST_DEVICE: the path of the file itself;
    2. fqt/_native/ inside the package. The CMake build installs them there:
           cmake -S . -B build/host -G Ninja && cmake --build build/host
           cmake --install build/host --component fqt_python --prefix scripts/fqt/_native
       (setup.sh does both; run the install again after rebuilding the C engine). A wheel
       built afterwards (`pip wheel .`) carries them as package data.
    A binary found in neither place is an FqtError that says how to build it.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import FqtError

PACKAGE_DIR = Path(__file__).resolve().parent
DATA_DIR = PACKAGE_DIR / "data"
NATIVE_DIR = PACKAGE_DIR / "_native"

DEFAULT_MODEL = DATA_DIR / "digits_cnn.tflite"

NATIVE_LIB_ENV = "FQT_NATIVE_LIB"
HOST_DEVICE_ENV = "FQT_HOST_DEVICE"
NATIVE_LIB_NAME = "libfqt.so"
HOST_DEVICE_NAME = "fqt_host_device"

BUILD_HINT = (
    "in the fqt checkout: cmake -S . -B build/host -G Ninja && cmake --build build/host && "
    "cmake --install build/host --component fqt_python --prefix scripts/fqt/_native "
    "(or `bash setup.sh --install-only`)"
)


def _find(env: str, name: str) -> Path:
    value = os.environ.get(env)
    return Path(value) if value else NATIVE_DIR / name


def native_library_path() -> Path:
    """Where libfqt.so is looked for: $FQT_NATIVE_LIB, else fqt/_native/libfqt.so (the
    path is returned whether or not the file exists)."""
    return _find(NATIVE_LIB_ENV, NATIVE_LIB_NAME)


def host_device_path() -> Path:
    """Where fqt_host_device is looked for: $FQT_HOST_DEVICE, else
    fqt/_native/fqt_host_device (returned whether or not the file exists)."""
    return _find(HOST_DEVICE_ENV, HOST_DEVICE_NAME)


def missing_binary(path: str | Path, what: str) -> FqtError:
    """The error for a host binary that is not where it was looked for."""
    return FqtError(f"{what} {path} is missing; build and install it: {BUILD_HINT}")
