"""Helpers shared by the command families: reading a model, the per-layer table and the
board fit check."""

from __future__ import annotations

import struct
from pathlib import Path

from ..blob import read_blob
from ..boards import get_board
from ..errors import BlobFormatError, FqtError, PlanDoesNotFitError, UnsupportedModelError
from ..import_check import check_before_prepare, check_prepared
from ..ir import Model
from ..plan import Plan, buffer_table, layer_table
from ..prepare import prepare
from ..tflite_import import load_tflite

ENGINES = ("golden", "native")
ENGINE_HELP = "golden: the Python model of the integer arithmetic; native: the C engine (libfqt.so)"


def default_engine() -> str:
    """native where libfqt.so is built and installed (fqt.resources), else golden."""
    from ..resources import native_library_path

    return "native" if native_library_path().is_file() else "golden"


def load_model(path: str | Path) -> Model:
    """A .tflite (imported and prepared) or a .fqtb blob written by `fqt import`."""
    p = Path(path)
    if p.suffix == ".fqtb":
        try:
            blob = p.read_bytes()
        except OSError as e:
            raise FqtError(f"{p}: cannot read: {e.strerror}") from None
        try:
            model, _ = read_blob(blob)
        except (ValueError, IndexError, OverflowError, struct.error) as e:
            raise BlobFormatError(f"{p}: bad model blob ({type(e).__name__}: {e})") from None
        return model
    model = load_tflite(p)
    prepare_checked(model)
    return model


def prepare_checked(model: Model) -> None:
    """prepare() behind the importer's checks (fqt.import_check): whatever the model, a
    one-line UnsupportedModelError or parameters the device's loader accepts."""
    check_before_prepare(model)
    try:
        prepare(model)
    except (ValueError, ArithmeticError, IndexError, AssertionError) as e:
        raise UnsupportedModelError([str(e) or type(e).__name__]) from None
    check_prepared(model)


def format_table(model: Model, plan: Plan, fp32_training_ram: int = 0) -> str:
    """The layer table with each layer's training bytes by kind (plan.layer_breakdown:
    params-pool weights and gradient state; arena buffers it owns, which share bytes in the
    arena where their lifetimes do not overlap)."""
    rows = layer_table(model, plan)
    head = (
        f"{'#':>3} {'op':<18} {'output':<14} {'MACs':>10} {'weights B':>10} {'act B':>8} "
        f"train {'tr.weights':>10} {'w RAM':>7} {'grad st':>7} {'kept':>7} {'errors':>7} "
        f"{'scratch':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = "x".join(str(d) for d in r["output_shape"])  # type: ignore[attr-defined]
        tb = r["training_bytes"]
        assert isinstance(tb, dict)
        lines.append(
            f"{r['layer']:>3} {r['op']:<18} {shape:<14} {r['macs']:>10,} "
            f"{r['weight_bytes']:>10,} {r['activation_bytes']:>8,} "
            f"{'yes' if r['trainable'] else '':<5} {r['trainable_weights']:>10,} "
            f"{tb['weights']:>7,} {tb['gradient_state']:>7,} {tb['kept_activations']:>7,} "
            f"{tb['errors']:>7,} {tb['scratch']:>7,}"
        )
    total_macs = sum(int(r["macs"]) for r in rows)  # type: ignore[call-overload]
    total_w = sum(int(r["weight_bytes"]) for r in rows)  # type: ignore[call-overload]
    lines.append("-" * len(head))
    lines.append(f"    {'total':<33} {total_macs:>10,} {total_w:>10,}")
    lines.append(f"peak arena, inference:  {plan.inference_arena:,} B")
    lines.append(
        f"peak RAM, training:     {plan.training_total:,} B "
        f"(arena {plan.training_arena:,} + params {plan.training_params:,}; "
        f"trainable layers {plan.trainable}; memory plan {plan.memory})"
    )
    if fp32_training_ram and plan.trainable:
        lines.append(
            f"fp32 analogue:          {fp32_training_ram:,} B "
            f"(fqt is {100 * plan.training_total / fp32_training_ram:.1f} % of it)"
        )
    return "\n".join(lines)


def format_buffers(model: Model, plan: Plan) -> str:
    """Every training buffer with its bytes, arena offset and lifetime (--plan)."""
    head = f"{'buffer':<10} {'kind':<4} {'layer':>5} {'bytes':>8} {'offset':>8}  lifetime"
    lines = [head, "-" * len(head)]
    for b in buffer_table(model, plan):
        lines.append(
            f"{b['name']:<10} {b['kind']:<4} {b['layer']:>5} {b['bytes']:>8,} "
            f"{b['offset']:>8,}  {b['first_step']} .. {b['last_step']}"
        )
    return "\n".join(lines)


def check_fit(plan: Plan, board_name: str) -> None:
    board = get_board(board_name)
    arena_need = max(plan.inference_arena, plan.training_arena)
    over = []
    if arena_need > board.arena_pool:
        over.append(
            f"arena needs {arena_need:,} B but {board.name}'s fqt-arena pool has "
            f"{board.arena_pool:,} B: over by {arena_need - board.arena_pool:,} bytes"
        )
    if plan.training_params > board.params_pool:
        over.append(
            f"trainable parameters need {plan.training_params:,} B but {board.name}'s "
            f"fqt-params pool has {board.params_pool:,} B: over by "
            f"{plan.training_params - board.params_pool:,} bytes"
        )
    if over:
        raise PlanDoesNotFitError("model does not fit: " + "; ".join(over))
