"""Every package that holds tests; //:unit, //:recipe, //:gpu and //:slow aggregate their suites.

.ci/run checks with `bazel query` that no test target is left out of this list.
"""

TEST_PACKAGES = [
    "//recipe_tests",
    "//tests/torchtune/modules",
    "//tools",
]
