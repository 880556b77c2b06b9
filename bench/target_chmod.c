/* target_chmod PATH N [ok|ERRNO-NAME|any]
 *
 * Calls chmod(PATH, 0644) N times and prints the mean cost of one call, like target_open:
 *
 *     target_chmod ns_per_op=123.4 n=200000 ok=200000 fail=0 errno=0
 *
 * Used for a path syscall the supervisor performs after an allow that depended on the path
 * (bench/run's fsop case: supervise/fsops.py), against the same chmod natively. PATH must exist.
 */
#include "target_loop.h"
#include <sys/stat.h>

static int one(const char *path) { return chmod(path, 0644); }

int main(int argc, char **argv) { return bench_loop(argc, argv, "target_chmod", one); }
