"""The service's published state: the staleness rule, the status exit codes, the collector fed by a
callable, and an import graph of sld/service without cycles (read from the source, not assumed)."""

from __future__ import annotations

import ast
from dataclasses import replace
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest

from sld.errors import LockError
from sld.service.metrics import SldCollector
from sld.service.state import DaemonStatus, Histogram, failed_checks
from sld.sim.swtpm import free_port_pair
from sld.verify import Check, Verdict
from sld.vocab import CheckId, CheckStatus, DaemonState, Mode, Result

SERVICE = Path(__file__).parents[2] / "sld" / "service"


def verdict(result: Result, *failed: CheckId) -> Verdict:
    checks = tuple(Check(c, CheckStatus.FAIL, "failed here") for c in failed)
    return Verdict(result=result, summary="s", source="image:x", mode=Mode.AUTO,
                   checks=(Check(CheckId.TXT_REGISTERS, CheckStatus.PASS, ""), *checks), pcrs=(), banks=("sha256",))


def test_a_verdict_is_current_only_while_running_or_failed() -> None:
    running = DaemonStatus(state=DaemonState.RUNNING, verdict=verdict(Result.VERIFIED), verdict_time=100.0)
    assert running.launch_verified and not running.stale and running.exit_code == 0
    degraded = replace(running, state=DaemonState.DEGRADED, error="TPM unavailable", error_exit_code=4)
    assert degraded.stale and not degraded.launch_verified and degraded.exit_code == 4
    assert degraded.verdict_age(130.0) == 30.0
    locked = replace(degraded, error="extend lock ... gave up waiting", error_exit_code=LockError.exit_code)
    assert locked.stale and locked.exit_code == 5  # what `sld verify` exits with for it
    failed = DaemonStatus(state=DaemonState.FAILED, verdict=verdict(Result.NOT_LAUNCHED))
    assert not failed.stale and not failed.launch_verified and failed.exit_code == 3
    assert DaemonStatus().exit_code == 4 and DaemonStatus().verdict_age(1.0) is None


def test_failed_checks_are_the_verdicts_check_ids() -> None:
    v = verdict(Result.FAILED, CheckId.PCR_MATCH, CheckId.LOG_DIGESTS)
    assert failed_checks(v) == ("pcr.match", "log.digests")


def test_histogram_observe_returns_a_new_value() -> None:
    h = Histogram(bounds=(0.1, 1.0), counts=(0, 0))
    h2 = h.observe(0.5).observe(0.05)
    assert (h.count, h2.count, h2.counts, h2.total) == (0, 2, (1, 2), 0.55)


def test_the_collector_renders_the_status_it_is_given() -> None:
    status = DaemonStatus(state=DaemonState.RUNNING, verdict=verdict(Result.FAILED, CheckId.PCR_MATCH),
                          verdict_time=1000.0, durations=Histogram().observe(0.02), verifications=3)
    current = [status]
    registry = CollectorRegistry()
    registry.register(SldCollector(lambda: current[0], clock=lambda: 1042.0))
    text = generate_latest(registry).decode()
    assert 'sld_check_passed{check="pcr.match"} 0.0' in text and "sld_last_verdict_age_seconds 42.0" in text
    assert "sld_verifications_total 3.0" in text and 'sld_daemon_state{sld_daemon_state="running"} 1.0' in text
    current[0] = replace(status, verdict=verdict(Result.VERIFIED))
    assert "sld_launch_verified 1.0" in generate_latest(registry).decode()
    current[0] = replace(current[0], state=DaemonState.DEGRADED)
    assert "sld_launch_verified 0.0" in generate_latest(registry).decode()  # stale: never a current pass


def _service_imports(path: Path) -> set[str]:
    """Modules of sld.service that ``path`` imports, at any level (TYPE_CHECKING blocks included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        else:
            continue
        found |= {n.split(".")[2] for n in names if n.startswith("sld.service.") and n.count(".") == 2}
    return found - {path.stem}


def test_sld_service_has_no_import_cycle_and_nothing_imports_the_daemon() -> None:
    graph = {p.stem: _service_imports(p) for p in SERVICE.glob("*.py") if p.stem != "__init__"}
    assert all("daemon" not in deps for deps in graph.values()), graph
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import cycle: {' -> '.join((*path, module))}"
        if module not in done:
            for dep in graph.get(module, ()):
                visit(dep, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())
    assert graph["state"] == set() and "daemon" in graph and "control" in graph["daemon"]


def test_the_daemon_imports_only_what_its_configuration_uses(tmp_path: Path) -> None:
    """Started without metrics and quarantine, the daemon has not imported prometheus-client, the HTTP
    stack or pyroute2 (each costs the idle daemon memory); with metrics it has prometheus-client only;
    evidence code (and cryptography) waits for the first attest request either way."""
    import subprocess
    import sys

    code = """
import sys
from sld.config import load
from sld.service.daemon import Daemon
daemon = Daemon(load(sys.argv[1]))
daemon.start_servers()
daemon._close_servers()
print(" ".join(m for m in ("prometheus_client", "http.server", "pyroute2", "sld.evidence", "cryptography")
               if m in sys.modules))
"""
    loaded = {}
    for enabled in ("false", "true"):
        conf = tmp_path / f"{enabled}.toml"
        conf.write_text(f'[metrics]\nenabled = {enabled}\nport = {free_port_pair()}\n[control]\n'
                        f'socket = "{tmp_path / enabled}.sock"\n')
        run = subprocess.run([sys.executable, "-c", code, str(conf)], capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
        loaded[enabled] = run.stdout.split()
    assert loaded == {"false": [], "true": ["prometheus_client", "http.server"]}

