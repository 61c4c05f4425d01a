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
POOL_OPS = (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D)
# Per output channel of a trainable layer: multiplier, shift, weight scale, EMA mean, EMA std.
PER_CHANNEL_STATE_BYTES = 5 * 4
# Per output channel of a weighted layer in the backward: the partial-update score (int32)
# and the kept-channel list (uint16) the C kernels loop over (modules/fqt/src/trainer.c).
SELECT_BYTES_PER_CHANNEL = 4 + 2
# The training plans (trainer option `memory`): "default" is the fast one; "lean" writes the
# weighted layers' input errors as int8 with no int32 tensor (two passes over row-sized
# int32 scratch) and plans lifetimes per phase of a backward step (docs/memory-plan.md).
MEMORY_PLANS = ("default", "lean")
# Lean plan: every step is split into these phases (step s, phase f -> 4 s + f); the
# forward uses phase 0 only.
PHASE_MASK, PHASE_SELECT, PHASE_WGRAD, PHASE_IERR = 0, 1, 2, 3
PHASES = 4
# Lean plan: a weighted layer's input error is summed in int32 this many input elements
# at a time (kernels/kernels_internal.h FQT_IE_CHUNK; convolutions: whole channel
# vectors of one input row, at least one).
IE_CHUNK = 256


def align(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


@dataclass
class Buffer:
    name: str
    size: int
    first: int  # first step the buffer is live (inclusive)
    last: int  # last step the buffer is live (inclusive)
    offset: int = -1
    layer: int = -1  # the layer whose row of the breakdown counts it (layer_table)

    @property
    def kind(self) -> str:
        """What the buffer holds, from its name: act (an activation), err (an int8 error),
        tmp (an int8 error to combine), acc (int32 error sums), sel / wg / ie (scratch)."""
        return self.name.rstrip("0123456789")


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


WG_BLOCK_CHANNELS = 16  # kernels/conv2d.c FQT_WG_BLOCK_CHANNELS: the lean plan's block


def weight_gradient_scratch(model: Model, li: int, lean: bool = False) -> int:
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
    # lean: the transposed error WG_BLOCK_CHANNELS channels at a time (the input taps
    # rebuilt for each block; fqt_conv2d_backward_weights_blocked_scratch_size)
    channels = min(_pairs(oc), WG_BLOCK_CHANNELS) if lean else _pairs(oc)
    return 2 * p2 * (channels + rows)


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


def weights_ram_bytes(model: Model, li: int) -> int:
    """A trainable layer's weights in the params pool: int8 weights and int32 bias."""
    n_weights = model.tensors[model.layers[li].inputs[1]].num_elements
    return align(n_weights) + 4 * out_channels(model, li)


def gradient_state_bytes(model: Model, li: int, grad_state: str = "int32") -> int:
    """A trainable layer's gradient state in the params pool: the accumulators over the
    mini-batch (int32, or int16 / int8 rows with a per-channel exponent, docs/training-
    semantics.md 4.1, and the int32 bias sums) and the per-channel state (multiplier,
    shift, weight scale, EMA mean and std)."""
    n_weights = model.tensors[model.layers[li].inputs[1]].num_elements
    n_out = out_channels(model, li)
    return state_params_bytes(n_weights, n_out, grad_state) + PER_CHANNEL_STATE_BYTES * n_out


def params_bytes(model: Model, li: int, grad_state: str = "int32") -> int:
    """RAM a trainable layer takes in the params pool."""
    return weights_ram_bytes(model, li) + gradient_state_bytes(model, li, grad_state)


def grad_rows_bytes(model: Model, li: int, chunk: int) -> int:
    """A narrow gradient state's per-sample int32 rows of `chunk` channels of layer li:
    weight rows then biases (train_plan.c grad_rows_bytes)."""
    n_out = out_channels(model, li)
    row = model.tensors[model.layers[li].inputs[1]].num_elements // n_out
    return 4 * chunk * (row + 1)


def grad_rows_buffers(
    model: Model, trainable: set[int], bufs: list[Buffer], grad_state: str,
    memory: str = "default",
) -> dict[int, int]:  # fmt: skip
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
        s = 2 * n - 1 - li  # the weight-gradient phase of its backward step in the lean plan
        s = PHASES * s + PHASE_WGRAD if memory == "lean" else s
        n_out = out_channels(model, li)

        def peak(chunk: int, li: int = li, s: int = s) -> int:
            return greedy_plan(
                [*bufs, Buffer(f"grad{li}", grad_rows_bytes(model, li, chunk), s, s, layer=li)]
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
        bufs.append(Buffer(f"grad{li}", grad_rows_bytes(model, li, ok), s, s, layer=li))
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
    memory: str = "default"
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


def pool_error_direct(
    model: Model, li: int, users: dict[int, list[int]] | None = None, lean: bool = False
) -> bool:
    """Whether pool li writes its input error as int8 directly, with no int32 scratch
    (train_plan.c pool_error_direct, kernels/pooling.c fqt_pool2d_backward_s8): an
    AVERAGE_POOL_2D / MAX_POOL_2D whose windows are disjoint (each input element in at most
    one window, so the exact max of the sums is the max of the windows' terms), that is
    the only consumer of its input, which is not the model output. lean: the windows only
    (the lean plan gives a shared input an int8 copy to combine from)."""
    layer = model.layers[li]
    if layer.op not in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        return False
    oh, ow = model.tensors[layer.output].shape[1:3]
    disjoint = (oh == 1 or layer.stride_h >= layer.filter_h) and (
        ow == 1 or layer.stride_w >= layer.filter_w
    )
    if lean:
        return disjoint
    users = _consumers(model) if users is None else users
    x = layer.inputs[0]
    return disjoint and x != model.output and len(users.get(x, [])) == 1


def inference_buffers(model: Model) -> list[Buffer]:
    users = _consumers(model)
    last_step = len(model.layers) - 1
    last_in = max(users[model.input])
    bufs = [Buffer(f"t{model.input}", model.input_tensor.nbytes, 0, last_in, layer=0)]
    for layer in model.layers:
        t = layer.output
        last = last_step if t == model.output else max(users.get(t, [layer.index]))
        bufs.append(Buffer(f"t{t}", model.tensors[t].nbytes, layer.index, last, layer=layer.index))
    return bufs


def lean_input_error_scratch(model: Model, li: int) -> int:
    """Bytes of a weighted layer's int8 input-error scratch in the lean plan, the twin of
    fqt_*_backward_input_s8_scratch_size(): a chunk of int32 sums (ie_chunk_columns input
    positions of one row; FULLY_CONNECTED: IE_CHUNK elements) plus per output channel its
    fold (CONV_2D: multiplier, shift and whether it pairs, 12 B; DEPTHWISE: multiplier
    and shift, or the gather's scratch where it applies, for 3x3 filters at least the
    channel-planar path's with one channel's int32 plane; FULLY_CONNECTED: the folded
    error g, 4 B); 0 for other ops."""
    layer = model.layers[li]
    x = model.tensors[layer.inputs[0]]
    oc = out_channels(model, li)
    if layer.op == OpType.FULLY_CONNECTED:
        return 4 * oc + 4 * min(x.num_elements, IE_CHUNK)
    _n, _ih, iw, ic = x.shape
    row = 4 * ic * ie_chunk_columns(iw, ic)
    if layer.op == OpType.CONV_2D:
        return 12 * oc + row
    if layer.op != OpType.DEPTHWISE_CONV_2D:
        return 0
    _n, _oh, ow, _oc = model.tensors[layer.output].shape
    fh, fw = model.tensors[layer.inputs[1]].shape[1:3]
    steps = (layer.stride_h, layer.stride_w, layer.dilation_h, layer.dilation_w)
    if layer.depth_multiplier == 1 and oc == ic and steps == (1, 1, 1, 1):
        ring = fh * ow
        gather = 8 * ic + 8 * fh * fw + 2 * ring * ((ic + 3) & ~3) + align(ring) + row
        # 3x3: at least the channel-planar path's, with one channel's int32 plane
        _n, ih, iw, _c = x.shape
        planar = 8 * ic + 28 + 4 * (ih // 2 + 2) * (iw + 2) + 4 * ih * iw
        return max(gather, planar) if (fh, fw) == (3, 3) and ih >= 2 else gather
    return 8 * oc + row


def lean_input_error(model: Model, li: int, users: dict[int, list[int]]) -> bool:
    """Lean plan: does layer li write its input error as int8 with no int32 tensor? A pool
    with disjoint windows always; a weighted layer when its chunk scratch (and the int8
    copy, if it needs one) is smaller than the int32 tensor it replaces (a small input
    with many output channels keeps the int32 path: the per-channel folds would cost
    more)."""
    layer = model.layers[li]
    if layer.op in (OpType.AVERAGE_POOL_2D, OpType.MAX_POOL_2D):
        return pool_error_direct(model, li, users, lean=True)
    if layer.op not in WEIGHTED_OPS:
        return False
    x = model.tensors[layer.inputs[0]]
    copy = x.nbytes if _needs_copy(model, li, users) else 0
    return lean_input_error_scratch(model, li) + copy < 4 * x.num_elements


def ie_chunk_columns(in_w: int, in_c: int) -> int:
    """Input positions of one row summed at a time by the lean convolution input errors."""
    return min(in_w, max(1, IE_CHUNK // in_c))


def _needs_copy(model: Model, li: int, users: dict[int, list[int]]) -> bool:
    """Lean plan: may layer li's input already hold an error when li delivers its own (an
    earlier delivery from a consumer of higher index, or the loss's on the model output)?
    Then li writes into an int8 copy, tmp<x>, which is combined into err<x> (2.3)."""
    x = model.layers[li].inputs[0]
    return x == model.output or li != max(users[x])


def training_buffers(model: Model, trainable: set[int], memory: str = "default") -> list[Buffer]:
    """Arena buffers of one training step: forward steps 0..L-1, then the backward of
    layer l at step 2L-1-l, for every layer from the first trainable one on. The lean plan
    (memory="lean") splits every step into PHASES phases (mask, selection, weight
    gradient, input error) so that a buffer dead after one phase lends its bytes to the
    next, and gives weighted layers an int8 input error with row-sized scratch."""
    if memory not in MEMORY_PLANS:
        raise ValueError(f"memory plan {memory!r}: choose from {MEMORY_PLANS}")
    n = len(model.layers)
    if not trainable:
        return inference_buffers(model)
    lean = memory == "lean"
    first_bw = min(trainable)

    def at(step: int, phase: int = PHASE_MASK) -> int:
        return PHASES * step + phase if lean else step

    def bw_step(li: int, phase: int = PHASE_MASK) -> int:
        return at(2 * n - 1 - li, phase)

    bufs = inference_buffers(model)
    producer = {layer.output: layer.index for layer in model.layers}
    for b in bufs:
        ti = int(b.name[1:])
        b.first, b.last = at(b.first), at(b.last)
        keep = b.last
        for layer in model.layers[first_bw:]:
            li = layer.index
            if li in trainable and layer.inputs[0] == ti:
                keep = max(keep, bw_step(li, PHASE_WGRAD))  # weight gradient reads the input
            if layer.op == OpType.MAX_POOL_2D and layer.inputs[0] == ti:
                keep = max(keep, bw_step(li, PHASE_IERR))  # error routes to the argmax
            if layer.output == ti and (
                layer.activation != Activation.NONE or layer.op in (OpType.SOFTMAX, *WEIGHTED_OPS)
            ):
                keep = max(keep, bw_step(li, PHASE_MASK))  # clamp / saturation mask, loss gradient
        if ti == model.output:
            keep = max(keep, bw_step(n - 1))
        b.last = keep
        b.name = f"act{ti}"
    users = _consumers(model)
    for layer in model.layers[first_bw:]:
        li = layer.index
        weighted = layer.op in WEIGHTED_OPS
        passes = li > first_bw and layer.inputs[0] in producer  # an input error is planned
        # Error w.r.t. this layer's output: written by the backward of its last consumer
        # (or by the loss, when that is the final SOFTMAX or there is none), read by this
        # layer's backward.
        ti = layer.output
        last_user = max(users[ti]) if ti in users else n - 1
        by_loss = ti not in users or model.layers[last_user].op == OpType.SOFTMAX
        born = bw_step(last_user, PHASE_MASK if by_loss else PHASE_IERR)
        read = PHASE_IERR if passes or not weighted else PHASE_WGRAD
        bufs.append(Buffer(f"err{ti}", model.tensors[ti].nbytes, born, bw_step(li, read), layer=li))
        x = model.tensors[layer.inputs[0]]
        ie = bw_step(li, PHASE_IERR)
        lean_ie = lean and passes and lean_input_error(model, li, users)
        if lean_ie:
            # int8 straight into err<x>; if x has other readers (or is the model output,
            # where the loss writes), into this int8 copy first, then combined (2.3).
            if _needs_copy(model, li, users):
                bufs.append(Buffer(f"tmp{layer.inputs[0]}", x.nbytes, ie, ie, layer=li))
        elif lean and layer.op not in (*WEIGHTED_OPS, *POOL_OPS):
            pass  # ADD / RESHAPE pass int8 bytes on, the loss writes the SOFTMAX's: no scratch
        elif passes and not pool_error_direct(model, li, users):
            # int32 accumulators for the error of this layer's input, before it is
            # rescaled to int8 with a scale chosen from its range.
            bufs.append(Buffer(f"acc{layer.inputs[0]}", 4 * x.num_elements, ie, ie, layer=li))
        if weighted:
            # Channel selection scratch: scores and the kept-channel list.
            n_sel = SELECT_BYTES_PER_CHANNEL * out_channels(model, li)
            bufs.append(Buffer(f"sel{li}", n_sel, bw_step(li, PHASE_SELECT), ie, layer=li))
        wg = weight_gradient_scratch(model, li, lean) if li in trainable else 0
        if lean:
            if wg:
                s = bw_step(li, PHASE_WGRAD)
                bufs.append(Buffer(f"wg{li}", wg, s, s, layer=li))
            if lean_ie and weighted:
                # The input error's chunk scratch, after the weight gradient.
                bufs.append(
                    Buffer(f"ie{li}", lean_input_error_scratch(model, li), ie, ie, layer=li)
                )
            continue
        if passes:
            wg = max(wg, input_error_scratch(model, li))
        if wg:
            # One backward scratch: the weight gradient's transposed error and input rows
            # (int16), then the depthwise input error's gather ring.
            s = bw_step(li)
            bufs.append(Buffer(f"wg{li}", wg, s, s, layer=li))
    return bufs


def step_name(model: Model, step: int, memory: str = "default") -> str:
    """A plan step as text: "fw3" (forward of layer 3), "bw8" (backward of layer 8); in
    the lean plan with its phase, "bw8.mask" / ".select" / ".wgrad" / ".ierr"."""
    n = len(model.layers)
    phase = ""
    if memory == "lean":
        step, f = divmod(step, PHASES)
        phase = "." + ("mask", "select", "wgrad", "ierr")[f] if step >= n else ""
    return f"fw{step}{phase}" if step < n else f"bw{2 * n - 1 - step}{phase}"


def plan_memory(
    model: Model,
    trainable: set[int] | None = None,
    memory: str = "default",
    grad_state: str = "int32",
) -> Plan:
    trainable = set(trainable or ())
    inf = inference_buffers(model)
    scratch = model_scratch(model)
    inf_peak = with_scratch(greedy_plan(inf), scratch)
    tr = training_buffers(model, trainable, memory)
    chunks = grad_rows_buffers(model, trainable, tr, grad_state, memory)
    tr_peak = with_scratch(greedy_plan(tr), scratch) if trainable else 0
    params = sum(params_bytes(model, li, grad_state) for li in trainable)
    return Plan(inf_peak, tr_peak, params, sorted(trainable), inf, tr, memory, grad_state, chunks)


@dataclass
class Fp32Memory:
    arena: int
    params: int
    buffers: list[Buffer] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.arena + self.params


def fp32_training_memory(model: Model, trainable: set[int]) -> Fp32Memory:
    """The fp32 analogue of plan_memory (the default plan), with the same buffers,
    lifetimes and greedy placement:

        arena  = greedy_plan( every activation the fp32 step keeps  (4 B per element)
                            + every error tensor                     (4 B per element) )
                 (no int32 rescale scratch: fp32 errors accumulate in place; no
                 partial-update selection scratch, no int8 kernels' scratch)
        params = sum over trainable layers of fp32_layer_params_bytes
                 (plain SGD: no optimizer state; frozen weights stay in flash, as for fqt)
    """
    bufs = []
    for b in training_buffers(model, set(trainable)):
        # fqt-only scratch is left out: "acc<t>" (int32 accumulators before an error is
        # rescaled to int8; fp32 errors accumulate in place), "sel<l>" (partial-update
        # channel scores and kept list; the fp32 baseline does full updates) and "wg<l>"
        # (the int8 weight-gradient kernels' scratch).
        kind, ti = b.name[:3], b.name[3:]
        if kind in ("acc", "sel") or b.name.startswith("wg"):
            continue
        if kind not in ("act", "err") or not ti.isdigit():
            raise ValueError(f"fp32 analogue: unknown training buffer {b.name}")
        n = 4 * model.tensors[int(ti)].num_elements
        bufs.append(Buffer(b.name, n, b.first, b.last, layer=b.layer))
    arena = greedy_plan(bufs)
    return Fp32Memory(arena, sum(fp32_layer_params_bytes(model, li) for li in trainable), bufs)


def fp32_layer_params_bytes(model: Model, li: int) -> int:
    """fp32 weights + bias in RAM and their fp32 gradients: 4 B each, twice."""
    n_w = model.tensors[model.layers[li].inputs[1]].num_elements
    n_out = out_channels(model, li)
    return 4 * (n_w + n_out) + 4 * (n_w + n_out)


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


BREAKDOWN_KINDS = ("weights", "gradient_state", "kept_activations", "errors", "scratch")


def layer_breakdown(model: Model, plan: Plan) -> list[dict[str, int]]:
    """Per layer, the training bytes by kind: its params-pool weights and gradient state
    (trainable layers), the activations it produces that the backward keeps (the model
    input counts for layer 0), the int8 errors of its output and of the copies it combines
    from (tmp), and its scratch (int32 error sums, channel selection, weight gradient,
    lean input error). These are buffer sizes: the arena places buffers whose lifetimes do
    not overlap in the same bytes, so its peak is below the sum."""
    n = len(model.layers)
    fwd_end = PHASES * n if plan.memory == "lean" else n  # the first backward step
    rows = [dict.fromkeys(BREAKDOWN_KINDS, 0) for _ in model.layers]
    for li in plan.trainable:
        rows[li]["weights"] = weights_ram_bytes(model, li)
        rows[li]["gradient_state"] = gradient_state_bytes(model, li, plan.grad_state)
    for b in plan.training_buffers if plan.trainable else []:
        size = align(b.size)
        if b.kind == "act":
            if b.last >= fwd_end:
                rows[b.layer]["kept_activations"] += size
        elif b.kind in ("err", "tmp"):
            rows[b.layer]["errors"] += size
        else:
            rows[b.layer]["scratch"] += size
    return rows


def layer_table(model: Model, plan: Plan) -> list[dict[str, object]]:
    breakdown = layer_breakdown(model, plan)
    rows = []
    for layer in model.layers:
        li = layer.index
        out = model.tensors[layer.output]
        trainable = li in plan.trainable
        rows.append(
            {
                "layer": li,
                "op": layer.op.name,
                "output_shape": list(out.shape),
                "macs": layer_macs(model, li),
                "weight_bytes": weight_bytes(model, li),
                "activation_bytes": out.nbytes,
                "trainable": trainable,
                "params_ram_bytes": params_bytes(model, li, plan.grad_state) if trainable else 0,
                # weights and biases the update changes (the fp32 analogue's 4 B each)
                "trainable_weights": (
                    model.tensors[layer.inputs[1]].num_elements + out_channels(model, li)
                    if trainable
                    else 0
                ),
                "training_bytes": breakdown[li],
            }
        )
    return rows


def buffer_table(model: Model, plan: Plan) -> list[dict[str, object]]:
    """The training plan's buffers in list order: name, kind, the layer that owns it,
    bytes, arena offset and lifetime (steps and their names, plan.step_name)."""
    return [
        {
            "name": b.name,
            "kind": b.kind,
            "layer": b.layer,
            "bytes": b.size,
            "offset": b.offset,
            "first": b.first,
            "last": b.last,
            "first_step": step_name(model, b.first, plan.memory),
            "last_step": step_name(model, b.last, plan.memory),
        }
        for b in (plan.training_buffers if plan.trainable else plan.inference_buffers)
    ]
