"""The trader's SDK: sign requests (`Trader`), submit them and verify receipts, read state, stream updates
(`DdxClient`)."""

from .api import BadReceipt, DdxClient, RequestRefused, VerifiedReceipt
from .signer import Trader

__all__ = ["BadReceipt", "DdxClient", "RequestRefused", "Trader", "VerifiedReceipt"]
