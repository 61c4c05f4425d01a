/*
 * The device service's front: fqt_service_init, the command table and the dispatchers of
 * `fqt <command> ...` (one for the Zephyr shell and the host device). Protocol:
 * docs/protocol.md.
 *
 * The table below is the ONE list of the commands: the `fqt` shell help string
 * (zephyr/service_thread.c), the FQT_SHELL Kconfig help and docs/protocol.md's list name
 * exactly these, with these usage strings (tests/python/test_command_table.py checks).
 */
#include <stdio.h>
#include <string.h>

#include "service_internal.h"

fqt_status fqt_service_init(fqt_service *svc, const fqt_service_config *config)
{
	if (svc == NULL || config == NULL || (config->arena == NULL && config->arena_size) ||
	    (config->sample_buffer == NULL && config->sample_buffer_size) ||
	    (config->model_buffer == NULL && config->model_buffer_size)) {
		return FQT_ERR_ARGUMENT;
	}
	if (((uintptr_t)config->arena % 4u) != 0u || ((uintptr_t)config->model_buffer % 4u) != 0u) {
		return FQT_ERR_ALIGNMENT;
	}
	memset(svc, 0, sizeof(*svc));
	svc->cfg = *config;
	svc->active = -1;
	svc->half_size = (config->model_buffer_size / 2u) & ~(size_t)3u;
	svc->half[0] = config->model_buffer;
	svc->half[1] = config->model_buffer != NULL ? config->model_buffer + svc->half_size : NULL;
	svc->source = "-";
	svc->last_job_result = "none";
	return FQT_OK;
}

static int cmd_help(fqt_service *svc, int argc, char **argv, const fqt_service_output *out);

static int cmd_ping(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (argc != 2 || strlen(argv[1]) > 32u) {
		fqt_svc_say(svc, out, "err usage: fqt ping <token of at most 32 characters>");
		return -1;
	}
	fqt_svc_say(svc, out, "pong %s", argv[1]);
	fqt_svc_say(svc, out, "ok");
	return 0;
}

typedef struct command {
	const char *name;
	const char *usage; /* `fqt help` prints "help fqt <usage>" */
	fqt_svc_cmd_fn fn;
} command;

static const command commands[] = {
	{"help", "help: this list", cmd_help},
	{"ping", "ping <token>: answers `pong <token>` (the host syncs on it)", cmd_ping},
	{"info", "info: model name, layers, arena and pool use, version", fqt_svc_cmd_info},
	{"load", "load builtin|pushed: activate the built-in model or a pushed blob",
	 fqt_svc_cmd_load},
	{"data", "data push <label> <hex>|clear|status: the sample store", fqt_svc_cmd_data},
	{"train",
	 "train start [epochs 1..1000] [lr 0.000001..1] [batch 1..1024] [lambda_min 0..1] "
	 "[seed] [last|all|i,j] [dynamic|fixed]; train stop; train status",
	 fqt_svc_cmd_train},
	{"eval", "eval: accuracy over the stored samples (a job; ends with `done eval`)",
	 fqt_svc_cmd_eval},
	{"predict", "predict <index> | predict hex <input>: class and int8 output",
	 fqt_svc_cmd_predict},
	{"export", "export: size and crc of the active blob, then `read` frames",
	 fqt_svc_cmd_export},
	{"save", "save: write the active model to the older flash slot", fqt_svc_cmd_save},
	{"restore", "restore: load the newest valid flash slot", fqt_svc_cmd_restore},
	{"frame", "frame <seq> <kind> <hex> <crc>: the data protocol (docs/protocol.md)",
	 fqt_svc_cmd_frame},
};

#define COMMAND_COUNT (sizeof(commands) / sizeof(commands[0]))

static int cmd_help(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	(void)argv;
	if (argc != 1) {
		fqt_svc_say(svc, out, "err usage: fqt help (takes no arguments)");
		return -1;
	}
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		fqt_svc_say(svc, out, "help fqt %s", commands[i].usage);
	}
	fqt_svc_say(svc, out, "ok");
	return 0;
}

int fqt_service_dispatch(fqt_service *svc, int argc, char **argv, const fqt_service_output *out)
{
	if (svc == NULL || out == NULL || out->write == NULL) {
		return -1;
	}
	if (argc < 1 || argv == NULL || argv[0] == NULL) {
		return cmd_help(svc, argc, argv, out);
	}
	for (int i = 0; i < argc; i++) {
		if (argv[i] == NULL) {
			fqt_svc_say(svc, out, "err bad argument list");
			return -1;
		}
	}
	for (size_t i = 0; i < COMMAND_COUNT; i++) {
		if (strcmp(commands[i].name, argv[0]) == 0) {
			return commands[i].fn(svc, argc, argv, out);
		}
	}
	char name[24];
	(void)snprintf(name, sizeof(name), "%s", argv[0]);
	fqt_svc_say(svc, out, "err unknown command '%s' (fqt help lists them)", name);
	return -1;
}

int fqt_service_dispatch_line(fqt_service *svc, char *line, const fqt_service_output *out)
{
	char *argv[FQT_SERVICE_MAX_ARGS];
	int argc = 0;
	char *p = line;
	if (line == NULL) {
		return -1;
	}
	/* Exactly one space between words (docs/protocol.md): the line end (\r, \n) is
	 * dropped; a tab, a leading, doubled or trailing space is refused. */
	size_t len = strlen(line);
	while (len > 0u && (line[len - 1u] == '\r' || line[len - 1u] == '\n')) {
		line[--len] = '\0';
	}
	for (size_t i = 0; i < len; ++i) {
		if (line[i] == '\t' || line[i] == '\r' || line[i] == '\n' ||
		    (line[i] == ' ' && (i == 0u || i + 1u == len || line[i + 1u] == ' '))) {
			fqt_svc_say(svc, out, "err bad separator: words are separated by one space");
			return -1;
		}
	}
	while (*p != '\0') {
		while (*p == ' ') {
			*p++ = '\0';
		}
		if (*p == '\0') {
			break;
		}
		if (argc == FQT_SERVICE_MAX_ARGS) {
			fqt_svc_say(svc, out, "err too many arguments (max %d)",
				    FQT_SERVICE_MAX_ARGS - 1);
			return -1;
		}
		argv[argc++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n') {
			p++;
		}
	}
	if (argc == 0) {
		return 0;
	}
	if (strcmp(argv[0], "fqt") == 0) {
		return fqt_service_dispatch(svc, argc - 1, argv + 1, out);
	}
	fqt_svc_say(svc, out, "err unknown command '%.16s': commands start with `fqt`", argv[0]);
	return -1;
}
