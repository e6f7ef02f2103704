"""Shared pytest options and fixtures."""

from pathlib import Path

import pytest


def pytest_addoption(parser):
    parser.addoption("--device", default="cpu", help="torch device for tests that run torch code (cpu, cuda, cuda:1)")


@pytest.fixture(scope="session")
def device(request) -> str:
    """The torch device named by ``--device`` (default cpu)."""
    return request.config.getoption("--device")


@pytest.fixture(scope="module")
def profile_store(tmp_path_factory):
    """The test profile's store, built once per module that asks for it."""
    from wavinv.bench import get_profile
    from wavinv.generate import generate

    spec = get_profile("test")["store"]
    return generate(tmp_path_factory.mktemp("store") / "s", spec["generator"], spec["n"], seed=spec["seed"], progress=False)


@pytest.fixture(scope="module")
def toy_inverter(tmp_path_factory):
    """A prior inverter on 96 clips of tests/toygen.py:toy, attached, and one of its test clips as a target."""
    from wavinv.generate import generate
    from wavinv.inverter import fit_inverter
    from wavinv.targets import Target

    toy = f"{Path(__file__).resolve().parent / 'toygen.py'}:toy"
    store = generate(tmp_path_factory.mktemp("toy") / "s", toy, n=96, seed=0, progress=False)
    inv = fit_inverter(store, "prior", "spectrogram")
    inv.attach(toy)
    return inv, Target("waveform", store.waveforms("test")[0], "t")
