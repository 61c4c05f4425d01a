/*
 * Frame decoder and encoder of the data protocol (docs/protocol.md):
 *
 *     frame <seq> <kind> <hex payload or -> <crc32 hex>
 *
 * The CRC-32 (zlib) covers the text "<seq> <kind> <hex>" exactly as sent. Every field is
 * checked before use; any malformed word gives a reason, never a crash.
 */
#include <string.h>

#include "fqt/service.h"
#include "service_internal.h"

static const char *const kind_names[] = {"", "begin", "data", "commit", "abort", "read", "chunk", "cmd"};

const char *fqt_frame_kind_name(fqt_frame_kind kind)
{
	const unsigned k = (unsigned)kind;
	return k < sizeof(kind_names) / sizeof(kind_names[0]) ? kind_names[k] : "?";
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9') {
		return c - '0';
	}
	if (c >= 'a' && c <= 'f') {
		return c - 'a' + 10;
	}
	if (c >= 'A' && c <= 'F') {
		return c - 'A' + 10;
	}
	return -1;
}

int fqt_svc_decode_hex(const char *hex, size_t hex_len, uint8_t *dst)
{
	if (hex_len % 2u != 0u) {
		return -1;
	}
	for (size_t i = 0; i < hex_len; i += 2u) {
		const int hi = hex_value(hex[i]);
		const int lo = hex_value(hex[i + 1u]);
		if (hi < 0 || lo < 0) {
			return -1;
		}
		dst[i / 2u] = (uint8_t)((hi << 4) | lo);
	}
	return 0;
}

int fqt_svc_parse_u32(const char *s, uint32_t *value)
{
	uint64_t v = 0;
	size_t n = 0;
	if (s == NULL) {
		return -1;
	}
	for (; s[n] != '\0'; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 10u) {
			return -1;
		}
		v = v * 10u + (uint64_t)(s[n] - '0');
	}
	if (n == 0u || v > 0xFFFFFFFFu) {
		return -1;
	}
	*value = (uint32_t)v;
	return 0;
}

static int parse_crc(const char *s, uint32_t *value)
{
	uint32_t v = 0;
	size_t n = 0;
	for (; s[n] != '\0'; n++) {
		const int h = hex_value(s[n]);
		if (h < 0 || n >= 8u) {
			return -1;
		}
		v = (v << 4) | (uint32_t)h;
	}
	if (n == 0u) {
		return -1;
	}
	*value = v;
	return 0;
}

const char *fqt_frame_decode(int argc, char **argv, fqt_frame *frame)
{
	if (frame == NULL) {
		return "internal: no frame";
	}
	frame->seq = 0;
	frame->seq_valid = 0;
	frame->kind = 0;
	frame->payload_size = 0;
	if (argv == NULL || argc < 1 || argv[0] == NULL) {
		return "frame needs: <seq> <kind> <hex> <crc>";
	}
	if (fqt_svc_parse_u32(argv[0], &frame->seq) != 0) {
		return "bad seq: want a decimal number < 2^32";
	}
	frame->seq_valid = 1;
	if (argc != 4 || argv[1] == NULL || argv[2] == NULL || argv[3] == NULL) {
		return "frame needs: <seq> <kind> <hex> <crc>";
	}
	uint8_t kind = 0;
	for (unsigned k = 1; k < sizeof(kind_names) / sizeof(kind_names[0]); k++) {
		if (strcmp(argv[1], kind_names[k]) == 0) {
			kind = (uint8_t)k;
		}
	}
	if (kind == 0u) {
		return "unknown kind";
	}
	uint32_t crc_sent;
	if (parse_crc(argv[3], &crc_sent) != 0) {
		return "bad crc field: want up to 8 hex digits";
	}
	const char *hex = argv[2];
	size_t hex_len = strlen(hex);
	if (hex_len == 1u && hex[0] == '-') {
		hex_len = 0;
	} else if (hex_len == 0u || hex_len % 2u != 0u) {
		return "bad payload: odd number of hex digits";
	} else if (hex_len / 2u > FQT_FRAME_MAX_PAYLOAD) {
		return "payload too long";
	}
	uint32_t crc = fqt_crc32(0, argv[0], strlen(argv[0]));
	crc = fqt_crc32(crc, " ", 1);
	crc = fqt_crc32(crc, argv[1], strlen(argv[1]));
	crc = fqt_crc32(crc, " ", 1);
	crc = fqt_crc32(crc, argv[2], strlen(argv[2]));
	if (crc != crc_sent) {
		return "bad crc";
	}
	if (fqt_svc_decode_hex(hex, hex_len, frame->payload) != 0) {
		return "bad payload: not hex";
	}
	frame->payload_size = (uint32_t)(hex_len / 2u);
	frame->kind = kind;
	return NULL;
}

static size_t put_u32(char *p, uint32_t v)
{
	char tmp[10];
	size_t n = 0;
	do {
		tmp[n++] = (char)('0' + v % 10u);
		v /= 10u;
	} while (v != 0u);
	for (size_t i = 0; i < n; i++) {
		p[i] = tmp[n - 1u - i];
	}
	return n;
}

size_t fqt_frame_encode(char *line, size_t cap, uint32_t seq, fqt_frame_kind kind,
			const uint8_t *payload, size_t size)
{
	static const char digits[] = "0123456789abcdef";
	const char *name = fqt_frame_kind_name(kind);
	const size_t name_len = strlen(name);
	/* "frame " + seq(10) + " " + kind + " " + hex + " " + crc(8) + NUL */
	const size_t need = 6u + 10u + 1u + name_len + 1u + (size ? 2u * size : 1u) + 1u + 8u + 1u;
	if (line == NULL || cap < need || (payload == NULL && size > 0u)) {
		return 0;
	}
	size_t n = 0;
	memcpy(line, "frame ", 6);
	n = 6;
	const size_t body = n;
	n += put_u32(line + n, seq);
	line[n++] = ' ';
	memcpy(line + n, name, name_len);
	n += name_len;
	line[n++] = ' ';
	if (size == 0u) {
		line[n++] = '-';
	}
	for (size_t i = 0; i < size; i++) {
		line[n++] = digits[payload[i] >> 4];
		line[n++] = digits[payload[i] & 0x0Fu];
	}
	const uint32_t crc = fqt_crc32(0, line + body, n - body);
	line[n++] = ' ';
	for (int shift = 28; shift >= 0; shift -= 4) {
		line[n++] = digits[(crc >> (unsigned)shift) & 0x0Fu];
	}
	line[n] = '\0';
	return n;
}
