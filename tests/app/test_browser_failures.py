"""The two failure kinds look different on screen (tests/app/browser/failures.test.mjs): operators as separate
`ddx node` processes (4, threshold 3) on anvil behind a relay that can cut their JSON-RPC. With the RPC down the
operator view shows the settlement clock degraded while sequencing goes on; with the leader killed it shows the
cluster clock degraded, a new leader, and checkpoints still recorded."""

from __future__ import annotations

import json

from apphelpers import REPO, run_node_tests
from cluster import OPERATORS, RpcSwitch, control_server, operator_cluster
from test_browser import system_chromium

from ddx_offchain.devnet.anvil import find_anvil


def test_the_operator_view_tells_the_two_failure_kinds_apart(tmp_path, app_built):
    chromium = system_chromium()
    assert chromium is not None, "no chromium: `apt-get install -y chromium` (make test does it as root)"
    assert find_anvil() is not None, "anvil is missing: run `make install` (npm ci installs anvil)"
    switch: RpcSwitch | None = None

    def through_switch(anvil_url: str) -> list[str]:
        nonlocal switch
        host, port = anvil_url.removeprefix("http://").split(":")
        switch = RpcSwitch((host, int(port)))
        return [f"http://127.0.0.1:{switch.port}"] * OPERATORS

    with operator_cluster(tmp_path, through_switch) as cluster:
        control = control_server({"/rpc/down": switch.cut, "/rpc/up": switch.restore})
        apis, procs = cluster.apis, cluster.procs
        try:
            info = tmp_path / "cluster.json"
            info.write_text(json.dumps({
                "apis": apis, "pids": {api: p.pid for api, p in zip(apis, procs)},
                "control": f"http://127.0.0.1:{control.server_address[1]}",
            }))
            shots = run_node_tests([REPO / "tests/app/browser/failures.test.mjs"], 600, tmp_path / "screenshots",
                                   DDX_CLUSTER_INFO=str(info), CHROMIUM=chromium)
            assert len(shots) >= 3
        finally:
            control.shutdown()
            switch.close()
