"""Network quarantine: a pcap allow-list compiled by libpcap, attached as classic-BPF cls_bpf filters."""
