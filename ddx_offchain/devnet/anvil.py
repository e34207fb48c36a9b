"""A local anvil node (foundry's, installed from npm by the make targets) as the devnet's chain: a JSON-RPC
endpoint wallets and scripts can use, with a fixed chain id and the well-known dev accounts."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from eth_account import Account

from ..deployment.artifacts import REPO_ROOT
from ..errors import DdxError

STARTUP_TIMEOUT_S = 30.0
DEVNET_CHAIN_ID = 31337  # anvil's and hardhat's: wallets know it as a local chain
# anvil's default mnemonic: its ten dev accounts are public knowledge. Dev-only, never hold real funds with them.
DEV_MNEMONIC = "test test test test test test test test test test test junk"


class AnvilError(DdxError, RuntimeError):
    """anvil is not installed or did not start."""


def find_anvil() -> Path | None:
    """The repository's npm-installed anvil, else one on PATH."""
    local = REPO_ROOT / "node_modules" / ".bin" / "anvil"
    if local.exists():
        return local
    found = shutil.which("anvil")
    return Path(found) if found else None


def dev_accounts(count: int = 10) -> list[tuple[str, str]]:
    """(address, private key) of anvil's dev accounts, from its public default mnemonic."""
    Account.enable_unaudited_hdwallet_features()
    out = []
    for i in range(count):
        account = Account.from_mnemonic(DEV_MNEMONIC, account_path=f"m/44'/60'/0'/0/{i}")
        out.append((account.address, "0x" + bytes(account.key).hex()))
    return out


class AnvilProcess:
    """Start anvil on 127.0.0.1 (`port` 0: any free one); its log goes to `log_path` (a pipe nobody reads would
    fill and stall it)."""

    def __init__(self, *extra_args: str, port: int = 0, log_path: Path | None = None, binary: Path | None = None) -> None:
        binary = binary or find_anvil()
        if binary is None:
            raise AnvilError("anvil not found: run `npm ci` in the repository (make install does) or put anvil on PATH")
        self._temporary_log = log_path is None
        if log_path is None:
            log_path = Path(tempfile.mkstemp(prefix="anvil-", suffix=".log")[1])
        self.log_path = log_path
        self._log = open(log_path, "w")
        self.process = subprocess.Popen(
            [str(binary), "--host", "127.0.0.1", "--port", str(port), *extra_args],
            stdout=self._log, stderr=subprocess.STDOUT, text=True,
        )
        self.url = self._wait_for_port()

    def _wait_for_port(self) -> str:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while time.monotonic() < deadline:
            text = self.log_path.read_text()
            match = re.search(r"Listening on (127\.0\.0\.1:\d+)", text)
            if match:
                return f"http://{match.group(1)}"
            if self.process.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AnvilError("anvil did not start: " + "".join(self.log_path.read_text().splitlines(True)[-10:]))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        if self._temporary_log:
            self.log_path.unlink(missing_ok=True)
