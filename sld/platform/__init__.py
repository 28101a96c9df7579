"""Where bytes come from: /dev/mem or an image through mmap, securityfs, bare log files."""
