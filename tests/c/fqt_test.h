/* A minimal test harness for the C unit tests: CHECK records a failure and goes on;
 * main() returns fqt_test_summary(). */
#ifndef FQT_TEST_H_
#define FQT_TEST_H_

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

static int fqt_test_failures;
static int fqt_test_checks;

#define CHECK(cond)                                                                       \
	do {                                                                              \
		++fqt_test_checks;                                                        \
		if (!(cond)) {                                                            \
			++fqt_test_failures;                                              \
			fprintf(stderr, "%s:%d: CHECK(%s) failed\n", __FILE__, __LINE__,  \
				#cond);                                                   \
		}                                                                         \
	} while (0)

#define CHECK_EQ_INT(actual, expected)                                                     \
	do {                                                                               \
		const long long a_ = (long long)(actual);                                  \
		const long long e_ = (long long)(expected);                                \
		++fqt_test_checks;                                                         \
		if (a_ != e_) {                                                            \
			++fqt_test_failures;                                               \
			fprintf(stderr, "%s:%d: %s == %lld, expected %lld\n", __FILE__,    \
				__LINE__, #actual, a_, e_);                                \
		}                                                                          \
	} while (0)

#define CHECK_CONTAINS(haystack, needle)                                                   \
	do {                                                                               \
		++fqt_test_checks;                                                         \
		if (strstr((haystack), (needle)) == NULL) {                                \
			++fqt_test_failures;                                               \
			fprintf(stderr, "%s:%d: \"%s\" does not contain \"%s\"\n", __FILE__, \
				__LINE__, (haystack), (needle));                           \
		}                                                                          \
	} while (0)

static inline int fqt_test_summary(const char *name)
{
	printf("%s: %d checks, %d failures\n", name, fqt_test_checks, fqt_test_failures);
	return fqt_test_failures == 0 ? 0 : 1;
}

#endif /* FQT_TEST_H_ */
