"""units/sld.service under a real systemd as PID 1 (systemd-nspawn on a debootstrap'd Debian root):
active only after READY, the verdict in StatusText, structured journal fields, deferred extends
performed under the unit's sandbox (the extend lock), and a hung main loop killed by the watchdog
and restarted. The container shares the host's network namespace only to reach the simulator's
swtpm on 127.0.0.1; it touches no interface. The image is bound at /srv/sim because the unit's
PrivateTmp hides the host's /tmp.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[2]
pytestmark = [pytest.mark.system, pytest.mark.swtpm,
              pytest.mark.skipif(os.geteuid() != 0, reason="systemd-nspawn needs root"),
              pytest.mark.skipif(shutil.which("systemd-nspawn") is None or shutil.which("debootstrap") is None,
                                 reason="systemd-nspawn / debootstrap (Debian systemd-container, debootstrap) absent")]

CHECK = """#!/bin/sh
# Runs inside the container after sld.service started: record, hang the main loop, record again.
sleep 1
systemctl show sld -p ActiveState -p SubState -p StatusText -p NRestarts -p MainPID > /out/before
journalctl -b -u sld -o json > /out/journal.json
kill -STOP "$(systemctl show -p MainPID --value sld)"
i=0
while [ "$(systemctl show -p NRestarts --value sld)" = 0 ] && [ $i -lt 30 ]; do sleep 0.5; i=$((i+1)); done
i=0
while [ "$(systemctl show -p ActiveState --value sld)" != active ] && [ $i -lt 30 ]; do sleep 0.5; i=$((i+1)); done
systemctl show sld -p ActiveState -p NRestarts -p StatusText > /out/after
journalctl -b -u sld --no-pager > /out/journal.txt
systemctl --no-block poweroff
"""
CHECK_UNIT = """[Unit]
Description=sld test driver
After=sld.service
Wants=sld.service
[Service]
Type=oneshot
ExecStart=/bin/sh /out/check.sh
"""
DROP_IN = """[Service]
# The test's interpreter, venv and checkout are bind-mounted from the host (under /root, and wherever the
# checkout is: the unit's PrivateTmp would hide a checkout under /tmp, so it is bound back in).
ProtectHome=no
BindReadOnlyPaths={root} {venv}
Environment=PYTHONPATH={root}
WatchdogSec=3s
RestartSec=1s
"""


def props(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def test_service_under_systemd(rootfs: Path, tmp_path: Path) -> None:
    sld = Path(sys.executable).parent / "sld"
    sim = tmp_path / "sim"
    up = subprocess.run([sys.executable, "-m", "sld.cli", "sim", "up", "--scenario", "partial-extend", "--dir",
                         str(sim), "--json"], capture_output=True, text=True, check=True)
    info = json.loads(up.stdout)
    units = tmp_path / "units"
    (units / "multi-user.target.wants").mkdir(parents=True)
    (units / "sld.service").write_text((ROOT / "units" / "sld.service").read_text().replace("/usr/bin/sld", str(sld)))
    (units / "sld.service.d").mkdir()
    (units / "sld.service.d" / "test.conf").write_text(DROP_IN.format(root=ROOT, venv=sys.prefix))
    (units / "sld-check.service").write_text(CHECK_UNIT)
    for unit in ("sld.service", "sld-check.service"):
        (units / "multi-user.target.wants" / unit).symlink_to(f"/etc/systemd/system/{unit}")
    out = tmp_path / "out"
    out.mkdir()
    (out / "check.sh").write_text(CHECK)
    conf = tmp_path / "sld.toml"
    conf.write_text(f'[source]\nspec = "image:/srv/sim/phys.img"\n[tpm]\ntcti = "{info["tcti"]}"\nlocality = 2\n'
                    f'[metrics]\nenabled = false\n')
    try:
        run = subprocess.run(
            ["systemd-nspawn", "-D", str(rootfs), "-b", "-q", "--register=no", "--keep-unit", "--console=passive",
             "--volatile=overlay", "--bind-ro=/root/.pyenv", f"--bind-ro={ROOT}", f"--bind-ro={sys.prefix}",
             f"--bind-ro={sim}:/srv/sim",
             f"--bind-ro={units}:/etc/systemd/system", f"--bind-ro={conf}:/etc/sld/sld.toml", f"--bind={out}:/out"],
            capture_output=True, text=True, timeout=180)
    finally:
        subprocess.run([sys.executable, "-m", "sld.cli", "sim", "down", "--dir", str(sim)], capture_output=True)
    assert (out / "after").exists(), run.stdout[-3000:] + run.stderr[-3000:]
    before, after = props(out / "before"), props(out / "after")
    assert before["ActiveState"] == "active" and before["SubState"] == "running"
    assert before["StatusText"].startswith("verified: dynamic launch verified")
    records = [json.loads(line) for line in (out / "journal.json").read_text().splitlines()]
    verdicts = [r for r in records if r.get("SLD_VERDICT") == "verified"]
    assert verdicts and verdicts[0]["MESSAGE_ID"] and verdicts[0]["SLD_SOURCE"] == "image:/srv/sim/phys.img"
    started = next(i for i, r in enumerate(records) if "Started" in r.get("MESSAGE", ""))
    assert records.index(verdicts[0]) < started  # active only after READY, which follows the first verdict
    # The 17 deferred events, extended under the unit's sandbox (PrivateTmp, ProtectSystem=strict,
    # RestrictAddressFamilies): the extend lock's abstract socket and /run/sld file work there.
    assert any(r.get("MESSAGE") == "extended 17 deferred events" for r in records), [r.get("MESSAGE") for r in records]
    journal = (out / "journal.txt").read_text()
    assert "Watchdog timeout" in journal
    assert int(after["NRestarts"]) >= 1 and after["ActiveState"] == "active"
