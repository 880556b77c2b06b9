/* cflags: -static -nostdlib -fno-stack-protector -fno-pie -no-pie
 *
 * marker: a program whose very first instructions are a raw write(1, "MARKER\n", 7) and an
 * exit_group(0), with no C library and no loader in front of them. The denied program of the
 * exec races (tests/run/test_run_exec_gate.py): if the kernel ever runs it, even for a
 * microsecond before a kill, the line is in the target's stdout. Neither syscall is notified by
 * the test policies (they have exec rules only), so nothing stops it but the exec gate.
 */
static const char line[] = "MARKER\n";

__attribute__((naked, noreturn)) void _start(void) {
    __asm__ volatile("mov $1, %%eax\n" /* write */
                     "mov $1, %%edi\n" /* fd 1 */
                     "lea %c0(%%rip), %%rsi\n"
                     "mov $7, %%edx\n"
                     "syscall\n"
                     "mov $231, %%eax\n" /* exit_group */
                     "xor %%edi, %%edi\n"
                     "syscall\n"
                     "hlt\n"
                     :
                     : "i"(line));
}
