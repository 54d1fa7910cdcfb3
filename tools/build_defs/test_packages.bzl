"""Every package that holds tests; //:unit, //:recipe, //:gpu and //:slow aggregate their suites.

.ci/run checks with `bazel query` that no test target is left out of this list.
"""

TEST_PACKAGES = [
    "//recipe_tests",
    "//tests/torchtune/_cli",
    "//tests/torchtune/api",
    "//tests/torchtune/config",
    "//tests/torchtune/data",
    "//tests/torchtune/datasets",
    "//tests/torchtune/generation",
    "//tests/torchtune/gguf",
    "//tests/torchtune/gpu",
    "//tests/torchtune/models",
    "//tests/torchtune/modules",
    "//tests/torchtune/modules/peft",
    "//tests/torchtune/modules/tokenizers",
    "//tests/torchtune/training",
    "//tests/torchtune/training/checkpointing",
    "//tools",
    "//tools/benchmarks",
    "//tools/build_defs",
]
