"""One exception hierarchy (as py-evm has): every error ddx raises on purpose derives from `DdxError` and carries a
stable `reason` code; the API maps reasons to HTTP statuses in one table."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import ddx_offchain
from ddx_offchain.errors import DdxError

# Exceptions that are not product errors, each with the reason it stays outside the hierarchy.
OUTSIDE = {
    "ddx_offchain.testing.sim.fsm.SimulationFailure": "a failed simulation run: a test failure carrying the replay "
    "command (an AssertionError, so pytest reports it as one), never raised by the product",
}


def exception_classes() -> dict[str, type]:
    found = {}
    for info in pkgutil.walk_packages(ddx_offchain.__path__, "ddx_offchain."):
        if info.name.endswith("__main__"):  # running it would run the CLI
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module.__name__:
                found[f"{module.__name__}.{name}"] = obj
    return found


def test_every_error_class_derives_from_ddx_error():
    classes = exception_classes()
    assert len(classes) > 40  # the walk found the package's errors
    outside = sorted(name for name, cls in classes.items() if not issubclass(cls, DdxError) and name not in OUTSIDE)
    assert outside == [], "derive these from ddx_offchain.errors.DdxError"
    assert set(OUTSIDE) <= set(classes), "an allow-listed class no longer exists: drop it from OUTSIDE"


def test_every_error_has_a_snake_case_reason():
    for name, cls in exception_classes().items():
        if issubclass(cls, DdxError):
            assert isinstance(cls.reason, str) and cls.reason.replace("_", "").isalnum() and cls.reason.islower(), name


def test_the_api_maps_reasons_not_classes():
    from ddx_offchain.api.errors import http_status
    from ddx_offchain.node.admission import AdmissionError, RefusedWhenApplied
    from ddx_offchain.node.views import ProofUnavailable

    assert http_status(AdmissionError("signer_mismatch", "x")) == 401
    assert http_status(RefusedWhenApplied("bad_signature", "x")) == 409  # sequenced, then refused: a conflict
    assert http_status(ProofUnavailable("x", reason="unknown_epoch")) == 404
    assert http_status(AdmissionError("not_leader", "x")) == 421
    assert http_status(DdxError("x", reason="something_new")) == 400
