/* Arm semihosting (BKPT 0xAB) output and exit, and the tick counter of the benchmark. */
#ifndef FQT_BENCH_SEMIHOST_H_
#define FQT_BENCH_SEMIHOST_H_

#include <stdint.h>

/* Write a NUL-terminated string to the host's stdout (SYS_WRITE0). */
void semihost_write(const char *s);

/* End the run: status 0 reports ApplicationExit, anything else a run-time error. */
__attribute__((noreturn)) void semihost_exit(int status);

/* Ticks of CMSDK APB timer 0 (0x40000000, counts down at the board's PCLK) since
 * timer_start(): under `-icount shift=N` a fixed number of ticks per instruction, which
 * the harness calibrates against a loop of known length. */
void timer_start(void);
uint32_t timer_ticks(void);

/* A loop of exactly 2 * n + 2 instructions from its first to its last (subs/bne). */
void calibration_loop(uint32_t n);

#endif /* FQT_BENCH_SEMIHOST_H_ */
