"""Third-party Python from hash-pinned locks, without rules_python (unreachable offline).

Two repository rules, spelled after rules_python so that switching is a small change
(docs/build.md):

* ``python_venv``: builds one virtualenv from the lock files with
  ``pip install --require-hashes --no-deps`` inside Bazel's output base and exposes it as the
  Python toolchain (``py_runtime`` + ``py_runtime_pair`` + ``toolchain``). The interpreter
  wrapper records the locks' sha256, and since it is in every py target's runfiles, editing a
  lock invalidates every cached test result.
* ``pip_requirements``: a hub repository with one empty ``py_library`` per locked distribution
  and a ``requirements.bzl`` whose ``requirement("name")`` maps a distribution to its label.
  The labels only record the dependency in the build graph (and enforce visibility: the test
  lock's hub is visible to tests alone); the packages themselves come from the toolchain's venv.
"""

_ENV = ["TORCHTUNE_PYTHON", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL", "PIP_FIND_LINKS", "PIP_CONFIG_FILE"]

def _normalise(name):
    return name.lower().replace("_", "-").replace(".", "-")

def _locked_names(content):
    names = []
    for line in content.splitlines():
        line = line.strip()
        if line and not line.startswith("#") and not line.startswith("--") and "==" in line:
            names.append(_normalise(line.split("==")[0]))
    return names

def _run(rctx, args, what, timeout = 600):
    rctx.report_progress(what)
    res = rctx.execute(args, timeout = timeout, quiet = False)
    if res.return_code != 0:
        fail("%s failed (exit %d):\n%s\n%s" % (what, res.return_code, res.stdout, res.stderr))
    return res

def _python_venv_impl(rctx):
    python = rctx.os.environ.get("TORCHTUNE_PYTHON") or rctx.which("python3")
    if not python:
        fail("python3 not found: install Python 3.11 (apt-get install python3 python3-venv) or set TORCHTUNE_PYTHON")
    real = _run(rctx, [python, "-c", "import sys; print(sys.executable)"], "locating python3").stdout.strip()
    _run(rctx, [real, "-m", "venv", "venv"], "creating the venv")
    venv_python = str(rctx.path("venv/bin/python3"))
    args = [venv_python, "-m", "pip", "install", "--require-hashes", "--no-deps", "--no-input",
            "--disable-pip-version-check", "--progress-bar", "off"]
    digests = []
    for lock in rctx.attr.requirements_locks:
        path = rctx.path(lock)
        args += ["-r", str(path)]
        digests.append(_run(rctx, ["sha256sum", str(path)], "hashing %s" % lock.name).stdout.split(" ")[0] + "  " + lock.name)
    _run(rctx, args, "pip install of %s" % ", ".join([l.name for l in rctx.attr.requirements_locks]), timeout = 3600)
    rctx.file("python3.sh", "\n".join([
        "#!/bin/sh",
        "# The venv built from these locks (their sha256 make a lock edit invalidate test results):",
    ] + ["# " + d for d in digests] + [
        'exec "%s" "$@"' % venv_python,
        "",
    ]), executable = True)
    rctx.file("BUILD.bazel", """\
load("@rules_python//python:defs.bzl", "py_runtime", "py_runtime_pair")

exports_files(["python3.sh"])

py_runtime(
    name = "py3_runtime",
    interpreter = "python3.sh",
    python_version = "PY3",
    stub_shebang = "#!{venv_python}",
)

py_runtime_pair(
    name = "runtime_pair",
    py3_runtime = ":py3_runtime",
)

toolchain(
    name = "toolchain",
    toolchain = ":runtime_pair",
    toolchain_type = "@bazel_tools//tools/python:toolchain_type",
)
""".format(venv_python = venv_python))

python_venv = repository_rule(
    implementation = _python_venv_impl,
    attrs = {
        "requirements_locks": attr.label_list(allow_files = True, mandatory = True,
                                              doc = "Hash-pinned lock files, installed together."),
    },
    environ = _ENV,
    doc = "A virtualenv built from hash-pinned locks, registered as the Python toolchain.",
)

def _pip_requirements_impl(rctx):
    names = _locked_names(rctx.read(rctx.attr.requirements_lock))
    visibility = repr(rctx.attr.visibility_labels)
    build = ['package(default_visibility = %s)' % visibility, ""]
    for name in names:
        build.append('py_library(name = "%s")' % name)
    rctx.file("BUILD.bazel", "\n".join(build) + "\n")
    rctx.file("requirements.bzl", """\
\"\"\"requirement() for {lock}, as rules_python spells it.\"\"\"

_LOCKED = {names}

def requirement(name):
    key = name.lower().replace("_", "-").replace(".", "-")
    if key not in _LOCKED:
        fail("'%s' is not in {lock}: add it to its .in file and run ./bazelw run //tools:lock" % name)
    return "@{repo}//:" + key
""".format(lock = rctx.attr.requirements_lock.name, names = repr(names), repo = rctx.name))

pip_requirements = repository_rule(
    implementation = _pip_requirements_impl,
    attrs = {
        "requirements_lock": attr.label(allow_single_file = True, mandatory = True),
        "visibility_labels": attr.string_list(default = ["//visibility:public"],
                                              doc = "Who may depend on these distributions."),
    },
    doc = "One py_library per locked distribution and a requirement() macro.",
)
