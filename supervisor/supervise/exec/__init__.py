"""execve and execveat under exec rules (``path``, ``argv``, ``once``), and the check of what
was executed after an allow.

The loop hands these notifications here when Engine.checks_exec(syscall). Steps:

1. The program path is resolved like any path argument (relative to the cwd or dirfd, in the
   target's root); a path the kernel could not execute fails here with its errno (ENOENT for a
   missing program), before any decision, so a missing program never spends a ``once``.
2. The argv is read: the pointer array (8-byte pointers on x86_64, 4-byte on i386, from
   ``Request.arch``) and each string, page by page, every read between ID_VALID checks. Beyond
   ARGV_MAX_ELEMENTS elements or ARGV_MAX_BYTES bytes (policy/match/argv.py) the request
   carries no argv: argv rules that let the call through cannot match it, refusing ones do
   (fail closed). A NULL argv is ``[""]`` (what Linux runs the program with). An unreadable
   pointer gets EFAULT.
3. The engine decides. Refusals, and allows that did not look at the path or argv, go to
   ``supervise.act`` (CONTINUE for those allows).
4. An allow that did look (``Decision.inspected``) cannot be performed by the supervisor: nobody
   can exec on the target's behalf. It is resumed with CONTINUE, and the kernel reads the path
   and argv again: a thread of the target racing those buffers (or a rename racing the file)
   can make it run something else. So the supervisor VERIFIES the exec:

   - before the CONTINUE it notes the (dev, inode) of the file it checked, of a ``#!`` script's
     interpreter (read like the kernel reads the first line, resolved in the target's view,
     nested up to 4 levels), and of the process's current executable; and it opens a pidfd of
     the process, so that a later kill cannot hit a process that reused the pid;
   - after the CONTINUE ``/proc/TGID/exe`` is watched until it changes: by a worker thread
     every 50 us for the first 200 ms (trio's sleeps are rounded up to milliseconds), then by a
     trio task every 1 ms, backing off to 5 ms after a second and 250 ms after ten; and any
     notification of the exec-ing thread or of the process is held until the check is done;
   - the new executable must be one of the noted files, be at the checked path (a package
     upgrade replaced the file) or be a file the policy allows; otherwise the process, and every
     process it forked meanwhile, is stopped and killed (SIGKILL through pidfds, the first taken
     before the CONTINUE) and ``syscall.killed`` is logged with the reason
     ``exec raced: executed X, checked Y``.

   What that leaves (docs/policy.md "Exec rules"): a raced program runs until the poll sees it
   (typically well under a few milliseconds; its first notified syscall is never answered before
   the check). The CONTENT of a script is not checked (the interpreter opens the script again by
   path: that open is decided by the open rules, and performed by the supervisor). The argv is
   not verified after the exec (the new program can rewrite /proc/PID/cmdline): argv allows are
   advisory; argv denials are enforced. Re-executing the process's own current executable is
   not seen as a change (it gains the target nothing it is not already running).

Modules: ``calls`` (the handler: decide, resume and verify), ``argv`` (reading the argv),
``verify`` (what an exec is expected to run, and watching it land); the kill of a raced
process tree is ``supervisor.target.tree``.
"""
