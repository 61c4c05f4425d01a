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


# --- train ----------------------------------------------------------------------------
def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="int8 .tflite to train")
    p.add_argument("--data", required=True, help=".npz with x (int8 or float) and y (labels)")
    p.add_argument("--engine", choices=ENGINES, default="golden")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.003, help="learning rate (real weight units)")
    p.add_argument("--batch", type=int, default=32, help="mini-batch size")
    p.add_argument(
        "--lambda-min", type=float, default=1.0, help="dynamic partial updates: 1.0 = off"
    )
    p.add_argument("--alpha-norm", type=float, default=0.85, help="EMA of the gradient stats")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--rounding",
        choices=("stochastic", "nearest"),
        default="stochastic",
        help="rounding of the weight update",
    )
    p.add_argument(
        "--error-scaling",
        choices=("dynamic", "fixed"),
        default="dynamic",
        help="per-sample power-of-two error scales, or the paper's fixed range",
    )
    p.add_argument(
        "--trainable",
        nargs="+",
        metavar="LAYER",
        help="trainable layers: indices, 'last', 'last:N', 'all' (default: last)",
    )
    val = p.add_mutually_exclusive_group()
    val.add_argument("--val-split", type=float, help="hold out this fraction of --data")
    val.add_argument("--val", help=".npz validation set (x, y)")
    p.add_argument("-o", "--output", required=True, help="trained .tflite")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def read_dataset(path: str, model: Model) -> tuple[np.ndarray, np.ndarray]:
    """An .npz with x (int8, or float quantized with the input parameters) and y labels."""
    try:
        with np.load(path, allow_pickle=False) as d:
            x, y = d["x"], d["y"]
    except (OSError, ValueError, KeyError) as e:
        raise FqtError(f"{path}: cannot read a dataset with x and y: {e}") from None
    t = model.input_tensor
    if x.size % t.num_elements or x.size // t.num_elements != len(y):
        raise FqtError(f"{path}: x {x.shape} is not {len(y)} inputs of shape {t.shape}")
    if x.dtype.kind == "f":
        q = np.round(x / t.quant.scale[0]) + t.quant.zero_point[0]
        x = np.clip(q, -128, 127).astype(np.int8)
    elif x.dtype != np.int8:
        raise FqtError(f"{path}: x dtype {x.dtype}; give int8 samples or float ones")
    if y.dtype.kind not in "iu":
        raise FqtError(f"{path}: y must hold integer labels, not {y.dtype}")
    n_classes = model.output_tensor.num_elements
    if len(y) and (y.min() < 0 or y.max() >= n_classes):
        raise FqtError(f"{path}: labels must lie in [0, {n_classes})")
    return x.reshape((-1, *t.shape)), y.astype(np.int64)


def run_train(args: argparse.Namespace) -> int:
    from .export import write_tflite
    from .golden.trainer import TrainConfig, Trainer

    model = load_model(args.model)
    if Path(args.model).suffix != ".tflite":
        raise FqtError(f"{args.model}: train needs the source .tflite (to export it again)")
    xs, ys = read_dataset(args.data, model)
    val = None
    if args.val:
        val = read_dataset(args.val, model)
    elif args.val_split:
        if not 0.0 < args.val_split < 1.0:
            raise FqtError("--val-split must lie in (0, 1)")
        idx = np.random.default_rng(args.seed).permutation(len(xs))
        n_val = max(1, round(len(xs) * args.val_split))
        val = (xs[idx[:n_val]], ys[idx[:n_val]])
        xs, ys = xs[idx[n_val:]], ys[idx[n_val:]]
    try:
        trainable = parse_trainable(model, args.trainable)
    except ValueError as e:
        raise FqtError(str(e)) from None
    if args.epochs < 0 or args.batch < 1 or args.lr <= 0 or not 0 <= args.lambda_min <= 1:
        raise FqtError("need epochs >= 0, batch >= 1, lr > 0 and 0 <= lambda-min <= 1")
    config = TrainConfig(
        lr=args.lr,
        batch=args.batch,
        lambda_min=args.lambda_min,
        alpha_norm=args.alpha_norm,
        stochastic_rounding=args.rounding == "stochastic",
        error_scaling=args.error_scaling,
        seed=args.seed,
    )
    try:
        if args.engine == "native":
            from .native import NativeTrainer

            trainer = NativeTrainer(model, trainable, config)
        else:
            trainer = Trainer(model, trainable, config)
    except ValueError as e:
        raise FqtError(str(e)) from None
    before = trainer.evaluate(*val)[0] if val else None
    if not args.json and before is not None:
        print(f"before: val accuracy {before:.2%}")

    def report(r) -> None:
        if not args.json:
            v = f", val accuracy {r.val_accuracy:.2%}" if r.val_accuracy is not None else ""
            print(f"epoch {r.epoch}: loss {r.loss:.4f}, train accuracy {r.train_accuracy:.2%}{v}")

    history = trainer.run_epochs(xs, ys, args.epochs, val=val, callback=report)
    write_tflite(trainer.model, args.model, args.output)
    c = trainer.counters
    summary = {
        "engine": args.engine,
        "model": str(args.model),
        "output": str(args.output),
        "trainable": trainer.trainable,
        "samples": len(xs),
        "val_samples": 0 if val is None else len(val[1]),
        "val_accuracy_before": before,
        "val_accuracy_after": history[-1].val_accuracy if history else before,
        "epochs": [vars(r) for r in history],
        "forward_macs": c.forward_macs,
        "backward_macs": c.backward_macs,
        "backward_macs_full": c.backward_macs_full,
        "updates": c.updates,
        "config": vars(config),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{c.samples} samples, {c.updates} updates; MACs forward {c.forward_macs:,}, "
            f"backward {c.backward_macs:,} (full updates: {c.backward_macs_full:,})"
        )
        print(f"trained model -> {args.output}")
    return 0


# --- demo: the README's main job (fqt.demo imports this module, hence the late import) --
def add_demo_arguments(p: argparse.ArgumentParser) -> None:
    from .demo import add_demo_arguments as add

    add(p)


def run_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo as run

    return run(args)


# --- main -----------------------------------------------------------------------------
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[..., int]]] = {
    "import": (
        "import an int8 .tflite: blob, C source, memory plan",
        add_import_arguments,
        run_import,
    ),
    "infer": ("run int8 inputs through an engine", add_infer_arguments, run_infer),
    "train": (
        "train an int8 .tflite on a dataset and write the trained .tflite",
        add_train_arguments,
        run_train,
    ),
    "demo": (
        "the main job on the embedded default (no board needed)",
        add_demo_arguments,
        run_demo,
    ),
}


# --- device commands (fqt.device_cli): the board, or the host device, over its shell ---
from . import device_cli  # noqa: E402

COMMANDS.update(
    {
        "push": (
            "push an .npz of samples to the device's store",
            device_cli.add_push_arguments,
            device_cli.run_push,
        ),
        "train-device": (
            "train on the device: live progress, CSV log and plot",
            device_cli.add_train_device_arguments,
            device_cli.run_train_device,
        ),
        "export": (
            "pull the device's model and rebuild the .tflite",
            device_cli.add_export_arguments,
            device_cli.run_export,
        ),
        "device-eval": (
            "accuracy of the device's model on its stored samples",
            device_cli.add_device_eval_arguments,
            device_cli.run_device_eval,
        ),
    }
)


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
