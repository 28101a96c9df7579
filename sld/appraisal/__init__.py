"""Appraisal: whether what launched is what the operator approved, part by part.

"Verified" alone means the TPM equals the replay of the log; a host that launched the wrong kernel or
an old SINIT with a self-consistent log verifies too. An appraisal policy lists the parts a launch
must measure, grouped like Intel SecL-DC's flavors: platform (the SINIT ACM, identified by its
HASH_START digest and the TxtSvn/SeSvn/date of the ACM header at SINIT.BASE; the BIOS ACM, CPU
S-CRTM status, LCP, STM and OsSinitData capabilities events), OS (the MLE, initrd, boot parameters,
setup data, SLR table) and host-unique (the kernel command line, the EFI memory map).

Workflow. On a known-good ("golden") host, `sld policy create -o /etc/sld/policy.toml` verifies the
launch exactly as `sld verify` does (it refuses, exit 1, a host that does not verify) and writes the
platform and OS parts to the file and the host-unique parts to the drop-in
/etc/sld/policy.toml.d/host.toml. Distribute the file to every host of the same platform and OS, and
give each host its own drop-in (made by `sld policy create` on it, or edited). For an update (a new
kernel, SINIT or command line), create a policy on an updated host and `sld policy merge OLD NEW -o
FILE`: the merged policy allows the values of both until the old ones are retired. It keeps create's
structure (the main files merged into FILE, each drop-in name of OLD.d and NEW.d into FILE.d/NAME), and
it never loosens posture silently: when OLD and NEW differ in allow_extra or a [sinit] minimum
(header, txt_svn, se_svn, date) it refuses (exit 1, naming the setting) unless --loosen takes the
looser value. A drop-in may not loosen its main file's posture at all (exit 2). `sld policy show
FILE` prints it as a table; `sld policy export --format keylime FILE` prints Keylime's tpm_policy
(the PCR17/PCR18 values every allowed combination replays to; refused, exit 1, for a policy with
allow_extra = true, whose values cannot be predicted). Verify with `sld verify --policy FILE`
or `[verify] policy` in sld.toml(5).

Format (TOML; unknown keys, wrong types, bad hex and wrong digest lengths exit 2 naming file and key):

    [policy]
    version = 1
    allow_extra = false          # true: events no part names are tolerated
    [sinit]
    header = true                # false: no ACM header was readable (securityfs): HASH_START alone
    txt_svn = 5                  # minimum TxtSvn; also se_svn; date (BCD 0xYYYYMMDD) as made
    [[part]]
    name = "mle"                 # unique; reports name the failing part
    group = "os"                 # platform | os | host
    pcr = 17
    type = "MLE_HASH"            # a TXT/TCG event type name or number
    text = "Measured Kernel initrd"   # Secure Launch (0x502) events: the event text
    after = "boot-params"        # drop-in parts: the part measured just before, in the same PCR (it must exist)
    sha256 = ["hex...", "hex..."]     # allowed digests per bank: always an array, even of one

Within each PCR the log must hold the parts in the listed order, each once, each with a listed digest
in every bank the log records: a bank the part lists no values for fails ("sha384 is not in the
policy"; `sld policy create` lists every bank the log records). A capped digest (0x01 then zeros) is
"not measured", never a match. The older
form, [pcrs.BANK] golden PCR values and [[events]] required digests, still loads.
"""
