"""connect, bind, sendto, sendmsg and sendmmsg (and i386 socketcall) under ``address`` rules.

The loop hands these notifications here when the policy has address rules for them. Steps:

1. i386 ``socketcall(call, args)``: every call (1-20) is read from the argument array (32-bit
   values in the target's memory) and decided as the syscall it makes (SYS_SEND/SYS_RECV as
   sendto/recvfrom with no address), by every rule of that syscall. The filter notifies
   socketcall whenever a syscall it multiplexes is notified or has a value rule (libseccomp
   would drop the conditions), so it cannot be used to skip a rule. The kernel would read the
   array again after a resume, so what socketcall allows because of argument values (a value
   rule, an address) is never resumed: ``socket`` is performed (under the target's creds, in
   its network namespace: setns on a worker thread when it is not ours; the fd installed with
   ADDFD), connect/bind/sends as below, the rest refused with EPERM (unix connects and sends,
   sendmmsg, socketpair or setsockopt allowed by a value rule ...).
2. The sockaddr is read (for sendmsg through the ``struct msghdr``: 56 bytes on x86_64, 28 on
   i386) between ID_VALID checks and parsed by ``policy.match.sockaddr``. The kernel's own
   errnos for a bad length (EINVAL) and an unmapped pointer (EFAULT) are answered here. A unix
   path is resolved like a file path (relative to the target's cwd, in its root).
3. The engine decides. Denials and kills go to ``supervise.act``.
4. An allowed connect or bind is PERFORMED here, on the target's own socket (a copy of the
   calling thread's fd from pidfd_getfd: the same open file), with the bytes that were checked,
   under the target's credentials (a port below 1024 needs its CAP_NET_BIND_SERVICE; its LSM
   domain, e.g. Landlock, is not applied); the result (0 or the errno, EINPROGRESS for a
   non-blocking socket) is the answer. A blocking stream connect runs on a worker thread. A
   unix path bind is made from the resolved parent directory (fchdir to its O_PATH fd on a
   thread with its own fs_struct, the target's umask) with the final name. A DENIED address
   the kernel would refuse anyway (malformed, a family the socket lacks) gets the kernel's
   errno, found with the same call on a throwaway socket (``calls.kernel_refuses``).
5. An allowed sendto/sendmsg on an IPv4/IPv6 socket is PERFORMED too, never resumed: the data
   and the control messages (at most 4 KiB) are copied and sent under the target's
   credentials (SO_MARK needs CAP_NET_ADMIN) to the checked address with sendmsg(2) on our copy
   of the socket, MSG_DONTWAIT first, on a worker thread when a blocking send would wait. TCP
   (SO_PROTOCOL): at most 64 KiB a call, a short count being a stream send's right (SIGPIPE
   raised in the target as the kernel would). Other IPv4/IPv6 sockets (UDP, raw, SCTP): the
   whole message, at most 64 KiB (longer is EMSGSIZE). A resume would let a racing thread dup2
   another socket onto the fd (an AF_UNIX SOCK_DGRAM one takes ~208 KiB) and rewrite msg_name.
   ADVISORY (resumed with CONTINUE after the check; a thread racing the buffer can change what
   the kernel uses): connect, sendto and sendmsg on unix sockets (performed by the supervisor,
   the server would see the SUPERVISOR's pid, uid and gid in SO_PEERCRED/SCM_CREDENTIALS: worse
   than the race), sends on sockets of other families (netlink ...), and sendmmsg (every
   message's address is decided, one refusal refuses the call; not performed: each msg_len
   would have to be written back). policy check and the load warnings say so. A unix call is
   resumed only when the target's fd is a unix socket and the address a unix one when checked
   (a non-unix address on a unix socket is performed: the kernel refuses our copy).
6. A unix path bind is made with the final name relative to the checked parent, so the address
   the kernel records for the socket (getsockname, a peer's getpeername) is that name, not the
   path the target wrote.

Modules: ``calls`` (the handler: read, decide, hand over), ``read`` (what the call names, read
from the target), ``perform`` (allowed calls made by the supervisor, answered with their
result).
"""
