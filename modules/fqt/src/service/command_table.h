/*
 * The ONE table of the `fqt` commands, as X-macros. The portable dispatcher
 * (service/dispatch.c) expands it into the table it dispatches on and `fqt help` prints;
 * the Zephyr glue (zephyr/service_thread.c) expands the same lists into the shell's
 * SHELL_STATIC_SUBCMD_SET_CREATE sets, so the shell's help texts, tab completion and
 * argument counts can never drift from what the service answers. The FQT_SHELL Kconfig
 * help and docs/protocol.md name the same commands (tests/python/test_command_table.py).
 *
 * FQT_COMMANDS(CMD, GROUP) lists the top-level commands in `fqt help` order:
 *   CMD(name, fn, mandatory, optional, usage)    a command with no subcommands;
 *   GROUP(name, fn, mandatory, optional, usage)  a command with subcommands, listed by
 *                                                FQT_SUBCOMMANDS_<name>(SUB);
 *   SUB(parent, name, mandatory, optional, help) one subcommand of a GROUP.
 * `fn` is the service handler: it gets the whole argv from the top-level name on
 * (argv[0] = "data", argv[1] = "push", ...), so one handler serves a group.
 * `mandatory` and `optional` are Zephyr's SHELL_CMD_ARG counts: mandatory includes the
 * command's own word. A GROUP with mandatory 0 takes no words of its own (the shell
 * prints its help); with mandatory > 0 the words that match no subcommand go to `fn`
 * (`fqt predict 3` beside `fqt predict hex ...`).
 * `usage` is what `fqt help` prints after "help fqt "; every word of a group's usage
 * that names a subcommand is one of its SUBs. The handlers still check every argument
 * themselves (the host device has no shell in front of them).
 */
#ifndef FQT_SERVICE_COMMAND_TABLE_H_
#define FQT_SERVICE_COMMAND_TABLE_H_

#define FQT_COMMANDS(CMD, GROUP)                                                                \
	CMD(help, fqt_svc_cmd_help, 1, 0, "help: this list")                                       \
	CMD(ping, fqt_svc_cmd_ping, 2, 0,                                                           \
	    "ping <token>: answers `pong <token>` (the host syncs on it)")                         \
	CMD(info, fqt_svc_cmd_info, 1, 0, "info: model name, layers, arena and pool use, version") \
	GROUP(load, fqt_svc_cmd_load, 0, 0,                                                         \
	      "load builtin|pushed: activate the built-in model or a pushed blob")                 \
	GROUP(data, fqt_svc_cmd_data, 0, 0, "data push <label> <hex>|clear|status: the sample store") \
	GROUP(train, fqt_svc_cmd_train, 0, 0,                                                       \
	      "train start [epochs 1..1000] [lr 0.000001..1] [batch 1..1024] [lambda_min 0..1] "    \
	      "[seed] [last|all|i,j] [dynamic|fixed] [sgd|standardized] [cosine|constant] "         \
	      "[default|lean] [int32|int16|int8]; train stop; train status")                        \
	CMD(eval, fqt_svc_cmd_eval, 1, 0,                                                           \
	    "eval: accuracy over the stored samples (a job; ends with `done eval`)")               \
	GROUP(predict, fqt_svc_cmd_predict, 2, 0,                                                   \
	      "predict <index> | predict hex <input>: class and int8 output")                      \
	CMD(export, fqt_svc_cmd_export, 1, 0,                                                       \
	    "export: size and crc of the active blob, then `read` frames")                         \
	CMD(save, fqt_svc_cmd_save, 1, 0, "save: write the active model to the older flash slot")  \
	CMD(restore, fqt_svc_cmd_restore, 1, 0, "restore: load the newest valid flash slot")       \
	CMD(frame, fqt_svc_cmd_frame, 5, 0,                                                         \
	    "frame <seq> <kind> <hex> <crc>: the data protocol (docs/protocol.md)")

#define FQT_SUBCOMMANDS_load(SUB)                                                               \
	SUB(load, builtin, 1, 0, "builtin: the model linked into flash (copied to RAM if it fits)") \
	SUB(load, pushed, 1, 0, "pushed: the blob a committed frame transfer staged")

#define FQT_SUBCOMMANDS_data(SUB)                                                               \
	SUB(data, push, 3, 0, "push <label> <hex>: add one sample (the model's input bytes)")      \
	SUB(data, clear, 1, 0, "clear: empty the sample store")                                     \
	SUB(data, status, 1, 0, "status: samples, capacity, sample and staged bytes")

#define FQT_SUBCOMMANDS_train(SUB)                                                              \
	SUB(train, start, 1, 11,                                                                    \
	    "start [epochs 1..1000] [lr 0.000001..1] [batch 1..1024] [lambda_min 0..1] [seed] "     \
	    "[last|all|i,j] [dynamic|fixed] [sgd|standardized] [cosine|constant] [default|lean] "   \
	    "[int32|int16|int8]: start the train job")                                              \
	SUB(train, stop, 1, 0, "stop: end the running job within one sample")                       \
	SUB(train, status, 1, 0, "status: epoch, sample, loss and accuracy, or idle")

#define FQT_SUBCOMMANDS_predict(SUB)                                                            \
	SUB(predict, hex, 2, 0, "hex <input>: predict the class of an input given in hex")

#endif /* FQT_SERVICE_COMMAND_TABLE_H_ */
