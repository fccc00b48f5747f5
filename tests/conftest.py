"""Suite-wide: in CI (`SD_BRIDGE_NO_SKIPS=1`, set by .ci/run) a skipped test is a failure.

CI installs everything the tests need (Xvfb, avahi, the extras), so a skip there means a part
silently went untested; on a developer's machine a skip prints its reason and stays a skip.
"""

from __future__ import annotations

import os

import pytest


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):  # noqa: ANN201 - a hook wrapper
    outcome = yield
    report = outcome.get_result()
    if report.skipped and os.environ.get("SD_BRIDGE_NO_SKIPS") and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped in CI, where everything it needs is installed: {reason}"
