"""pytest under Bazel: one macro for every test target, and per-package suites by tag."""

load("@rules_python//python:defs.bzl", "py_test")
load("@pypi//:requirements.bzl", "requirement")

TEST_TAGS = ["unit", "recipe", "gpu", "slow"]
_SIZES = ["small", "medium", "large", "enormous"]

def pytest_test(name, srcs, size = None, tags = [], deps = [], data = [], args = [], **kwargs):
    """A py_test that runs pytest on ``srcs`` alone.

    Args:
        name: target name.
        srcs: the test files; only these are collected.
        size: required; small, medium, large or enormous.
        tags: must include exactly one of unit, recipe or gpu; may add slow.
        deps: libraries the tests import (requirement() labels included).
        data: runtime files.
        args: extra pytest arguments, placed before the test files.
        **kwargs: passed to py_test (shard_count, timeout, env, ...).
    """
    if size not in _SIZES:
        fail("pytest_test %s: size is required, one of %s" % (name, _SIZES))
    kinds = [t for t in tags if t in ["unit", "recipe", "gpu"]]
    if len(kinds) != 1:
        fail("pytest_test %s: tags must hold exactly one of unit, recipe, gpu (got %s)" % (name, tags))
    main = "//tools/build_defs:pytest_main.py"
    py_test(
        name = name,
        srcs = srcs + [main],
        main = main,
        size = size,
        tags = tags,
        args = args + ["$(rootpath %s)" % s for s in srcs],
        deps = deps + [requirement("pytest")],
        data = data,
        python_version = "PY3",
        **kwargs
    )

def test_suites():
    """Declares this package's suites: :unit, :recipe, :gpu, :slow (tests filtered by tag).

    The root BUILD.bazel aggregates them into //:unit, //:recipe and //:gpu.
    """
    for tag in TEST_TAGS:
        native.test_suite(name = tag, tags = [tag], visibility = ["//:__pkg__"])
