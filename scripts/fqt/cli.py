"""The `fqt` command line. The west extension commands call the same add_*/run_* pairs."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from . import __version__
from .blob import blob_to_c, c_identifier, read_blob, write_blob
from .boards import BOARDS, get_board
from .errors import FqtError, PlanDoesNotFitError
from .ir import Model
from .plan import Plan, layer_table, parse_trainable, plan_memory
from .prepare import prepare
from .tflite_import import load_tflite

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL = REPO_ROOT / "tests" / "fixtures" / "models" / "digits_cnn.tflite"


# --- helpers ------------------------------------------------------------------------
def load_model(path: str | Path) -> Model:
    """A .tflite (imported and prepared) or a .fqtb blob written by `fqt import`."""
    p = Path(path)
    if p.suffix == ".fqtb":
        try:
            blob = p.read_bytes()
        except OSError as e:
            raise FqtError(f"{p}: cannot read: {e.strerror}") from None
        model, _ = read_blob(blob)
        return model
    model = load_tflite(p)
    prepare(model)
    return model


def format_table(model: Model, plan: Plan) -> str:
    rows = layer_table(model, plan)
    head = f"{'#':>3} {'op':<18} {'output':<14} {'MACs':>10} {'weights B':>10} {'act B':>8} train"
    lines = [head, "-" * len(head)]
    for r in rows:
        shape = "x".join(str(d) for d in r["output_shape"])  # type: ignore[attr-defined]
        lines.append(
            f"{r['layer']:>3} {r['op']:<18} {shape:<14} {r['macs']:>10,} "
            f"{r['weight_bytes']:>10,} {r['activation_bytes']:>8,} "
            f"{'yes' if r['trainable'] else ''}"
        )
    total_macs = sum(int(r["macs"]) for r in rows)  # type: ignore[call-overload]
    total_w = sum(int(r["weight_bytes"]) for r in rows)  # type: ignore[call-overload]
    lines.append("-" * len(head))
    lines.append(f"    {'total':<33} {total_macs:>10,} {total_w:>10,}")
    lines.append(f"peak arena, inference:  {plan.inference_arena:,} B")
    lines.append(
        f"peak RAM, training:     {plan.training_total:,} B "
        f"(arena {plan.training_arena:,} + params {plan.training_params:,}; "
        f"trainable layers {plan.trainable})"
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


def read_inputs(path: str, model: Model) -> np.ndarray:
    """An .npy of int8 samples, or float samples quantized with the input's parameters."""
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise FqtError(f"{path}: cannot read inputs: {e}") from None
    t = model.input_tensor
    per_sample = t.num_elements
    if x.size % per_sample:
        raise FqtError(
            f"{path}: {x.size} values is not a whole number of inputs of shape {t.shape}"
        )
    if x.dtype.kind == "f":
        q = np.round(x / t.quant.scale[0]) + t.quant.zero_point[0]
        x = np.clip(q, -128, 127).astype(np.int8)
    elif x.dtype != np.int8:
        raise FqtError(f"{path}: dtype {x.dtype}; give int8 samples or float ones")
    return x.reshape((-1, *t.shape))


# --- import ---------------------------------------------------------------------------
def add_import_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="int8 .tflite model")
    p.add_argument("-o", "--output-dir", default=".", help="where the blob and C files go")
    p.add_argument("--board", help=f"check the plan fits this board ({', '.join(BOARDS)})")
    p.add_argument(
        "--trainable",
        nargs="+",
        metavar="LAYER",
        help="trainable layers: indices, 'last', 'last:N', 'all' or 'none' (default: last)",
    )
    p.add_argument("--name", help="C identifier for the blob (default: the model's file name)")
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def run_import(args: argparse.Namespace) -> int:
    model = load_tflite(args.model)
    prepare(model)
    try:
        trainable = parse_trainable(model, args.trainable)
    except ValueError as e:
        raise FqtError(str(e)) from None
    plan = plan_memory(model, trainable)
    if args.board:
        check_fit(plan, args.board)
    name = c_identifier(args.name or model.name)
    model.name = name
    blob = write_blob(model, trainable)
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    source, header = blob_to_c(blob, name)
    files = {
        out / f"{name}.fqtb": blob,
        out / f"{name}_blob.c": source.encode(),
        out / f"{name}_blob.h": header.encode(),
        # Export rebuilds the .tflite from this graph with the trained weights.
        out / f"{name}.tflite": Path(args.model).read_bytes(),
    }
    for path, content in files.items():
        path.write_bytes(content)
    summary = {
        "model": str(args.model),
        "name": name,
        "blob": str(out / f"{name}.fqtb"),
        "blob_bytes": len(blob),
        "layers": layer_table(model, plan),
        "inference_arena_bytes": plan.inference_arena,
        "training_arena_bytes": plan.training_arena,
        "training_params_bytes": plan.training_params,
        "training_ram_bytes": plan.training_total,
        "trainable": plan.trainable,
        "board": args.board,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.model}: {len(model.layers)} layers, blob {len(blob):,} B -> {out}/")
        print(format_table(model, plan))
        if args.board:
            print(f"fits {args.board}")
    return 0


# --- infer ----------------------------------------------------------------------------
ENGINES = ("golden", "native")


def add_infer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=".tflite or .fqtb")
    p.add_argument("--inputs", required=True, help=".npy with int8 (or float) inputs")
    p.add_argument("--engine", choices=ENGINES, default="golden")
    p.add_argument("-o", "--output", required=True, help=".npy for the int8 outputs")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def infer_with(engine: str, model: Model, xs: np.ndarray) -> np.ndarray:
    if engine == "golden":
        from .golden.interpreter import infer_batch

        return infer_batch(model, xs)
    from .native import NativeEngine

    return NativeEngine(write_blob(model)).infer_batch(xs)


def run_infer(args: argparse.Namespace) -> int:
    model = load_model(args.model)
    xs = read_inputs(args.inputs, model)
    ys = infer_with(args.engine, model, xs)
    np.save(args.output, ys)
    summary = {"engine": args.engine, "samples": len(xs), "output_shape": list(ys.shape)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{len(xs)} inputs through {args.engine} -> {args.output} {ys.shape}")
    return 0


# --- demo: the README's main job --------------------------------------------------------
def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=str(DEFAULT_MODEL), help="int8 .tflite (digits 8x8)")
    p.add_argument("--board", default="qemu_cortex_m3")
    p.add_argument("-o", "--output-dir", default="build/demo")
    p.add_argument("--engine", choices=ENGINES, default="golden")


def run_demo(args: argparse.Namespace) -> int:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    ns = argparse.Namespace(
        model=args.model,
        output_dir=args.output_dir,
        board=args.board,
        trainable=None,
        name=None,
        json=False,
    )
    run_import(ns)
    model = load_model(args.model)
    digits = load_digits()
    _, x_test, _, y_test = train_test_split(
        digits.images / 16.0, digits.target, test_size=0.2, random_state=0, stratify=digits.target
    )
    t = model.input_tensor
    xq = np.clip(np.round(x_test / t.quant.scale[0]) + t.quant.zero_point[0], -128, 127)
    ys = infer_with(args.engine, model, xq.astype(np.int8).reshape((-1, *t.shape)))
    acc = float(np.mean(ys.reshape(len(ys), -1).argmax(axis=1) == y_test))
    print(f"{args.engine} int8 inference on {len(y_test)} held-out digits: accuracy {acc:.2%}")
    return 0


# --- main -----------------------------------------------------------------------------
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {
    "import": (
        "import an int8 .tflite: blob, C source, memory plan",
        add_import_arguments,
        run_import,
    ),
    "infer": ("run int8 inputs through an engine", add_infer_arguments, run_infer),
    "demo": (
        "the main job on the embedded default (no board needed)",
        add_demo_arguments,
        run_demo,
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fqt", description="fully quantized on-device training")
    parser.add_argument("--version", action="version", version=f"fqt {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add_args, _) in COMMANDS.items():
        add_args(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except FqtError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
