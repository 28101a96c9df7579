"""Compile an operator's pcap filter expression with libpcap's own ``pcap_compile`` (ctypes), then
map its verdicts to tc direct-action codes: accept -> TC_ACT_OK, drop -> TC_ACT_SHOT.

cls_bpf runs classic BPF from the Ethernet header on ingress (it pushes the MAC header back before
running) and on egress, so the expression is compiled for DLT_EN10MB. ARP is always allowed: without
it no neighbour resolves and even the allowed traffic stops.

libpcap's optimizer is superlinear: a few hundred ``host`` terms take seconds, a thousand about half
a minute, and the daemon compiles on its main loop at start and on reload (systemd's watchdog is 30 s,
units/sld.service). So the compile runs in a child process (``python -m sld.quarantine.pcap``, the
expression on stdin, the program as JSON on stdout) that is killed after :data:`COMPILE_SECONDS`;
the expression is then refused as a ConfigError naming ``quarantine.allow``. A child also keeps
libpcap's parser state (not thread-safe before libpcap 1.8) out of the daemon.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import subprocess
import sys

from sld.errors import ConfigError

DLT_EN10MB = 1
SNAPLEN = 65535
PCAP_NETMASK_UNKNOWN = 0xFFFFFFFF
BPF_RET_K = 0x06
BPF_RET_MASK = 0x07
BPF_RET = 0x06
TC_ACT_OK = 0
TC_ACT_SHOT = 2
BPF_MAXINSNS = 4096  # linux/bpf_common.h: the kernel refuses a longer classic program (sk_chk_filter)
COMPILE_SECONDS = 5.0  # the longest libpcap may take on ``allow`` (documented in conf/sld.toml)

Insn = tuple[int, int, int, int]  # code, jt, jf, k


class _Refused(Exception):
    """libpcap cannot compile the expression (or is absent): the child's message for the ConfigError."""


class _BpfInsn(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint32)]


class _BpfProgram(ctypes.Structure):
    _fields_ = [("bf_len", ctypes.c_uint), ("bf_insns", ctypes.POINTER(_BpfInsn))]


def _libpcap() -> ctypes.CDLL:
    name = ctypes.util.find_library("pcap") or "libpcap.so.0.8"
    try:
        lib = ctypes.CDLL(name)
    except OSError as err:
        raise _Refused(f"libpcap is not installed (Debian libpcap0.8): {err}") from None
    lib.pcap_open_dead.restype = ctypes.c_void_p
    lib.pcap_open_dead.argtypes = [ctypes.c_int, ctypes.c_int]
    lib.pcap_compile.argtypes = [ctypes.c_void_p, ctypes.POINTER(_BpfProgram), ctypes.c_char_p, ctypes.c_int,
                                 ctypes.c_uint32]
    lib.pcap_geterr.restype = ctypes.c_char_p
    lib.pcap_geterr.argtypes = [ctypes.c_void_p]
    lib.pcap_freecode.argtypes = [ctypes.POINTER(_BpfProgram)]
    lib.pcap_close.argtypes = [ctypes.c_void_p]
    return lib


def _compile_here(expression: str) -> list[Insn]:
    """libpcap's optimized classic BPF for ``expression``, in this process (the child's job)."""
    lib = _libpcap()
    handle = lib.pcap_open_dead(DLT_EN10MB, SNAPLEN)
    program = _BpfProgram()
    try:
        if lib.pcap_compile(handle, ctypes.byref(program), expression.encode(), 1, PCAP_NETMASK_UNKNOWN) != 0:
            message = lib.pcap_geterr(handle).decode(errors="replace")
            raise _Refused(f"libpcap rejects {expression!r}: {message}")
        insns = [(i.code, i.jt, i.jf, i.k) for i in program.bf_insns[0 : program.bf_len]]
        lib.pcap_freecode(ctypes.byref(program))
        return insns
    finally:
        lib.pcap_close(handle)


def compile_filter(expression: str, seconds: float = COMPILE_SECONDS) -> list[Insn]:
    """libpcap's classic BPF for ``expression`` (optimized), as it would filter a capture; compiled
    in a child process given ``seconds`` (see the module docstring)."""
    try:
        done = subprocess.run([sys.executable, "-m", __name__], input=expression, capture_output=True, text=True,
                              timeout=seconds, check=False)
    except subprocess.TimeoutExpired:
        raise ConfigError(f"libpcap did not compile the expression within {seconds:g} s (its optimizer slows "
                          "down sharply with many terms): simplify it, e.g. net/portrange instead of many "
                          "hosts/ports", key="quarantine.allow") from None
    try:
        answer = json.loads(done.stdout)
    except ValueError:
        raise ConfigError(f"the libpcap compiler exited with status {done.returncode}: "
                          f"{done.stderr.strip()[-300:] or 'no output'}", key="quarantine.allow") from None
    if "error" in answer:
        raise ConfigError(answer["error"], key="quarantine.allow")
    return [(int(c), int(t), int(f), int(k)) for c, t, f, k in answer["program"]]


def main() -> int:
    """The child: an expression on stdin, ``{"program": [[code, jt, jf, k], ...]}`` or ``{"error": ...}``
    on stdout."""
    try:
        answer: dict[str, object] = {"program": _compile_here(sys.stdin.read())}
    except _Refused as err:
        answer = {"error": str(err)}
    json.dump(answer, sys.stdout)
    return 0


def tc_program(allow: str, seconds: float = COMPILE_SECONDS) -> list[Insn]:
    """The quarantine classifier: ARP or ``allow`` -> TC_ACT_OK, everything else -> TC_ACT_SHOT."""
    out = []
    for code, jt, jf, k in compile_filter(f"arp or ({allow})", seconds):
        if code & BPF_RET_MASK == BPF_RET:
            if code != BPF_RET_K:
                raise ConfigError(f"libpcap produced a non-constant return (code 0x{code:x})", key="quarantine.allow")
            k = TC_ACT_OK if k else TC_ACT_SHOT
        out.append((code, jt, jf, k))
    if len(out) > BPF_MAXINSNS:
        raise ConfigError(f"compiles to {len(out)} classic-BPF instructions; the kernel takes at most {BPF_MAXINSNS} "
                          "(simplify the expression, e.g. use net/portrange instead of many hosts/ports)",
                          key="quarantine.allow")
    return out


if __name__ == "__main__":
    sys.exit(main())
