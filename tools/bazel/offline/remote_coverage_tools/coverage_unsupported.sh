#!/bin/sh
echo "bazel coverage is not supported offline: @remote_coverage_tools is a stand-in (tools/bazel/offline/README.md)" >&2
exit 1
