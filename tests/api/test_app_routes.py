"""/v1/info, the web app's files under /app/, and cross-origin access (docs/api.md "The web app and /v1/info")."""

from __future__ import annotations

import asyncio

from apihelpers import DOMAIN, OPERATOR, make_node, running

from ddx_offchain.api import server
from ddx_offchain.protocol.eip712 import checksum_address


def run(coro):
    return asyncio.run(coro)


def test_info_names_the_deployment_and_the_operators():
    async def scenario():
        node, _ = make_node()
        peers = [{"id": "1", "api": "http://a:1"}, {"id": "2", "api": "http://b:2"}]
        async with running(node, info={"operators": peers}, token_decimals={b"\x11" * 20: 6}) as client:
            doc = await (await client.get("/v1/info")).json()
            assert doc == {
                "chainId": "31337",
                "exchange": checksum_address(DOMAIN.verifying_contract),
                "operator": checksum_address(OPERATOR),
                "operators": peers,
                "collateral": [{"token": checksum_address(b"\x11" * 20), "decimals": "6"}],
            }

    run(scenario())


def test_any_origin_may_read_and_submit():
    async def scenario():
        node, _ = make_node()
        async with running(node) as client:
            resp = await client.get("/v1/status", headers={"Origin": "http://elsewhere"})
            assert resp.headers["Access-Control-Allow-Origin"] == "*"
            refused = await client.get("/v1/markets/0x12")  # errors too, so a page can read the reason
            assert refused.status == 400 and refused.headers["Access-Control-Allow-Origin"] == "*"
            pre = await client.options("/v1/requests", headers={"Origin": "http://elsewhere",
                                                                 "Access-Control-Request-Method": "POST",
                                                                 "Access-Control-Request-Headers": "content-type"})
            assert pre.status == 204
            assert "POST" in pre.headers["Access-Control-Allow-Methods"]
            assert pre.headers["Access-Control-Allow-Headers"] == "content-type"
            plain = await client.options("/v1/requests")  # not a preflight: no route answers OPTIONS
            assert plain.status == 405

    run(scenario())


def test_the_app_files_are_served_from_the_package_and_only_them(tmp_path, monkeypatch):
    (tmp_path / "vendor").mkdir()
    (tmp_path / "index.html").write_text("<!doctype html><title>app</title>")
    (tmp_path / "app.mjs").write_text("export {};")
    (tmp_path.parent / "secret.txt").write_text("no")
    monkeypatch.setattr(server, "APP_DIR", tmp_path)

    async def scenario():
        node, _ = make_node()
        async with running(node) as client:
            unbuilt = await client.get("/app/")
            assert unbuilt.status == 503 and (await unbuilt.json())["error"] == "app_not_built"
            (tmp_path / "vendor" / ".built").write_text("{}")
            redirect = await client.get("/app", allow_redirects=False)
            assert redirect.status == 302 and redirect.headers["Location"] == "/app/"
            page = await client.get("/app/")
            assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
            assert "<title>app</title>" in await page.text()
            module = await client.get("/app/app.mjs")
            assert module.headers["Content-Type"].startswith("text/javascript")
            for outside in ("/app/../secret.txt", "/app/%2e%2e/secret.txt", "/app/vendor/.built", "/app/missing.js"):
                assert (await client.get(outside)).status == 404, outside

    run(scenario())


def test_the_shipped_app_is_complete():
    for name in ("index.html", "app.mjs", "style.css"):
        assert (server.APP_DIR / name).is_file()
    html = (server.APP_DIR / "index.html").read_text()
    for module in ("./vendor/ethers.min.js", "./vendor/lightweight-charts.mjs", "./vendor/ddx-client/index.mjs"):
        assert module in html
    assert "https://" not in html and "http://" not in html  # no CDN, nothing from elsewhere
