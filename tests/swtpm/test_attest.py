"""The host side of issue 14 against a real swtpm: `sld ak create`, `sld ak activate` answering tpm2-tools'
TPM2_MakeCredential, and `sld attest` evidence accepted by tpm2_checkquote (the independent referee)."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sld.formats import tpm2
from sld.formats.eventlog import parse_log
from sld.formats.quote import object_name, selected_pcrs
from sld.formats.tpm2_names import TpmAlg, TpmSt
from sld.replay import replay
from sld.sim.swtpm import Swtpm
from tests.swtpm.conftest import Sim, sld

NONCE = bytes(range(16, 48))
TOOLS = ("tpm2_makecredential", "tpm2_checkquote", "tpm2_createek", "tpm2_nvdefine", "tpm2_readpublic",
         "tpm2_pcrread", "tpm2_evictcontrol", "tpm2_getcap", "tpm2_nvreadpublic",
         "swtpm_setup")
pytestmark = pytest.mark.skipif(any(shutil.which(t) is None for t in TOOLS),
                                reason=f"tpm2-tools / swtpm-tools ({', '.join(TOOLS)}) are absent")


def _json(run: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)  # type: ignore[no-any-return]


def _tools(tcti: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, TPM2TOOLS_TCTI=tcti))


@pytest.fixture
def provisioned(tmp_path: Path) -> Iterator[Swtpm]:
    """A swtpm manufactured as a real TPM is: EK certificates in NV 0x01C00002 and 0x01C00016, and the platform
    certificate at 0x01C08000 (swtpm_setup --create-ek-cert --create-platform-cert)."""
    state = tmp_path / "tpm"
    state.mkdir()
    setup = subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--create-ek-cert",
                            "--create-platform-cert",
                            "--pcr-banks", "sha1,sha256", "--overwrite"], capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    tpm = Swtpm.start(state)
    yield tpm
    tpm.stop()


@pytest.fixture
def two_banks(tmp_path: Path) -> Iterator[tuple[Path, Swtpm]]:
    """The clean launch on a TPM with exactly the log's banks allocated (sha1, sha256), as on most servers."""
    from sld.sim.builder import build_platform
    from sld.sim.swtpm import launch

    platform = build_platform("clean", None)
    image = tmp_path / "phys.img"
    platform.write_image(image)
    state = tmp_path / "tpm2"
    state.mkdir()
    setup = subprocess.run(["swtpm_setup", "--tpm2", "--tpmstate", str(state), "--pcr-banks", "sha1,sha256",
                            "--overwrite"], capture_output=True, text=True, timeout=120)
    assert setup.returncode == 0, setup.stdout + setup.stderr
    tpm = Swtpm.start(state)
    try:
        launch(tpm, platform)
        yield image, tpm
    finally:
        tpm.stop()


def test_ak_create_is_a_restricted_fixed_key_under_the_certified_ek(provisioned: Swtpm) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    made = _json(sld("ak", "create", "--tcti", provisioned.tcti, "--json"))
    public = base64.b64decode(made["ak"]["public"])
    area = tpm2.parse(tpm2.TPM2B_PUBLIC, public, "TPM2B_PUBLIC").publicArea
    attributes = area.objectAttributes
    assert all(attributes[f] for f in ("restricted", "sign", "fixedTPM", "fixedParent", "sensitiveDataOrigin",
                                       "userWithAuth"))
    assert not attributes.decrypt and area.type == TpmAlg.RSA
    assert area.parameters.scheme.scheme == TpmAlg.RSASSA and area.parameters.keyBits == 2048
    assert bytes.fromhex(made["ak"]["name"]) == object_name(public[2:])
    # tpm2-tools reads the same key back from the TPM at the handle.
    read = _tools(provisioned.tcti, "tpm2_readpublic", "-c", "0x81010002")
    assert read.returncode == 0 and f"name: {made['ak']['name']}" in read.stdout, read.stderr
    # swtpm_setup certified an RSA 2048 EK (0x01C00002) and an ECC P-384 EK (0x01C00016): both printed (the
    # platform certificate is no EK's), and the RSA EK sld made from the EK Credential Profile template is the
    # key the manufacturer certified.
    platform = _tools(provisioned.tcti, "tpm2_nvreadpublic", "0x01C08000")
    assert platform.returncode == 0, platform.stderr
    certificates = {c["index"]: x509.load_pem_x509_certificate(c["pem"].encode())
                    for c in made["ek"]["certificates"]}
    assert set(certificates) == {"0x01c00002", "0x01c00016"}
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    certified = certificates["0x01c00002"].public_key().public_bytes(serialization.Encoding.PEM, spki).decode()
    assert certified == made["ek"]["rsa"]["pem"]
    assert certificates["0x01c00016"].public_key().curve.name == "secp384r1"  # type: ignore[union-attr]
    text = sld("ak", "create", "--tcti", provisioned.tcti, "--replace")
    assert text.returncode == 0, text.stderr
    assert "EK certificate at NV 0x01c00002 (RSA 2048 EK (template L-1)):" in text.stdout
    assert "no EK certificate at NV 0x01c0000a, 0x01c00012, 0x01c00014\n" in text.stdout


def test_the_ecc_ek_and_its_certificate_at_0x01c0000a(swtpm: Swtpm, tmp_path: Path) -> None:
    """The ECC P-256 EK (template L-2) is the key tpm2_createek makes; a certificate a manufacturer put at
    NV 0x01C0000A for it (made here with a test CA, written with tpm2_nvdefine/nvwrite) is printed, whole
    though it is larger than one TPM2_NV_Read returns (the TPM's TPM_PT_NV_BUFFER_MAX)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    made = _json(sld("ak", "create", "--tcti", swtpm.tcti, "--json"))
    assert made["ek"]["certificates"] == []
    none = sld("ak", "create", "--tcti", swtpm.tcti, "--replace")
    assert "no EK certificate at NV 0x01c00002, 0x01c0000a, 0x01c00012, 0x01c00014, 0x01c00016\n" in none.stdout
    assert "EK certificate at" not in none.stdout.replace("no EK certificate at", "")
    created = _tools(swtpm.tcti, "tpm2_createek", "-c", str(tmp_path / "ek.ctx"), "-G", "ecc", "-f", "pem",
                     "-u", str(tmp_path / "ek.pem"))
    assert created.returncode == 0, created.stderr
    assert (tmp_path / "ek.pem").read_text() == made["ek"]["ecc"]["pem"]
    _tools(swtpm.tcti, "tpm2_flushcontext", "-t")
    ca = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "sld test EK CA")])
    der = (x509.CertificateBuilder().subject_name(name).issuer_name(name).serial_number(1)
           .public_key(serialization.load_pem_public_key(made["ek"]["ecc"]["pem"].encode()))  # type: ignore[arg-type]
           .not_valid_before(datetime.datetime(2026, 1, 1)).not_valid_after(datetime.datetime(2036, 1, 1))
           .add_extension(x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), bytes(1200)),
                          critical=False)
           .sign(ca, hashes.SHA256()).public_bytes(serialization.Encoding.DER))
    fixed = _tools(swtpm.tcti, "tpm2_getcap", "properties-fixed")
    nv_buffer_max = int(fixed.stdout.split("TPM2_PT_NV_BUFFER_MAX:")[1].split("raw:")[1].split()[0], 16)
    assert len(der) > nv_buffer_max  # read in more than one TPM2_NV_Read
    (tmp_path / "cert.der").write_bytes(der)
    for args in (("tpm2_nvdefine", "0x01C0000A", "-C", "o", "-s", str(len(der)), "-a",
                  "ownerread|ownerwrite|authread|authwrite|no_da"),
                 ("tpm2_nvwrite", "0x01C0000A", "-C", "o", "-i", str(tmp_path / "cert.der"))):
        run = _tools(swtpm.tcti, *args)
        assert run.returncode == 0, run.stderr
    again = _json(sld("ak", "create", "--tcti", swtpm.tcti, "--replace", "--json"))
    [cert] = again["ek"]["certificates"]
    assert cert["index"] == "0x01c0000a" and "P-256" in cert["key"]
    assert x509.load_pem_x509_certificate(cert["pem"].encode()).public_bytes(serialization.Encoding.DER) == der
    text = sld("ak", "create", "--tcti", swtpm.tcti, "--replace")
    assert text.returncode == 0, text.stderr
    assert "EK certificate at NV 0x01c0000a (ECC NIST P-256 EK (template L-2)):" in text.stdout
    assert "no EK certificate at NV 0x01c00002, 0x01c00012, 0x01c00014, 0x01c00016\n" in text.stdout


def test_ecc_ak_and_an_occupied_handle(swtpm: Swtpm) -> None:
    made = _json(sld("ak", "create", "--tcti", swtpm.tcti, "--alg", "ecc", "--json"))
    area = tpm2.parse(tpm2.TPM2B_PUBLIC, base64.b64decode(made["ak"]["public"]), "TPM2B_PUBLIC").publicArea
    assert area.type == TpmAlg.ECC and area.parameters.scheme.scheme == TpmAlg.ECDSA
    assert made["ek"]["certificates"] == [] and made["ak"]["pem"].startswith("-----BEGIN PUBLIC KEY-----")
    again = sld("ak", "create", "--tcti", swtpm.tcti)
    assert again.returncode == 4 and "0x81010002 holds a key already" in again.stderr and not again.stdout
    replaced = _json(sld("ak", "create", "--tcti", swtpm.tcti, "--replace", "--json"))
    assert replaced["ak"]["name"] != made["ak"]["name"]


def test_activate_answers_tpm2_makecredential_only_for_this_ak(swtpm: Swtpm, tmp_path: Path) -> None:
    made = _json(sld("ak", "create", "--tcti", swtpm.tcti, "--json"))
    ek = tmp_path / "ek.pub"
    ek.write_bytes(base64.b64decode(made["ek"]["rsa"]["public"]))
    secret = tmp_path / "secret"
    secret.write_bytes(b"enrolment secret 0123456789abcd")

    def challenge(name: str, out: Path) -> Path:
        run = _tools("none", "tpm2_makecredential", "-T", "none", "-u", str(ek), "-s", str(secret), "-n", name,
                     "-o", str(out))
        assert run.returncode == 0, run.stderr
        return out

    good = challenge(made["ak"]["name"], tmp_path / "good.cred")
    answer = sld("ak", "activate", "--tcti", swtpm.tcti, "--credential", str(good))
    assert answer.returncode == 0 and answer.stdout.strip() == secret.read_bytes().hex(), answer.stderr
    other_name = "000b" + hashlib.sha256(b"another key").hexdigest()
    wrong = sld("ak", "activate", "--tcti", swtpm.tcti, "--credential", str(challenge(other_name, tmp_path / "x")))
    assert wrong.returncode == 4 and not wrong.stdout and "TPM2_ActivateCredential" in wrong.stderr
    junk = tmp_path / "junk.cred"
    junk.write_bytes(good.read_bytes()[:-3])
    bad = sld("ak", "activate", "--tcti", swtpm.tcti, "--credential", str(junk))
    assert bad.returncode == 1 and "tpm2_makecredential file" in bad.stderr and "Traceback" not in bad.stderr


def check_evidence(evidence: dict[str, Any], tcti: str, tmp_path: Path) -> None:
    """Every quote passes tpm2_checkquote (AK PEM, nonce); its digest covers the reported PCRs, which are the
    TPM's (tpm2_pcrread); the log in the evidence replays to them."""
    assert evidence["schema"] == 1 and evidence["kind"] == "evidence" and evidence["nonce"] == NONCE.hex()
    assert [q["bank"] for q in evidence["quotes"]] == evidence["banks"]
    pem = tmp_path / "ak.pem"
    pem.write_text(evidence["ak"]["pem"])
    expected = replay(parse_log(base64.b64decode(evidence["drtm_log"]))).values
    for quote in evidence["quotes"]:
        bank = quote["bank"]
        attest, signature = tmp_path / f"{bank}.attest", tmp_path / f"{bank}.sig"
        attest.write_bytes(base64.b64decode(quote["attest"]))
        signature.write_bytes(base64.b64decode(quote["signature"]))
        check = _tools(tcti, "tpm2_checkquote", "-u", str(pem), "-m", str(attest), "-s", str(signature),
                       "-q", NONCE.hex())
        assert check.returncode == 0, check.stderr
        info = tpm2.parse(tpm2.TPMS_ATTEST, attest.read_bytes(), "TPMS_ATTEST")
        assert info.type == TpmSt.ATTEST_QUOTE and info.extraData.buffer == NONCE
        (selection,) = info.attested.pcrSelect.pcrSelections
        assert selected_pcrs(selection.pcrSelect) == (17, 18, 19, 20, 21, 22)
        values = [bytes.fromhex(quote["pcrs"][str(p)]) for p in range(17, 23)]
        assert info.attested.pcrDigest.buffer == hashlib.sha256(b"".join(values)).digest()
        read = _tools(tcti, "tpm2_pcrread", f"{bank}:17,18,19,20,21,22")
        for pcr, value in zip(range(17, 23), values, strict=True):
            assert f"{pcr}: 0x{value.hex().upper()}" in read.stdout
            if bank in expected:
                assert expected[bank][pcr] == value
    assert evidence["platform"]["authenticated"] is False and evidence["verdict"]["advisory"] is True


def test_attest_quotes_every_bank_and_both_verifiers_accept(two_banks: tuple[Path, Swtpm], tmp_path: Path) -> None:
    image, tpm = two_banks
    _json(sld("ak", "create", "--tcti", tpm.tcti, "--json"))
    out = tmp_path / "evidence.json"
    run = sld("attest", "--nonce", NONCE.hex(), "--source", f"image:{image}", "--tcti", tpm.tcti, "-o", str(out))
    assert run.returncode == 0 and not run.stdout, run.stderr
    evidence = json.loads(out.read_text())
    assert evidence["banks"] == ["sha1", "sha256"] and evidence["verdict"]["result"] == "verified"
    check_evidence(evidence, tpm.tcti, tmp_path)
    # and sld's own remote verifier (sld.evidence.check) accepts what this host wrote
    checked = sld("verify", "--evidence", str(out), "--ak", str(tmp_path / "ak.pem"), "--nonce", NONCE.hex())
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_attest_on_a_tpm_with_banks_the_log_lacks(sim: Sim, tmp_path: Path) -> None:
    """Every allocated bank is quoted, also those the log does not cover (the remote verifier says so)."""
    info = sim.up("uncovered-bank")
    _json(sld("ak", "create", "--tcti", info["tcti"], "--json"))
    run = sld("attest", "--nonce", NONCE.hex(), "--source", f"image:{info['image']}", "--tcti", info["tcti"])
    evidence = _json(run)
    assert evidence["banks"] == ["sha1", "sha256", "sha384"]
    check_evidence(evidence, info["tcti"], tmp_path)


@pytest.mark.parametrize("nonce", ["", "00" * 15, "zz" * 16, "00" * 65])
def test_attest_refuses_a_short_or_bad_nonce_before_touching_anything(sim: Sim, tmp_path: Path, nonce: str) -> None:
    out = tmp_path / "evidence.json"
    run = sld("attest", "--nonce", nonce, "--source", "image:/nonexistent", "--tcti", "swtpm:port=1", "-o", str(out))
    assert run.returncode == 2 and "--nonce" in run.stderr and not out.exists()


def test_attest_without_an_ak_says_how_to_make_one(sim: Sim) -> None:
    info = sim.up("clean")
    run = sld("attest", "--nonce", NONCE.hex(), "--source", f"image:{info['image']}", "--tcti", info["tcti"])
    assert run.returncode == 4 and "no attestation key at 0x81010002 (create one: sld ak create)" in run.stderr


@contextlib.contextmanager
def _daemon(info: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    """``sld daemon`` on the simulator's platform and TPM, ready (READY=1); yields its control socket."""
    sock = tmp_path / "control.sock"
    conf = tmp_path / "sld.toml"
    conf.write_text(f'[source]\nspec = "image:{info["image"]}"\n[tpm]\ntcti = "{info["tcti"]}"\n'
                    f'[metrics]\nenabled = false\n[control]\nsocket = "{sock}"\n')
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            env=dict(os.environ, NOTIFY_SOCKET=str(tmp_path / "notify")), stderr=subprocess.PIPE,
                            text=True)
    try:
        notify.settimeout(30)
        while b"READY=1" not in notify.recv(4096):
            pass
        yield sock
    finally:
        proc.send_signal(signal.SIGTERM)
        err = proc.communicate(timeout=20)[1]
        notify.close()
    assert "Traceback" not in err


def test_the_daemon_answers_attest_on_its_control_socket(sim: Sim, tmp_path: Path) -> None:
    """`sld attest --nonce` with only --socket and -o: the running daemon collects it (the same evidence)."""
    info = sim.up("clean")
    _json(sld("ak", "create", "--tcti", info["tcti"], "--json"))
    with _daemon(info, tmp_path) as sock:
        out = tmp_path / "evidence.json"
        run = sld("attest", "--nonce", NONCE.hex(), "--socket", str(sock), "-o", str(out))
        assert run.returncode == 0 and "in this process" not in run.stderr, run.stderr
        check_evidence(json.loads(out.read_text()), info["tcti"], tmp_path)
        short = sld("attest", "--nonce", "00" * 8, "--socket", str(sock))
        assert short.returncode == 2


def test_the_daemon_keeps_its_ak_loaded_and_sees_it_replaced_or_evicted(sim: Sim, tmp_path: Path) -> None:
    """The daemon reads the AK's public area once, yet names the key that signed: one replaced under it (sld ak
    create --replace) is read again, because the quote's qualifiedSigner changed; one evicted (tpm2_evictcontrol)
    is reported as no AK, and one made again afterwards is found."""
    info = sim.up("clean")
    first = _json(sld("ak", "create", "--tcti", info["tcti"], "--json"))
    with _daemon(info, tmp_path) as sock:
        def attest() -> subprocess.CompletedProcess[str]:
            return sld("attest", "--nonce", NONCE.hex(), "--socket", str(sock))

        assert _json(attest())["ak"]["name"] == first["ak"]["name"]
        second = _json(sld("ak", "create", "--tcti", info["tcti"], "--replace", "--json"))
        assert second["ak"]["name"] != first["ak"]["name"]
        evidence = _json(attest())
        assert evidence["ak"] == {**second["ak"], "handle": "0x81010002"}
        check_evidence(evidence, info["tcti"], tmp_path)  # tpm2_checkquote with the PEM the evidence names
        evicted = _tools(info["tcti"], "tpm2_evictcontrol", "-C", "o", "-c", "0x81010002")
        assert evicted.returncode == 0, evicted.stderr
        gone = attest()
        assert gone.returncode != 0 and not gone.stdout, gone.stderr
        assert "no attestation key at 0x81010002 (create one: sld ak create)" in gone.stderr
        third = _json(sld("ak", "create", "--tcti", info["tcti"], "--json"))
        assert _json(attest())["ak"]["name"] == third["ak"]["name"]


def test_an_unprivileged_agent_in_the_control_group_collects_evidence(sim: Sim, tmp_path: Path) -> None:
    """Issue 14: "an agent can collect evidence without root": uid nobody holding [control] group gets the
    daemon's evidence; without the group it hears permission denied and gets none."""
    import grp
    import importlib
    import tempfile

    from tests.swtpm.test_daemon import _as_nobody

    for module in ("sld.commands.attest", "sld.evidence.build"):  # loaded before the child loses the right to
        importlib.import_module(module)                            # read them

    info = sim.up("clean")
    _json(sld("ak", "create", "--tcti", info["tcti"], "--json"))
    group = grp.getgrnam("adm")
    public = Path(tempfile.mkdtemp(prefix="sld-attest-"))
    public.chmod(0o755)
    sock = public / "control.sock"
    conf = tmp_path / "sld.toml"
    conf.write_text(f'[source]\nspec = "image:{info["image"]}"\n[tpm]\ntcti = "{info["tcti"]}"\n'
                    f'[metrics]\nenabled = false\n[control]\nsocket = "{sock}"\ngroup = "{group.gr_name}"\n')
    proc = subprocess.Popen([sys.executable, "-m", "sld.cli", "daemon", "--config", str(conf)],
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not sock.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        code, out, err = _as_nobody([group.gr_gid], "attest", "--nonce", NONCE.hex(), "--socket", str(sock))
        assert code == 0 and "in this process" not in err, err
        check_evidence(json.loads(out), info["tcti"], tmp_path)
        code, out, err = _as_nobody([], "attest", "--nonce", NONCE.hex(), "--socket", str(sock))
        assert code == 2 and not out and "permission denied" in err and "in this process" not in err, err
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
        shutil.rmtree(public, ignore_errors=True)
