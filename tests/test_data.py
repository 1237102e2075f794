"""Documents from text files: the tokenizer and truncation, files from any system's editor giving the
same documents, files that cannot be read refused in one line, and the names that ship with the package."""

import codecs
import unicodedata

import pytest

from train.lib.data import Tokenizer, encode_docs, fingerprint, load_docs, resolve_data_path
from train.lib.errors import UserError


def test_documents_tokenizer_and_truncation(tmp_path):
    path = tmp_path / "d.txt"
    path.write_text("  ab \n\n abcd\nabcdefg\n   \n")
    docs = load_docs(path)
    assert docs == ["ab", "abcd", "abcdefg"]
    tok = Tokenizer.from_docs(docs)
    assert tok.chars == "abcdefg" and tok.bos == 7 and tok.vocab_size == 8
    assert tok.decode(tok.encode("bad")) == "bad"
    rows, n, truncated = encode_docs(docs, tok, block_size=4)
    assert truncated == 2 and n.tolist() == [3, 4, 4]
    assert rows[0].tolist() == [7, 0, 1, 7, 7] and rows[2].tolist() == [7, 0, 1, 2, 3]


@pytest.mark.parametrize("content, words", [
    (None, "not found"), (b"", "no documents"), (b"  \n \n", "no documents"), (b"ab\n\xff\xfe\n", "not UTF-8"),
])
def test_bad_data_files(tmp_path, content, words):
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=words):
        load_docs(path)
    with pytest.raises(UserError, match="directory"):
        load_docs(tmp_path)


NAMES = ["émile", "zoë", "anaïs", "josé", "ava"]  # accents, as names in other languages have them


@pytest.mark.parametrize("encoding, line_end", [
    ("utf-8", "\n"), ("utf-8-sig", "\n"), ("utf-8", "\r\n"), ("utf-8-sig", "\r\n"), ("utf-8", "\r"),
    ("utf-16", "\r\n"), ("utf-16-be", "\n"), ("utf-32", "\n"), ("nfd", "\n"), ("two files joined", "\r\n"),
])
def test_a_text_file_from_any_editor_gives_the_same_documents(tmp_path, encoding, line_end):
    """What Windows, macOS and Linux editors write for the same names: a byte-order mark or none,
    UTF-16 or UTF-32 ("Unicode" in Windows' save dialog), CRLF, CR or LF, accents decomposed (macOS),
    or two such files joined with cat: the same documents, so the same fingerprint and the same run."""
    text = line_end.join(NAMES) + line_end
    if encoding == "nfd":
        raw = unicodedata.normalize("NFD", text).encode()
    elif encoding == "two files joined":
        raw = (line_end.join(NAMES[:2]) + line_end).encode("utf-8-sig") + (line_end.join(NAMES[2:])).encode("utf-8-sig")
    elif encoding == "utf-16-be":
        raw = codecs.BOM_UTF16_BE + text.encode("utf-16-be")
    else:
        raw = text.encode(encoding)
    path = tmp_path / "names.txt"
    path.write_bytes(raw)
    assert load_docs(path) == NAMES
    assert fingerprint(load_docs(path)) == fingerprint(NAMES)


def test_legacy_and_binary_files_are_refused_with_what_to_do(tmp_path):
    path = tmp_path / "names.txt"
    path.write_bytes("émile\nzoë\n".encode("cp1252"))
    with pytest.raises(UserError, match=r"not UTF-8 text: .*names.txt \(byte 0 is 0xe9\); if it was saved as "
                                        r"Windows-1252 or Latin-1, convert it: iconv -f cp1252 -t utf-8"):
        load_docs(path)
    path.write_bytes("ab\n".encode("utf-16-le"))  # UTF-16 without its byte-order mark
    with pytest.raises(UserError, match="holds NUL bytes"):
        load_docs(path)


def test_the_names_ship_with_the_package_and_flags_and_environment_still_win(tmp_path, monkeypatch):
    import hashlib

    from train.lib.data import NAMES_SHA256, embedded_names

    shipped = embedded_names()
    assert hashlib.sha256(shipped.read_bytes()).hexdigest() == NAMES_SHA256
    assert len(load_docs(shipped)) == 32033
    monkeypatch.delenv("MICROJAX_DATA", raising=False)
    assert resolve_data_path() == shipped
    monkeypatch.setenv("MICROJAX_DATA", str(tmp_path / "env.txt"))
    assert resolve_data_path() == tmp_path / "env.txt"
    assert resolve_data_path(tmp_path / "flag.txt") == tmp_path / "flag.txt"
