/* target_stat PATH N [ok|ERRNO-NAME|any]
 *
 * Calls stat(PATH) (glibc: newfstatat) N times and prints the mean cost of one call, like
 * target_open:
 *
 *     target_stat ns_per_op=123.4 n=200000 ok=200000 fail=0 errno=0
 *
 * Under a path rule on the stat family an allowed stat is answered by the supervisor (performed
 * on the object it checked, the struct written into the target's memory: supervise/answers.py);
 * denied, it is the path-deny decision of a stat.
 */
#include "target_loop.h"
#include <sys/stat.h>

static int one(const char *path) {
    struct stat st;
    return stat(path, &st);
}

int main(int argc, char **argv) { return bench_loop(argc, argv, "target_stat", one); }
