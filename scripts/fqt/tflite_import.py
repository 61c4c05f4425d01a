"""Read an int8 .tflite flatbuffer into the fqt IR, without TensorFlow.

The flatbuffer accessors come from the `tflite` package (generated schema code); this
module decides what fqt supports and turns everything else into one clear error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tflite

from .errors import ModelFormatError, UnsupportedModelError, printable
from .ir import Activation, DType, Layer, Model, OpType, Padding, Quant, Tensor

_BUILTIN_NAMES = {v: k for k, v in vars(tflite.BuiltinOperator).items() if not k.startswith("_")}
_TENSOR_TYPE_NAMES = {v: k for k, v in vars(tflite.TensorType).items() if not k.startswith("_")}

_COMPUTE_OPS = {
    tflite.BuiltinOperator.CONV_2D: OpType.CONV_2D,
    tflite.BuiltinOperator.DEPTHWISE_CONV_2D: OpType.DEPTHWISE_CONV_2D,
    tflite.BuiltinOperator.FULLY_CONNECTED: OpType.FULLY_CONNECTED,
    tflite.BuiltinOperator.AVERAGE_POOL_2D: OpType.AVERAGE_POOL_2D,
    tflite.BuiltinOperator.MAX_POOL_2D: OpType.MAX_POOL_2D,
    tflite.BuiltinOperator.RESHAPE: OpType.RESHAPE,
    tflite.BuiltinOperator.ADD: OpType.ADD,
    tflite.BuiltinOperator.SOFTMAX: OpType.SOFTMAX,
}
# Keras' Flatten with a dynamic batch computes RESHAPE's shape operand at run time; the
# result is known statically, so the chain is folded away.
_SHAPE_CHAIN_OPS = {
    tflite.BuiltinOperator.SHAPE,
    tflite.BuiltinOperator.STRIDED_SLICE,
    tflite.BuiltinOperator.PACK,
}
_ACTIVATIONS = {
    tflite.ActivationFunctionType.NONE: Activation.NONE,
    tflite.ActivationFunctionType.RELU: Activation.RELU,
    tflite.ActivationFunctionType.RELU6: Activation.RELU6,
}
_ACTIVATION_NAMES = {
    v: k for k, v in vars(tflite.ActivationFunctionType).items() if not k.startswith("_")
}


def op_name(code: int) -> str:
    return _BUILTIN_NAMES.get(code, f"BUILTIN_{code}")


def load_tflite(path: str | Path) -> Model:
    """Import a .tflite file; raise ModelFormatError or UnsupportedModelError."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as e:
        raise ModelFormatError(f"{p}: cannot read: {e.strerror}") from None
    model = parse_tflite(data, name=p.stem, source=str(p))
    return model


def parse_tflite(data: bytes, name: str = "model", source: str = "<bytes>") -> Model:
    if len(data) < 8 or data[4:8] != b"TFL3":
        raise ModelFormatError(f"{source}: not a TFLite flatbuffer (no 'TFL3' identifier)")
    try:
        return _Importer(data, name).run()
    except (UnsupportedModelError, ModelFormatError) as e:
        if isinstance(e, ModelFormatError):
            raise ModelFormatError(f"{source}: {e}") from None
        raise
    except Exception as e:  # flatbuffers reads past the end of a truncated file
        raise ModelFormatError(
            f"{source}: corrupt or truncated .tflite ({type(e).__name__}: {e})"
        ) from None


class _Importer:
    def __init__(self, data: bytes, name: str):
        self.data = data
        self.name = name
        self.m = tflite.Model.GetRootAsModel(data, 0)
        if self.m.SubgraphsLength() < 1:
            raise ModelFormatError("model has no subgraph")
        self.sg = self.m.Subgraphs(0)
        self.tensors: list[Tensor] = []
        self.tensor_map: dict[int, int] = {}  # tflite index -> fqt index
        self.problems: list[str] = []

    # --- helpers -------------------------------------------------------------
    def opcode(self, op: tflite.Operator) -> int:
        idx = op.OpcodeIndex()
        if idx >= self.m.OperatorCodesLength():
            raise ModelFormatError(f"operator code index {idx} out of range")
        oc = self.m.OperatorCodes(idx)
        # Schema v3a moved builtin codes > 127 to a new field; take the larger.
        return max(int(oc.BuiltinCode()), int(oc.DeprecatedBuiltinCode()))

    def buffer_data(self, t: tflite.Tensor) -> np.ndarray | None:
        b = t.Buffer()
        if b <= 0 or b >= self.m.BuffersLength():
            return None
        buf = self.m.Buffers(b)
        if buf.Offset() > 1:  # large-model layout: data lives after the flatbuffer
            off, size = int(buf.Offset()), int(buf.Size())
            if off + size > len(self.data):
                raise ModelFormatError(f"buffer {b} points past the end of the file")
            raw = self.data[off : off + size]
            return np.frombuffer(raw, np.uint8) if size else None
        if buf.DataLength() == 0:
            return None
        return buf.DataAsNumpy()

    def tensor(self, ti: int) -> int:
        """fqt index of tflite tensor ti, creating it on first use."""
        if ti in self.tensor_map:
            return self.tensor_map[ti]
        if ti < 0 or ti >= self.sg.TensorsLength():
            raise ModelFormatError(f"tensor index {ti} out of range")
        t = self.sg.Tensors(ti)
        tname = printable((t.Name() or b"").decode("utf-8", "replace"), limit=80)
        ttype = t.Type()
        if ttype == tflite.TensorType.INT8:
            dtype = DType.INT8
        elif ttype == tflite.TensorType.INT32:
            dtype = DType.INT32
        else:
            tn = _TENSOR_TYPE_NAMES.get(ttype, str(ttype))
            raise UnsupportedModelError([f"tensor {ti} '{tname}' has type {tn}, fqt needs int8"])
        shape = tuple(int(s) for s in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        if any(s <= 0 for s in shape):
            raise UnsupportedModelError([f"tensor {ti} '{tname}' has a dynamic shape {shape}"])
        quant = self.quant(t, shape, ti, tname)
        raw = self.buffer_data(t)
        data = None
        if raw is not None:
            np_dtype = np.int8 if dtype == DType.INT8 else np.dtype("<i4")
            nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(np_dtype).itemsize
            if raw.size != nbytes:
                raise ModelFormatError(
                    f"tensor {ti} '{tname}' holds {raw.size} bytes, its shape needs {nbytes}"
                )
            data = np.frombuffer(raw.tobytes(), np_dtype).reshape(shape).astype(np_dtype)
        fi = len(self.tensors)
        self.tensors.append(Tensor(fi, tname, shape, dtype, quant, data, ti))
        self.tensor_map[ti] = fi
        return fi

    def quant(self, t: tflite.Tensor, shape: tuple[int, ...], ti: int, tname: str) -> Quant:
        q = t.Quantization()
        scale = np.ones(1, np.float32)
        zp = np.zeros(1, np.int32)
        axis = 0
        if q is not None and q.ScaleLength() > 0:
            scale = q.ScaleAsNumpy().astype(np.float32)
            zp = (
                q.ZeroPointAsNumpy().astype(np.int32)
                if q.ZeroPointLength()
                else np.zeros(len(scale), np.int32)
            )
            if len(zp) != len(scale):
                zp = np.resize(zp, len(scale)).astype(np.int32)
            axis = int(q.QuantizedDimension())
            # Real models (person_detect) give 1-D biases quantized_dimension=3: the
            # only axis a 1-D tensor has is 0.
            if axis >= max(len(shape), 1):
                axis = 0
            if len(scale) > 1 and (not shape or shape[axis] != len(scale)):
                raise ModelFormatError(
                    f"tensor {ti} '{tname}' has {len(scale)} scales for axis {axis} of {shape}"
                )
        return Quant(scale, zp, axis)

    def activation(self, code: int, where: str) -> Activation:
        if code not in _ACTIVATIONS:
            self.problems.append(f"{where}: fused activation {_ACTIVATION_NAMES.get(code, code)}")
            return Activation.NONE
        return _ACTIVATIONS[code]

    # --- the walk --------------------------------------------------------------
    def run(self) -> Model:
        sg = self.sg
        ops = [sg.Operators(i) for i in range(sg.OperatorsLength())]
        codes = [self.opcode(op) for op in ops]
        sg_inputs = list(sg.InputsAsNumpy()) if sg.InputsLength() else []
        sg_outputs = list(sg.OutputsAsNumpy()) if sg.OutputsLength() else []
        for i, (op, c) in enumerate(zip(ops, codes, strict=True)):
            if c == tflite.BuiltinOperator.QUANTIZE:
                if op.InputsLength() and int(op.Inputs(0)) in sg_inputs:
                    continue
                self.problems.append(f"operator {i} QUANTIZE (re-quantization inside the graph)")
            elif c == tflite.BuiltinOperator.DEQUANTIZE:
                if op.OutputsLength() and int(op.Outputs(0)) in sg_outputs:
                    continue
                self.problems.append(f"operator {i} DEQUANTIZE (inside the graph)")
            elif c not in _COMPUTE_OPS and c not in _SHAPE_CHAIN_OPS:
                self.problems.append(f"operator {i} {op_name(c)}")
        if self.problems:
            raise UnsupportedModelError(self.problems)

        if len(sg_inputs) != 1 or len(sg_outputs) != 1:
            raise UnsupportedModelError(
                [f"{len(sg_inputs)} inputs and {len(sg_outputs)} outputs (fqt needs 1 and 1)"]
            )
        model_in, model_out = int(sg_inputs[0]), int(sg_outputs[0])
        float_input = float_output = False
        alias: dict[int, int] = {}  # tflite tensor -> tflite tensor standing for it

        layers: list[Layer] = []
        for i, (op, c) in enumerate(zip(ops, codes, strict=True)):
            ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
            outs = [int(x) for x in op.OutputsAsNumpy()] if op.OutputsLength() else []
            if len(outs) != 1:
                raise ModelFormatError(f"operator {i} {op_name(c)} has {len(outs)} outputs")
            where = f"operator {i} {op_name(c)}"
            if c == tflite.BuiltinOperator.QUANTIZE:  # at the input edge, checked above
                model_in, float_input = outs[0], True
                continue
            if c == tflite.BuiltinOperator.DEQUANTIZE:  # at the output edge
                model_out, float_output = ins[0], True
                continue
            if c in _SHAPE_CHAIN_OPS:
                continue  # checked below: it may only feed RESHAPE's shape operand
            ins = [alias.get(x, x) for x in ins]
            layer = self.layer(i, c, op, ins, outs[0], where)
            layer.index = len(layers)
            layers.append(layer)
        self.check_shape_chain(ops, codes)
        if self.problems:
            raise UnsupportedModelError(self.problems)
        if not layers:
            raise UnsupportedModelError(["the model has no compute operators"])
        if model_in not in self.tensor_map or model_out not in self.tensor_map:
            raise UnsupportedModelError(["the model's input or output is not used by any layer"])
        model = Model(
            tensors=self.tensors,
            layers=layers,
            input=self.tensor_map[model_in],
            output=self.tensor_map[model_out],
            float_input=float_input,
            float_output=float_output,
            name=self.name,
        )
        check_model(model)
        return model

    def check_shape_chain(self, ops: list[tflite.Operator], codes: list[int]) -> None:
        chain_outputs: set[int] = set()
        for op, c in zip(ops, codes, strict=True):
            if c in _SHAPE_CHAIN_OPS:
                chain_outputs.update(int(x) for x in op.OutputsAsNumpy())
        if not chain_outputs:
            return
        for i, (op, c) in enumerate(zip(ops, codes, strict=True)):
            ins = [int(x) for x in op.InputsAsNumpy()] if op.InputsLength() else []
            for pos, x in enumerate(ins):
                if x not in chain_outputs:
                    continue
                ok = c in _SHAPE_CHAIN_OPS or (c == tflite.BuiltinOperator.RESHAPE and pos == 1)
                if not ok:
                    self.problems.append(
                        f"operator {i} {op_name(c)} consumes a computed shape (only RESHAPE may)"
                    )

    def layer(
        self, i: int, c: int, op: tflite.Operator, ins: list[int], out: int, where: str
    ) -> Layer:
        optype = _COMPUTE_OPS[c]
        opts = op.BuiltinOptions()
        layer = Layer(index=0, op=optype, inputs=[], output=-1, tflite_op_index=i)
        if optype in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D):
            o = (
                tflite.Conv2DOptions()
                if optype == OpType.CONV_2D
                else tflite.DepthwiseConv2DOptions()
            )
            if opts is None:
                raise ModelFormatError(f"{where} has no options")
            o.Init(opts.Bytes, opts.Pos)
            layer.padding = Padding(o.Padding())
            layer.stride_h, layer.stride_w = o.StrideH(), o.StrideW()
            layer.dilation_h, layer.dilation_w = o.DilationHFactor(), o.DilationWFactor()
            layer.activation = self.activation(o.FusedActivationFunction(), where)
            if len(ins) < 2:
                raise ModelFormatError(f"{where} needs input and weights")
            bias = ins[2] if len(ins) > 2 else -1
            layer.inputs = [self.tensor(ins[0]), self.tensor(ins[1])]
            layer.inputs.append(self.tensor(bias) if bias >= 0 else -1)
        elif optype == OpType.FULLY_CONNECTED:
            o = tflite.FullyConnectedOptions()
            if opts is not None:
                o.Init(opts.Bytes, opts.Pos)
                layer.activation = self.activation(o.FusedActivationFunction(), where)
                if o.WeightsFormat() != tflite.FullyConnectedOptionsWeightsFormat.DEFAULT:
                    self.problems.append(f"{where}: shuffled weights format")
            if len(ins) < 2:
                raise ModelFormatError(f"{where} needs input and weights")
            bias = ins[2] if len(ins) > 2 else -1
            layer.inputs = [self.tensor(ins[0]), self.tensor(ins[1])]
            layer.inputs.append(self.tensor(bias) if bias >= 0 else -1)
        elif optype in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
            o = tflite.Pool2DOptions()
            if opts is None:
                raise ModelFormatError(f"{where} has no options")
            o.Init(opts.Bytes, opts.Pos)
            layer.padding = Padding(o.Padding())
            layer.stride_h, layer.stride_w = o.StrideH(), o.StrideW()
            layer.filter_h, layer.filter_w = o.FilterHeight(), o.FilterWidth()
            layer.activation = self.activation(o.FusedActivationFunction(), where)
            layer.inputs = [self.tensor(ins[0])]
        elif optype == OpType.ADD:
            if opts is not None:
                o = tflite.AddOptions()
                o.Init(opts.Bytes, opts.Pos)
                layer.activation = self.activation(o.FusedActivationFunction(), where)
            if len(ins) != 2:
                raise ModelFormatError(f"{where} needs two inputs")
            layer.inputs = [self.tensor(ins[0]), self.tensor(ins[1])]
        elif optype == OpType.SOFTMAX:
            if opts is not None:
                o = tflite.SoftmaxOptions()
                o.Init(opts.Bytes, opts.Pos)
                layer.beta = float(o.Beta())
            layer.inputs = [self.tensor(ins[0])]
        elif optype == OpType.RESHAPE:
            layer.inputs = [self.tensor(ins[0])]
        layer.output = self.tensor(out)
        if optype == OpType.DEPTHWISE_CONV_2D:
            # Older converters leave the option at 1; the shapes are what TFLM trusts.
            in_c = self.tensors[layer.inputs[0]].shape[-1]
            layer.depth_multiplier = self.tensors[layer.output].shape[-1] // max(in_c, 1)
        return layer


def check_model(model: Model) -> None:
    """Structural checks the engines rely on; raise UnsupportedModelError."""
    problems: list[str] = []
    ts = model.tensors
    for layer in model.layers:
        where = f"operator {layer.tflite_op_index} {layer.op.name}"
        out = ts[layer.output]
        x = ts[layer.inputs[0]]
        if out.dtype != DType.INT8 or x.dtype != DType.INT8:
            problems.append(f"{where}: input and output must be int8")
            continue
        if out.is_const or x.is_const:
            problems.append(f"{where}: constant activation tensors are not supported")
        if x.shape and x.shape[0] != 1:
            problems.append(f"{where}: batch size {x.shape[0]} (fqt needs 1)")
        if layer.op in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED):
            w = ts[layer.inputs[1]]
            if not w.is_const or w.dtype != DType.INT8:
                problems.append(f"{where}: weights must be constant int8")
            elif np.any(w.quant.zero_point != 0):
                problems.append(f"{where}: weights must be symmetric (zero point 0)")
            if layer.inputs[2] >= 0:
                b = ts[layer.inputs[2]]
                if not b.is_const or b.dtype != DType.INT32:
                    problems.append(f"{where}: bias must be constant int32")
            if layer.op != OpType.FULLY_CONNECTED:
                if len(x.shape) != 4 or len(out.shape) != 4 or len(w.shape) != 4:
                    problems.append(f"{where}: needs 4-D input, weights and output")
                if layer.dilation_h != 1 or layer.dilation_w != 1:
                    problems.append(f"{where}: dilation {layer.dilation_h}x{layer.dilation_w}")
        if layer.op in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D) and len(x.shape) != 4:
            problems.append(f"{where}: needs a 4-D input")
        if layer.op == OpType.ADD:
            b = ts[layer.inputs[1]]
            if b.shape != x.shape or b.is_const:
                problems.append(f"{where}: only same-shape ADD of two activations is supported")
        if layer.op in (OpType.RESHAPE, OpType.SOFTMAX) and x.num_elements != out.num_elements:
            problems.append(f"{where}: element count changes")
        for t in (x, out):
            if t.quant.per_channel:
                problems.append(f"{where}: per-channel activation tensor '{t.name}'")
    if problems:
        raise UnsupportedModelError(problems)
