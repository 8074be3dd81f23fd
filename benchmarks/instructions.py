"""Instruction counts of the zero-copy restore and of a re-park, where the machine can count them.

A restore's time moves with the machine (this project's CPU VM runs each process at one of two
speeds); the number of instructions the host executes for it does not. A counter's ``count(n)``
gives, per call, the instructions of ``n`` zero-copy restores (``engine.reconstruct``) and of ``n`` stores of the
restored cache back into the pool (a re-park: the layers are adopted, nothing is copied), each
call counted alone, on a small workload: one agent's Gemma 3 12B cache of ``CONTEXT`` tokens.
A zero-copy restore's host work depends on the layer count, not on the bytes, so a short context
measures the same code as a long one, at a fraction of the setup.

Counters, the first that works on this machine (``choose_counter``):

- ``perf``: Linux ``perf_event_open`` (hardware instructions, user space only: ``exclude_kernel``,
  ``exclude_hv``), one counter per thread of this process, read around each call, in this
  process. Needs a PMU the kernel exposes and ``perf_event_paranoid`` <= 2.
- ``rusage``: macOS ``proc_pid_rusage(getpid(), RUSAGE_INFO_V4)`` -> ``ri_instructions``, the
  whole task's count (no root needed), read around each call, in this process.
- ``callgrind``: valgrind's callgrind counts the instructions of a child Python (``child_main``)
  that builds the same workload and makes the same calls. The child marks each call with
  callgrind's client requests (zero the counts before, dump them after, labelled), so startup,
  the build and the calls between are not counted, in every thread, exactly; it runs with
  ``PYTHONHASHSEED=0`` (a count, not a time: the point is that the same code gives the same
  number, and string hashes would otherwise change dict layouts from process to process).

Every counter counts an empty region as well (``"empty"``: what the marking itself costs) and
subtracts it. Python's cyclic garbage collector is off during the calls: a collection falls
where an allocation count says, not where the code changed. Where no counter works,
``choose_counter`` raises ``Unavailable`` with one line that says why for each: never a number
that was not counted.

This file imports only the standard library at module level (kvcache, and through it MLX, when
a workload is built): the callgrind child runs it as a script (``python instructions.py --child``).
"""

import contextlib
import ctypes
import errno
import gc
import glob
import mmap
import os
import platform
import re
import shutil
import struct
import subprocess
import sys
import tempfile

PRESET = "gemma3-12b"
CONTEXT = 1024  # tokens: 48 layers like any context; the build stays small under valgrind
AGENT = "agent-0"
WARMUP = 10  # restore + store rounds before counting: caches filled, CPython's specialization settled
LABELS = ("restore", "store")
EMPTY = "empty"


class Unavailable(Exception):
    """No instruction counter on this machine; the message is one line that says why."""


# --- the workload and the counted calls ------------------------------------------------------
def small_engine(context=CONTEXT):
    """``(engine, agent)``: one agent's random Gemma 3 12B cache of ``context`` tokens (seed 0),
    stored, then restored and stored back ``WARMUP`` times."""
    from kvcache import BlockPool, BlockPoolBatchEngine, ModelCacheSpec
    from kvcache.synthetic import random_cache

    spec = ModelCacheSpec.from_preset(PRESET)
    engine = BlockPoolBatchEngine(BlockPool(spec, total_blocks=2 * spec.total_blocks_needed(context)))
    engine.store(AGENT, random_cache(spec, context, seed=0))
    for _ in range(WARMUP):
        engine.store(AGENT, engine.reconstruct(AGENT))
    return engine, AGENT


def run_calls(region, engine, agent, n):
    """``n`` rounds of: an empty region, a zero-copy restore, a store of the restored cache
    (a re-park), each inside ``region(label)``; the cyclic GC is off meanwhile."""
    gc.collect()
    gc.disable()
    try:
        for _ in range(n):
            with region(EMPTY):
                pass
            with region("restore"):
                cache = engine.reconstruct(agent)
            with region("store"):
                engine.store(agent, cache)
            del cache
    finally:
        gc.enable()


def per_call(totals, counts):
    """``{label: instructions per call}`` for ``LABELS``: the mean of a label's regions minus
    the mean of the empty ones. ``totals`` and ``counts`` are ``{label: sum}``, ``{label: regions}``."""
    empty = totals[EMPTY] / counts[EMPTY]
    return {label: totals[label] / counts[label] - empty for label in LABELS}


class InProcess:
    """Regions counted by reading a counter (``read()``: instructions so far) before and after."""

    def __init__(self, read):
        self.read = read
        self.totals, self.counts = {}, {}

    @contextlib.contextmanager
    def region(self, label):
        before = self.read()
        yield
        after = self.read()
        self.totals[label] = self.totals.get(label, 0) + after - before
        self.counts[label] = self.counts.get(label, 0) + 1


# --- perf_event_open (Linux) -------------------------------------------------------------------
PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241, "arm64": 241}  # syscall numbers
PERF_TYPE_HARDWARE = 0
PERF_COUNT_HW_INSTRUCTIONS = 1
PERF_FLAG_FD_CLOEXEC = 1 << 3
# bits of perf_event_attr's flag word (include/uapi/linux/perf_event.h: disabled, inherit,
# pinned, exclusive, exclude_user, exclude_kernel, exclude_hv, ...)
EXCLUDE_KERNEL = 1 << 5
EXCLUDE_HV = 1 << 6
PERF_ATTR_SIZE_VER8 = 136  # the kernel's ABI sizes: VER0 64, VER1 72, ... VER8 136


class PerfEventAttr(ctypes.Structure):
    """``struct perf_event_attr`` up to ``PERF_ATTR_SIZE_VER8``; unions by their first member,
    the bitfield word as one ``flags`` integer."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),
        ("wakeup_events", ctypes.c_uint32),
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),  # end: PERF_ATTR_SIZE_VER0
        ("config2", ctypes.c_uint64),  # VER1
        ("branch_sample_type", ctypes.c_uint64),  # VER2
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),  # VER3
        ("sample_regs_intr", ctypes.c_uint64),  # VER4
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("reserved_2", ctypes.c_uint16),  # VER5
        ("aux_sample_size", ctypes.c_uint32),
        ("reserved_3", ctypes.c_uint32),  # VER6
        ("sig_data", ctypes.c_uint64),  # VER7
        ("config3", ctypes.c_uint64),  # VER8
    ]


def instructions_attr():
    """The attr of a user-space instruction counter, enabled, not inherited by new threads."""
    attr = PerfEventAttr()
    attr.type = PERF_TYPE_HARDWARE
    attr.size = ctypes.sizeof(PerfEventAttr)
    attr.config = PERF_COUNT_HW_INSTRUCTIONS
    attr.flags = EXCLUDE_KERNEL | EXCLUDE_HV
    return attr


def errno_reason(call, number):
    """``"perf_event_open: ENOENT (No such file or directory)"``."""
    return f"{call}: {errno.errorcode.get(number, str(number))} ({os.strerror(number)})"


def open_perf_counters(machine=None):
    """File descriptors of one instruction counter per thread of this process; ``Unavailable``
    with the errno's name when the kernel refuses (ENOENT: no PMU exposed, as in most VMs;
    EACCES or EPERM: ``perf_event_paranoid``)."""
    machine = machine or platform.machine()
    if sys.platform != "linux" or machine not in PERF_EVENT_OPEN:
        raise Unavailable(f"perf_event_open: not Linux on x86_64 or arm64 ({sys.platform}, {machine})")
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    attr = instructions_attr()
    fds = []
    for tid in sorted(int(t) for t in os.listdir("/proc/self/task")):
        fd = libc.syscall(
            ctypes.c_long(PERF_EVENT_OPEN[machine]), ctypes.byref(attr), ctypes.c_int(tid),
            ctypes.c_int(-1), ctypes.c_int(-1), ctypes.c_ulong(PERF_FLAG_FD_CLOEXEC),
        )
        number = ctypes.get_errno() if fd < 0 else 0
        if number == errno.ESRCH:  # the thread ended meanwhile
            continue
        if fd < 0:
            for opened in fds:
                os.close(opened)
            raise Unavailable(errno_reason("perf_event_open", number))
        fds.append(fd)
    return fds


@contextlib.contextmanager
def perf_counters():
    """``read()``: the instructions counted so far by a counter on every thread, summed; the
    counters are closed on exit."""
    fds = open_perf_counters()
    try:
        yield lambda: sum(struct.unpack("=Q", os.read(fd, 8))[0] for fd in fds)
    finally:
        for fd in fds:
            os.close(fd)


# --- proc_pid_rusage (macOS) -------------------------------------------------------------------
RUSAGE_INFO_V4 = 4


class RusageInfoV4(ctypes.Structure):
    """``struct rusage_info_v4`` (macOS <sys/resource.h>): 16 bytes of uuid, 35 ``uint64_t``."""

    _fields_ = [("ri_uuid", ctypes.c_uint8 * 16)] + [
        (name, ctypes.c_uint64)
        for name in (
            "ri_user_time", "ri_system_time", "ri_pkg_idle_wkups", "ri_interrupt_wkups", "ri_pageins",
            "ri_wired_size", "ri_resident_size", "ri_phys_footprint", "ri_proc_start_abstime",
            "ri_proc_exit_abstime", "ri_child_user_time", "ri_child_system_time",
            "ri_child_pkg_idle_wkups", "ri_child_interrupt_wkups", "ri_child_pageins",
            "ri_child_elapsed_abstime", "ri_diskio_bytesread", "ri_diskio_byteswritten",
            "ri_cpu_time_qos_default", "ri_cpu_time_qos_maintenance", "ri_cpu_time_qos_background",
            "ri_cpu_time_qos_utility", "ri_cpu_time_qos_legacy", "ri_cpu_time_qos_user_initiated",
            "ri_cpu_time_qos_user_interactive", "ri_billed_system_time", "ri_serviced_system_time",
            "ri_logical_writes", "ri_lifetime_max_phys_footprint", "ri_instructions", "ri_cycles",
            "ri_billed_energy", "ri_serviced_energy", "ri_interval_max_phys_footprint",
            "ri_runnable_time",
        )
    ]


def rusage_reader():
    """``read()``: this task's ``ri_instructions``. ``Unavailable`` off macOS, when the call
    fails, or when the count does not move (virtual macOS machines report 0)."""
    if sys.platform != "darwin":
        raise Unavailable(f"proc_pid_rusage: not macOS ({sys.platform})")
    libproc = ctypes.CDLL("/usr/lib/libproc.dylib", use_errno=True)
    info, pid = RusageInfoV4(), os.getpid()

    def read():
        if libproc.proc_pid_rusage(pid, RUSAGE_INFO_V4, ctypes.byref(info)) != 0:
            raise Unavailable(errno_reason("proc_pid_rusage", ctypes.get_errno()))
        return info.ri_instructions

    first = read()
    sum(range(10000))
    if read() <= first:
        raise Unavailable("proc_pid_rusage: ri_instructions does not count here (a virtual machine?)")
    return read


# --- callgrind (valgrind) -----------------------------------------------------------------------
# A valgrind client request on x86_64, as a function ``unsigned long request(unsigned long *args)``:
# valgrind.h's magic sequence (four rotations of rdi that add up to none, then xchg rbx, rbx)
# with rax = args and rdx = the default result 0. Natively it does nothing and returns 0.
CLIENT_REQUEST_X86_64 = bytes.fromhex(
    "4889f8"  # mov rax, rdi
    "31d2"  # xor edx, edx
    "48c1c703" "48c1c70d" "48c1c73d" "48c1c733"  # rol rdi, 3; 13; 61; 51
    "4887db"  # xchg rbx, rbx
    "4889d0"  # mov rax, rdx
    "c3"  # ret
)
RUNNING_ON_VALGRIND = 0x1001
# callgrind.h: VG_USERREQ_TOOL_BASE('C', 'T') + 0..5
DUMP_STATS, ZERO_STATS, TOGGLE_COLLECT, DUMP_STATS_AT, START_INSTRUMENTATION, STOP_INSTRUMENTATION = range(
    0x43540000, 0x43540006
)
DUMP_LABEL = re.compile(r"^desc: Trigger: Client Request: (\S+)\s*$", re.M)
DUMP_TOTALS = re.compile(r"^totals:\s*(\d+)\s*$", re.M)


class ClientRequests:
    """valgrind client requests from Python: the x86_64 sequence in an executable page."""

    def __init__(self):
        if platform.machine() not in ("x86_64", "AMD64"):
            raise Unavailable(f"callgrind: client requests are written for x86_64 only, not {platform.machine()}")
        self._page = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
        self._page.write(CLIENT_REQUEST_X86_64)
        address = ctypes.addressof(ctypes.c_char.from_buffer(self._page))
        self._call = ctypes.CFUNCTYPE(ctypes.c_ulong, ctypes.c_void_p)(address)
        self._args = (ctypes.c_ulong * 6)()
        self._labels = {}  # label -> its C string, alive as long as this object

    def request(self, code, arg=0):
        self._args[0], self._args[1] = code, arg
        return self._call(ctypes.addressof(self._args))

    def label(self, text):
        if text not in self._labels:
            self._labels[text] = ctypes.create_string_buffer(text.encode())
        return ctypes.addressof(self._labels[text])

    @contextlib.contextmanager
    def region(self, label):
        """Counts zeroed on entry; on exit dumped to a file of their own, labelled ``label``."""
        address = self.label(label)
        self.request(ZERO_STATS)
        yield
        self.request(DUMP_STATS_AT, address)


def child_main(n, context):
    """In the child under callgrind: build the workload uninstrumented, then instrument and
    count the ``n`` rounds of ``run_calls``. Exit status 3 when not under valgrind."""
    requests = ClientRequests()
    if not requests.request(RUNNING_ON_VALGRIND):
        print("instructions.py --child: not running under valgrind", file=sys.stderr)
        return 3
    _keep_valgrinds_file_limit()
    engine, agent = small_engine(context)
    requests.request(START_INSTRUMENTATION)
    run_calls(requests.region, engine, agent, n)
    requests.request(STOP_INSTRUMENTATION)
    return 0


def read_dumps(directory):
    """``(totals, counts)`` by label from callgrind's dump files in ``directory`` (the ones the
    child's regions wrote; the dump at program exit has no label and is left out)."""
    totals, counts = {}, {}
    for path in glob.glob(os.path.join(directory, "callgrind.out.*")):
        with open(path, encoding="utf-8", errors="replace") as f:
            text = f.read()
        label, total = DUMP_LABEL.search(text), DUMP_TOTALS.search(text)
        if label is None:
            continue
        if total is None:
            raise RuntimeError(f"callgrind: dump {os.path.basename(path)} has no totals line")
        totals[label.group(1)] = totals.get(label.group(1), 0) + int(total.group(1))
        counts[label.group(1)] = counts.get(label.group(1), 0) + 1
    return totals, counts


def valgrind_version(valgrind):
    done = subprocess.run([valgrind, "--version"], capture_output=True, text=True, check=False)
    return done.stdout.strip() or "valgrind"


def callgrind_command(valgrind, directory, n, context, python):
    """The child's command line: callgrind, instrumentation off until the child turns it on;
    valgrind's own messages to a log beside the dumps (the child's stderr stays the child's)."""
    return [
        valgrind, "--tool=callgrind", "--instr-atstart=no", "--dump-instr=no", "--dump-line=no",
        f"--log-file={os.path.join(directory, 'valgrind.log')}",
        f"--callgrind-out-file={os.path.join(directory, 'callgrind.out.%p')}",
        python, os.path.abspath(__file__), "--child", str(n), str(context),
    ]


def _keep_valgrinds_file_limit():
    """mlx-lm sets RLIMIT_NOFILE to (2048, 4096) when imported; valgrind refuses any hard limit
    but its own (ValueError), which would stop the import. In the child, that refusal is let
    pass: the limit stays valgrind's, and nothing counted depends on it."""
    import resource

    setrlimit = resource.setrlimit

    def setrlimit_but_nofile(which, limits):
        try:
            setrlimit(which, limits)
        except ValueError:
            if which != resource.RLIMIT_NOFILE:
                raise

    resource.setrlimit = setrlimit_but_nofile


# --- the counters --------------------------------------------------------------------------------
def count_in_process(open_reader, n, context):
    """``{label: instructions per call}`` of ``n`` rounds counted in this process by the reader
    ``open_reader()`` gives, opened after the workload is built (so its threads exist)."""
    engine, agent = small_engine(context)
    with open_reader() as read:
        counter = InProcess(read)
        run_calls(counter.region, engine, agent, n)
    return per_call(counter.totals, counter.counts)


class PerfCounter:
    """Linux perf_event_open: user-space instructions of every thread of this process."""

    name = "perf (perf_event_open, user-space instructions of every thread)"

    def __init__(self):
        for fd in open_perf_counters():  # raises Unavailable
            os.close(fd)

    def count(self, n, context=CONTEXT):
        return count_in_process(perf_counters, n, context)


class RusageCounter:
    """macOS proc_pid_rusage: the task's ``ri_instructions``."""

    name = "rusage (proc_pid_rusage RUSAGE_INFO_V4 ri_instructions, the whole task)"

    def __init__(self):
        rusage_reader()  # raises Unavailable

    def count(self, n, context=CONTEXT):
        return count_in_process(lambda: contextlib.nullcontext(rusage_reader()), n, context)


class CallgrindCounter:
    """valgrind's callgrind, in a child Python (``python``, default this one, with ``env`` added
    to the environment and ``PYTHONHASHSEED=0``)."""

    def __init__(self, python=None, env=None):
        self.valgrind = shutil.which("valgrind")
        if self.valgrind is None:
            raise Unavailable("callgrind: valgrind is not on PATH")
        if platform.machine() not in ("x86_64", "AMD64"):
            raise Unavailable(f"callgrind: client requests are written for x86_64 only, not {platform.machine()}")
        self.python, self.env = python or sys.executable, dict(env or {}, PYTHONHASHSEED="0")
        self.name = f"callgrind ({valgrind_version(self.valgrind)}, child Python, PYTHONHASHSEED=0)"

    def count(self, n, context=CONTEXT):
        """``RuntimeError`` when the child fails (its last lines in the message) or its dumps
        are not one per region: a counter that exists and breaks is an error, not a skip."""
        with tempfile.TemporaryDirectory(prefix="kvcache-callgrind-") as directory:
            done = subprocess.run(
                callgrind_command(self.valgrind, directory, n, context, self.python),
                env=dict(os.environ, **self.env), capture_output=True, text=True, check=False,
            )
            if done.returncode != 0:
                tail = " | ".join(done.stderr.strip().splitlines()[-3:])
                raise RuntimeError(f"callgrind: the child exited {done.returncode}: {tail}")
            totals, counts = read_dumps(directory)
        if any(counts.get(label) != n for label in (EMPTY, *LABELS)):
            raise RuntimeError(f"callgrind: expected {n} dumps of each region, got {counts}")
        return per_call(totals, counts)


COUNTERS = (PerfCounter, RusageCounter, CallgrindCounter)


def choose_counter(counters=None):
    """The first of ``counters`` (default ``COUNTERS``) that works here (``.name``, ``.count(n, context)`` giving
    ``{label: instructions per call}``); ``Unavailable`` naming why each one does not."""
    reasons = []
    for kind in counters or COUNTERS:
        try:
            return kind()
        except Unavailable as why:
            reasons.append(str(why))
    raise Unavailable("unavailable: " + "; ".join(reasons))


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"] and len(sys.argv) == 4:
        sys.exit(child_main(int(sys.argv[2]), int(sys.argv[3])))
    sys.exit("usage: instructions.py --child N CONTEXT (run by count_with_callgrind under valgrind)")
