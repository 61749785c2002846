"""Start one container process: what runc does between the runtime's spec and the user's command.

Run by the kubelet inside the pod's network namespace as `python -I -S container_init.py CONF ARGV...`
(standard library only, so it starts in milliseconds without site-packages). It is single-threaded, so the
namespace and credential system calls below are safe here, where they are not in the daemon's threads.
In order, as runc's init does:
1. a private mount namespace (slave propagation: nothing mounted here reaches the host) and UTS namespace;
   /sys remounted so it shows the pod's interfaces; the pod's volumes bound at their mountPaths (read-only
   where asked); every file in /etc/netns/<netns>/ (the pod's resolv.conf and hosts) bound over /etc, as
   `ip netns exec` does; the masked paths (every cluster's state under /run/netsim) covered by an empty
   read-only tmpfs. A mountPath or workingDir missing on the host is never created there (runc creates
   them in the image's rootfs): the deepest directory that exists gets a copy-on-write overlay whose upper
   layer is a tmpfs private to this container, and the path is made in it; when that directory is `/`,
   the container's root becomes such an overlay of the host's root (with every top-level mount bound
   into it) through pivot_root, as runc switches to a container's rootfs;
2. the hostname (the pod's name) and the pod's sysctls (in its own network namespace only);
3. capabilities: the bounding set cut to the container's set, inheritable and ambient cleared; a process
   that stays uid 0 gets exactly the bounding set at exec, any other uid gets none (execve's rules);
4. supplementary groups, gid, uid (all three ids, so nothing can switch back); no_new_privs;
5. the working directory (`workingDir`, else /), umask 022 as runc sets it, then exec. A command that cannot be started exits 128, as a runc StartError, with the reason in the log.
"""

import ctypes
import json
import os
import re
import sys
import warnings  # noqa: F401  os.execvp imports it lazily, and after setuid the stdlib may be unreadable

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_SLAVE = 32, 4096, 16384, 1 << 19
MNT_DETACH = 2
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)
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


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def _top_mounts(skip: str) -> list[str]:
    """The mount points right under / (their submounts come along with a recursive bind)."""
    with open("/proc/self/mountinfo") as f:
        points = sorted({_unescape(line.split()[4]) for line in f})
    top: list[str] = []
    for p in points:
        if p == "/" or p == skip or p.startswith(skip + "/") or any(p.startswith(t + "/") for t in top):
            continue
        top.append(p)
    return top


STAGE = "/.netsim-mounts"


def _pivot(scratch: str, sources: list[str]) -> list[str]:
    """Make the container's root a copy-on-write overlay of the host's root (upper layer in `scratch`).
    The volume sources are bound into it first (a mount that is not in the new root cannot be bound once
    the old one is gone); returns where they are then."""
    new = f"{scratch}/root"
    for d in ("root", "root.upper", "root.work"):
        os.mkdir(f"{scratch}/{d}")
    skip = os.path.realpath(scratch)
    top = _top_mounts(skip)
    _mount("overlay", new, "overlay", 0, f"lowerdir=/,upperdir={scratch}/root.upper,workdir={scratch}/root.work")
    for p in top:
        target = new + p
        if os.path.lexists(target):
            try:
                _mount(p, target, None, MS_BIND | MS_REC)
            except OSError:
                pass
    staged = []
    if sources:
        os.mkdir(new + STAGE, 0o700)
    for i, src in enumerate(sources):
        stage = f"{STAGE}/{i}"
        if os.path.isdir(src):
            os.mkdir(new + stage)
        else:
            with open(new + stage, "w"):
                pass
        _mount(src, new + stage, None, MS_BIND | MS_REC)
        staged.append(stage)
    os.chdir(new)
    _check(_libc.syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")  # runc's pivotRoot: old root under new
    _check(_libc.umount2(b".", MNT_DETACH), "umount old root")
    os.chdir("/")
    return staged


def _deepest_existing(path: str) -> str:
    p = path
    while not os.path.exists(p):
        p = os.path.dirname(p)
    return os.path.realpath(p)


def _make_targets(conf: dict, targets: list[tuple[str, bool]], sources: list[str]) -> list[str]:
    """Create missing mount targets and the working directory without writing to the host (see above);
    returns the paths the sources are to be bound from."""
    missing = [t for t in targets if not os.path.exists(t[0])]
    if not missing:
        return sources
    _mount("tmpfs", conf["scratch"], "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    sfd = os.open(conf["scratch"], os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    scratch = f"/proc/self/fd/{sfd}"
    pivoted = False
    if any(_deepest_existing(path) == "/" for path, _ in missing):
        sources = _pivot(scratch, sources)
        pivoted = True
    overlaid: list[str] = []
    for n, (path, is_file) in enumerate(sorted(missing)):
        if os.path.exists(path):
            continue
        base = _deepest_existing(path)
        on_root = pivoted and os.stat(base).st_dev == os.stat("/").st_dev
        if not on_root and not any(base == o or base.startswith(o + "/") for o in overlaid):
            os.mkdir(f"{scratch}/u{n}")
            os.mkdir(f"{scratch}/w{n}")
            _mount("overlay", base, "overlay", 0, f"lowerdir={base},upperdir={scratch}/u{n},workdir={scratch}/w{n}")
            overlaid.append(base)
        os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
        if is_file:
            with open(path, "a"):
                pass
        else:
            os.mkdir(path, 0o755)
    return sources


def _mounts(conf: dict) -> None:
    _check(_libc.unshare(CLONE_NEWNS | CLONE_NEWUTS), "unshare")
    _mount(None, "/", None, MS_REC | MS_SLAVE)
    if _libc.umount2(b"/sys", MNT_DETACH) == 0:  # as `ip netns exec`: sysfs of this network namespace
        try:
            _mount("sysfs", "/sys", "sysfs", 0)
        except OSError:
            pass
    mounts = conf.get("mounts") or []
    # The sources are held open first: the overlays below may cover the paths that name them.
    fds = [os.open(m["src"], os.O_PATH | os.O_CLOEXEC) for m in mounts]
    targets = [(m["dst"], bool(m.get("file"))) for m in mounts]
    if conf.get("workdir"):
        targets.append((conf["workdir"], False))
    sources = _make_targets(conf, targets, [f"/proc/self/fd/{fd}" for fd in fds])
    for src, m in zip(sources, mounts):
        _mount(src, m["dst"], None, MS_BIND | MS_REC)
        if m.get("ro"):
            _mount(None, m["dst"], None, MS_BIND | MS_REMOUNT | MS_RDONLY)
    for fd in fds:
        os.close(fd)
    if os.path.isdir(STAGE) and sources and sources[0].startswith(STAGE):
        for src in sources:
            _libc.umount2(src.encode(), MNT_DETACH)
            (os.rmdir if os.path.isdir(src) else os.unlink)(src)
        os.rmdir(STAGE)
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
    # runc's default umask, also for the directories made below (the daemon's own, 077, is for its state)
    os.umask(0o022)
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
        os.chdir(conf.get("workdir") or "/")
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
