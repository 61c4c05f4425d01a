"""Training logs: one clean CSV and one PNG, the same for host `fqt train` and device
`fqt train-device`, and `fqt plot LOG.csv` to draw a CSV again.

The CSV has one row per report, `kind` saying which:

    kind      epoch sample epoch_samples samples_seen loss     accuracy val_loss val_accuracy time_s
    start     0     0      1437          0                              2.302585 0.1        0.0
    progress  1     320    1437          320          1.234567 0.8123                     1.52
    epoch     1     1437   1437          1437         0.812345 0.8441   0.65     0.87       6.8

epochs and counts are integers; loss is rounded to 6 decimals, accuracies (fractions) to
4, seconds to 3; a value that was not measured is empty. `progress` rows are the running
mean over the epoch so far (what the device reports every few samples, and host training
every `--log-every` samples); `epoch` rows close an epoch; `start` holds the validation
before training. The run's settings go to `<log>.json` beside it (the plot's title).

The PNG has epochs on the x-axis: train loss and accuracy per epoch (markers), the
running in-epoch means as a thin line, and the validation loss and accuracy (epoch 0 is
before training). In-epoch points over fewer than MIN_RUNNING samples are not drawn: a
running mean over the first few samples of an epoch is 0 or 1 and would spike.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

FIELDS = (
    "kind", "epoch", "sample", "epoch_samples", "samples_seen",
    "loss", "accuracy", "val_loss", "val_accuracy", "time_s",
)  # fmt: skip
INT_FIELDS = ("epoch", "sample", "epoch_samples", "samples_seen")
ROUND = {"loss": 6, "accuracy": 4, "val_loss": 6, "val_accuracy": 4, "time_s": 3}
MIN_RUNNING = 32  # in-epoch points drawn only past this many samples (and 10% of the epoch)


def _clean(key: str, value: object) -> object:
    if value is None or value == "":
        return ""
    if key in INT_FIELDS:
        return int(value)  # type: ignore[call-overload]
    if key in ROUND:
        v = float(value)  # type: ignore[arg-type]
        return "" if math.isnan(v) else round(v, ROUND[key])
    return value


@dataclass
class TrainLog:
    meta: dict[str, object] = field(default_factory=dict)
    rows: list[dict[str, object]] = field(default_factory=list)

    def add(self, kind: str, **values: object) -> dict[str, object]:
        row = {k: _clean(k, values.get(k)) for k in FIELDS}
        row["kind"] = kind
        self.rows.append(row)
        return row

    def write_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(FIELDS))
            w.writeheader()
            w.writerows(self.rows)
        Path(f"{path}.json").write_text(json.dumps(self.meta, indent=2) + "\n")

    def write(self, csv_path: str | Path | None, png_path: str | Path | None) -> list[str]:
        """The CSV and the PNG (each when its path is given): the files written."""
        written = []
        if csv_path:
            self.write_csv(csv_path)
            written.append(str(csv_path))
        if png_path and plot(self, png_path):
            written.append(str(png_path))
        return written


def read_csv(path: str | Path) -> TrainLog:
    from .errors import FqtError

    try:
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
    except OSError as e:
        raise FqtError(f"{path}: cannot read: {e.strerror}") from None
    if rows and not {"kind", "epoch", "loss"} <= set(rows[0]):
        raise FqtError(f"{path}: not an fqt training log (needs kind, epoch, loss columns)")
    meta_path = Path(f"{path}.json")
    meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    log = TrainLog(meta)
    for r in rows:
        log.add(r["kind"], **{k: r.get(k) for k in FIELDS if k != "kind"})
    return log


def title(meta: dict[str, object]) -> str:
    head = f"{meta.get('model', 'model')} on {meta.get('board', 'host')}"
    keys = ("engine", "epochs", "lr", "batch", "lambda_min", "trainable", "samples")
    rest = ", ".join(f"{k} {meta[k]}" for k in keys if meta.get(k) not in (None, ""))
    return f"{head}\n{rest}" if rest else head


def _num(v: object) -> float | None:
    return None if v in ("", None) else float(v)  # type: ignore[arg-type]


def plot(log: TrainLog, path: str | Path) -> bool:
    """Write the PNG; False (and a note) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed: no plot")
        return False
    run_x: list[float] = []
    run_loss: list[float | None] = []
    run_acc: list[float | None] = []
    ep_x, ep_loss, ep_acc = [], [], []
    val_x, val_loss, val_acc = [], [], []
    for r in log.rows:
        n = int(r["epoch_samples"] or 0)  # type: ignore[call-overload]
        s = int(r["sample"] or 0)  # type: ignore[call-overload]
        x = float(r["epoch"]) - 1 + (s / n if n else 1.0)  # type: ignore[arg-type]
        if r["kind"] == "progress" and s >= max(MIN_RUNNING, 0.1 * n) and s < n:
            if run_x and run_x[-1] == run_x[-1] and int(run_x[-1] + 1e-9) != int(x + 1e-9):
                run_x.append(float("nan"))  # a gap between epochs: each mean restarts
                run_loss.append(float("nan"))
                run_acc.append(float("nan"))
            run_x.append(x)
            run_loss.append(_num(r["loss"]))
            run_acc.append(_num(r["accuracy"]))
        if r["kind"] == "epoch":
            ep_x.append(float(r["epoch"]))  # type: ignore[arg-type]
            ep_loss.append(_num(r["loss"]))
            ep_acc.append(_num(r["accuracy"]))
        if r["kind"] in ("start", "epoch") and r["val_accuracy"] != "":
            val_x.append(float(r["epoch"]))  # type: ignore[arg-type]
            val_loss.append(_num(r["val_loss"]))
            val_acc.append(_num(r["val_accuracy"]))
    fig, ax = plt.subplots(2, 1, sharex=True, figsize=(7, 6))
    for a, run, ep, val, name in (
        (ax[0], run_loss, ep_loss, val_loss, "loss"),
        (ax[1], run_acc, ep_acc, val_acc, "accuracy"),
    ):
        if run:
            a.plot(run_x, run, color="tab:blue", alpha=0.35, lw=1, label="train (in-epoch mean)")
        if ep:
            a.plot(ep_x, ep, "o-", color="tab:blue", label="train (epoch)")
        if any(v is not None for v in val):
            a.plot(val_x, val, "s-", color="tab:orange", label="validation")
        a.set_ylabel(name)
        a.grid(alpha=0.3)
        a.legend(fontsize=8)
    ax[1].set_ylim(0, 1.02)
    ax[1].set_xlabel("epoch")
    last = max([*ep_x, *val_x, *run_x, 1.0])
    ax[1].set_xlim(-0.1 if val_x else 0, last + 0.1)
    if last <= 30:
        ax[1].set_xticks(range(round(last) + 1))
    fig.suptitle(title(log.meta), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True
