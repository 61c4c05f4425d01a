"""Project defaults (fqt.toml) and serial-port autodetection.

The config file is looked up in this order; the first one found is used, and only it:

1. `$FQT_CONFIG`: the path of the file itself (an empty value turns the lookup off);
2. `fqt.toml` in the current directory or the nearest parent directory that has one;
3. `~/.config/fqt/fqt.toml` (`$XDG_CONFIG_HOME/fqt/fqt.toml` when that is set).

It holds a `[device]` table (or top-level keys) with any of:

    [device]
    port = "/dev/ttyACM0"     # default --port of the device commands
    board = "nucleo_f767zi"   # default --board of import, deploy and device serve
    model = "build/model/my_model.tflite"  # default --model of deploy, push, train-device

A command-line option always wins over the file. A relative `model` path is relative to
the file's directory.

Without --port and without a configured port, the device commands autodetect a serial
port with pyserial's `serial.tools.list_ports`: USB serial ports (those with a USB vendor
id, or named ttyACM*/ttyUSB*). One candidate is used; several are listed in the error,
and none is an error that says to give --port.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tomllib

from .errors import FqtError

CONFIG_NAME = "fqt.toml"
CONFIG_ENV = "FQT_CONFIG"
KEYS = ("port", "board", "model")


@dataclass(frozen=True)
class Config:
    path: Path | None = None
    port: str | None = None
    board: str | None = None
    model: str | None = None


def find_config(cwd: Path | None = None) -> Path | None:
    """The config file the lookup order above finds, or None."""
    env = os.environ.get(CONFIG_ENV)
    if env is not None:
        return Path(env) if env else None
    here = (cwd or Path.cwd()).resolve()
    for d in (here, *here.parents):
        if (d / CONFIG_NAME).is_file():
            return d / CONFIG_NAME
    base = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    user = Path(base) / "fqt" / CONFIG_NAME
    return user if user.is_file() else None


def load_config(cwd: Path | None = None) -> Config:
    path = find_config(cwd)
    if path is None:
        return Config()
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise FqtError(f"{path}: cannot read: {e.strerror}") from None
    except tomllib.TOMLDecodeError as e:
        raise FqtError(f"{path}: not valid TOML: {e}") from None
    table = data.get("device", data)
    if not isinstance(table, dict):
        raise FqtError(f"{path}: [device] must be a table")
    values: dict[str, str] = {}
    for key in KEYS:
        v = table.get(key)
        if v is None:
            continue
        if not isinstance(v, str):
            raise FqtError(f"{path}: {key} must be a string")
        values[key] = v
    unknown = sorted(set(table) - set(KEYS) - {"device"})
    if unknown:
        raise FqtError(f"{path}: unknown keys {', '.join(unknown)} (known: {', '.join(KEYS)})")
    if "model" in values and not Path(values["model"]).is_absolute():
        values["model"] = str(path.parent / values["model"])
    return Config(path=path, **values)


@dataclass(frozen=True)
class PortInfo:
    device: str
    description: str
    hwid: str


def serial_candidates() -> list[PortInfo]:
    """USB serial ports pyserial lists (a board's debug probe shows up as one)."""
    try:
        from serial.tools import list_ports
    except ImportError:
        return []
    out = []
    for p in list_ports.comports():
        name = os.path.basename(p.device)
        if p.vid is not None or name.startswith(("ttyACM", "ttyUSB", "cu.usb", "COM")):
            out.append(PortInfo(p.device, p.description or "", p.hwid or ""))
    return out


def resolve_port(port: str | None, config: Config | None = None) -> str:
    """--port, else the config's port, else the one autodetected serial port."""
    if port:
        return port
    config = config if config is not None else load_config()
    if config.port:
        return config.port
    found = serial_candidates()
    if len(found) == 1:
        return found[0].device
    if not found:
        raise FqtError(
            "no --port given, none in fqt.toml, and no serial port found; give --port "
            "(a serial device, a pty such as `fqt device serve` writes, or cmd:<command>)"
        )
    listing = "; ".join(f"{p.device} ({p.description})" for p in found)
    raise FqtError(f"several serial ports found, give --port: {listing}")
