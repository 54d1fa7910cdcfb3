import io

from torchtune.training import progress_bar


def test_rank_zero_shows_and_other_ranks_are_silent():
    out = io.StringIO()
    bar = progress_bar(3, desc="train", file=out)
    bar.update(3)
    bar.close()
    assert "train" in out.getvalue() and "3/3" in out.getvalue()
    quiet = io.StringIO()
    bar = progress_bar(3, rank=1, file=quiet)
    bar.update(3)
    bar.close()
    assert bar.disable and quiet.getvalue() == ""
