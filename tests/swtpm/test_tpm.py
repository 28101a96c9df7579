"""sld.tpm against a real swtpm: banks, batched reads, multi-bank extends, locality and transport errors."""

from __future__ import annotations

import hashlib

import pytest

from sld.errors import TpmError
from sld.replay import DRTM_PCRS
from sld.sim.swtpm import Swtpm
from sld.tpm import RETRY_ATTEMPTS, Tpm

BANKS = ("sha1", "sha256")


def test_banks_are_discovered_once(swtpm: Swtpm) -> None:
    with Tpm(swtpm.tcti) as tpm:
        assert set(BANKS) <= set(tpm.banks())
        tpm.banks()
        assert tpm.commands == 1


def test_twelve_digests_take_exactly_two_reads_and_show_no_launch(swtpm: Swtpm) -> None:
    with Tpm(swtpm.tcti) as tpm:
        values = tpm.read_pcrs(DRTM_PCRS, BANKS)
        assert tpm.commands == 2
    for bank in BANKS:
        assert values[bank] == {p: b"\xff" * hashlib.new(bank).digest_size for p in DRTM_PCRS}


def test_drtm_resets_and_measures_pcr17(swtpm: Swtpm) -> None:
    swtpm.drtm(b"sinit-acm\x00\x01")
    with Tpm(swtpm.tcti) as tpm:
        values = tpm.read_pcrs(DRTM_PCRS, BANKS)
    for bank in BANKS:
        size = hashlib.new(bank).digest_size
        measured = hashlib.new(bank, b"sinit-acm\x00\x01").digest()
        assert values[bank][17] == hashlib.new(bank, bytes(size) + measured).digest()
        assert all(values[bank][p] == bytes(size) for p in range(18, 23))


def test_extend_at_locality_zero_is_refused_and_changes_nothing(swtpm: Swtpm) -> None:
    swtpm.drtm(b"x")
    with Tpm(swtpm.tcti) as tpm:
        before = tpm.read_pcrs([17], BANKS)
        with pytest.raises(TpmError) as err:
            tpm.extend(17, {"sha1": bytes(20), "sha256": bytes(32)})
        assert err.value.kind == "locality" and err.value.rc == 0x907 and "PCR17 needs" in str(err.value)
        assert tpm.read_pcrs([17], BANKS) == before


def test_one_extend_carries_every_bank(swtpm: Swtpm) -> None:
    swtpm.drtm(b"x")
    digests = {b: hashlib.new(b, b"event").digest() for b in BANKS}
    with Tpm(swtpm.tcti, locality=2) as tpm:
        before = tpm.read_pcrs([18], BANKS)
        n = tpm.commands
        tpm.extend(18, digests)
        assert tpm.commands == n + 1
        after = tpm.read_pcrs([18], BANKS)
    for bank in BANKS:
        assert after[bank][18] == hashlib.new(bank, before[bank][18] + digests[bank]).digest()


def test_closed_port_is_unavailable(swtpm: Swtpm) -> None:
    swtpm.stop()
    with pytest.raises(TpmError) as err:
        with Tpm(swtpm.tcti) as tpm:
            tpm.banks()
    assert err.value.kind == "unavailable"


@pytest.mark.parametrize(("rc", "name"), [(0x922, "RETRY"), (0x90A, "TESTING"), (0x908, "YIELDED")])
def test_retry_answers_are_retried_with_bounded_backoff(swtpm: Swtpm, rc: int, name: str) -> None:
    from tests.relay import TpmProxy

    proxy = TpmProxy(swtpm.port)
    try:
        with Tpm(proxy.tcti) as tpm:
            proxy.inject(rc, 2)
            values = tpm.read_pcrs([17], ["sha256"])  # two busy answers, then the TPM's own
            assert values["sha256"][17] == b"\xff" * 32 and proxy.injected == 2
            proxy.inject(rc, 50)
            with pytest.raises(TpmError) as err:
                tpm.read_pcrs([17], ["sha256"])
            assert err.value.kind == "retry" and err.value.rc == rc
            # Bounded: ESAPI resubmits a command up to 5 times itself; sld adds RETRY_ATTEMPTS rounds with backoff.
            assert proxy.injected == 2 + RETRY_ATTEMPTS * 5
    finally:
        proxy.stop()


def test_a_closed_or_collected_tpm_is_released_and_refuses_commands(swtpm: Swtpm) -> None:
    """ESAPI and TCTI contexts are freed once, in order (close twice is harmless); a closed Tpm sends nothing."""
    import gc

    tpm = Tpm(swtpm.tcti)
    tpm.close()
    tpm.close()
    for call in (tpm.banks, lambda: tpm.read_pcrs([17], ["sha256"]), lambda: tpm.set_locality(2)):
        with pytest.raises(TpmError) as err:
            call()
        assert err.value.kind == "unavailable" and "closed" in str(err.value)
    assert tpm.commands == 0
    for _ in range(50):  # unclosed ones are released when collected: swtpm keeps accepting new sessions
        Tpm(swtpm.tcti).banks()
        gc.collect()
    with Tpm(swtpm.tcti) as again:
        assert again.read_pcrs([17], ["sha256"])["sha256"][17]


def test_a_tpm_that_stops_answering_times_out_and_closes(swtpm: Swtpm) -> None:
    """Issue 17: a SIGSTOPped swtpm gives TpmError kind "timeout" within the bound, for a command and for the
    locality request at open; the stuck connection is never used again, and a new one works once it answers."""
    import os
    import signal
    import time

    tpm = Tpm(swtpm.tcti, timeout=0.5)
    assert tpm.banks()
    os.kill(swtpm.pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(TpmError) as err:
            tpm.read_pcrs([17], ["sha256"])
        assert err.value.kind == "timeout" and "TPM2_PCR_Read" in str(err.value)
        assert time.monotonic() - started < 2.0
        with pytest.raises(TpmError) as closed:
            tpm.read_pcrs([17], ["sha256"])
        assert closed.value.kind == "unavailable" and "closed" in str(closed.value)
        with pytest.raises(TpmError) as at_open:
            Tpm(swtpm.tcti, locality=2, timeout=0.5)
        assert at_open.value.kind == "timeout"
    finally:
        os.kill(swtpm.pid, signal.SIGCONT)
    with Tpm(swtpm.tcti, timeout=5) as again:
        assert again.read_pcrs([17], ["sha256"])["sha256"][17] == b"\xff" * 32


def test_abandoned_commands_are_bounded_while_the_tpm_stays_silent(swtpm: Swtpm) -> None:
    """Reopening every interval must not pile up stuck threads: past MAX_ABANDONED, nothing more is sent
    (refused at once) until the TPM answers; then the abandoned connections are released."""
    import os
    import signal
    import threading
    import time

    from sld.tpm import ABANDONED, MAX_ABANDONED

    os.kill(swtpm.pid, signal.SIGSTOP)
    try:
        for _ in range(MAX_ABANDONED + 3):
            with pytest.raises(TpmError) as err:
                Tpm(swtpm.tcti, timeout=0.2)
            assert err.value.kind == "timeout"
        assert ABANDONED.count == MAX_ABANDONED and "still without an answer" in str(err.value)
        stuck = threading.active_count()
    finally:
        os.kill(swtpm.pid, signal.SIGCONT)
    deadline = time.monotonic() + 10
    while ABANDONED.count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert ABANDONED.count == 0 and threading.active_count() <= stuck - MAX_ABANDONED
    with Tpm(swtpm.tcti) as again:
        assert again.banks()
