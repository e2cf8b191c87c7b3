"""The package's own surface: its version and its public names."""

import importlib.metadata

import lograd_fast as lf


def test_version_is_written_once():
    # pyproject.toml reads lograd_fast.__version__ (dynamic): the installed metadata agrees
    assert importlib.metadata.version("lograd_fast") == lf.__version__


def test_dir_lists_the_public_names_and_no_helper_imports():
    names = dir(lf)
    assert set(lf.__all__) <= set(names)
    for helper in ("importlib", "sys", "types", "annotations"):
        assert helper not in names
    for name in lf.__all__:  # every public name resolves
        assert getattr(lf, name) is not None
