"""The public names of ``dorm_sqlalchemy.server``."""

from __future__ import annotations

import dorm_sqlalchemy.server as server


def test_server_exports_exist() -> None:
    missing = [name for name in server.__all__ if not hasattr(server, name)]

    assert missing == []


def test_server_exports_expected_names() -> None:
    assert sorted(server.__all__) == ["ApiError", "ServerLimits", "TokenScope", "create_app"]
