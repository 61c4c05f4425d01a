# The portable core's sources, wing by wing: the one list both the host build (top-level
# CMakeLists.txt) and the Zephyr module (CMakeLists.txt beside this file) compile.
# docs/architecture.md says what each wing holds.
set(FQT_CORE_DIR ${CMAKE_CURRENT_LIST_DIR})
# kernels/: pure math, no model; one file per op family, forward and backward side by side.
set(FQT_KERNEL_SOURCES
  ${FQT_CORE_DIR}/src/kernels/quant.c
  ${FQT_CORE_DIR}/src/kernels/conv2d.c
  ${FQT_CORE_DIR}/src/kernels/depthwise_conv2d.c
  ${FQT_CORE_DIR}/src/kernels/fully_connected.c
  ${FQT_CORE_DIR}/src/kernels/pooling.c
  ${FQT_CORE_DIR}/src/kernels/add.c
  ${FQT_CORE_DIR}/src/kernels/softmax.c
  ${FQT_CORE_DIR}/src/kernels/reshape.c
  ${FQT_CORE_DIR}/src/kernels/activation.c
  ${FQT_CORE_DIR}/src/kernels/error_quant.c
  ${FQT_CORE_DIR}/src/kernels/input_error_exact.c
  ${FQT_CORE_DIR}/src/kernels/input_error_s8.c
)
# The forward wrappers: the portable file, or its CMSIS-NN swap (FQT_CMSIS_NN_SOURCES,
# chosen by the Zephyr module under CONFIG_FQT_CMSIS_NN) - one of the two, never both.
set(FQT_PORTABLE_WRAPPER_SOURCES ${FQT_CORE_DIR}/src/kernels/forward_wrapper.c)
set(FQT_CMSIS_NN_SOURCES ${FQT_CORE_DIR}/src/kernels/cmsis_nn/forward_wrapper.c)
# runtime/: the blob (decode, validation), the memory plan, the layer-to-kernel path, the session.
set(FQT_RUNTIME_SOURCES
  ${FQT_CORE_DIR}/src/runtime/status.c
  ${FQT_CORE_DIR}/src/runtime/crc32.c
  ${FQT_CORE_DIR}/src/runtime/model_decode.c
  ${FQT_CORE_DIR}/src/runtime/model_validate.c
  ${FQT_CORE_DIR}/src/runtime/layer_validate.c
  ${FQT_CORE_DIR}/src/runtime/memory_plan.c
  ${FQT_CORE_DIR}/src/runtime/model_plan.c
  ${FQT_CORE_DIR}/src/runtime/layer_ops.c
  ${FQT_CORE_DIR}/src/runtime/session.c
)
# train/ (docs/training-semantics.md): the trainer and its plan, backward, gradient state,
# update, loss, partial updates, the PRNG, the learning-rate schedule.
set(FQT_TRAIN_SOURCES
  ${FQT_CORE_DIR}/src/train/trainer.c
  ${FQT_CORE_DIR}/src/train/train_plan.c
  ${FQT_CORE_DIR}/src/train/backward.c
  ${FQT_CORE_DIR}/src/train/update.c
  ${FQT_CORE_DIR}/src/train/grad_state.c
  ${FQT_CORE_DIR}/src/train/loss.c
  ${FQT_CORE_DIR}/src/train/partial.c
  ${FQT_CORE_DIR}/src/train/prng.c
  ${FQT_CORE_DIR}/src/train/ranges.c
  ${FQT_CORE_DIR}/src/train/schedule.c
)
# service/ (docs/protocol.md): the dispatcher and its command table, replies and argument
# parsing, the models (A/B halves), the sample store, transfers and the frame codec, the
# jobs, the storage slots (no reply text) and the trainer binding.
set(FQT_SERVICE_SOURCES
  ${FQT_CORE_DIR}/src/service/dispatch.c
  ${FQT_CORE_DIR}/src/service/reply.c
  ${FQT_CORE_DIR}/src/service/models.c
  ${FQT_CORE_DIR}/src/service/samples.c
  ${FQT_CORE_DIR}/src/service/transfer.c
  ${FQT_CORE_DIR}/src/service/frame.c
  ${FQT_CORE_DIR}/src/service/jobs.c
  ${FQT_CORE_DIR}/src/service/slots.c
  ${FQT_CORE_DIR}/src/service/service_trainer.c
)
# Everything but the forward wrappers, which each build picks.
set(FQT_CORE_COMMON_SOURCES ${FQT_KERNEL_SOURCES} ${FQT_RUNTIME_SOURCES} ${FQT_TRAIN_SOURCES}
                            ${FQT_SERVICE_SOURCES})
# The portable core.
set(FQT_CORE_SOURCES ${FQT_CORE_COMMON_SOURCES} ${FQT_PORTABLE_WRAPPER_SOURCES})
# Public headers (#include "fqt/fqt.h") and the core's private ones (#include "kernels/...").
set(FQT_CORE_INCLUDE_DIRS ${FQT_CORE_DIR}/include)
set(FQT_CORE_PRIVATE_INCLUDE_DIRS ${FQT_CORE_DIR}/src)
