"""SentencePiece base tokenizer (Llama 2, Mistral, Gemma)."""

import os

import sentencepiece as spm


class SentencePieceBaseTokenizer:
    """Text <-> ids with a SentencePiece ``.model`` file.

    Args:
        path (str): path to the SentencePiece model file.

    Raises:
        FileNotFoundError: if ``path`` does not exist.
        ValueError: if the file is not a SentencePiece model.
    """

    def __init__(self, path: str) -> None:
        if not os.path.isfile(path):
            raise FileNotFoundError(f"SentencePiece model not found: {path}")
        self._sp = spm.SentencePieceProcessor()
        try:
            self._sp.Load(str(path))
        except (OSError, RuntimeError) as e:
            raise ValueError(f"{path} is not a SentencePiece model file: {e}") from e
        self.vocab_size: int = self._sp.vocab_size()
        self.bos_id: int = self._sp.bos_id()
        self.eos_id: int = self._sp.eos_id()
        self.pad_id: int = self._sp.pad_id() if self._sp.pad_id() >= 0 else 0
        self.stop_tokens: list[int] = [self.eos_id]
        # ids used to strip the dummy-prefix "▁" when encoding a continuation of text
        self._newline_ids: list[int] = self._sp.encode("\n")

    def encode(
        self, text: str, add_bos: bool = True, add_eos: bool = True, trim_leading_whitespace: bool = False
    ) -> list[int]:
        """Encode text.

        Args:
            text (str): the text.
            add_bos (bool): prepend BOS. Default True.
            add_eos (bool): append EOS. Default True.
            trim_leading_whitespace (bool): encode ``text`` as a continuation, without the
                dummy-prefix space SentencePiece adds to the start of a text. Default False.

        Returns:
            list[int]: token ids.
        """
        if trim_leading_whitespace:
            ids = self._sp.encode("\n" + text)[len(self._newline_ids):]
        else:
            ids = self._sp.encode(text)
        return ([self.bos_id] if add_bos else []) + ids + ([self.eos_id] if add_eos else [])

    def decode(self, ids: list[int], skip_special_tokens: bool = True) -> str:
        """Decode ids to text; control tokens (BOS/EOS) are always left out."""
        return self._sp.decode(list(ids))

    def token_to_id(self, token: str) -> int:
        """Return the id of a piece, e.g. ``"<start_of_turn>"`` (the unknown id if absent)."""
        return self._sp.piece_to_id(token)
