"""Named syscall groups, modelled on systemd's ``SystemCallFilter=`` sets.

Same names, one-line help and members as systemd's ``syscall_filter_sets[]``
(src/shared/seccomp-util.c), restricted to the syscall names of x86_64 and i386 in the kernel's
tables (KNOWN_SYSCALLS): arch-specific members of other architectures are left out. Syscalls
newer than a group's systemd list join the group of their older twins: the ``*xattrat`` calls
and file_getattr/file_setattr in @file-system, open_tree_attr in @mount. A member that
starts with ``@`` names another group. ``@known`` is every name in KNOWN_SYSCALLS.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .syscalls import KNOWN_SYSCALLS


@dataclass(frozen=True)
class Group:
    """A named set of syscalls; members may name other groups (``@...``)."""

    name: str
    help: str
    members: tuple[str, ...]


def _g(name: str, help: str, members: str) -> Group:
    names = members.split()
    kept = tuple(n for n in names if n.startswith("@") or n in KNOWN_SYSCALLS)
    return Group(name, help, kept)


_GROUPS = [
    _g(
        "@default",
        "System calls that are always permitted",
        """clock_getres clock_getres_time64 clock_gettime clock_gettime64 clock_nanosleep
        clock_nanosleep_time64 execve exit exit_group futex futex_time64 futex_waitv
        get_robust_list get_thread_area getegid getegid32 geteuid geteuid32 getgid getgid32
        getgroups getgroups32 getpgid getpgrp getpid getppid getrandom getresgid getresgid32
        getresuid getresuid32 getrlimit getsid gettid gettimeofday getuid getuid32 membarrier
        mmap mmap2 munmap nanosleep pause prlimit64 restart_syscall rseq rt_sigreturn
        sched_getaffinity sched_yield set_robust_list set_thread_area set_tid_address set_tls
        sigreturn time ugetrlimit""",
    ),
    _g(
        "@aio",
        "Asynchronous IO",
        """io_cancel io_destroy io_getevents io_pgetevents io_pgetevents_time64 io_setup
        io_submit io_uring_enter io_uring_register io_uring_setup""",
    ),
    _g(
        "@basic-io",
        "Basic IO",
        """_llseek close close_range dup dup2 dup3 lseek pread64 preadv preadv2 pwrite64
        pwritev pwritev2 read readv write writev""",
    ),
    _g(
        "@chown",
        "Change ownership of files and directories",
        "chown chown32 fchown fchown32 fchownat lchown lchown32",
    ),
    _g(
        "@clock",
        "Change the system time",
        """adjtimex clock_adjtime clock_adjtime64 clock_settime clock_settime64 settimeofday
        stime""",
    ),
    _g(
        "@cpu-emulation",
        "System calls for CPU emulation functionality",
        "modify_ldt subpage_prot switch_endian vm86 vm86old",
    ),
    _g(
        "@debug",
        "Debugging, performance monitoring and tracing functionality",
        """lookup_dcookie perf_event_open pidfd_getfd ptrace rtas s390_runtime_instr
        sys_debug_setcontext""",
    ),
    _g(
        "@file-system",
        "File system operations",
        """access chdir chmod close creat faccessat faccessat2 fallocate fchdir fchmod fchmodat
        fchmodat2 fcntl fcntl64 fgetxattr file_getattr file_setattr flistxattr fremovexattr
        fsetxattr fstat fstat64 fstatat64 fstatfs fstatfs64 ftruncate ftruncate64 futimesat getcwd
        getdents getdents64 getxattr getxattrat inotify_add_watch inotify_init inotify_init1
        inotify_rm_watch lgetxattr link linkat listxattr listxattrat llistxattr lremovexattr
        lsetxattr lstat lstat64 mkdir mkdirat mknod mknodat mmap mmap2 munmap newfstatat oldfstat
        oldlstat oldstat open openat openat2 readlink readlinkat removexattr removexattrat rename
        renameat renameat2 rmdir setxattr setxattrat stat stat64 statfs statfs64 statx symlink
        symlinkat truncate truncate64 unlink unlinkat utime utimensat utimensat_time64 utimes""",
    ),
    _g(
        "@io-event",
        "Event loop system calls",
        """_newselect epoll_create epoll_create1 epoll_ctl epoll_ctl_old epoll_pwait
        epoll_pwait2 epoll_wait epoll_wait_old eventfd eventfd2 poll ppoll ppoll_time64
        pselect6 pselect6_time64 select""",
    ),
    _g(
        "@ipc",
        "SysV IPC, POSIX Message Queues or other IPC",
        """ipc memfd_create mq_getsetattr mq_notify mq_open mq_timedreceive
        mq_timedreceive_time64 mq_timedsend mq_timedsend_time64 mq_unlink msgctl msgget msgrcv
        msgsnd pipe pipe2 process_vm_readv process_vm_writev semctl semget semop semtimedop
        semtimedop_time64 shmat shmctl shmdt shmget""",
    ),
    _g("@keyring", "Kernel keyring access", "add_key keyctl request_key"),
    _g("@memlock", "Memory locking control", "mlock mlock2 mlockall munlock munlockall"),
    _g(
        "@module",
        "Loading and unloading of kernel modules",
        "delete_module finit_module init_module",
    ),
    _g(
        "@mount",
        "Mounting and unmounting of file systems",
        """chroot fsconfig fsmount fsopen fspick mount mount_setattr move_mount open_tree
        open_tree_attr pivot_root umount umount2""",
    ),
    _g(
        "@network-io",
        "Network or Unix socket IO, should not be needed if not network facing",
        """accept accept4 bind connect getpeername getsockname getsockopt listen recv recvfrom
        recvmmsg recvmmsg_time64 recvmsg send sendmmsg sendmsg sendto setsockopt shutdown
        socket socketcall socketpair""",
    ),
    _g(
        "@obsolete",
        "Unusual, obsolete or unimplemented system calls",
        """_sysctl afs_syscall bdflush break create_module ftime get_kernel_syms getpmsg gtty
        idle lock mpx prof profil putpmsg query_module security sgetmask ssetmask stty sysfs
        tuxcall ulimit uselib ustat vserver""",
    ),
    _g(
        "@pkey",
        "System calls used for memory protection keys",
        "pkey_alloc pkey_free pkey_mprotect",
    ),
    _g(
        "@privileged",
        "All system calls which need super-user capabilities",
        """@chown @clock @module @raw-io @reboot @swap _sysctl acct bpf capset chroot
        fanotify_init fanotify_mark nfsservctl open_by_handle_at pivot_root quotactl
        quotactl_fd setdomainname setfsuid setfsuid32 setgroups setgroups32 sethostname
        setresuid setresuid32 setreuid setreuid32 setuid setuid32 vhangup""",
    ),
    _g(
        "@process",
        "Process control, execution, namespacing operations",
        """arch_prctl capget clone clone3 execveat fork getrusage kill pidfd_open
        pidfd_send_signal prctl rt_sigqueueinfo rt_tgsigqueueinfo setns swapcontext tgkill
        times tkill unshare vfork wait4 waitid waitpid""",
    ),
    _g(
        "@raw-io",
        "Raw I/O port access",
        """ioperm iopl pciconfig_iobase pciconfig_read pciconfig_write s390_pci_mmio_read
        s390_pci_mmio_write""",
    ),
    _g(
        "@reboot",
        "Reboot and reboot preparation/kexec",
        "kexec_file_load kexec_load reboot",
    ),
    _g(
        "@resources",
        "Alter resource settings",
        """ioprio_set mbind migrate_pages move_pages nice sched_setaffinity sched_setattr
        sched_setparam sched_setscheduler set_mempolicy set_mempolicy_home_node setpriority
        setrlimit""",
    ),
    _g(
        "@sandbox",
        "Sandbox functionality",
        "landlock_add_rule landlock_create_ruleset landlock_restrict_self seccomp",
    ),
    _g(
        "@setuid",
        "Operations for changing user/group credentials",
        """setgid setgid32 setgroups setgroups32 setregid setregid32 setresgid setresgid32
        setresuid setresuid32 setreuid setreuid32 setuid setuid32""",
    ),
    _g(
        "@signal",
        "Process signal handling",
        """rt_sigaction rt_sigpending rt_sigprocmask rt_sigsuspend rt_sigtimedwait
        rt_sigtimedwait_time64 sigaction sigaltstack signal signalfd signalfd4 sigpending
        sigprocmask sigsuspend""",
    ),
    _g("@swap", "Enable/disable swap devices", "swapoff swapon"),
    _g(
        "@sync",
        "Synchronize files and memory to storage",
        "fdatasync fsync msync sync sync_file_range sync_file_range2 syncfs",
    ),
    _g(
        "@system-service",
        "General system service operations",
        """@aio @basic-io @chown @default @file-system @io-event @ipc @keyring @memlock
        @network-io @process @resources @setuid @signal @sync @timer arm_fadvise64_64 brk
        capget capset copy_file_range fadvise64 fadvise64_64 flock get_mempolicy getcpu
        getpriority ioctl ioprio_get kcmp madvise mprotect mremap name_to_handle_at
        oldolduname olduname personality readahead readdir remap_file_pages
        sched_get_priority_max sched_get_priority_min sched_getaffinity sched_getattr
        sched_getparam sched_getscheduler sched_rr_get_interval sched_rr_get_interval_time64
        sched_yield sendfile sendfile64 setfsgid setfsgid32 setfsuid setfsuid32 setpgid setsid
        splice sysinfo tee umask uname userfaultfd vmsplice""",
    ),
    _g(
        "@timer",
        "Schedule operations by time",
        """alarm getitimer setitimer timer_create timer_delete timer_getoverrun timer_gettime
        timer_gettime64 timer_settime timer_settime64 timerfd_create timerfd_gettime
        timerfd_gettime64 timerfd_settime timerfd_settime64 times""",
    ),
    Group("@known", "All known syscalls declared in the kernel", tuple(sorted(KNOWN_SYSCALLS))),
]

GROUPS: Mapping[str, Group] = MappingProxyType({g.name: g for g in _GROUPS})


def _expand_group(name: str, seen: tuple[str, ...], out: set[str]) -> None:
    group = GROUPS.get(name)
    if group is None:
        raise ValueError(f"unknown syscall group {name!r}")
    if name in seen:  # a cycle in the table itself: a bug, not a user error
        raise ValueError(f"syscall group {name!r} includes itself")
    for member in group.members:
        if member.startswith("@"):
            _expand_group(member, (*seen, name), out)
        else:
            out.add(member)


def expand(names: Iterable[str]) -> frozenset[str]:
    """Syscall names and ``@groups`` → the set of syscall names.

    Raises ValueError naming the first unknown syscall or group.
    """
    out: set[str] = set()
    for name in names:
        if name.startswith("@"):
            _expand_group(name, (), out)
        elif name in KNOWN_SYSCALLS:
            out.add(name)
        else:
            raise ValueError(f"unknown syscall {name!r}")
    return frozenset(out)
