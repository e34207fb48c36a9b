"""An audit that checked nothing must not pass (issue 15: `OK: 0 recorded checkpoint(s)`, exit 0, while the engine
had frozen four epochs and the contract recorded none)."""

from __future__ import annotations

from ddx_offchain.replica.audit import MATCH, MISMATCH, AuditReport, EpochAudit


def test_frozen_epochs_with_none_recorded_fail_the_audit():
    report = AuditReport(epochs=[], entries_replayed=40, last_epoch_replayed=4)
    assert not report.ok
    assert report.lines()[-1].startswith("FAILED") and "recorded none" in report.lines()[-2]


def test_a_fresh_deployment_says_there_was_nothing_to_check():
    report = AuditReport(epochs=[], entries_replayed=3, last_epoch_replayed=0)
    assert report.ok and "nothing to compare yet" in report.lines()[-2]


def test_matching_roots_pass_and_a_mismatch_fails():
    good = EpochAudit(1, MATCH, b"\x01" * 32, b"\x01" * 32)
    assert AuditReport(epochs=[good], entries_replayed=9, last_epoch_replayed=1).ok
    bad = EpochAudit(2, MISMATCH, b"\x02" * 32, b"\x03" * 32)
    assert not AuditReport(epochs=[good, bad], entries_replayed=9, last_epoch_replayed=2).ok
