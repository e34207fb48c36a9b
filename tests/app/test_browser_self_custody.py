"""Self-custody in the browser (tests/app/browser/selfcustody.test.mjs), against four `ddx node` processes on anvil,
each reaching the chain through its own JSON-RPC proxy (tests/app/cluster.py): a trader deposits and withdraws
through the wallet; a follower's RPC then hides a deposit the leader sequenced (its verifier refuses: a verification
refusal on screen), and the leader's RPC hides the next one (its watcher halts: a deposit alarm on screen), each
looking different; finally every operator loses the chain, the chain's clock moves past the escape delay, and the
trader freezes the exchange and escapes through the wallet, paid exactly what the page predicted."""

from __future__ import annotations

import json

from apphelpers import REPO, run_node_tests
from cluster import OPERATORS, DepositHidingRpc, RpcSwitch, control_server, operator_cluster
from test_browser import system_chromium

from ddx_offchain.devnet.anvil import find_anvil

ANVIL_KEY_0 = "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"  # anvil's first dev account


def test_escape_through_the_wallet_and_the_two_chain_alarms(tmp_path, app_built):
    chromium = system_chromium()
    assert chromium is not None, "no chromium: `apt-get install -y chromium` (make test does it as root)"
    assert find_anvil() is not None, "anvil is missing: run `make install` (npm ci installs anvil)"
    proxies: list[DepositHidingRpc] = []
    switch: RpcSwitch | None = None

    def through_proxies(anvil_url: str) -> list[str]:
        nonlocal switch
        host, port = anvil_url.removeprefix("http://").split(":")
        switch = RpcSwitch((host, int(port)))  # proxy → switch → anvil: cutting the switch cuts every operator
        proxies.extend(DepositHidingRpc(f"http://127.0.0.1:{switch.port}") for _ in range(OPERATORS))
        return [p.url for p in proxies]

    with operator_cluster(tmp_path, through_proxies) as cluster:
        routes = {"/rpc/down": switch.cut} | {
            f"/hide-deposits/{i}": (lambda p=p: setattr(p, "hide_deposits", True)) for i, p in enumerate(proxies)}
        control = control_server(routes)
        try:
            info = tmp_path / "cluster.json"
            info.write_text(json.dumps({
                "apis": cluster.apis, "rpc": cluster.anvil.url, "chainId": cluster.manifest.chain_id,
                "exchange": cluster.manifest.exchange, "token": cluster.manifest.mock_token, "funderKey": ANVIL_KEY_0,
                "control": f"http://127.0.0.1:{control.server_address[1]}",
            }))
            shots = run_node_tests([REPO / "tests/app/browser/selfcustody.test.mjs"], 900, tmp_path / "screenshots",
                                   DDX_CLUSTER_INFO=str(info), CHROMIUM=chromium)
            assert any("escaped-and-paid" in s for s in shots) and any("verification-refusal" in s for s in shots), shots
            assert sum(p.hidden for p in proxies) >= 2, "the proxies hid the deposits the alarms are about"
        finally:
            control.shutdown()
            for p in proxies:
                p.close()
            switch.close()
