/* fqt_crc32 against zlib.crc32 known values. */
#include "fqt/model.h"
#include "fqt_test.h"

int main(void)
{
	CHECK_EQ_INT(fqt_crc32(0, "", 0), 0x00000000u);
	CHECK_EQ_INT(fqt_crc32(0, "a", 1), 0xE8B7BE43u);
	CHECK_EQ_INT(fqt_crc32(0, "123456789", 9), 0xCBF43926u); /* the CRC-32 check value */
	const char *fox = "The quick brown fox jumps over the lazy dog";
	CHECK_EQ_INT(fqt_crc32(0, fox, strlen(fox)), 0x414FA339u);
	/* Chaining as zlib: crc32(b, crc32(a)) == crc32(a + b). */
	CHECK_EQ_INT(fqt_crc32(fqt_crc32(0, "12345", 5), "6789", 4), 0xCBF43926u);
	/* 256 bytes 0..255: zlib.crc32(bytes(range(256))) */
	unsigned char all[256];
	for (int i = 0; i < 256; ++i) {
		all[i] = (unsigned char)i;
	}
	CHECK_EQ_INT(fqt_crc32(0, all, sizeof(all)), 0x29058C73u);
	return fqt_test_summary("test_crc32");
}
