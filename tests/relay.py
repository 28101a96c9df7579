"""A TCP relay in front of swtpm for the tests' fault injection and command counting (no user command uses it).

It forwards port P to the swtpm data port and P+1 to its control port (the tss2 swtpm TCTI uses
P+1), counts TPM command frames as the TPM receives them, can be cut and restored to emulate a TPM
that goes away and comes back without a TPM reset, and can answer commands with a chosen response
code (RETRY, TESTING) as a busy or self-testing TPM does.
"""

from __future__ import annotations

import socket
import threading

from sld.sim.swtpm import HOST, free_port_pair

TPM_HEADER = 10  # tag u16, size u32, command code u32 (big endian)


class TpmProxy:
    def __init__(self, target_port: int, port: int | None = None) -> None:
        self.target = target_port
        self.port = port or free_port_pair()
        self.commands = 0
        self.injected = 0
        self._inject: list[int] = []  # response codes to answer the next commands with, instead of the TPM
        self._servers: list[socket.socket] = []
        self.start()

    @property
    def tcti(self) -> str:
        return f"swtpm:host={HOST},port={self.port}"

    def start(self) -> None:
        for offset in (0, 1):
            srv = socket.create_server((HOST, self.port + offset))
            self._servers.append(srv)
            threading.Thread(target=self._serve, args=(srv, self.target + offset, offset == 0), daemon=True).start()

    def inject(self, rc: int, times: int) -> None:
        """Answer the next ``times`` TPM commands with response code ``rc`` (e.g. TPM_RC_RETRY 0x922)."""
        self._inject += [rc] * times

    def stop(self) -> None:
        """Refuse new connections, as a TPM that is gone would."""
        for srv in self._servers:
            srv.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread; close() alone would not
            srv.close()
        self._servers = []

    def _serve(self, srv: socket.socket, target: int, count: bool) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            threading.Thread(target=self._pipe, args=(client, target, count), daemon=True).start()

    def _pipe(self, client: socket.socket, target: int, count: bool) -> None:
        try:
            upstream = socket.create_connection((HOST, target))
        except OSError:
            client.close()
            return

        def back() -> None:
            try:
                while data := upstream.recv(65536):
                    client.sendall(data)
            except OSError:
                pass
            client.close()

        threading.Thread(target=back, daemon=True).start()
        pending = b""
        try:
            while data := client.recv(65536):
                if not count:
                    upstream.sendall(data)
                    continue
                pending += data
                while len(pending) >= TPM_HEADER and len(pending) >= int.from_bytes(pending[2:6], "big"):
                    size = int.from_bytes(pending[2:6], "big") or len(pending)
                    frame, pending = pending[:size], pending[size:]
                    self.commands += 1
                    if self._inject:
                        rc = self._inject.pop(0)
                        self.injected += 1
                        client.sendall(b"\x80\x01" + TPM_HEADER.to_bytes(4, "big") + rc.to_bytes(4, "big"))
                    else:
                        upstream.sendall(frame)
            upstream.shutdown(socket.SHUT_WR)
        except OSError:
            upstream.close()
