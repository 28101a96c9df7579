"""A real software TPM (swtpm) driven to the PCR state a dynamic launch leaves.

The launch is emulated the way the hardware does it (spec §6, rig-notes §1): the DRTM hash sequence
(``swtpm_ioctl -h``) resets PCR17-22 to zero and extends PCR17 with H(SINIT data); the SINIT's other
measurements are extended at locality 3; the Secure Launch kernel's at locality 2, all, none or some
of them per scenario. The TPM is left at locality 2, as a Secure Launch kernel leaves it; note that the
tss2 swtpm TCTI resets the locality to 0 when it connects, so a client that must extend PCR17-22
asks for locality 2 itself (``sld verify --locality 2``), as the Secure Launch kernel's driver does.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from sld.errors import SldError
from sld.formats.names import EVTYPE_HASH_START
from sld.replay import extends
from sld.sim.builder import Platform

HOST = "127.0.0.1"
STATE_FILE = "sim.json"
ACM_LOCALITY = 3
KERNEL_LOCALITY = 2


def free_port_pair() -> int:
    """A port P with P+1 also free: the tss2 swtpm TCTI always uses P+1 as the control port."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind((HOST, 0))
            port: int = s.getsockname()[1]
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind((HOST, port + 1))
            except OSError:
                continue
        return port
    raise SldError("no free TCP port pair on 127.0.0.1 for swtpm")


def process_identity(pid: int) -> dict[str, str] | None:
    """What tells *this* process apart from a later one reusing its PID: its executable, its start time
    (clock ticks after boot, /proc/PID/stat field 22) and the boot it started in; None if it is gone."""
    try:
        exe = os.readlink(f"/proc/{pid}/exe")
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3, starttime field 22
    return {"exe": exe, "start": fields[19], "boot": boot}


@dataclass
class Swtpm:
    """One swtpm process (daemonized) with its state directory; the TCTI string tpm2-pytss opens.

    ``identity`` (:func:`process_identity` when it started) is what :meth:`stop` checks before it
    signals or shuts down anything, so a stale record never stops a process this one did not start.
    """

    state_dir: Path
    port: int
    pid: int
    identity: dict[str, str] | None = None

    @property
    def tcti(self) -> str:
        """The tss2 swtpm TCTI string for this TPM (its control port is port + 1)."""
        return f"swtpm:host={HOST},port={self.port}"

    @property
    def ctrl(self) -> str:
        """host:port of the control channel swtpm_ioctl talks to."""
        return f"{HOST}:{self.port + 1}"

    @classmethod
    def start(cls, state_dir: str | os.PathLike[str], port: int | None = None,
              banks: tuple[str, ...] | None = None) -> Swtpm:
        """Start a TPM (TPM2_Startup(CLEAR) done by swtpm) that survives this process; ``port`` restarts
        one where its clients expect it (as a rebooted machine's TPM reappears at the same device).

        ``banks`` manufactures a new state with exactly those PCR banks active (:func:`allocate`); without
        it a new state has every bank libtpms knows (sha1, sha256, sha384, sha512, rig-notes §1).
        """
        if shutil.which("swtpm") is None:
            raise SldError("swtpm is not installed (Debian package swtpm)")
        state = Path(state_dir)
        state.mkdir(parents=True, exist_ok=True)
        if banks is not None:
            allocate(state, banks)
        fixed = port
        for _attempt in range(5):
            port = fixed or free_port_pair()
            pidfile = state / "swtpm.pid"
            pidfile.unlink(missing_ok=True)
            run = subprocess.run(
                ["swtpm", "socket", "--tpm2", "--tpmstate", f"dir={state}",
                 "--server", f"type=tcp,port={port},bindaddr={HOST}",
                 "--ctrl", f"type=tcp,port={port + 1},bindaddr={HOST}",
                 "--flags", "not-need-init,startup-clear", "-d", "--pid", f"file={pidfile}",
                 "--log", f"file={state / 'swtpm.log'},level=1"],
                capture_output=True, text=True)
            if run.returncode == 0 and _wait_listening(port):
                pid = int(pidfile.read_text())
                return cls(state, port, pid, process_identity(pid))
        raise SldError(f"swtpm did not start after 5 attempts: {run.stderr.strip()}")

    def ioctl(self, *args: str, data: bytes | None = None) -> str:
        """Run swtpm_ioctl on the control channel (locality, DRTM hash sequence, shutdown)."""
        run = subprocess.run(["swtpm_ioctl", "--tcp", self.ctrl, *args], input=data, capture_output=True)
        if run.returncode != 0:
            raise SldError(f"swtpm_ioctl {' '.join(args)}: {run.stderr.decode(errors='replace').strip()}")
        return run.stdout.decode(errors="replace")

    def set_locality(self, locality: int) -> None:
        """Locality is global swtpm state: it holds for every later client until changed."""
        self.ioctl("-l", str(locality))

    def drtm(self, data: bytes) -> None:
        """The DRTM sequence (_TPM_Hash_Start/Data/End): PCR17-22 := 0, PCR17 := H(0 || H(data))."""
        self.ioctl("-h", "-", data=data)

    def is_ours(self) -> bool:
        """Whether ``pid`` is still the swtpm that :meth:`start` started (same executable, start time, boot)."""
        return self.identity is not None and process_identity(self.pid) == self.identity

    def stop(self) -> None:
        """Shut it down (CMD_SHUTDOWN, then SIGTERM) if it is still ours; a process that is not is left alone."""
        if not self.is_ours():
            return
        try:
            self.ioctl("-s")
        except SldError:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                return
        for _ in range(100):
            if not _alive(self.pid):
                return
            time.sleep(0.01)

    def save(self, path: Path, **extra: object) -> None:
        """Record this TPM (with its process identity) in ``path`` for :meth:`load` and ``sim down``."""
        path.write_text(json.dumps({"state_dir": str(self.state_dir), "port": self.port, "pid": self.pid,
                                    "process": self.identity, "tcti": self.tcti, **extra}, indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> Swtpm:
        """The swtpm a ``sim.json`` records; a record without a process identity can never be stopped by sld."""
        try:
            info = json.loads(path.read_text())
            identity = info.get("process")
            return cls(Path(info["state_dir"]), int(info["port"]), int(info["pid"]),
                       {k: str(v) for k, v in identity.items()} if isinstance(identity, dict) else None)
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError) as err:
            raise SldError(f"{path}: not a simulator record ({type(err).__name__}: {err})") from None


def allocate(state: Path, banks: tuple[str, ...]) -> None:
    """A new TPM state in ``state`` whose active PCR banks are ``banks``: swtpm_setup runs TPM2_PCR_Allocate
    and the TPM reset that makes it take effect (TPM 2.0 Part 3 §22.5), as a platform's firmware does."""
    if shutil.which("swtpm_setup") is None:
        raise SldError("swtpm_setup is not installed (Debian package swtpm-tools)")
    try:
        run = subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--pcr-banks", ",".join(banks),
                              "--overwrite"], capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise SldError(f"swtpm_setup --pcr-banks {','.join(banks)} did not finish in 60 s") from None
    if run.returncode != 0:
        raise SldError(f"swtpm_setup --pcr-banks {','.join(banks)}: {(run.stderr or run.stdout).strip()}")


def _alive(pid: int) -> bool:
    """Running and not a zombie (a daemonized swtpm's parent may never reap it)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _wait_listening(port: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((HOST, port + 1), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.01)
    return False


def launch(tpm: Swtpm, platform: Platform) -> dict[str, int]:
    """Drive ``tpm`` to the state the scenario's launch leaves; returns what was extended where."""
    from sld.tpm import Tpm

    spec = platform.scenario.spec
    if not spec.launched:
        return {"drtm": 0, "sinit": 0, "kernel": 0}
    events = platform.events
    start = next(e for e in events if e.type == EVTYPE_HASH_START)
    tpm.drtm(start.data)
    sinit = [e for e in events if not e.window and e is not start and extends(e)]
    window = [e for e in events if e.window]
    kernel = window if spec.window_extended is None else window[: spec.window_extended]
    with Tpm(tpm.tcti, locality=ACM_LOCALITY) as dev:
        banks = dev.banks()
        for ev in sinit:
            dev.extend(ev.pcr, {b: d for b, d in ev.digests.items() if b in banks})
        dev.set_locality(KERNEL_LOCALITY)
        for ev in kernel:
            dev.extend(ev.pcr, {b: d for b, d in ev.digests.items() if b in banks})
    return {"drtm": 1, "sinit": len(sinit), "kernel": len(kernel)}
