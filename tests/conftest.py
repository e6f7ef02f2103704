"""Shared pytest options and fixtures."""

import pytest


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for tests that run torch code (cpu, cuda, cuda:1)")


@pytest.fixture(scope="session")
def device(request) -> str:
    """The torch device named by ``--device`` (default cpu)."""
    return request.config.getoption("--device")
