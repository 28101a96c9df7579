"""Coverage-guided fuzz targets (atheris), one per parser. Any exception other than sld's typed
errors is a crash. Seeds come from the simulator's scenarios (every layout) and ../shared/corpus.

    python fuzz/targets.py TARGET SECONDS [WORKDIR]    (fuzz/run runs them all)
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import atheris

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.quotes: the quote reader's comparison
with atheris.instrument_imports(include=["sld"]):
    from sld import config
    from sld.errors import SldError
    from sld.formats import eventlog, heap, registers, slrt
    from sld.formats._util import Region
    from sld.replay import replay
    from tests.quotes import agree

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"

def _log(data: bytes, end: int | None) -> object:
    """Parse, replay, and (without ``end``, as ``sld inspect log --file`` reads) stream the same bytes in
    chunks of 37: the same records, or the same refusal."""
    try:
        log = eventlog.parse_log(Region(data, 0x7A010000), end=end)
    except SldError:
        if end is None:
            try:
                _, streamed = eventlog.stream_log((data[i : i + 37] for i in range(0, len(data), 37)), len(data))
                for _ in streamed:
                    pass
            except SldError:
                raise
            raise AssertionError("streamed what parse_log refused") from None
        raise
    for ev in log.events:
        assert 0x7A010000 <= ev.offset < 0x7A010000 + len(data) and ev.type_name
    if end is None:
        _, streamed = eventlog.stream_log((data[i : i + 37] for i in range(0, len(data), 37)), len(data))
        assert [ev._replace(offset=ev.offset + 0x7A010000) for ev in streamed] == list(log.events)  # file offsets
    return replay(log), log.startup_locality


TARGETS: dict[str, Callable[[bytes], object]] = {
    "heap": lambda d: heap.parse_heap(Region(d, 0x7BE00000)),
    "slrt": lambda d: slrt.parse_slrt(Region(d, 0x7A000000)),
    "tpm12": lambda d: _log(d, None),
    "agile": lambda d: _log(d, len(d) - 7 if len(d) > 7 else None),
    "registers": lambda d: registers.parse_registers(Region(d[: registers.TXT_SPACE_SIZE], registers.TXT_PUB_BASE)),
    "config": lambda d: config.loads(d),
    "quote": agree,  # the verifier's TPM structure reader against the construct declarations
}


def seeds(target: str) -> Iterator[bytes]:
    from sld.sim.builder import build_platform
    from sld.sim.scenarios import LAYOUTS, SCENARIOS

    for layout in LAYOUTS:
        for sc in SCENARIOS:
            try:
                p = build_platform(sc.name, layout)
            except SldError:
                continue
            if target == "heap" and p.heap:
                yield p.heap[:0x400]
            elif target == "slrt" and p.slrt:
                yield p.slrt[:0x400]
            elif target == "tpm12" and sc.spec.log_format == "tpm12":
                yield p.log[:0x800]
            elif target == "agile" and sc.spec.log_format != "tpm12":
                yield p.log[:0x800]
            elif target == "registers":
                yield registers.build_registers(p.registers)[:0x900]
    if target == "agile":
        yield from (f.read_bytes()[:0x4000] for f in sorted(CORPUS.glob("*/*.bin")))
    if target == "config":
        yield (ROOT / "conf" / "sld.toml").read_bytes()
    if target == "quote":
        yield from quote_seeds()


def quote_seeds() -> Iterator[bytes]:
    """A quote's TPMS_ATTEST, RSASSA and ECDSA TPMT_SIGNATUREs and RSA and ECC AK TPM2B_PUBLICs, built
    with the declarations (values as tpm2_quote and tpm2_createak make them)."""
    from sld.formats import tpm2
    from sld.formats.tpm2_names import TPM_GENERATED_VALUE, TpmAlg, TpmEccCurve, TpmSt

    sel = [{"hash": TpmAlg.SHA256, "pcrSelect": b"\x00\x00\x7e"}]
    yield tpm2.build_struct(tpm2.TPMS_ATTEST, {
        "magic": TPM_GENERATED_VALUE, "type": TpmSt.ATTEST_QUOTE, "qualifiedSigner": {"name": bytes(34)},
        "extraData": {"buffer": bytes(16)}, "clockInfo": {"clock": 1, "resetCount": 1, "restartCount": 0, "safe": 1},
        "firmwareVersion": 1, "attested": {"pcrSelect": {"pcrSelections": sel}, "pcrDigest": {"buffer": bytes(32)}}},
        "TPMS_ATTEST")
    for alg, body in ((TpmAlg.RSASSA, {"hash": TpmAlg.SHA256, "sig": {"buffer": bytes(256)}}),
                      (TpmAlg.ECDSA, {"hash": TpmAlg.SHA256, "signatureR": {"buffer": bytes(32)},
                                      "signatureS": {"buffer": bytes(32)}})):
        yield tpm2.build_struct(tpm2.TPMT_SIGNATURE, {"sigAlg": alg, "signature": body}, "TPMT_SIGNATURE")
    area = {"nameAlg": TpmAlg.SHA256, "objectAttributes": {"restricted": True, "sign": True},
            "authPolicy": {"buffer": b""}}
    null = {"algorithm": TpmAlg.NULL, "details": {}}
    for extra in ({"type": TpmAlg.RSA, "unique": {"buffer": bytes(256)},
                   "parameters": {"symmetric": null, "scheme": {"scheme": TpmAlg.RSASSA, "details": {"hashAlg": 11}},
                                  "keyBits": 2048, "exponent": 0}},
                  {"type": TpmAlg.ECC, "unique": {"x": {"buffer": bytes(32)}, "y": {"buffer": bytes(32)}},
                   "parameters": {"symmetric": null, "scheme": {"scheme": TpmAlg.ECDSA, "details": {"hashAlg": 11}},
                                  "curveID": TpmEccCurve.NIST_P256, "kdf": {"scheme": TpmAlg.NULL, "details": {}}}}):
        yield tpm2.build_struct(tpm2.TPM2B_PUBLIC, {"publicArea": {**area, **extra}}, "TPM2B_PUBLIC")


def one_input(fn: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def run(data: bytes) -> None:
        try:
            fn(data)
        except SldError:
            pass  # the only acceptable failure: typed, named, with an offset

    return run


def main() -> None:
    target, seconds = sys.argv[1], int(sys.argv[2])
    work = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(tempfile.mkdtemp(prefix=f"sld-fuzz-{target}-"))
    corpus = work / "corpus"
    corpus.mkdir(parents=True, exist_ok=True)
    for i, seed in enumerate(seeds(target)):
        (corpus / f"seed-{i}").write_bytes(seed)
    atheris.Setup([sys.argv[0], str(corpus), f"-max_total_time={seconds}", "-max_len=16384", "-rss_limit_mb=4096",
                   f"-artifact_prefix={work}/"], one_input(TARGETS[target]))
    atheris.Fuzz()


if __name__ == "__main__":
    main()
