"""The C engine (libfqt.so, the host build of the portable core) from Python, via ctypes.

No compiler is needed at install time: the library is built by CMake and found through
$FQT_NATIVE_LIB, else in the package's fqt/_native/ folder (fqt.resources documents the
lookup and the build and install step that fills the folder).

    from fqt.blob import write_blob
    from fqt.prepare import prepare
    from fqt.tflite_import import load_tflite

    model = load_tflite("model.tflite")
    prepare(model)
    engine = NativeEngine(write_blob(model))
    y = engine.infer(x_int8)
"""

from __future__ import annotations

import ctypes
from pathlib import Path

import numpy as np

from .errors import BlobFormatError, FqtError
from .resources import missing_binary, native_library_path

# fqt_status (modules/fqt/include/fqt/status.h)
FQT_OK = 0
FQT_ERR_ARENA_TOO_SMALL = 5
FQT_ERR_STATE = 6

_ERROR_BUFFER_SIZE = 512  # >= FQT_ERROR_MESSAGE_SIZE of any sensible build
_TENSOR_FLAG_CONSTANT = 1
_DTYPE_INT32 = 2


class NativeEngineError(FqtError):
    """The C engine refused a call (its fqt_status, as text)."""


class _ModelHead(ctypes.Structure):
    """The leading fields of struct fqt_model (the rest is the plan, read through calls)."""

    _fields_ = [
        ("blob", ctypes.c_void_p),
        ("blob_size", ctypes.c_uint32),
        ("tensor_table", ctypes.c_void_p),
        ("layer_table", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("data_size", ctypes.c_uint32),
        ("crc32", ctypes.c_uint32),
        ("version_minor", ctypes.c_uint16),
        ("tensor_count", ctypes.c_uint16),
        ("layer_count", ctypes.c_uint16),
        ("input_tensor", ctypes.c_uint16),
        ("output_tensor", ctypes.c_uint16),
        ("flags", ctypes.c_uint16),
        ("name", ctypes.c_char * 17),
    ]


class _Tensor(ctypes.Structure):
    """struct fqt_tensor."""

    _fields_ = [
        ("dtype", ctypes.c_uint8),
        ("rank", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("quant_axis", ctypes.c_uint8),
        ("shape", ctypes.c_int32 * 4),
        ("element_count", ctypes.c_uint32),
        ("byte_size", ctypes.c_uint32),
        ("quant_count", ctypes.c_uint32),
        ("scales", ctypes.c_void_p),
        ("zero_points", ctypes.c_void_p),
        ("data", ctypes.c_void_p),
        ("tflite_index", ctypes.c_int32),
    ]


class _Layer(ctypes.Structure):
    """struct fqt_layer."""

    _fields_ = [
        ("op", ctypes.c_uint8),
        ("activation", ctypes.c_uint8),
        ("padding", ctypes.c_uint8),
        ("flags", ctypes.c_uint8),
        ("input", ctypes.c_int16 * 3),
        ("output", ctypes.c_int16),
        ("stride_h", ctypes.c_int16),
        ("stride_w", ctypes.c_int16),
        ("filter_h", ctypes.c_int16),
        ("filter_w", ctypes.c_int16),
        ("dilation_h", ctypes.c_int16),
        ("dilation_w", ctypes.c_int16),
        ("depth_multiplier", ctypes.c_int16),
        ("pad_h", ctypes.c_int16),
        ("pad_w", ctypes.c_int16),
        ("act_min", ctypes.c_int32),
        ("act_max", ctypes.c_int32),
        ("channel_count", ctypes.c_uint32),
        ("multiplier", ctypes.c_void_p),
        ("shift", ctypes.c_void_p),
        ("extras", ctypes.c_int32 * 7),
    ]


_P = ctypes.c_void_p
_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "fqt_status_str": (ctypes.c_char_p, [ctypes.c_int]),
    "fqt_model_struct_size": (ctypes.c_size_t, []),
    "fqt_session_struct_size": (ctypes.c_size_t, []),
    "fqt_model_load": (ctypes.c_int, [_P, _P, ctypes.c_size_t, _P]),
    "fqt_model_inference_arena_size": (ctypes.c_size_t, [_P]),
    "fqt_model_tensor": (ctypes.c_int, [_P, ctypes.c_uint32, ctypes.POINTER(_Tensor)]),
    "fqt_model_layer": (ctypes.c_int, [_P, ctypes.c_uint32, ctypes.POINTER(_Layer)]),
    "fqt_model_layer_macs": (ctypes.c_uint64, [_P, ctypes.c_uint32]),
    "fqt_crc32": (ctypes.c_uint32, [ctypes.c_uint32, _P, ctypes.c_size_t]),
    "fqt_session_create": (
        ctypes.c_int,
        [_P, _P, _P, ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)],
    ),
    "fqt_session_set_input": (ctypes.c_int, [_P, _P, ctypes.c_size_t]),
    "fqt_session_run": (ctypes.c_int, [_P]),
    "fqt_session_run_layers": (ctypes.c_int, [_P, ctypes.c_uint32, ctypes.c_uint32]),
    "fqt_session_output": (
        ctypes.c_int,
        [_P, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)],
    ),
    "fqt_session_tensor": (
        ctypes.c_int,
        [_P, ctypes.c_uint32, ctypes.POINTER(ctypes.c_void_p), ctypes.POINTER(ctypes.c_size_t)],
    ),
    "fqt_session_macs": (ctypes.c_uint64, [_P]),
    "fqt_session_reset_macs": (None, [_P]),
}

_loaded: dict[str, ctypes.CDLL] = {}


def library_path() -> Path:
    """Where libfqt.so is looked for: $FQT_NATIVE_LIB, else fqt/_native/libfqt.so
    (fqt.resources.native_library_path)."""
    return native_library_path()


def load_library(path: str | Path | None = None) -> ctypes.CDLL:
    """Open libfqt.so (`path`, else library_path()) once per path and declare the C
    signatures."""
    p = Path(path) if path is not None else library_path()
    key = str(p.resolve()) if p.exists() else str(p)
    if key in _loaded:
        return _loaded[key]
    if not p.exists():
        raise missing_binary(p, "the C engine library")
    lib = ctypes.CDLL(str(p))
    for name, (restype, argtypes) in _SIGNATURES.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    _loaded[key] = lib
    return lib


def _aligned_zeros(nbytes: int, align: int = 16) -> tuple[np.ndarray, int]:
    """A zeroed uint8 buffer of nbytes whose data address is a multiple of align."""
    raw = np.zeros(nbytes + align, np.uint8)
    start = (-raw.ctypes.data) % align
    view = raw[start : start + nbytes]
    return view, view.ctypes.data


class NativeEngine:
    """A model blob loaded into the C engine, with one session in a numpy arena.

    Raises fqt.errors.BlobFormatError, carrying the C loader's message, if the blob is
    rejected. `arena_size` defaults to exactly what the model needs; a smaller one makes
    the session fail with the shortfall in bytes.
    """

    def __init__(
        self,
        blob: bytes,
        *,
        arena_size: int | None = None,
        library: str | Path | None = None,
    ) -> None:
        self._lib = load_library(library)
        lib = self._lib
        # The engine reads the blob in place: keep an aligned private copy alive.
        self._blob, blob_ptr = _aligned_zeros(max(len(blob), 1))
        self._blob[: len(blob)] = np.frombuffer(blob, np.uint8)
        self._model, self._model_ptr = _aligned_zeros(lib.fqt_model_struct_size())
        err = ctypes.create_string_buffer(_ERROR_BUFFER_SIZE)
        status = lib.fqt_model_load(self._model_ptr, blob_ptr, len(blob), err)
        if status != FQT_OK:
            raise BlobFormatError(f"{self._status_text(status)}: {err.value.decode()}")
        self._head = _ModelHead.from_address(self._model_ptr)
        self.required_arena_size = int(lib.fqt_model_inference_arena_size(self._model_ptr))
        size = self.required_arena_size if arena_size is None else int(arena_size)
        self._arena, arena_ptr = _aligned_zeros(max(size, 1))
        self._session, self._session_ptr = _aligned_zeros(lib.fqt_session_struct_size())
        shortfall = ctypes.c_size_t(0)
        status = lib.fqt_session_create(
            self._session_ptr, self._model_ptr, arena_ptr, size, ctypes.byref(shortfall)
        )
        if status == FQT_ERR_ARENA_TOO_SMALL:
            raise NativeEngineError(
                f"arena of {size} bytes is {shortfall.value} bytes short "
                f"(the model needs {self.required_arena_size})"
            )
        self._check(status, "fqt_session_create")
        self.arena_size = size
        self._tensors = [self._tensor_info(i) for i in range(self._head.tensor_count)]
        self._layers = [self._layer_info(i) for i in range(self._head.layer_count)]
        self._last_input: np.ndarray | None = None

    # --- helpers ------------------------------------------------------------------------
    def _status_text(self, status: int) -> str:
        return self._lib.fqt_status_str(status).decode()

    def _check(self, status: int, what: str) -> None:
        if status != FQT_OK:
            raise NativeEngineError(f"{what}: {self._status_text(status)}")

    def _tensor_info(self, index: int) -> _Tensor:
        t = _Tensor()
        self._check(self._lib.fqt_model_tensor(self._model_ptr, index, ctypes.byref(t)),
                    "fqt_model_tensor")  # fmt: skip
        return t

    def _layer_info(self, index: int) -> _Layer:
        layer = _Layer()
        self._check(self._lib.fqt_model_layer(self._model_ptr, index, ctypes.byref(layer)),
                    "fqt_model_layer")  # fmt: skip
        return layer

    def _shape(self, index: int) -> tuple[int, ...]:
        t = self._tensors[index]
        return tuple(int(d) for d in t.shape[: t.rank])

    # --- model facts ----------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self._head.name.decode("ascii", "replace")

    @property
    def input_index(self) -> int:
        return int(self._head.input_tensor)

    @property
    def output_index(self) -> int:
        return int(self._head.output_tensor)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self._shape(self.input_index)

    @property
    def output_shape(self) -> tuple[int, ...]:
        return self._shape(self.output_index)

    @property
    def layer_count(self) -> int:
        return int(self._head.layer_count)

    @property
    def tensor_count(self) -> int:
        return int(self._head.tensor_count)

    def layer_macs(self, layer: int) -> int:
        return int(self._lib.fqt_model_layer_macs(self._model_ptr, layer))

    @property
    def macs(self) -> int:
        """Multiply-accumulates the session has run (all inferences so far)."""
        return int(self._lib.fqt_session_macs(self._session_ptr))

    def reset_macs(self) -> None:
        self._lib.fqt_session_reset_macs(self._session_ptr)

    # --- running --------------------------------------------------------------------------
    def _set_input(self, x: np.ndarray) -> None:
        x = np.ascontiguousarray(x)
        if x.dtype != np.int8:
            raise TypeError(f"input must be int8, got {x.dtype}")
        n = int(self._tensors[self.input_index].byte_size)
        if x.size != n:
            raise ValueError(f"input has {x.size} elements, the model takes {n}")
        self._check(self._lib.fqt_session_set_input(self._session_ptr, x.ctypes.data, n),
                    "fqt_session_set_input")  # fmt: skip
        self._last_input = x.reshape(-1).copy()

    def _read(self, index: int) -> np.ndarray:
        ptr = ctypes.c_void_p()
        size = ctypes.c_size_t()
        status = self._lib.fqt_session_tensor(
            self._session_ptr, index, ctypes.byref(ptr), ctypes.byref(size)
        )
        self._check(status, f"fqt_session_tensor({index})")
        t = self._tensors[index]
        dtype = np.dtype("<i4") if t.dtype == _DTYPE_INT32 else np.dtype(np.int8)
        raw = ctypes.string_at(ptr.value, size.value) if size.value else b""
        return np.frombuffer(raw, dtype).reshape(self._shape(index)).copy()

    def infer(self, x: np.ndarray) -> np.ndarray:
        """One int8 input (any shape with the input's element count) -> the int8 output,
        shaped like the model's output tensor."""
        self._set_input(x)
        self._check(self._lib.fqt_session_run(self._session_ptr), "fqt_session_run")
        return self._read(self.output_index)

    def infer_batch(self, xs: np.ndarray) -> np.ndarray:
        """Inputs stacked on the first axis -> outputs stacked on the first axis."""
        xs = np.asarray(xs)
        outs = [self.infer(x) for x in xs]
        if not outs:
            return np.zeros((0, *self.output_shape), np.int8)
        return np.stack(outs)

    def tensor(self, index: int) -> np.ndarray:
        """Tensor `index` for the last input: a constant, the input, or a layer's output
        (the layers are re-run up to the one writing it, since later layers may reuse its
        arena bytes; those re-runs count in `macs`)."""
        if not 0 <= index < self.tensor_count:
            raise IndexError(f"tensor {index} out of range (0..{self.tensor_count - 1})")
        if self._tensors[index].flags & _TENSOR_FLAG_CONSTANT:
            return self._read(index)
        if self._last_input is None:
            raise NativeEngineError("no input yet: call infer() first")
        if index == self.input_index:
            return self._last_input.reshape(self._shape(index)).copy()
        producer = next((i for i, lay in enumerate(self._layers) if lay.output == index), None)
        if producer is None:
            raise NativeEngineError(f"tensor {index} is written by no layer")
        self._set_input(self._last_input)
        status = self._lib.fqt_session_run_layers(self._session_ptr, 0, producer + 1)
        self._check(status, "fqt_session_run_layers")
        return self._read(index)

    def layer_output(self, layer: int) -> np.ndarray:
        """The output of layer `layer` for the last input."""
        return self.tensor(int(self._layers[layer].output))

    def crc32(self, data: bytes) -> int:
        """The engine's CRC-32 (zlib-compatible)."""
        buf = ctypes.create_string_buffer(data, len(data))
        return int(self._lib.fqt_crc32(0, buf, len(data)))


# --- training (modules/fqt/include/fqt/trainer.h) ----------------------------------------


class _TrainOptions(ctypes.Structure):
    """struct fqt_train_options."""

    _fields_ = [
        ("lr", ctypes.c_float),
        ("alpha_norm", ctypes.c_float),
        ("batch", ctypes.c_uint32),
        ("lambda_q15", ctypes.c_int32),
        ("seed", ctypes.c_uint32),
        ("stochastic_rounding", ctypes.c_uint8),
        ("fixed_error_scaling", ctypes.c_uint8),
        ("center", ctypes.c_uint8),
        ("clip_mask", ctypes.c_uint8),
        ("update_rule", ctypes.c_uint8),
        ("loss", ctypes.c_uint8),
        ("learn_ranges", ctypes.c_uint8),
        ("partial_fixed", ctypes.c_uint8),
        ("keep_classifier", ctypes.c_uint8),
        ("lean_memory", ctypes.c_uint8),
        ("grad_state", ctypes.c_uint8),
        ("grad_nearest", ctypes.c_uint8),
        ("phase_hook", ctypes.c_void_p),  # fqt_train_phase_hook, NULL here
        ("phase_ctx", ctypes.c_void_p),
    ]


class _TrainCounters(ctypes.Structure):
    _fields_ = [
        ("samples", ctypes.c_uint64),
        ("updates", ctypes.c_uint64),
        ("forward_macs", ctypes.c_uint64),
        ("backward_macs", ctypes.c_uint64),
        ("backward_macs_full", ctypes.c_uint64),
    ]


class _LrSchedule(ctypes.Structure):
    """struct fqt_lr_schedule (include/fqt/trainer.h)."""

    _fields_ = [
        ("lr", ctypes.c_float),
        ("kind", ctypes.c_uint8),
        ("warmup_epochs", ctypes.c_uint32),
        ("step_epochs", ctypes.c_uint32),
        ("step_gamma", ctypes.c_float),
    ]


SCHEDULE_KINDS = {"constant": 0, "cosine": 1, "step": 2}  # FQT_SCHEDULE_*


_SZ = ctypes.POINTER(ctypes.c_size_t)
_U32 = ctypes.POINTER(ctypes.c_uint32)
_TRAIN_SIGNATURES: dict[str, tuple[object, list[object]]] = {
    "fqt_trainer_struct_size": (ctypes.c_size_t, []),
    "fqt_trainer_memory": (ctypes.c_int, [_P, _P, ctypes.c_uint64, _SZ, _SZ]),
    "fqt_trainer_memory_with": (
        ctypes.c_int,
        [_P, _P, ctypes.c_uint64, ctypes.POINTER(_TrainOptions), _SZ, _SZ],
    ),
    "fqt_train_options_default": (None, [ctypes.POINTER(_TrainOptions)]),
    "fqt_trainer_init": (
        ctypes.c_int,
        [_P, _P, _P, ctypes.c_size_t, ctypes.c_uint64, ctypes.POINTER(_TrainOptions)],
    ),
    "fqt_trainer_attach_blob": (ctypes.c_int, [_P, _P, _P]),
    "fqt_trainer_step": (ctypes.c_int, [_P, _P, ctypes.c_uint32, _U32, _U32]),
    "fqt_trainer_flush": (ctypes.c_int, [_P]),
    "fqt_trainer_set_lr": (ctypes.c_int, [_P, ctypes.c_float]),
    "fqt_trainer_step_target": (ctypes.c_int, [_P, _P, _P, _U32]),
    "fqt_trainer_counters": (None, [_P, ctypes.POINTER(_TrainCounters)]),
    "fqt_scheduled_lr": (
        ctypes.c_float,
        [ctypes.POINTER(_LrSchedule), ctypes.c_uint32, ctypes.c_uint32],
    ),
}


def _train_library(library: str | Path | None = None) -> ctypes.CDLL:
    lib = load_library(library)
    if not getattr(lib, "_fqt_train_declared", False):
        for name, (restype, argtypes) in _TRAIN_SIGNATURES.items():
            fn = getattr(lib, name)
            fn.restype = restype
            fn.argtypes = argtypes
        lib._fqt_train_declared = True
    return lib


# TrainConfig.grad_state -> fqt_train_options.grad_state (FQT_GRAD_STATE_*)
GRAD_STATE_CODES = {"int32": 0, "int16": 1, "int8": 2}


def training_memory(
    blob: bytes, trainable: set[int], library=None, memory: str = "default",
    grad_state: str = "int32",
) -> tuple[int, int]:  # fmt: skip
    """(arena bytes, params bytes) the C trainer needs for `trainable` (layer indices) with
    the memory plan `memory` (plan.MEMORY_PLANS) and the gradient state `grad_state`."""
    lib = _train_library(library)
    eng = NativeEngine(blob, library=library)
    _keep, ptr = _aligned_zeros(lib.fqt_trainer_struct_size())  # alive across the call
    arena, params = ctypes.c_size_t(), ctypes.c_size_t()
    mask = sum(1 << li for li in trainable)
    opt = _TrainOptions()
    lib.fqt_train_options_default(ctypes.byref(opt))
    opt.lean_memory = int(memory == "lean")
    opt.grad_state = GRAD_STATE_CODES[grad_state]
    status = lib.fqt_trainer_memory_with(
        ptr, eng._model_ptr, mask, ctypes.byref(opt), ctypes.byref(arena), ctypes.byref(params)
    )
    eng._check(status, "fqt_trainer_memory")
    return int(arena.value), int(params.value)


def scheduled_lr(
    lr: float, schedule: str, epoch: int, epochs: int,
    warmup: int = 0, step_epochs: int = 0, step_gamma: float = 0.1, library=None,
) -> float:  # fmt: skip
    """fqt_scheduled_lr (train/schedule.c): the device's lr of an epoch, golden/schedule.py's
    twin."""
    lib = _train_library(library)
    s = _LrSchedule(lr, SCHEDULE_KINDS[schedule], warmup, step_epochs, step_gamma)
    return float(lib.fqt_scheduled_lr(ctypes.byref(s), epoch, epochs))


class NativeTrainer:
    """The C trainer (src/trainer.c) with golden/trainer.py's API: train_step, flush,
    evaluate, run_epochs, counters, and `model` (the trained model, read back from the
    blob the engine updates in place)."""

    def __init__(self, model, trainable: set[int] | None = None, config=None, *, library=None):
        from .blob import write_blob
        from .golden.partial import lambda_q15
        from .golden.trainer import Counters, TrainConfig, resolve_trainable

        self.config = config or TrainConfig()
        self.config.check()
        self.trainable = resolve_trainable(model, trainable)
        self.mse = self.config.loss == "mse"
        if self.mse and model.layers[-1].op.name == "SOFTMAX":
            raise ValueError("the mse loss needs a model without a final SOFTMAX")
        if self.config.error_scaling not in ("dynamic", "fixed"):
            raise ValueError(f"unknown error scaling {self.config.error_scaling!r}")
        self._lib = _train_library(library)
        lib = self._lib
        blob = write_blob(model, set(self.trainable))
        memory = getattr(self.config, "memory", "default")
        self.arena_bytes, self.params_bytes = training_memory(
            blob, set(self.trainable), library, memory, self.config.grad_state
        )
        probe = NativeEngine(blob, library=library)
        self.engine = NativeEngine(
            blob, arena_size=max(probe.required_arena_size, self.arena_bytes), library=library
        )
        self._blob_len = len(blob)
        self._trainer, self._trainer_ptr = _aligned_zeros(lib.fqt_trainer_struct_size())
        self._params, params_ptr = _aligned_zeros(max(self.params_bytes, 1))
        c = self.config
        opt = _TrainOptions(
            lr=float(c.lr),
            alpha_norm=float(c.alpha_norm),
            batch=int(c.batch),
            lambda_q15=lambda_q15(c.lambda_min),
            seed=int(c.seed) & 0xFFFFFFFF,
            stochastic_rounding=int(bool(c.stochastic_rounding)),
            fixed_error_scaling=int(c.error_scaling == "fixed"),
            center=int(bool(c.center)),
            clip_mask=int(bool(c.clip_mask)),
            update_rule=int(c.update_rule == "sgd"),
            loss=int(self.mse),
            learn_ranges=int(bool(getattr(c, "learn_ranges", False))),
            partial_fixed=int(c.partial_mode == "fixed"),
            keep_classifier=int(bool(c.keep_classifier)),
            lean_memory=int(memory == "lean"),
            grad_state=GRAD_STATE_CODES[c.grad_state],
            grad_nearest=int(c.grad_rounding == "nearest"),
        )
        self._mask = sum(1 << li for li in self.trainable)
        eng = self.engine
        eng._check(
            lib.fqt_trainer_init(
                self._trainer_ptr, eng._session_ptr, params_ptr, self.params_bytes,
                self._mask, ctypes.byref(opt),
            ),
            "fqt_trainer_init",
        )  # fmt: skip
        eng._check(
            lib.fqt_trainer_attach_blob(self._trainer_ptr, eng._model_ptr, eng._blob.ctypes.data),
            "fqt_trainer_attach_blob",
        )
        self._softmax_at_end = model.layers[-1].op.name == "SOFTMAX"
        self._sm = None
        if not self._softmax_at_end:
            from .prepare import SOFTMAX_SCALED_DIFF_INTEGER_BITS as IB
            from .quant import calculate_input_radius, preprocess_softmax_scaling

            s_out = float(model.output_tensor.quant.scale[0])
            m, s = preprocess_softmax_scaling(1.0, s_out, IB)
            self._sm = (m, s, -calculate_input_radius(IB, s))
        self._counters_cls = Counters

    # --- state ------------------------------------------------------------------------
    @property
    def blob(self) -> bytes:
        """The engine's blob with the trained parameters (CRC refreshed)."""
        return bytes(self.engine._blob[: self._blob_len])

    @property
    def model(self):
        from .blob import read_blob

        return read_blob(self.blob)[0]

    @property
    def counters(self):
        raw = _TrainCounters()
        self._lib.fqt_trainer_counters(self._trainer_ptr, ctypes.byref(raw))
        return self._counters_cls(
            int(raw.samples), int(raw.updates), int(raw.forward_macs),
            int(raw.backward_macs), int(raw.backward_macs_full),
        )  # fmt: skip

    # --- training -----------------------------------------------------------------------
    def train_step(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Samples in order (the update runs every `batch` samples): per-sample reported
        loss and predicted class."""
        xs = np.asarray(x)
        n_in = int(self.engine._tensors[self.engine.input_index].byte_size)
        xs = np.ascontiguousarray(xs.reshape(-1, n_in), dtype=np.int8)
        losses = np.zeros(len(xs))
        preds = np.zeros(len(xs), np.int64)
        loss, pred = ctypes.c_uint32(), ctypes.c_uint32()
        if self.mse:
            ts = np.ascontiguousarray(np.asarray(y).astype(np.int8).reshape(len(xs), -1))
            for i in range(len(xs)):
                status = self._lib.fqt_trainer_step_target(
                    self._trainer_ptr, xs[i].ctypes.data, ts[i].ctypes.data, ctypes.byref(loss)
                )
                self.engine._check(status, "fqt_trainer_step_target")
                losses[i] = loss.value / 1e6
            return losses, preds
        ys = np.asarray(y, np.int64).reshape(-1)
        for i in range(len(xs)):
            status = self._lib.fqt_trainer_step(
                self._trainer_ptr, xs[i].ctypes.data, int(ys[i]), ctypes.byref(loss),
                ctypes.byref(pred),
            )  # fmt: skip
            self.engine._check(status, "fqt_trainer_step")
            losses[i] = loss.value / 1e6
            preds[i] = pred.value
        return losses, preds

    def flush(self) -> None:
        self.engine._check(self._lib.fqt_trainer_flush(self._trainer_ptr), "fqt_trainer_flush")

    def set_lr(self, lr: float) -> None:
        self.engine._check(self._lib.fqt_trainer_set_lr(self._trainer_ptr, float(lr)), "set_lr")

    def snapshot(self) -> object:
        """The blob as it is now (trained tensors, scales, multipliers, CRC)."""
        return self.engine._blob[: self._blob_len].copy()

    def restore(self, snap: object) -> None:
        """Put a snapshot's blob back: inference, `blob` and `model` see it (the trainer's
        own copies are not rewound: call at the end of training)."""
        self.engine._blob[: self._blob_len] = snap  # type: ignore[index]

    def probabilities(self, xs: np.ndarray) -> np.ndarray:
        out = self.engine.infer_batch(np.asarray(xs, np.int8))
        out = out.reshape(len(out), -1)
        if self._sm is None:
            return out
        from .golden.softmax import softmax_forward

        if getattr(self.config, "learn_ranges", False):  # the output range may have moved
            from .prepare import SOFTMAX_SCALED_DIFF_INTEGER_BITS as IB
            from .quant import calculate_input_radius, preprocess_softmax_scaling

            sm, ss = preprocess_softmax_scaling(
                1.0, float(self.model.output_tensor.quant.scale[0]), IB
            )
            self._sm = (sm, ss, -calculate_input_radius(IB, ss))
        m, s, dmin = self._sm
        return softmax_forward(out, input_multiplier=m, input_left_shift=s, diff_min=dmin)

    def reconstruction_error(self, xs: np.ndarray, ts: np.ndarray) -> np.ndarray:
        from .golden.loss import squared_error

        out = self.engine.infer_batch(np.asarray(xs, np.int8)).reshape(len(xs), -1)
        t = np.asarray(ts).astype(np.int8).reshape(len(out), -1)
        return squared_error(out, t, float(self.model.output_tensor.quant.scale[0]))

    def evaluate(self, xs: np.ndarray, ys: np.ndarray) -> tuple[float, float]:
        from .golden.loss import cross_entropy

        if self.mse:
            return float("nan"), float(np.mean(self.reconstruction_error(xs, ys)))

        p = self.probabilities(xs)
        ys = np.asarray(ys, np.int64).reshape(-1)
        return float(np.mean(p.argmax(axis=1) == ys)), float(np.mean(cross_entropy(p, ys)))

    def run_epochs(
        self, xs, ys, epochs, *, val=None, shuffle=True, callback=None, keep_best=False,
        patience=0, every=0, on_chunk=None,
    ):  # fmt: skip
        from .golden.trainer import run_epochs

        return run_epochs(self, xs, ys, epochs, val=val, shuffle=shuffle, callback=callback,
                          keep_best=keep_best, patience=patience, every=every,
                          on_chunk=on_chunk)  # fmt: skip


def train(model, xs, ys, *, epochs, trainable=None, config=None, val=None):
    """fqt.golden.trainer.train on the C engine."""
    t = NativeTrainer(model, trainable, config)
    return t, t.run_epochs(xs, ys, epochs, val=val)
