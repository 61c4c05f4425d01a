/* Semihosting calls and the timer of the benchmark (semihost.h). */
#include "semihost.h"

#define SYS_WRITE0 0x04
#define SYS_EXIT 0x18
#define ADP_STOPPED_APPLICATION_EXIT 0x20026
#define ADP_STOPPED_RUN_TIME_ERROR 0x20023

static int semihost_call(int op, const void *arg)
{
	register int r0 __asm("r0") = op;
	register const void *r1 __asm("r1") = arg;
	__asm volatile("bkpt 0xab" : "+r"(r0) : "r"(r1) : "memory");
	return r0;
}

void semihost_write(const char *s)
{
	(void)semihost_call(SYS_WRITE0, s);
}

void semihost_exit(int status)
{
	/* On AArch32 SYS_EXIT takes the reason code itself in r1. */
	const uintptr_t reason =
		status == 0 ? ADP_STOPPED_APPLICATION_EXIT : ADP_STOPPED_RUN_TIME_ERROR;
	(void)semihost_call(SYS_EXIT, (const void *)reason);
	for (;;) {
	}
}

/* CMSDK APB timer: CTRL (bit 0 enable), VALUE (down counter), RELOAD. */
#define TIMER0_CTRL (*(volatile uint32_t *)0x40000000u)
#define TIMER0_VALUE (*(volatile uint32_t *)0x40000004u)
#define TIMER0_RELOAD (*(volatile uint32_t *)0x40000008u)

void timer_start(void)
{
	TIMER0_CTRL = 0u;
	TIMER0_RELOAD = 0xFFFFFFFFu;
	TIMER0_VALUE = 0xFFFFFFFFu;
	TIMER0_CTRL = 1u;
}

uint32_t timer_ticks(void)
{
	return 0xFFFFFFFFu - TIMER0_VALUE;
}

__attribute__((naked, noinline)) void calibration_loop(uint32_t n)
{
	(void)n;
	__asm volatile("1: subs r0, r0, #1\n"
		       "bne 1b\n"
		       "bx lr\n");
}
