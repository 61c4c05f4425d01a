"""The model commands: `fqt import` (a .tflite into a blob, C source and a memory plan)
and `fqt infer` (int8 inputs through the golden or the native engine)."""

from __future__ import annotations

import argparse
import json
import struct
from pathlib import Path

import numpy as np

from .. import progress
from ..blob import blob_to_c, c_identifier, write_blob
from ..boards import BOARDS, get_board
from ..errors import FqtError, UnsupportedModelError
from ..golden.grad_state import GRAD_STATES
from ..golden.interpreter import infer_batch
from ..ir import Model
from ..native import NativeEngine
from ..plan import (
    MEMORY_PLANS,
    buffer_table,
    fp32_training_memory,
    layer_table,
    parse_trainable,
    plan_memory,
)
from ..quant import quantize_input
from ..tflite_import import load_tflite
from .checks import input_file, output_dir, output_file
from .common import (
    ENGINE_HELP,
    ENGINES,
    check_fit,
    default_engine,
    format_buffers,
    format_table,
    load_model,
    prepare_checked,
)


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
        x = quantize_input(x, t.quant.scale[0], t.quant.zero_point[0])
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
    p.add_argument(
        "--grad-state",
        choices=GRAD_STATES,
        default="int32",
        help="plan the params pool and arena for this gradient state (fqt train --grad-state)",
    )
    p.add_argument("--name", help="C identifier for the blob (default: the model's file name)")
    p.add_argument(
        "--memory",
        choices=MEMORY_PLANS,
        default="default",
        help="training memory plan: default (fastest) or lean (less arena, same training "
        "results; train with the same --memory)",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="also list every training buffer with its bytes, offset and lifetime",
    )
    p.add_argument("--json", action="store_true", help="print the plan as JSON")


def run_import(args: argparse.Namespace) -> int:
    input_file(args.model, "tflite")
    out = output_dir(args.output_dir)
    if args.board:
        get_board(args.board)
    model = load_tflite(args.model)
    prepare_checked(model)
    try:
        trainable = parse_trainable(model, args.trainable)
    except ValueError as e:
        raise FqtError(str(e)) from None
    plan = plan_memory(model, trainable, args.memory, args.grad_state)
    fp32 = fp32_training_memory(model, trainable).total if trainable else 0
    if args.board:
        try:
            check_fit(plan, args.board)
        except FqtError:  # the table first: it shows where the bytes go
            print(format_table(model, plan, fp32))
            raise
    name = c_identifier(args.name or model.name)
    model.name = name
    try:
        blob = write_blob(model, trainable)
    except (struct.error, ValueError, OverflowError) as e:
        raise UnsupportedModelError([f"cannot write the blob: {e}"]) from None
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
        # the fp32 analogue: the same buffers at 4 B per element, fp32 weights + gradients
        "fp32_training_ram_bytes": fp32,
        "memory": plan.memory,
        "trainable": plan.trainable,
        "training_buffers": buffer_table(model, plan),
        "grad_state": plan.grad_state,
        "board": args.board,
    }
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"{args.model}: {len(model.layers)} layers, blob {len(blob):,} B -> {out}/")
        print(format_table(model, plan, fp32))
        if args.plan:
            print(format_buffers(model, plan))
        if args.board:
            print(f"fits {args.board}")
    return 0


def add_infer_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help=".tflite or .fqtb")
    p.add_argument("--inputs", required=True, help=".npy with int8 (or float) inputs")
    p.add_argument("--engine", choices=ENGINES, default=default_engine(), help=ENGINE_HELP)
    p.add_argument("-o", "--output", required=True, help=".npy for the int8 outputs")
    p.add_argument("--json", action="store_true", help="print a summary as JSON")


def infer_with(engine: str, model: Model, xs: np.ndarray, json_output: bool = True) -> np.ndarray:
    """Outputs of every engine shaped alike: (N, *output shape without its batch axis)."""
    shape = tuple(model.output_tensor.shape[1:]) or (1,)
    run = NativeEngine(write_blob(model)).infer_batch if engine == "native" else None
    outs = []
    step = 64
    with progress.bar(len(xs), f"infer ({engine})", "samples", json_output) as bar:
        for i in range(0, len(xs), step):
            chunk = xs[i : i + step]
            y = run(chunk) if run is not None else infer_batch(model, chunk)
            outs.append(np.asarray(y).reshape((len(chunk), *shape)))
            bar.update_to(i + len(chunk))
    return np.concatenate(outs) if outs else np.zeros((0, *shape), np.int8)


def run_infer(args: argparse.Namespace) -> int:
    input_file(args.model, "model")
    input_file(args.inputs, "npy")
    output_file(args.output)
    model = load_model(args.model)
    xs = read_inputs(args.inputs, model)
    ys = infer_with(args.engine, model, xs, args.json)
    np.save(args.output, ys)
    summary = {"engine": args.engine, "samples": len(xs), "output_shape": list(ys.shape)}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{len(xs)} inputs through {args.engine} -> {args.output} {ys.shape}")
    return 0
