"""Stand-in for @rules_python//python:defs.bzl, forwarding to Bazel's native Python rules.

BUILD files load py_* from here exactly as they would from rules_python, so switching to the
real rules_python is a WORKSPACE change (docs/build.md).
"""

load("@bazel_tools//tools/python:toolchain.bzl", _py_runtime_pair = "py_runtime_pair")

def py_binary(**attrs):
    native.py_binary(**attrs)

def py_library(**attrs):
    native.py_library(**attrs)

def py_test(**attrs):
    native.py_test(**attrs)

def py_runtime(**attrs):
    native.py_runtime(**attrs)

def py_runtime_pair(**attrs):
    # Bazel 4 ships py_runtime_pair as a Starlark rule in @bazel_tools.
    _py_runtime_pair(**attrs)
