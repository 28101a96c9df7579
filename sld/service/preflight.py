"""What the configuration names, checked against this machine before the daemon acts on it.

``sld.config`` refuses what a file alone shows to be wrong; this module adds what needs another stage
or the running process: the source spec's grammar (``sld.platform.source``), the TCTI's loader
library, the policy file parsed by the appraisal loader, and whether the control socket's group can be
given at all under the capabilities the daemon holds (``units/sld.service`` grants no CAP_CHOWN).
The daemon runs it at start-up (a failure is exit 2, naming the key) and on reload (a failure keeps
the running configuration), so none of these surfaces later as ``degraded`` or a crash.
"""

from __future__ import annotations

import ctypes
import grp
import os
import re

from sld.config import Config
from sld.errors import ConfigError
from sld.platform.source import parse_spec

CAP_CHOWN = 0  # linux/capability.h
TCTI_NAME = re.compile(r"[\w.+/-]+")  # a tpm2-tss TCTI name ("swtpm") or a library ("libtss2-tcti-x.so.0")


def check(config: Config) -> None:
    """Raise a ConfigError naming the first key that cannot work here."""
    _source(config.source.spec)
    _tcti(config.tpm.tcti)
    if config.verify.policy:
        _policy(config.verify.policy)
    if config.control.group:
        _group(config.control.group)


def _source(spec: str) -> None:
    try:
        parse_spec(spec)
    except ConfigError as err:
        raise ConfigError(str(err).split(": ", 1)[-1], key="source.spec") from None


def _tcti(tcti: str) -> None:
    """``name[:conf]`` as tpm2-tss's TCTI loader reads it (tctildr.c): the name is a short TCTI name,
    looked up as ``libtss2-tcti-NAME.so.0``, or a library file name."""
    name = tcti.partition(":")[0]
    if not TCTI_NAME.fullmatch(name):
        raise ConfigError(f"{tcti!r} is not a TCTI string (name[:conf], e.g. device:/dev/tpmrm0)", key="tpm.tcti")
    library = name if "/" in name or ".so" in name else f"libtss2-tcti-{name}.so.0"
    try:
        ctypes.CDLL(library)
    except OSError:
        raise ConfigError(f"no TCTI {name!r} on this system ({library} cannot be loaded)", key="tpm.tcti") from None


def _policy(path: str) -> None:
    from sld.verify import load_policy  # the daemon's own loader: a daemon without a policy never imports sld.appraisal

    try:
        load_policy(path)
    except ConfigError as err:
        raise ConfigError(str(err), key="verify.policy") from None


def _capable(capability: int) -> bool:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> capability & 1)
    return False


def _group(group: str) -> None:
    """chown(2) to a group needs CAP_CHOWN unless the process is a member of that group."""
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        raise ConfigError(f"no group {group!r} on this system", key="control.group") from None
    if gid in (os.getegid(), *os.getgroups()) or _capable(CAP_CHOWN):
        return
    raise ConfigError(f"giving the control socket to group {group!r} needs CAP_CHOWN, which this process does not "
                      f"have (units/sld.service does not grant it): add SupplementaryGroups={group} in a drop-in, "
                      "or leave group unset", key="control.group")
