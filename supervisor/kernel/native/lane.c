/* The path lane (supervisor/supervise/loop.py): the loop's receive and, for a path syscall, the
   read and the fast resolution of its path, in one call per notification. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>

#include "native.h"

/* The path lane: sv_notif_poll_recv, then, when the syscall's (arch, nr) has a route (a syscall
   with one path argument, registered by the loop for its policy), the read and the fast
   resolution of that path (sv_read_resolve_fast, fd closed: a decision needs only the path)
   in the same call, so that the loop crosses into C once per notification on its hot path.
   Returns what sv_notif_poll_recv returns; for a notification with a route, 3 instead of 1,
   with lane->len (the length read, or -errno of the read) and lane->fd (SV_RESOLVED_CLOSED:
   the canonical path is in lane->out; SV_RESOLVE_SLOW: the loop resolves lane->buf itself).
   lane->fd is SV_LANE_NOT_TRIED otherwise. The route mirrors loop.Supervisor._resolve_arg. */
int sv_lane_next(int listener, struct seccomp_notif *n, struct sv_lane *l) {
    l->fd = SV_LANE_NOT_TRIED;
    int r = sv_notif_poll_recv(listener, n);
    if (r != 1) return r;
    int a = n->data.arch == AUDIT_ARCH_X86_64 ? 0 : n->data.arch == AUDIT_ARCH_I386 ? 1 : -1;
    if (a < 0 || n->data.nr < 0 || n->data.nr >= SV_LANE_MAX_NR || n->pid > 0x7fffffffu) return 1;
    const struct sv_path_route *rt = &l->routes[a][n->data.nr];
    if (rt->path_arg < 0 || rt->path_arg > 5) return 1;
    const __u64 *args = n->data.args;
    uint64_t flags = (rt->flags_arg >= 0 && rt->flags_arg <= 5) ? args[rt->flags_arg] : 0;
    int follow;
    switch (rt->follow) {
    case SV_FOLLOW_ALWAYS: follow = 1; break;
    case SV_FOLLOW_NEVER: follow = 0; break;
    case SV_FOLLOW_UNLESS_FLAG: follow = !(flags & rt->flag); break;
    case SV_FOLLOW_IF_FLAG: follow = (flags & rt->flag) != 0; break;
    default: return 1;
    }
    int dirfd = AT_FDCWD; /* an int argument: its low 32 bits, sign-extended */
    if (rt->dirfd_arg >= 0 && rt->dirfd_arg <= 5)
        dirfd = (int)(int32_t)(uint32_t)args[rt->dirfd_arg];
    l->len = sv_read_resolve_fast(
        listener, n->id, (int)n->pid, args[rt->path_arg], l->buf, sizeof(l->buf), dirfd,
        O_PATH | O_CLOEXEC | (follow ? 0 : O_NOFOLLOW), RESOLVE_NO_MAGICLINKS, &l->own_root,
        l->self_fds, l->out, sizeof(l->out), &l->st, 0, &l->fd);
    return 3;
}

/* A denial (SEND with -error) and sv_lane_next in one call: the loop's commonest answer and its
   next receive cross into C once. -4: the SEND failed with errno other than ENOENT (a target
   gone or interrupted is not a failure); nothing was received then. */
int sv_lane_answer_next(int listener, uint64_t id, int32_t error, struct seccomp_notif *n,
                        struct sv_lane *l) {
    if (sv_notif_send(listener, id, 0, -error, 0) < 0 && errno != ENOENT) {
        l->fd = SV_LANE_NOT_TRIED;
        return -4;
    }
    return sv_lane_next(listener, n, l);
}
