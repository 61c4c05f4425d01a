/*
 * Bare-metal start of the Cortex-M benchmark on QEMU's MPS2 boards (AN385 M3, AN386 M4,
 * AN500 M7): the vector table, the reset handler (FPU on, .data copied, .bss zeroed) and
 * a fault handler that reports over semihosting. Nothing else runs: no interrupts.
 */
#include <stdint.h>

#include "semihost.h"

extern uint32_t __stack_top;
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end;

int main(void);

/* The FPU is enabled before any C code that may touch it (hard-float builds). */
__attribute__((naked, noreturn)) void reset_handler(void)
{
	__asm volatile("ldr r0, =0xE000ED88\n" /* SCB->CPACR */
		       "ldr r1, [r0]\n"
		       "orr r1, r1, #(0xF << 20)\n" /* CP10, CP11: full access */
		       "str r1, [r0]\n"
		       "dsb\n"
		       "isb\n"
		       "b reset_c\n");
}

__attribute__((noreturn, used)) void reset_c(void)
{
	uint32_t *src = &__data_load;
	for (uint32_t *dst = &__data_start; dst < &__data_end;) {
		*dst++ = *src++;
	}
	for (uint32_t *dst = &__bss_start; dst < &__bss_end;) {
		*dst++ = 0u;
	}
	semihost_exit(main());
}

__attribute__((noreturn)) static void fault_handler(void)
{
	semihost_write("fault\n");
	semihost_exit(3);
}

/* Initial stack pointer, reset, then NMI..SysTick: all faults end the run. */
__attribute__((section(".vectors"), used)) static void (*const vectors[16])(void) = {
	(void (*)(void))(uintptr_t)&__stack_top,
	reset_handler,
	fault_handler, fault_handler, fault_handler, fault_handler, fault_handler,
	0, 0, 0, 0,
	fault_handler, fault_handler, 0,
	fault_handler, fault_handler,
};
