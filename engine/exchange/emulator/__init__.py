"""A local exchange emulator for tests and offline runs: one matching engine (``book.py`` over
``market.py``) with a REST front end per exchange (Coinbase ``server.py``, ``kraken.py``,
``binance.py``) that the real ccxt class of that exchange talks to on 127.0.0.1.

Start one from Python (``with emulator_class("kraken")(seed=7) as emu: emu.url``) or a shell:
``python -m engine.exchange.emulator --exchange kraken --port 8765``.
"""
from .binance import BinanceEmulator
from .faults import KINDS as FAULT_KINDS, FaultPlan
from .kraken import KrakenEmulator
from .market import Product, SimMarket
from .server import CoinbaseEmulator, EmulatorBase

EMULATORS = {"coinbase": CoinbaseEmulator, "kraken": KrakenEmulator, "binance": BinanceEmulator}


def emulator_class(ccxt_id: str) -> type[EmulatorBase]:
    try:
        return EMULATORS[ccxt_id]
    except KeyError:
        raise ValueError(f"no emulator front end for {ccxt_id!r}; expected one of {', '.join(sorted(EMULATORS))}") from None


__all__ = ["BinanceEmulator", "CoinbaseEmulator", "EmulatorBase", "EMULATORS", "FaultPlan", "FAULT_KINDS",
           "KrakenEmulator", "Product", "SimMarket", "emulator_class"]
