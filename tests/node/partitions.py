"""Network partitions between operator processes on loopback, without root: every directed Raft link (node i
dialing node j) goes through a TCP proxy the test controls. Cutting a link closes its open connections and refuses
new ones until it is healed; TLS passes through untouched."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from ddx_offchain.daemon.cluster_files import free_ports


class Link:
    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.cut = False
        self.server: asyncio.AbstractServer | None = None
        self.port = 0
        self._open: set[asyncio.StreamWriter] = set()

    async def start(self, port: int) -> None:
        self.port = port
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", port)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.cut:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        self._open.update((writer, up_writer))

        async def pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    if self.cut:
                        break
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pump(reader, up_writer), pump(up_reader, writer))
        self._open.difference_update((writer, up_writer))

    def set_cut(self, cut: bool) -> None:
        self.cut = cut
        if cut:
            for w in list(self._open):
                w.close()
            self._open.clear()

    async def close(self) -> None:
        self.set_cut(True)
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()


class Partitions:
    """One proxy per directed link of an n-node cluster written by `write_cluster`; rewrites the configs to use them."""

    def __init__(self, configs: list[Path]) -> None:
        self.configs = configs
        self.n = len(configs)
        self.raft_ports = [self._own_raft_port(c) for c in configs]
        self.links: dict[tuple[int, int], Link] = {}

    @staticmethod
    def _own_raft_port(config: Path) -> int:
        section = config.read_text().split("[raft]", 1)[1]
        return int(re.search(r'listen = "127\.0\.0\.1:(\d+)"', section).group(1))

    async def start(self) -> None:
        pairs = [(i, j) for i in range(1, self.n + 1) for j in range(1, self.n + 1) if i != j]
        for (i, j), port in zip(pairs, free_ports(len(pairs))):
            link = Link(self.raft_ports[j - 1])
            await link.start(port)
            self.links[(i, j)] = link
        for i, config in enumerate(self.configs, start=1):
            blocks = config.read_text().split("[[peers]]")
            for k in range(1, len(blocks)):
                j = int(re.search(r"^id = (\d+)", blocks[k].lstrip(), re.M).group(1))
                blocks[k] = re.sub(r'raft = "127\.0\.0\.1:\d+"', f'raft = "127.0.0.1:{self.links[(i, j)].port}"', blocks[k])
            config.write_text("[[peers]]".join(blocks))

    def split(self, *groups: set[int]) -> None:
        """Only nodes in the same group can talk."""
        where = {node: g for g, group in enumerate(groups) for node in group}
        for (i, j), link in self.links.items():
            link.set_cut(where.get(i) != where.get(j))

    def heal(self) -> None:
        for link in self.links.values():
            link.set_cut(False)

    async def close(self) -> None:
        for link in self.links.values():
            await link.close()
