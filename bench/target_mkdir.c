/* target_mkdir PATH N [ok|ERRNO-NAME|any]
 *
 * Calls mkdir(PATH, 0700) N times and prints the mean cost of one call, like target_open:
 *
 *     target_mkdir ns_per_op=123.4 n=200000 ok=0 fail=200000 errno=EPERM
 *
 * Used for a syscall that a policy decides by its number alone, so the kernel's BPF filter
 * answers it and the supervisor never sees it. Natively PATH should already exist (EEXIST after a
 * path walk), which is the cheapest failing mkdir that the kernel still has to look up.
 */
#include "target_loop.h"
#include <sys/stat.h>

static int one(const char *path) { return mkdir(path, 0700); }

int main(int argc, char **argv) { return bench_loop(argc, argv, "target_mkdir", one); }
