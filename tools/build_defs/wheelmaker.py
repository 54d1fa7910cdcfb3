"""Write a byte-for-byte reproducible Python wheel (PEP 427) from explicit inputs.

Used by ``py_wheel.bzl``; it also runs by hand::

    python tools/build_defs/wheelmaker.py --distribution torchtune --version 0.1.0 \\
        --out dist/torchtune-0.1.0-py3-none-any.whl \\
        --requires 'torch>=2.4' --extra_requires 'hf:huggingface_hub' \\
        --entry_points 'console_scripts:tune = torchtune._cli.tune:main' \\
        --input_file torchtune/__init__.py=torchtune/__init__.py

Arguments may come from a file: ``--flagfile=PATH`` (absl; one flag, or one flag and then its
value, per line) or ``@PATH`` (one argument per line).

Reproducible: entries sorted by path (the ``.dist-info`` files last, ``RECORD`` at the very end),
every timestamp 1980-01-01 00:00:00, every mode 0o644, ``ZIP_DEFLATED`` at level 6, no
directory entries. The same inputs and the same zlib give the same bytes.
"""

import base64
import csv
import hashlib
import io
import re
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from absl import app, flags

ZIP_DATE = (1980, 1, 1, 0, 0, 0)
FILE_MODE = 0o644
COMPRESS_LEVEL = 6
GENERATOR = "torchtune-wheelmaker 1.0"

_NAME_RE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_VERSION_RE = re.compile(r"^[0-9]+(\.[0-9]+)*[A-Za-z0-9.+!_-]*$")
_ENTRY_RE = re.compile(r"^([A-Za-z0-9_.-]+)\s*=\s*([A-Za-z_][\w.]*(:[A-Za-z_][\w.]*)?)$")


@dataclass
class WheelSpec:
    """Everything that goes into a wheel.

    Args:
        distribution (str): the distribution name, e.g. ``"torchtune"``.
        version (str): the version, e.g. ``"0.1.0"``.
        files (dict[str, Path]): path inside the wheel -> source file.
        python_tag (str): Default: ``"py3"``.
        abi (str): Default: ``"none"``.
        platform (str): Default: ``"any"``.
        requires (list[str]): Requires-Dist of the plain install. Default: [].
        extra_requires (dict[str, list[str]]): extra -> its requirements. Default: {}.
        entry_points (dict[str, list[str]]): group -> ``"name = module:attr"``. Default: {}.
        description (str | None): long description (README text). Default: None.
        description_type (str): its content type. Default: ``"text/markdown"``.
        summary (str | None): one-line summary. Default: None.
        requires_python (str | None): e.g. ``">=3.11"``. Default: None.
    """

    distribution: str
    version: str
    files: dict[str, Path]
    python_tag: str = "py3"
    abi: str = "none"
    platform: str = "any"
    requires: list[str] = field(default_factory=list)
    extra_requires: dict[str, list[str]] = field(default_factory=dict)
    entry_points: dict[str, list[str]] = field(default_factory=dict)
    description: str | None = None
    description_type: str = "text/markdown"
    summary: str | None = None
    requires_python: str | None = None

    def dist_info(self) -> str:
        """The ``<name>-<version>.dist-info`` directory name."""
        name = re.sub(r"[-_.]+", "_", self.distribution)
        return f"{name}-{self.version.replace('-', '_')}.dist-info"


def _with_extra(requirement: str, extra: str) -> str:
    req, sep, marker = requirement.partition(";")
    if sep:
        return f'{req.strip()}; ({marker.strip()}) and extra == "{extra}"'
    return f'{req.strip()}; extra == "{extra}"'


def metadata(spec: WheelSpec) -> str:
    """Return the METADATA file (core metadata 2.1)."""
    lines = ["Metadata-Version: 2.1", f"Name: {spec.distribution}", f"Version: {spec.version}"]
    if spec.summary:
        lines.append(f"Summary: {spec.summary}")
    if spec.requires_python:
        lines.append(f"Requires-Python: {spec.requires_python}")
    lines += [f"Requires-Dist: {r.strip()}" for r in spec.requires]
    for extra in sorted(spec.extra_requires):
        lines.append(f"Provides-Extra: {extra}")
        lines += [f"Requires-Dist: {_with_extra(r, extra)}" for r in spec.extra_requires[extra]]
    if spec.description is None:
        return "\n".join(lines) + "\n"
    lines.append(f"Description-Content-Type: {spec.description_type}")
    return "\n".join(lines) + "\n\n" + spec.description


def wheel_file(spec: WheelSpec) -> str:
    """Return the WHEEL file, one ``Tag`` line per python/abi/platform combination."""
    tags = [
        f"{py}-{abi}-{plat}"
        for py in spec.python_tag.split(".")
        for abi in spec.abi.split(".")
        for plat in spec.platform.split(".")
    ]
    pure = "true" if spec.platform == "any" else "false"
    head = ["Wheel-Version: 1.0", f"Generator: {GENERATOR}", f"Root-Is-Purelib: {pure}"]
    return "\n".join(head + [f"Tag: {t}" for t in tags]) + "\n"


def entry_points_file(entry_points: dict[str, list[str]]) -> str:
    """Return entry_points.txt: groups and entries sorted, ``name = module:attr`` each."""
    sections = []
    for group in sorted(entry_points):
        specs = sorted(_parse_entry_point(s) for s in entry_points[group])
        sections.append(f"[{group}]\n" + "".join(f"{n} = {t}\n" for n, t in specs))
    return "\n".join(sections)


def _parse_entry_point(spec: str) -> tuple[str, str]:
    match = _ENTRY_RE.match(spec.strip())
    if match is None:
        raise ValueError(f"entry point {spec!r} must look like 'name = package.module:function'")
    return match.group(1), match.group(2)


def _check_dest(dest: str, dist_info: str) -> None:
    path = PurePosixPath(dest)
    if not dest or path.is_absolute() or ".." in path.parts or "\\" in dest or str(path) != dest:
        raise ValueError(f"wheel path {dest!r} must be a normalized relative path like a/b.py")
    if path.parts[0] == dist_info:
        raise ValueError(f"wheel path {dest!r} lies in {dist_info}, which wheelmaker writes")


def check(spec: WheelSpec) -> None:
    """Raise ValueError naming the first bad field of ``spec``."""
    if not _NAME_RE.match(spec.distribution):
        raise ValueError(f"distribution {spec.distribution!r} is not a valid project name")
    if not _VERSION_RE.match(spec.version):
        raise ValueError(f"version {spec.version!r} is not a PEP 440 version such as 1.2.0")
    for extra in spec.extra_requires:
        if not _NAME_RE.match(extra):
            raise ValueError(f"extra {extra!r} is not a valid extra name")
    for dest, src in spec.files.items():
        _check_dest(dest, spec.dist_info())
        if not src.is_file():
            raise ValueError(f"input file {src} (for {dest}) does not exist or is not a file")
    for specs in spec.entry_points.values():
        for s in specs:
            _parse_entry_point(s)


def _record_hash(data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=")
    return "sha256=" + digest.decode("ascii")


def _write(zf: zipfile.ZipFile, path: str, data: bytes) -> None:
    info = zipfile.ZipInfo(path, date_time=ZIP_DATE)
    info.create_system = 3  # Unix, so that external_attr holds the mode
    info.external_attr = (0o100000 | FILE_MODE) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    zf.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL)


def build_wheel(spec: WheelSpec, out: Path) -> None:
    """Write the wheel described by ``spec`` to ``out``.

    Raises:
        ValueError: a bad name, version, extra, entry point or wheel path, or a missing input.
    """
    check(spec)
    dist_info = spec.dist_info()
    contents = [(dest, spec.files[dest].read_bytes()) for dest in sorted(spec.files)]
    contents.append((f"{dist_info}/METADATA", metadata(spec).encode()))
    contents.append((f"{dist_info}/WHEEL", wheel_file(spec).encode()))
    if spec.entry_points:
        text = entry_points_file(spec.entry_points)
        contents.append((f"{dist_info}/entry_points.txt", text.encode()))
    record = io.StringIO()
    writer = csv.writer(record, lineterminator="\n")
    for path, data in contents:
        writer.writerow([path, _record_hash(data), len(data)])
    writer.writerow([f"{dist_info}/RECORD", "", ""])
    contents.append((f"{dist_info}/RECORD", record.getvalue().encode()))
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(out, "w") as zf:
        for path, data in contents:
            _write(zf, path, data)


# ---- command line --------------------------------------------------------------------------

FLAGS = flags.FLAGS
flags.DEFINE_string("distribution", None, "Distribution name, e.g. torchtune.")
flags.DEFINE_string("version", None, "Distribution version, e.g. 0.1.0.")
flags.DEFINE_string("python_tag", "py3", "Python tag of the wheel name.")
flags.DEFINE_string("abi", "none", "ABI tag of the wheel name.")
flags.DEFINE_string("platform", "any", "Platform tag of the wheel name.")
flags.DEFINE_string("out", None, "Path of the .whl to write.")
flags.DEFINE_multi_string("requires", [], "A Requires-Dist of the plain install (repeatable).")
flags.DEFINE_multi_string("extra_requires", [], "EXTRA:REQUIREMENT (repeatable).")
flags.DEFINE_multi_string("entry_points", [], "GROUP:NAME = MODULE:ATTR (repeatable).")
flags.DEFINE_multi_string("input_file", [], "DEST=SRC: SRC is stored at DEST (repeatable).")
flags.DEFINE_string("description_file", None, "README whose text becomes the description.")
flags.DEFINE_string("summary", None, "One-line summary.")
flags.DEFINE_string("requires_python", None, "Requires-Python specifier, e.g. >=3.11.")
flags.mark_flags_as_required(["distribution", "version", "out"])


def _split_pairs(values: list[str], sep: str, flag: str, form: str) -> list[tuple[str, str]]:
    pairs = []
    for value in values:
        left, found, right = value.partition(sep)
        if not found or not left.strip() or not right.strip():
            raise ValueError(f"--{flag} {value!r} must look like {form}")
        pairs.append((left.strip(), right.strip()))
    return pairs


def spec_from_flags() -> WheelSpec:
    """Build a :class:`WheelSpec` from the parsed flags."""
    files: dict[str, Path] = {}
    for dest, src in _split_pairs(FLAGS.input_file, "=", "input_file", "DEST=SRC"):
        if dest in files and files[dest] != Path(src):
            raise ValueError(f"two inputs for {dest}: {files[dest]} and {src}")
        files[dest] = Path(src)
    extras: dict[str, list[str]] = {}
    extra_pairs = _split_pairs(FLAGS.extra_requires, ":", "extra_requires", "EXTRA:REQUIREMENT")
    for extra, req in extra_pairs:
        extras.setdefault(extra, []).append(req)
    entry_points: dict[str, list[str]] = {}
    for group, ep in _split_pairs(
        FLAGS.entry_points, ":", "entry_points", "GROUP:NAME = MODULE:ATTR"
    ):
        entry_points.setdefault(group, []).append(ep)
    spec = WheelSpec(
        distribution=FLAGS.distribution, version=FLAGS.version, files=files,
        python_tag=FLAGS.python_tag, abi=FLAGS.abi, platform=FLAGS.platform,
        requires=list(FLAGS.requires), extra_requires=extras, entry_points=entry_points,
        summary=FLAGS.summary, requires_python=FLAGS.requires_python,
    )  # fmt: skip
    if FLAGS.description_file:
        path = Path(FLAGS.description_file)
        spec.description = path.read_text(encoding="utf-8")
        types = {".md": "text/markdown", ".rst": "text/x-rst"}
        spec.description_type = types.get(path.suffix, "text/plain")
    return spec


def expand_argfiles(argv: list[str]) -> list[str]:
    """Replace each ``@PATH`` argument by the lines of PATH (one argument per line)."""
    out = argv[:1]
    for arg in argv[1:]:
        if arg.startswith("@") and len(arg) > 1:
            out += [line for line in Path(arg[1:]).read_text().splitlines() if line]
        else:
            out.append(arg)
    return out


def main(argv: list[str]) -> None:
    """absl entry point: build the wheel; a bad input exits 1 with one line on stderr."""
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    try:
        build_wheel(spec_from_flags(), Path(FLAGS.out))
    except (ValueError, OSError) as e:
        sys.exit(f"wheelmaker: error: {e}")


if __name__ == "__main__":
    app.run(main, argv=expand_argfiles(sys.argv))
