"""The `fqt` commands, one module per family; each command is an add_*_arguments/run_*
pair that fqt.cli lists in its COMMANDS table (and the west commands wrap).

    model.py    import, infer          a .tflite into a blob and a memory plan; inference
    train.py    train                  host training (golden or native engine)
    device.py   push, train-device,    the board, or the host device, over its shell
                export, device-eval
    demo.py     demo                   the README's main job on the embedded default
    common.py   helpers the families share (load_model, format_table, check_fit, ENGINES)

Nothing here imports fqt.cli: the table points down at the commands, never back.
"""
