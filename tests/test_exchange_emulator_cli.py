"""``python -m engine.exchange.emulator --exchange coinbase|kraken|binance``: the chosen front end
listens, prints its URL and throwaway keys, and the real ccxt class of that exchange (through the
shipped profile, pointed at the URL) reads markets and signed balances from it."""
from __future__ import annotations

import re
import subprocess
import sys

import pytest

from engine.exchange import ExchangeAdapter
from engine.exchange.emulator.__main__ import main
from engine.paths import PROJECT_ROOT
from tests.helpers.exchange import sim_config
from tests.helpers.wait import LineReader


def _export(lines: LineReader, what: str) -> tuple[str, str]:
    """One ``export NAME=value`` the command printed; a quoted value may span lines (a PEM)."""
    name, value = re.match(r"export (\w+)=(.*)", lines.next(10, f"its {what} line")).groups()
    while value.startswith("'") and (len(value) == 1 or not value.endswith("'")):
        value += "\n" + lines.next(10, f"the rest of its {what}")
    return name, value.strip("'")


@pytest.mark.parametrize("exchange,native", [("coinbase", "BTC-USDC"), ("kraken", "XBTUSDC"), ("binance", "BTCUSDC")])
def test_the_command_serves_the_chosen_exchange_to_its_ccxt_class(exchange, native):
    proc = subprocess.Popen([sys.executable, "-m", "engine.exchange.emulator", "--exchange", exchange, "--port", "0",
                             "--products", "3", "--print-keys"], cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        lines = LineReader(proc.stdout, "the emulator command")
        head = lines.next(60, "its listening line")
        url = re.search(r"listening on (http://127\.0\.0\.1:\d+)", head).group(1)
        assert head.startswith(f"{exchange.capitalize()} emulator") and f"exchange={exchange}" in head
        env = dict(_export(lines, what) for what in ("key", "secret"))
        cfg = sim_config(exchange, rest_url=url)  # the live profile, not the _sim one: its key env names
        assert set(env) == {cfg.api_key_env, cfg.api_secret_env}
        with ExchangeAdapter(cfg, environ=env) as ad:
            markets = ad.markets()
            balances = ad.balances()  # a signed call: the printed keys are the ones it checks
    finally:
        proc.kill()
        proc.wait()
    assert markets["BTC/USDC"].exchange_id == native
    assert balances["USDC"].free > 0


def test_an_unknown_exchange_or_a_coinbase_only_flag_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--exchange", "kucoin"])
    assert e.value.code == 2 and "invalid choice: 'kucoin'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main(["--exchange", "kraken", "--public-limit", "5"])
    err = capsys.readouterr().err
    assert e.value.code == 2 and "--public-limit/--private-limit" in err and "Coinbase's pools only" in err
