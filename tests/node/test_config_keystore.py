"""Config parsing with typed validation, and the encrypted operator keystore."""

from __future__ import annotations

import pytest

from ddx_offchain.daemon.config import ConfigError, load_config, parse_config
from ddx_offchain.daemon.keystore import KeystoreError, load_operator_key, write_keystore

GOOD = """
[node]
id = 1
data_dir = "data1"

[operator]
keystore = "op1.json"
password_env = "OP1_PASSWORD"

[api]
listen = "127.0.0.1:8001"
public_url = "http://127.0.0.1:8001"

[raft]
listen = "127.0.0.1:9001"
cert = "op1.crt"
key = "op1.key"

[[peers]]
id = 2
raft = "127.0.0.1:9002"
cert = "op2.crt"
api = "http://127.0.0.1:8002"

[chain]
chain_id = 31337
exchange = "0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"

[engine]
genesis = "genesis.json"
"""


@pytest.fixture
def folder(tmp_path):
    for name in ("op1.crt", "op2.crt"):
        (tmp_path / name).write_bytes(b"-----BEGIN CERTIFICATE-----\n")
    key = tmp_path / "op1.key"
    key.write_bytes(b"-----BEGIN PRIVATE KEY-----\n")
    key.chmod(0o600)
    return tmp_path


def test_a_good_config_parses_to_typed_settings(folder):
    (folder / "node.toml").write_text(GOOD)
    s = load_config(folder / "node.toml")
    assert s.node_id == 1 and s.api_listen == ("127.0.0.1", 8001) and s.raft_listen == ("127.0.0.1", 9001)
    assert s.peers[0].raft == ("127.0.0.1", 9002) and s.api_urls == {1: "http://127.0.0.1:8001", 2: "http://127.0.0.1:8002"}
    assert s.domain.chain_id == 31337 and s.domain.verifying_contract == b"\x5a" * 20
    assert s.data_dir == folder / "data1" and s.history_path == folder / "data1" / "history.sqlite"
    assert s.keystore == folder / "op1.json"
    assert s.chain_confirmations is None and s.chain_epoch_interval_seconds is None  # the network's defaults


def test_chain_confirmations_and_epoch_interval_override_the_network_defaults(folder):
    from ddx_offchain.chain.operator_chain import settings_for

    (folder / "node.toml").write_text(GOOD.replace("chain_id = 31337", "chain_id = 31337\nconfirmations = 12\nepoch_interval_ms = 2500"))
    s = load_config(folder / "node.toml")
    assert s.chain_confirmations == 12 and s.chain_epoch_interval_seconds == 2.5
    public = settings_for(1, 100)
    assert public.follower.confirmations == 6 and public.epoch_interval_s == 60.0
    local = settings_for(31337, 100)
    assert local.follower.confirmations == 1 and local.epoch_interval_s == 5.0
    chosen = settings_for(1, 100, confirmations=s.chain_confirmations, epoch_interval_s=s.chain_epoch_interval_seconds)
    assert chosen.follower.confirmations == 12 and chosen.checkpointer.confirmations == 12
    assert chosen.epoch_interval_s == 2.5 and chosen.deployment_block == 100
    instant = settings_for(1337, 0, confirmations=0)
    assert instant.follower.confirmations == 0 and instant.checkpointer.confirmations == 1  # final needs 1 block


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.replace('id = 1\n', 'id = "1"\n', 1), "node.id"),
        (lambda t: t.replace('listen = "127.0.0.1:8001"', 'listen = "localhost"'), "api.listen"),
        (lambda t: t.replace("chain_id = 31337", "chain_id = 31337\nprivate_key = \"0xabc\""), "private_key"),
        (lambda t: t.replace("0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a", "0x1234"), "chain"),
        (lambda t: t.replace("id = 2", "id = 1"), "unique"),
        (lambda t: t.replace('password_env = "OP1_PASSWORD"', 'password_env = "op1 password"'), "password_env"),
        (lambda t: t.replace('cert = "op2.crt"', 'cert = "missing.crt"'), "peers[0].cert"),
        (lambda t: t + "\n[bogus]\n", "bogus"),
        (lambda t: t.replace("[engine]\ngenesis = \"genesis.json\"", ""), "engine"),
        (lambda t: t + "\nnot toml = = =", "TOML"),
        (lambda t: t.replace("chain_id = 31337", "chain_id = 31337\nconfirmations = -1"), "chain.confirmations"),
        (lambda t: t.replace("chain_id = 31337", "chain_id = 31337\nconfirmations = 1001"), "chain.confirmations"),
        (lambda t: t.replace("chain_id = 31337", "chain_id = 31337\nconfirmations = \"6\""), "confirmations"),
        (lambda t: t.replace("chain_id = 31337", "chain_id = 31337\nepoch_interval_ms = 99"), "chain.epoch_interval_ms"),
        (lambda t: t.replace("chain_id = 31337", "chain_id = 31337\nepoch_interval_ms = 1.5"), "epoch_interval_ms"),
        (lambda t: t.replace('listen = "127.0.0.1:8001"', 'listen = "127.0.0.1:8001"\ncancel_on_disconnect_margin_ms = 60000'),
         "api.cancel_on_disconnect_margin_ms"),
        # a peer without its API would leave history gaps after a snapshot install, silently
        (lambda t: t.replace('api = "http://127.0.0.1:8002"\n', ""), "peers [2]: api is required"),
    ],
)
def test_bad_configs_name_the_field(folder, edit, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        parse_config(edit(GOOD), folder)


def test_tls_key_readable_by_others_is_refused(folder):
    (folder / "op1.key").chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        parse_config(GOOD, folder)


def test_keystore_unlocks_from_env_or_prompt_and_refuses_otherwise(tmp_path):
    key = bytes(range(1, 33))
    path = tmp_path / "op.json"
    write_keystore(path, key, "s3cret", iterations=1000)
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert b"0102030405" not in path.read_bytes()  # never plaintext
    assert load_operator_key(path, "PW", environ={"PW": "s3cret"}) == key
    assert load_operator_key(path, "PW", environ={}, prompt=lambda _: "s3cret", interactive=True) == key
    with pytest.raises(KeystoreError, match="set PW"):
        load_operator_key(path, "PW", environ={}, interactive=False)
    with pytest.raises(KeystoreError, match="wrong password"):
        load_operator_key(path, "PW", environ={"PW": "nope"})
    plaintext = tmp_path / "plain.json"
    plaintext.write_text('{"private_key": "0x' + key.hex() + '"}')
    with pytest.raises(KeystoreError, match="not an encrypted keystore"):
        load_operator_key(plaintext, "PW", environ={"PW": "s3cret"})


def test_ddx_node_refuses_a_bad_config_before_starting(tmp_path):
    import subprocess
    import sys

    (tmp_path / "node.toml").write_text("[node]\nid = 0\n")
    out = subprocess.run([sys.executable, "-m", "ddx_offchain.cli", "node", "--config", str(tmp_path / "node.toml")],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "ddx node:" in out.stderr and "data_dir" in out.stderr


def test_manifest_must_match_the_domain_and_list_this_operator(folder):
    import dataclasses

    from ddx_offchain.daemon.deployment_check import check_deployment
    from ddx_offchain.deployment.manifest import Manifest
    from ddx_offchain.protocol.eip712 import address_of, checksum_address

    me = address_of(b"\x07" * 32)
    manifest = Manifest(
        network="local", chain_id=31337, exchange=checksum_address(b"\x5a" * 20), deployment_block=1,
        deployer=checksum_address(b"\x01" * 20), operators=(checksum_address(me), checksum_address(b"\x02" * 20)),
        threshold=2, operator_set_id=1, supermajority_required=True, escape_delay=86400, forced_deadline=3600, governance_delay=86400,
        collateral=(),
    )

    def settings_with(m: Manifest | None):
        if m is not None:
            (folder / "manifest.json").write_text(m.to_json())
        text = GOOD.replace('exchange = "', 'manifest = "manifest.json"\nexchange = "') if m is not None else GOOD
        return parse_config(text, folder)

    assert check_deployment(settings_with(None), me) is None
    assert check_deployment(settings_with(manifest), me).operators == manifest.operators
    with pytest.raises(ConfigError, match="not in the deployment's operator set"):
        check_deployment(settings_with(manifest), address_of(b"\x08" * 32))
    with pytest.raises(ConfigError, match="chain_id"):
        check_deployment(settings_with(dataclasses.replace(manifest, chain_id=1)), me)
    with pytest.raises(ConfigError, match="exchange"):
        check_deployment(settings_with(dataclasses.replace(manifest, exchange=checksum_address(b"\x5b" * 20))), me)


def test_a_peer_without_an_api_is_fine_when_the_node_keeps_no_history(folder):
    text = GOOD.replace('api = "http://127.0.0.1:8002"\n', "") + "\n[history]\nenabled = false\n"
    assert parse_config(text, folder).history_path is None


PRICES = """
[prices]
min_sources = 2
[[prices.markets]]
market = "ETHP"
decimals = 6
[[prices.markets.sources]]
preset = "binance"
symbol = "ETHUSDT"
[[prices.markets.sources]]
url = "https://example.com/eth"
path = "data.price"
name = "mine"
"""


def test_the_prices_section_parses_to_sources_and_rules(folder):
    settings = parse_config(GOOD + PRICES, folder)
    (market,) = settings.prices.markets
    assert market.market == b"ETHP".ljust(32, b"\0") and market.decimals == 6
    assert [(s.name, s.kind) for s in market.sources] == [("binance:ETHUSDT", "http"), ("mine", "http")]
    assert market.sources[0].url == "https://api.binance.com/api/v3/ticker/price?symbol=ETHUSDT"
    assert settings.prices.rules.min_sources == 2 and settings.prices.poll_interval_s == 1.0
    assert parse_config(GOOD, folder).prices is None


@pytest.mark.parametrize("change, why", [
    (("min_sources = 2", "min_sources = 3"), "min_sources is 3"),
    (('preset = "binance"', 'preset = "nasdaq"'), "unknown preset"),
    (('path = "data.price"\n', ""), "needs path"),
    (('symbol = "ETHUSDT"', 'symbol = "ETHUSDT"\nurl = "https://x.org"'), "exactly one of"),
    (('preset = "binance"\nsymbol = "ETHUSDT"', 'chainlink = "0x5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"'), "chain\\] rpc"),
    (("min_sources = 2", "tolerance_bps = 0"), "tolerance_bps"),
    (('decimals = 6', 'decimals = 99'), "decimals"),
])
def test_bad_prices_sections_are_refused_with_the_field(folder, change, why):
    with pytest.raises(ConfigError, match=why):
        parse_config(GOOD + PRICES.replace(*change), folder)


def test_a_market_listed_twice_is_refused(folder):
    twice = PRICES + '[[prices.markets]]\nmarket = "ETHP"\ndecimals = 6\nsources = [{preset = "okx", symbol = "A"}]\n'
    with pytest.raises(ConfigError, match="listed twice"):
        parse_config(GOOD + twice, folder)


def test_raft_back_pressure_bounds_reach_the_runtime(folder):
    from ddx_offchain.raft.runtime import NodeConfig

    text = GOOD.replace('key = "op1.key"', 'key = "op1.key"\nmax_inbox_messages = 512\nmax_uncommitted_bytes = 1048576')
    settings = parse_config(text, folder)
    assert dict(settings.raft_limits) == {"max_inbox_messages": 512, "max_uncommitted_bytes": 1_048_576}
    assert parse_config(GOOD, folder).raft_limits == ()
    config = NodeConfig(node_id=1, data_dir=folder / "raft", listen=("127.0.0.1", 9001), peers={}, tls=None,
                        **dict(settings.raft_limits))
    assert (config.max_inbox_messages, config.max_uncommitted_bytes) == (512, 1_048_576)
    with pytest.raises(ConfigError, match="raft.max_inbox_bytes"):
        parse_config(GOOD.replace('key = "op1.key"', 'key = "op1.key"\nmax_inbox_bytes = 0'), folder)


def test_replicas_can_be_named_as_history_sources(folder):
    text = GOOD + '\n[history]\nbackfill_sources = ["https://replica.example.org"]\n'
    assert parse_config(text, folder).backfill_sources == ("https://replica.example.org",)
    with pytest.raises(ConfigError, match="history.backfill_sources"):
        parse_config(GOOD + '\n[history]\nbackfill_sources = ["ftp://x"]\n', folder)


def test_rate_limits_are_on_by_default_and_each_bucket_can_be_sized_or_switched_off(folder):
    from ddx_offchain.node.rate_limits import BucketSpec, RateLimitSettings

    assert parse_config(GOOD, folder).rate_limits == RateLimitSettings()
    text = GOOD + "\n[rate_limits]\nmax_buckets = 500\n[rate_limits.trader]\ncapacity = 60\n[rate_limits.read]\nenabled = false\n"
    limits = parse_config(text, folder).rate_limits
    assert limits.trader == BucketSpec(60, RateLimitSettings().trader.refill_per_s)  # the unset refill keeps its default
    assert limits.read is None and limits.ip == RateLimitSettings().ip and limits.max_buckets == 500
    assert parse_config(GOOD + "\n[rate_limits]\nenabled = false\n", folder).rate_limits is None


def test_bad_rate_limit_sizes_are_refused_naming_the_key(folder):
    for section, key in (("trader", "capacity = 0"), ("ip", "refill_per_s = -1"), ("connection", "capacity = 10000000000")):
        with pytest.raises(ConfigError, match=f"rate_limits.{section}"):
            parse_config(GOOD + f"\n[rate_limits.{section}]\n{key}\n", folder)
    with pytest.raises(ConfigError, match="rate_limits.max_buckets"):
        parse_config(GOOD + "\n[rate_limits]\nmax_buckets = 0\n", folder)
    with pytest.raises(ConfigError):
        parse_config(GOOD + "\n[rate_limits.trader]\nburst = 5\n", folder)  # unknown key


def test_local_cluster_configs_switch_rate_limits_off_unless_asked(tmp_path):
    from ddx_offchain.daemon.cluster_files import write_cluster
    from ddx_offchain.protocol.eip712 import Domain

    domain = Domain.of(1337, "0x" + "11" * 20)
    off = write_cluster(tmp_path / "a", 1, domain, {})
    assert load_config(off.configs[0]).rate_limits is None
    on = write_cluster(tmp_path / "b", 1, domain, {}, rate_limits={"max_buckets": 7})
    assert load_config(on.configs[0]).rate_limits.max_buckets == 7


def test_trusted_proxies_are_parsed_or_refused_naming_the_key(folder):
    import ipaddress

    limits = parse_config(GOOD + '\n[rate_limits]\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n', folder).rate_limits
    assert limits.trusted_proxies == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128"))
    assert parse_config(GOOD, folder).rate_limits.trusted_proxies == ()  # the default: believe no header
    with pytest.raises(ConfigError, match="rate_limits.trusted_proxies.*'lb.internal'"):
        parse_config(GOOD + '\n[rate_limits]\ntrusted_proxies = ["lb.internal"]\n', folder)


def test_adaptive_inline_write_threshold_is_read_in_milliseconds_and_bounded(folder):
    assert parse_config(GOOD, folder).inline_write_below_seconds == 0.0  # off unless asked for
    text = GOOD.replace('key = "op1.key"', 'key = "op1.key"\ninline_write_below_ms = 0.25')
    assert parse_config(text, folder).inline_write_below_seconds == 0.00025
    for bad in ("-1", "5000"):
        with pytest.raises(ConfigError, match="raft.inline_write_below_ms"):
            parse_config(GOOD.replace('key = "op1.key"', f'key = "op1.key"\ninline_write_below_ms = {bad}'), folder)
