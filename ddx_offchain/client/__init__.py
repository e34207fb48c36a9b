"""The trader's SDK: sign requests (`Trader`), submit them and verify receipts, read state, stream updates
(`DdxClient`)."""

from .api import BadReceipt, CancelOnDisconnect, DdxClient, RequestChannel, RequestRefused, VerifiedReceipt
from .signer import Trader, cancel_action, modify_action, place_action
from .sync import SyncDdxClient
from .units import MarketSpec, UnitError

__all__ = [
    "BadReceipt", "CancelOnDisconnect", "DdxClient", "RequestChannel", "MarketSpec", "RequestRefused", "SyncDdxClient", "Trader", "UnitError", "VerifiedReceipt", "cancel_action",
    "modify_action", "place_action",
]
