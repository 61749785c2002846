"""Start one container process: what runc does between the runtime's spec and the user's command.

Run by the kubelet inside the pod's network namespace as `python -I -S container_init.py CONF ARGV...`
(standard library only, so it starts in milliseconds without site-packages). It is single-threaded, so the
namespace and credential system calls below are safe here, where they are not in the daemon's threads.
In order, as runc's init does:
1. a private mount namespace (slave propagation: nothing mounted here reaches the host) and UTS namespace;
   /sys remounted so it shows the pod's interfaces; every file in /etc/netns/<netns>/ (the pod's
   resolv.conf) bound over /etc, as `ip netns exec` does; the masked paths (every cluster's state under
   /run/netsim) covered by an empty read-only tmpfs;
2. the hostname (the pod's name) and the pod's sysctls (in its own network namespace only);
3. capabilities: the bounding set cut to the container's set, inheritable and ambient cleared; a process
   that stays uid 0 gets exactly the bounding set at exec, any other uid gets none (execve's rules);
4. supplementary groups, gid, uid (all three ids, so nothing can switch back); no_new_privs;
5. exec. A command that cannot be started exits 128, as a runc StartError, with the reason in the log.
"""

import ctypes
import json
import os
import sys
import warnings  # noqa: F401  os.execvp imports it lazily, and after setuid the stdlib may be unreadable

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_BIND, MS_REC, MS_SLAVE = 4096, 16384, 1 << 19
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_SET_NO_NEW_PRIVS, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 38, 47, 4
CAP_V3 = 0x20080522

_libc = ctypes.CDLL(None, use_errno=True)


def _check(rc: int, what: str) -> None:
    if rc != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


def _mount(src: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(_libc.mount(src and src.encode(), target.encode(), fstype and fstype.encode(), ctypes.c_ulong(flags),
                       data and data.encode()), f"mount {target}")


def _mounts(conf: dict) -> None:
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_SLAVE)
    if _libc.umount2(b"/sys", MNT_DETACH) == 0:  # as `ip netns exec`: sysfs of this network namespace
        try:
            _mount("sysfs", "/sys", "sysfs", 0)
        except OSError:
            pass
    etc = conf["etc"]
    if os.path.isdir(etc):
        for name in sorted(os.listdir(etc)):
            target = os.path.join("/etc", name)
            if os.path.exists(target):
                _mount(os.path.join(etc, name), target, None, MS_BIND)
    for path in conf["masked"]:
        if os.path.isdir(path):
            _mount("tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k,mode=0755")


def _sysctls(conf: dict) -> None:
    for key, value in conf["sysctls"].items():
        with open("/proc/sys/" + key.replace(".", "/"), "w") as f:
            f.write(value)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _capabilities(keep: set[int]) -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        last = int(f.read())
    for cap in range(last + 1):
        if cap not in keep:
            _check(_libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    _libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    hdr, data = _CapHeader(CAP_V3, 0), (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(hdr), data), "capget")
    data[0].inheritable = data[1].inheritable = 0
    _check(_libc.capset(ctypes.byref(hdr), data), "capset")


def main(argv: list[str]) -> int:
    conf, command = json.loads(argv[1]), argv[2:]
    try:
        _mounts(conf)
        _libc.sethostname(conf["hostname"].encode(), len(conf["hostname"].encode()))
        _sysctls(conf)
        _capabilities(set(conf["caps"]))
        os.setgroups(conf["groups"])
        os.setresgid(conf["gid"], conf["gid"], conf["gid"])
        os.setresuid(conf["uid"], conf["uid"], conf["uid"])
        if conf["nnp"]:
            _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
        os.chdir("/")
    except OSError as exc:
        print(f"netsim: cannot set up the container: {exc}", file=sys.stderr, flush=True)
        return 128
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        print(f"netsim: cannot start {command[0]!r}: {exc.strerror}", file=sys.stderr, flush=True)
    return 128


if __name__ == "__main__":
    sys.exit(main(sys.argv))
