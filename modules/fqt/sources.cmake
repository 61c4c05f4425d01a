# The portable core's sources: the one list both the host build (top-level
# CMakeLists.txt) and the Zephyr module (CMakeLists.txt beside this file) compile.
set(FQT_CORE_DIR ${CMAKE_CURRENT_LIST_DIR})
set(FQT_CORE_SOURCES
  ${FQT_CORE_DIR}/src/status.c
  ${FQT_CORE_DIR}/src/crc32.c
  ${FQT_CORE_DIR}/src/quant.c
  ${FQT_CORE_DIR}/src/model_loader.c
  ${FQT_CORE_DIR}/src/memory_plan.c
  ${FQT_CORE_DIR}/src/session.c
  ${FQT_CORE_DIR}/src/conv2d.c
  ${FQT_CORE_DIR}/src/depthwise_conv2d.c
  ${FQT_CORE_DIR}/src/fully_connected.c
  ${FQT_CORE_DIR}/src/pooling.c
  ${FQT_CORE_DIR}/src/add.c
  ${FQT_CORE_DIR}/src/softmax.c
  ${FQT_CORE_DIR}/src/reshape.c
  # Training (docs/training-semantics.md): loss, PRNG, partial updates, the trainer.
  ${FQT_CORE_DIR}/src/loss.c
  ${FQT_CORE_DIR}/src/prng.c
  ${FQT_CORE_DIR}/src/partial.c
  ${FQT_CORE_DIR}/src/trainer.c
  # The device service (shell commands, data frames, save/restore): src/service/.
  ${FQT_CORE_DIR}/src/service/frame.c
  ${FQT_CORE_DIR}/src/service/service.c
  ${FQT_CORE_DIR}/src/service/slots.c
  ${FQT_CORE_DIR}/src/service/service_trainer.c
)
# Public headers (#include "fqt/fqt.h") and the core's private ones.
set(FQT_CORE_INCLUDE_DIRS ${FQT_CORE_DIR}/include)
set(FQT_CORE_PRIVATE_INCLUDE_DIRS ${FQT_CORE_DIR}/src)
