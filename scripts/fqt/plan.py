"""Memory plan and per-layer cost table.

Two pools, as on the device (dts/bindings/fqt,memory-pool.yaml):
- the arena: activations for inference; for training also the activations the backward
  pass keeps, the int8 error tensors and the int32 scratch a layer's error propagation
  accumulates in. Buffers share space where their lifetimes do not overlap.
- the params pool (training only): RAM copies of the trainable weights and biases, their
  int32 gradient accumulators, and per-channel state (multiplier, shift, scale, EMA
  mean and std of the gradient). Non-trainable weights stay in flash.

The placement is TFLM's greedy-by-size idea, made deterministic so that the C engine
computes the same offsets (docs/memory-plan.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .golden.grad_state import state_params_bytes
from .ir import Activation, Model, OpType

ALIGN = 4
WEIGHTED_OPS = (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D, OpType.FULLY_CONNECTED)
# Per output channel of a trainable layer: multiplier, shift, weight scale, EMA mean, EMA std.
PER_CHANNEL_STATE_BYTES = 5 * 4
# Per output channel of a weighted layer in the backward: the partial-update score (int32)
# and the kept-channel list (uint16) the C kernels loop over (modules/fqt/src/trainer.c).
SELECT_BYTES_PER_CHANNEL = 4 + 2


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Buffer:
    name: str
    size: int
    first: int  # first step the buffer is live (inclusive)
    last: int  # last step the buffer is live (inclusive)
    offset: int = -1


def greedy_plan(buffers: list[Buffer]) -> int:
    """Place buffers (sets .offset); return the peak bytes.

    Largest first (ties: earlier first step, then list order); each goes at the lowest
    aligned offset where it overlaps no placed buffer that is live at the same time.
    """
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first, i))
    placed: list[Buffer] = []
    peak = 0
    for i in order:
        b = buffers[i]
        live = sorted(
            (p for p in placed if p.first <= b.last and b.first <= p.last),
            key=lambda p: p.offset,
        )
        offset = 0
        for p in live:
            if offset + align(b.size) <= p.offset:
                break
            offset = max(offset, p.offset + align(p.size))
        b.offset = offset
        placed.append(b)
        peak = max(peak, offset + align(b.size))
    return peak


def layer_macs(model: Model, li: int) -> int:
    """Forward multiply-accumulates of layer li (pools, add, softmax: 0)."""
    layer = model.layers[li]
    out = model.tensors[layer.output]
    if layer.op == OpType.CONV_2D:
        w = model.tensors[layer.inputs[1]]
        return out.num_elements * w.shape[1] * w.shape[2] * w.shape[3]
    if layer.op == OpType.DEPTHWISE_CONV_2D:
        w = model.tensors[layer.inputs[1]]
        return out.num_elements * w.shape[1] * w.shape[2]
    if layer.op == OpType.FULLY_CONNECTED:
        return model.tensors[layer.inputs[1]].num_elements
    return 0


def weight_bytes(model: Model, li: int) -> int:
    layer = model.layers[li]
    if layer.op not in WEIGHTED_OPS:
        return 0
    n = model.tensors[layer.inputs[1]].nbytes
    if layer.inputs[2] >= 0:
        n += model.tensors[layer.inputs[2]].nbytes
    return n


def out_channels(model: Model, li: int) -> int:
    return model.tensors[model.layers[li].output].shape[-1]


WG_TAP_ROWS = 8  # kernels/conv2d.c FQT_WG_TAP_ROWS: im2col rows built per pass


def _pairs(n: int) -> int:
    return (n + 1) & ~1


def weight_gradient_scratch(model: Model, li: int) -> int:
    """Bytes of the weight-gradient scratch of a trainable CONV_2D / DEPTHWISE_CONV_2D, the
    twin of fqt_*_backward_weights_scratch_size(): int16 rows of even(positions) for the
    transposed error (every channel; depthwise: one) and the input taps (conv: up to
    WG_TAP_ROWS rows of tap x channel; depthwise: every tap of one channel, or one
    padded channel image)."""
    layer = model.layers[li]
    if layer.op not in (OpType.CONV_2D, OpType.DEPTHWISE_CONV_2D):
        return 0
    _n, oh, ow, oc = model.tensors[layer.output].shape
    fh, fw = model.tensors[layer.inputs[1]].shape[1:3]
    p2 = _pairs(oh * ow)
    if layer.op == OpType.DEPTHWISE_CONV_2D:
        # The larger of the tap-row layout and the padded-image one (stride 1).
        wp = ow + fw - 1
        pl = _pairs(oh * wp)
        padded = 2 * (pl + _pairs(pl + (fh - 1) * wp + fw - 1))
        return max(2 * p2 * (1 + _pairs(fh * fw)), padded)
    taps = fh * fw * model.tensors[layer.inputs[0]].shape[-1]
    rows = _pairs(taps) if taps < WG_TAP_ROWS else WG_TAP_ROWS
    return 2 * p2 * (_pairs(oc) + rows)


def input_error_scratch(model: Model, li: int) -> int:
    """Bytes of the depthwise input error's gather scratch, the twin of
    fqt_depthwise_conv2d_backward_input_scratch_size(): per channel a multiplier and a shift
    (int32), two int32 per tap, k_h output rows of int16 errors (channels rounded up to 4)
    and a byte per ring position (for 3x3 filters at least the channel-planar path's); 0
    without a gather (depth multiplier, stride or dilation
    above 1) and for other ops."""
    layer = model.layers[li]
    if layer.op != OpType.DEPTHWISE_CONV_2D:
        return 0
    ic = model.tensors[layer.inputs[0]].shape[-1]
    _n, _oh, ow, oc = model.tensors[layer.output].shape
    fh, fw = model.tensors[layer.inputs[1]].shape[1:3]
    steps = (layer.stride_h, layer.stride_w, layer.dilation_h, layer.dilation_w)
    if layer.depth_multiplier != 1 or oc != ic or steps != (1, 1, 1, 1):
        return 0
    ring = fh * ow
    gather = 8 * ic + 8 * fh * fw + 2 * ring * ((ic + 3) & ~3) + align(ring)
    # 3x3: at least the channel-planar path's (M and s per channel, seven words, the plane)
    _n, ih, iw, _c = model.tensors[layer.inputs[0]].shape
    planar = 8 * ic + 28 + 4 * (ih // 2 + 2) * (iw + 2) if (fh, fw) == (3, 3) and ih >= 2 else 0
    return max(gather, planar)


def forward_scratch(model: Model, li: int) -> int:
    """Bytes of a layer's forward scratch with fqt's own kernels, the twin of
    fqt_layer_forward_scratch_size() (kernels/forward_wrapper.c): a CONV_2D's int16 patch
    matrix (kernels/patch_s16.h), 16 bytes for two positions' patches and 4 of staging per
    group of four taps; 0 for other layers."""
    layer = model.layers[li]
    if layer.op != OpType.CONV_2D:
        return 0
    fh, fw = model.tensors[layer.inputs[1]].shape[1:3]
    taps = fh * fw * model.tensors[layer.inputs[0]].shape[-1]
    return 20 * ((taps + 3) // 4) if taps <= 1 << 24 else 0


def model_scratch(model: Model) -> int:
    """The kernels' scratch of a model (fqt_model_scratch_size): the largest layer's, placed
    after the planned buffers of inference and of training alike."""
    return max((forward_scratch(model, layer.index) for layer in model.layers), default=0)


def with_scratch(peak: int, scratch: int) -> int:
    return align(peak) + scratch if scratch else peak


def params_bytes(model: Model, li: int, grad_state: str = "int32") -> int:
    """RAM a trainable layer takes in the params pool."""
    layer = model.layers[li]
    n_weights = model.tensors[layer.inputs[1]].num_elements
    n_out = out_channels(model, li)
    weights_ram = align(n_weights) + 4 * n_out  # int8 weights + int32 bias
    # accumulators over the mini-batch: int32, or int16 / int8 rows with a per-channel
    # exponent (docs/training-semantics.md 4.1), and the int32 bias sums
    gradients = state_params_bytes(n_weights, n_out, grad_state)
    return weights_ram + gradients + PER_CHANNEL_STATE_BYTES * n_out


def grad_rows_bytes(model: Model, li: int, chunk: int) -> int:
    """A narrow gradient state's per-sample int32 rows of `chunk` channels of layer li:
    weight rows then biases (train_plan.c grad_rows_bytes)."""
    n_out = out_channels(model, li)
    row = model.tensors[model.layers[li].inputs[1]].num_elements // n_out
    return 4 * chunk * (row + 1)


def grad_rows_buffers(
    model: Model, trainable: set[int], bufs: list[Buffer], grad_state: str
) -> dict[int, int]:
    """With a narrow gradient state, append to `bufs` per trainable layer (increasing
    index) the arena rows its weight-gradient kernels write one sample's int32 gradients
    into (live at its backward step), of the most channels (binary search over 1..n_out,
    n_out tried first) whose peak stays within the plan's so far, or within that of one
    channel when even one raises it (train_plan.c grad_rows_buffers). More channels per
    kernel call: fewer calls, each rebuilding its own transposed input.
    Returns layer -> channels."""
    if grad_state == "int32" or not trainable:
        return {}
    n = len(model.layers)
    cur = greedy_plan(bufs)
    chunks: dict[int, int] = {}
    for li in sorted(trainable):
        s = 2 * n - 1 - li
        n_out = out_channels(model, li)

        def peak(chunk: int, li: int = li, s: int = s) -> int:
            return greedy_plan(
                [*bufs, Buffer(f"grad{li}", grad_rows_bytes(model, li, chunk), s, s)]
            )

        limit = max(cur, peak(1))
        ok, bad = 1, n_out + 1
        while bad - ok > 1:
            mid = n_out if bad == n_out + 1 else ok + (bad - ok) // 2
            if peak(mid) <= limit:
                ok = mid
            else:
                bad = mid
        chunks[li] = ok
        bufs.append(Buffer(f"grad{li}", grad_rows_bytes(model, li, ok), s, s))
        cur = greedy_plan(bufs)
    return chunks


@dataclass
class Plan:
    inference_arena: int
    training_arena: int
    training_params: int
    trainable: list[int]
    inference_buffers: list[Buffer] = field(default_factory=list)
    training_buffers: list[Buffer] = field(default_factory=list)
    grad_state: str = "int32"
    grad_chunks: dict[int, int] = field(default_factory=dict)  # narrow: rows per layer

    @property
    def training_total(self) -> int:
        return self.training_arena + self.training_params


def _consumers(model: Model) -> dict[int, list[int]]:
    users: dict[int, list[int]] = {}
    for layer in model.layers:
        for ti in layer.inputs:
            if ti >= 0 and not model.tensors[ti].is_const:
                users.setdefault(ti, []).append(layer.index)
    return users


def pool_error_direct(model: Model, li: int, users: dict[int, list[int]] | None = None) -> bool:
    """Whether pool li writes its input error as int8 directly, with no int32 scratch
    (train_plan.c pool_error_direct, kernels/pooling.c fqt_pool2d_backward_s8): an
    AVERAGE_POOL_2D / MAX_POOL_2D whose windows are disjoint (each input element in at most
    one window, so the exact max of the sums is the max of the windows' terms), that is
    the only consumer of its input, which is not the model output."""
    layer = model.layers[li]
    if layer.op not in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        return False
    oh, ow = model.tensors[layer.output].shape[1:3]
    disjoint = (oh == 1 or layer.stride_h >= layer.filter_h) and (
        ow == 1 or layer.stride_w >= layer.filter_w
    )
    users = _consumers(model) if users is None else users
    x = layer.inputs[0]
    return disjoint and x != model.output and len(users.get(x, [])) == 1


def inference_buffers(model: Model) -> list[Buffer]:
    users = _consumers(model)
    last_step = len(model.layers) - 1
    bufs = [Buffer(f"t{model.input}", model.input_tensor.nbytes, 0, max(users[model.input]))]
    for layer in model.layers:
        t = layer.output
        last = last_step if t == model.output else max(users.get(t, [layer.index]))
        bufs.append(Buffer(f"t{t}", model.tensors[t].nbytes, layer.index, last))
    return bufs


def training_buffers(model: Model, trainable: set[int]) -> list[Buffer]:
    """Arena buffers of one training step: forward steps 0..L-1, then the backward of
    layer l at step 2L-1-l, for every layer from the first trainable one on."""
    n = len(model.layers)
    if not trainable:
        return inference_buffers(model)
    first_bw = min(trainable)

    def bw_step(li: int) -> int:
        return 2 * n - 1 - li

    bufs = inference_buffers(model)
    producer = {layer.output: layer.index for layer in model.layers}
    for b in bufs:
        ti = int(b.name[1:])
        keep = b.last
        for layer in model.layers[first_bw:]:
            li = layer.index
            if li in trainable and layer.inputs[0] == ti:
                keep = max(keep, bw_step(li))  # weight gradient reads the input
            if layer.op == OpType.MAX_POOL_2D and layer.inputs[0] == ti:
                keep = max(keep, bw_step(li))  # error routes to the argmax
            if layer.output == ti and (
                layer.activation != Activation.NONE or layer.op in (OpType.SOFTMAX, *WEIGHTED_OPS)
            ):
                keep = max(keep, bw_step(li))  # clamp / saturation mask, loss gradient
        if ti == model.output:
            keep = max(keep, bw_step(n - 1))
        b.last = keep
        b.name = f"act{ti}"
    users = _consumers(model)
    for layer in model.layers[first_bw:]:
        # Error w.r.t. this layer's output: written by the backward of its last consumer
        # (or the loss), read by this layer's backward.
        ti = layer.output
        born = bw_step(max(users[ti])) if ti in users else bw_step(n - 1)
        bufs.append(Buffer(f"err{ti}", model.tensors[ti].nbytes, born, bw_step(layer.index)))
        if (
            layer.index > first_bw
            and layer.inputs[0] in producer
            and not pool_error_direct(model, layer.index, users)
        ):
            # int32 accumulators for the error of this layer's input, before it is
            # rescaled to int8 with a scale chosen from its range.
            x = model.tensors[layer.inputs[0]]
            s = bw_step(layer.index)
            bufs.append(Buffer(f"acc{layer.inputs[0]}", 4 * x.num_elements, s, s))
        if layer.op in WEIGHTED_OPS:
            # Channel selection scratch: scores and the kept-channel list.
            s = bw_step(layer.index)
            n_sel = SELECT_BYTES_PER_CHANNEL * out_channels(model, layer.index)
            bufs.append(Buffer(f"sel{layer.index}", n_sel, s, s))
        wg = weight_gradient_scratch(model, layer.index) if layer.index in trainable else 0
        if layer.index > first_bw and layer.inputs[0] in producer:
            wg = max(wg, input_error_scratch(model, layer.index))
        if wg:
            # One backward scratch: the weight gradient's transposed error and input rows
            # (int16), then the depthwise input error's gather ring.
            s = bw_step(layer.index)
            bufs.append(Buffer(f"wg{layer.index}", wg, s, s))
    return bufs


def plan_memory(model: Model, trainable: set[int] | None = None, grad_state: str = "int32") -> Plan:
    trainable = set(trainable or ())
    inf = inference_buffers(model)
    scratch = model_scratch(model)
    inf_peak = with_scratch(greedy_plan(inf), scratch)
    tr = training_buffers(model, trainable)
    chunks = grad_rows_buffers(model, trainable, tr, grad_state)
    tr_peak = with_scratch(greedy_plan(tr), scratch) if trainable else 0
    params = sum(params_bytes(model, li, grad_state) for li in trainable)
    return Plan(inf_peak, tr_peak, params, sorted(trainable), inf, tr, grad_state, chunks)


def default_trainable(model: Model) -> set[int]:
    """The last weighted layer: the usual transfer-learning choice."""
    weighted = [layer.index for layer in model.layers if layer.op in WEIGHTED_OPS]
    return {weighted[-1]} if weighted else set()


def parse_trainable(model: Model, spec: list[str] | None) -> set[int]:
    """--trainable accepts layer indices, 'last', 'last:N' (the last N weighted layers),
    'all' or 'none'."""
    if not spec:
        return default_trainable(model)
    weighted = [layer.index for layer in model.layers if layer.op in WEIGHTED_OPS]
    chosen: set[int] = set()
    for item in ",".join(spec).split(","):
        item = item.strip()
        if not item:
            continue
        if item == "all":
            chosen.update(weighted)
        elif item == "none":
            continue
        elif item == "last":
            chosen.update(weighted[-1:])
        elif item.startswith("last:") and item[5:].isdigit():
            chosen.update(weighted[-int(item[5:]) :] if int(item[5:]) else [])
        elif item.isdigit():
            li = int(item)
            if li not in weighted:
                raise ValueError(
                    f"layer {li} is not a trainable layer; trainable layers: {weighted}"
                )
            chosen.add(li)
        else:
            raise ValueError(f"--trainable: cannot read '{item}'")
    return chosen


def layer_table(model: Model, plan: Plan) -> list[dict[str, object]]:
    rows = []
    for layer in model.layers:
        li = layer.index
        out = model.tensors[layer.output]
        rows.append(
            {
                "layer": li,
                "op": layer.op.name,
                "output_shape": list(out.shape),
                "macs": layer_macs(model, li),
                "weight_bytes": weight_bytes(model, li),
                "activation_bytes": out.nbytes,
                "trainable": li in plan.trainable,
                "params_ram_bytes": (
                    params_bytes(model, li, plan.grad_state) if li in plan.trainable else 0
                ),
            }
        )
    return rows
