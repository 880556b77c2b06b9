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
   can make it run something else. So the exec goes through the GATE (``gate``):

   - before the CONTINUE the handler notes the (dev, inode) of the file it checked and, for a
     ``#!`` script, of its interpreter (read like the kernel reads the first line, resolved in
     the target's view, nested up to 4 levels), and opens a pidfd of the process;
   - a new OS thread seizes the exec-ing thread (PTRACE_SEIZE with TRACEEXEC and EXITKILL),
     sends the CONTINUE and PTRACE_INTERRUPT, and waits for the first stop. A successful exec
     stops in PTRACE_EVENT_EXEC before the new program's first instruction: its
     /proc/TGID/exe must be one of the noted files, be at the checked path (a package upgrade
     replaced the file) or be a file the policy allows (asked on the trio thread), and then the
     thread is detached; otherwise it is SIGKILLed while stopped and ``syscall.killed`` is
     logged with the reason ``exec raced: executed X, checked Y``. A failed exec stops on its
     way back (the interrupt) and is detached, a pending signal re-injected;
   - a thread that cannot be seized (another tracer) is refused with EPERM, not resumed.
   - when a failed exec returns before the interrupt lands, the thread's next exec can reach
     us while the gate still traces it: that gate takes it (``Gate.adopt``), no second seize.

   What that leaves (docs/policy.md "Exec rules"): the CONTENT of a script is not checked (the
   interpreter opens the script again by path: that open is decided by the open rules, and
   performed by the supervisor). The argv is not verified after the exec (the new program can
   rewrite /proc/PID/cmdline): argv allows are advisory; argv denials are enforced.

Modules: ``calls`` (the handler: decide, start the gate, log its outcome), ``argv`` (reading
the argv), ``verify`` (what an exec is expected to run), ``gate`` (the tracer thread's work;
the kernel's side is ``supervisor.kernel.ptrace``).
"""
