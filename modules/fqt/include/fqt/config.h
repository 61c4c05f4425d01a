/*
 * Build-time limits of the fqt engine.
 *
 * Every limit can be overridden with a compiler definition (-DFQT_MAX_LAYERS=...) or,
 * under Zephyr, with the matching Kconfig option (CONFIG_FQT_MAX_LAYERS,
 * CONFIG_FQT_SIMD, ...). The library and every file using its structs must be built
 * with the same values.
 */
#ifndef FQT_CONFIG_H_
#define FQT_CONFIG_H_

#if !defined(FQT_MAX_TENSORS) && defined(CONFIG_FQT_MAX_TENSORS)
#define FQT_MAX_TENSORS CONFIG_FQT_MAX_TENSORS
#endif
#if !defined(FQT_MAX_LAYERS) && defined(CONFIG_FQT_MAX_LAYERS)
#define FQT_MAX_LAYERS CONFIG_FQT_MAX_LAYERS
#endif
#if !defined(FQT_MAX_TENSOR_BYTES) && defined(CONFIG_FQT_MAX_TENSOR_BYTES)
#define FQT_MAX_TENSOR_BYTES ((unsigned)CONFIG_FQT_MAX_TENSOR_BYTES)
#endif
#if !defined(FQT_TRAIN_MAX_TRAINABLE) && defined(CONFIG_FQT_TRAIN_MAX_TRAINABLE)
#define FQT_TRAIN_MAX_TRAINABLE CONFIG_FQT_TRAIN_MAX_TRAINABLE
#endif
#if !defined(FQT_ERROR_MESSAGE_SIZE) && defined(CONFIG_FQT_ERROR_MESSAGE_SIZE)
#define FQT_ERROR_MESSAGE_SIZE CONFIG_FQT_ERROR_MESSAGE_SIZE
#endif
#if !defined(FQT_FRAME_MAX_PAYLOAD) && defined(CONFIG_FQT_FRAME_MAX_PAYLOAD)
#define FQT_FRAME_MAX_PAYLOAD ((unsigned)CONFIG_FQT_FRAME_MAX_PAYLOAD)
#endif
/* Kconfig FQT_SIMD is a bool: defined (1) when chosen, absent otherwise. */
#if !defined(FQT_USE_SIMD) && defined(CONFIG_FQT)
#if defined(CONFIG_FQT_SIMD) && CONFIG_FQT_SIMD
#define FQT_USE_SIMD 1
#else
#define FQT_USE_SIMD 0
#endif
#endif

/* Tensors and layers a blob may declare. The model struct holds one plan buffer per
 * layer (16 bytes each), so FQT_MAX_LAYERS is what costs RAM. */
#ifndef FQT_MAX_TENSORS
#define FQT_MAX_TENSORS 1024
#endif
#ifndef FQT_MAX_LAYERS
#define FQT_MAX_LAYERS 64
#endif

/* Largest tensor, in bytes. Bounding it keeps every element index and every arena
 * offset well inside 32 bits, whatever a blob claims. */
#ifndef FQT_MAX_TENSOR_BYTES
#define FQT_MAX_TENSOR_BYTES (16u * 1024u * 1024u)
#endif

/* Longest multiply-accumulate chain of one output (conv: kh*kw*in_ch, fc: in). With
 * |filter * (input - zp)| <= 128 * 255 the int32 accumulator cannot overflow below this. */
#define FQT_MAX_ACCUM_DEPTH 65536

/* Longest softmax row: 4095 terms of at most 2^19 keep the Q12 sum of exponentials in
 * int32 (TFLM has the same limit implicitly). */
#define FQT_SOFTMAX_MAX_DEPTH 4095

/* Layers one trainer trains at once: sizes its per-trainable-layer table. */
#ifndef FQT_TRAIN_MAX_TRAINABLE
#define FQT_TRAIN_MAX_TRAINABLE 16
#endif

/* Largest payload of one protocol frame (docs/protocol.md), in bytes. */
#ifndef FQT_FRAME_MAX_PAYLOAD
#define FQT_FRAME_MAX_PAYLOAD 128u
#endif

/* Room for the one-line message the loader writes on failure. */
#ifndef FQT_ERROR_MESSAGE_SIZE
#define FQT_ERROR_MESSAGE_SIZE 96
#endif

/* Cortex-M4/M7 (and other cores with the DSP extension): dual 16-bit MACs (SMLAD) in
 * the conv and fully-connected inner loops. Results are identical either way. */
#ifndef FQT_USE_SIMD
#define FQT_USE_SIMD 1
#endif
#if FQT_USE_SIMD && defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define FQT_SIMD_DSP 1
#else
#define FQT_SIMD_DSP 0
#endif

#endif /* FQT_CONFIG_H_ */
