"""A local Coinbase Advanced Trade emulator for tests and offline runs.

Start it from Python (``with CoinbaseEmulator(seed=7) as emu: emu.url``) or from a shell:
``python -m engine.exchange.emulator --port 8765 --seed 7 --speed 60``.
"""
from .faults import KINDS as FAULT_KINDS, FaultPlan
from .market import Product, SimMarket
from .server import CoinbaseEmulator

__all__ = ["CoinbaseEmulator", "FaultPlan", "FAULT_KINDS", "Product", "SimMarket"]
