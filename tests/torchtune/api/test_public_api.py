"""The public API (every public package's ``__all__`` and signatures) equals the committed snapshot."""

import difflib
from pathlib import Path

from tests.torchtune.api._snapshot import snapshot

SNAPSHOT = Path(__file__).with_name("public_api.txt")


def test_public_api_is_the_reviewed_one():
    current = snapshot()
    committed = SNAPSHOT.read_text(encoding="utf-8")
    diff = "".join(difflib.unified_diff(committed.splitlines(True), current.splitlines(True), "public_api.txt", "now"))
    assert not diff, (
        "the public API changed; if intended (old names kept as deprecated aliases), regenerate with\n"
        "  python tests/torchtune/api/_snapshot.py > tests/torchtune/api/public_api.txt\n" + diff
    )


def test_snapshot_sees_every_public_package():
    text = SNAPSHOT.read_text(encoding="utf-8")
    for package in ("torchtune.modules:", "torchtune.models.llama3_2:", "torchtune.training.checkpointing:",
                    "torchtune.modules.peft:", "torchtune.gguf:"):
        assert package in text.splitlines(), package
