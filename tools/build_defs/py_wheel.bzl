"""py_wheel: a reproducible wheel from py_library deps and data, named as rules_python names it.

Attributes follow rules_python's py_wheel (distribution, version, python_tag, abi, platform,
requires, extra_requires, entry_points, deps, description_file); ``data`` adds non-Python files
and ``path_renames`` moves a source prefix inside the wheel (recipes/ -> torchtune/_recipes/),
which rules_python spells with a py_package + strip_path_prefixes pair. The wheel is written by
tools/build_defs/wheelmaker.py: sorted entries, timestamps fixed at 1980-01-01, fixed modes,
so two builds give the same bytes.
"""

PyWheelInfo = provider(
    doc = "A built wheel.",
    fields = {
        "wheel": "File: the .whl",
        "name_file": "File: holds the wheel's file name",
    },
)

def _wheel_path(f, renames):
    path = f.short_path
    best = ""
    for src in renames.keys():
        if path.startswith(src) and len(src) > len(best):
            best = src
    if best:
        return renames[best] + path[len(best):]
    return path

def _collect(ctx):
    files = []
    for dep in ctx.attr.deps:
        if PyInfo in dep:
            files.append(dep[PyInfo].transitive_sources)
        files.append(dep[DefaultInfo].default_runfiles.files)
    for d in ctx.attr.data:
        files.append(d[DefaultInfo].files)
        files.append(d[DefaultInfo].default_runfiles.files)
    out = {}
    for f in depset(transitive = files).to_list():
        # Only this workspace's own files: third-party packages are Requires-Dist, not contents.
        if f.owner == None or f.owner.workspace_name != "" or f.short_path.startswith("../"):
            continue
        dest = _wheel_path(f, ctx.attr.path_renames)
        if dest in out and out[dest] != f:
            fail("two files map to %s in the wheel: %s and %s" % (dest, out[dest].short_path, f.short_path))
        out[dest] = f
    return out

def _py_wheel_impl(ctx):
    name = "%s-%s-%s-%s-%s.whl" % (
        ctx.attr.distribution.replace("-", "_"),
        ctx.attr.version,
        ctx.attr.python_tag,
        ctx.attr.abi,
        ctx.attr.platform,
    )
    wheel = ctx.actions.declare_file(name)
    name_file = ctx.actions.declare_file(ctx.label.name + ".name")
    ctx.actions.write(name_file, name + "\n")
    files = _collect(ctx)

    args = ctx.actions.args()
    args.use_param_file("--flagfile=%s", use_always = True)
    args.set_param_file_format("multiline")
    args.add("--distribution", ctx.attr.distribution)
    args.add("--version", ctx.attr.version)
    args.add("--python_tag", ctx.attr.python_tag)
    args.add("--abi", ctx.attr.abi)
    args.add("--platform", ctx.attr.platform)
    args.add("--out", wheel.path)
    if ctx.attr.summary:
        args.add("--summary", ctx.attr.summary)
    if ctx.attr.requires_python:
        args.add("--requires_python", ctx.attr.requires_python)
    for req in ctx.attr.requires:
        args.add("--requires", req)
    for extra in sorted(ctx.attr.extra_requires.keys()):
        for req in ctx.attr.extra_requires[extra]:
            args.add("--extra_requires", "%s:%s" % (extra, req))
    for group in sorted(ctx.attr.entry_points.keys()):
        for spec in ctx.attr.entry_points[group]:
            args.add("--entry_points", "%s:%s" % (group, spec))
    inputs = []
    if ctx.file.description_file:
        args.add("--description_file", ctx.file.description_file.path)
        inputs.append(ctx.file.description_file)
    for dest in sorted(files.keys()):
        args.add("--input_file", "%s=%s" % (dest, files[dest].path))
        inputs.append(files[dest])

    ctx.actions.run(
        executable = ctx.executable._wheelmaker,
        arguments = [args],
        inputs = inputs,
        outputs = [wheel],
        mnemonic = "PyWheel",
        progress_message = "Building wheel %s" % name,
    )
    return [
        DefaultInfo(files = depset([wheel, name_file]), runfiles = ctx.runfiles(files = [wheel])),
        PyWheelInfo(wheel = wheel, name_file = name_file),
    ]

py_wheel = rule(
    implementation = _py_wheel_impl,
    attrs = {
        # What the wheel is.
        "distribution": attr.string(mandatory = True, doc = "Distribution name, e.g. torchtune."),
        "version": attr.string(mandatory = True),
        "python_tag": attr.string(default = "py3"),
        "abi": attr.string(default = "none"),
        "platform": attr.string(default = "any"),
        "description_file": attr.label(allow_single_file = True, doc = "README shown on the index."),
        "summary": attr.string(doc = "One-line summary."),
        "requires_python": attr.string(doc = "Requires-Python specifier, e.g. >=3.11."),
        # What it needs.
        "requires": attr.string_list(doc = "Requires-Dist of the plain install."),
        "extra_requires": attr.string_list_dict(doc = "extra name -> its Requires-Dist."),
        "entry_points": attr.string_list_dict(doc = "group -> specs, e.g. console_scripts: ['tune = m:f']."),
        # What it holds.
        "deps": attr.label_list(doc = "py_library targets; their transitive sources of this workspace."),
        "data": attr.label_list(allow_files = True, doc = "Non-Python files (configs, assets)."),
        "path_renames": attr.string_dict(doc = "source path prefix -> prefix inside the wheel."),
        "_wheelmaker": attr.label(
            default = "//tools/build_defs:wheelmaker",
            executable = True,
            cfg = "exec",
        ),
    },
    doc = "Builds a reproducible Python wheel.",
)
