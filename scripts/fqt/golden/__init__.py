"""The golden model: numpy integer arithmetic, the bit-exact reference for TFLM and the C
engine. It mirrors the C core (modules/fqt/src/) file for file:

    golden/                 modules/fqt/src/
    conv2d.py               kernels/conv2d.c
    depthwise_conv2d.py     kernels/depthwise_conv2d.c
    fully_connected.py      kernels/fully_connected.c
    pooling.py              kernels/pooling.c
    add.py                  kernels/add.c
    softmax.py              kernels/softmax.c
    reshape.py              kernels/reshape.c
    activation.py           kernels/activation.c
    error_quant.py          kernels/error_quant.c
    layer_ops.py            runtime/layer_ops.c (a layer to its forward kernel)
    interpreter.py          runtime/session.c (inference)
    trainer.py              train/trainer.c
    backward.py             train/backward.c
    update.py               train/update.c
    grad_state.py           train/grad_state.c (the int16 / int8 gradient state)
    loss.py                 train/loss.c
    partial.py              train/partial.c
    prng.py                 train/prng.c
    common.py               (none: the exact matmul, requantization, padding, windows and
                            col2im the C kernels inline)

kernels/quant.c's twin is fqt/quant.py and train/train_plan.c's is fqt/plan.py; the exact
input-error path of kernels/input_error_exact.c is what the golden backward kernels always
compute.
"""
