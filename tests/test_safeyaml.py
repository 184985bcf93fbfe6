"""YAML from users is read within limits: size, aliases, nesting, expanded values and encoding."""
from __future__ import annotations

from pathlib import Path

import pytest

from ferbench import safeyaml
from ferbench.errors import UsageError
from ferbench.safeyaml import load_yaml, read_yaml_file


def test_plain_documents_and_a_few_aliases_load() -> None:
    assert load_yaml("train: {epochs: 3}\nscale: &s [1.0, 1.25]\nother: *s\n", "x") == {
        "train": {"epochs": 3}, "scale": [1.0, 1.25], "other": [1.0, 1.25]}


@pytest.mark.parametrize(("text", "message"), [
    ("".join(f"k{i}: &a{i} [1]\n" for i in range(101)) + "all: [" + ", ".join(f"*a{i}" for i in range(101)) + "]\n",
     "uses more than 100 YAML aliases"),
    # 80 aliases, but 10**9 values once expanded
    ("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n"
     + "".join(f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]\n" for i in range(1, 9)), "expands to more than"),
    ("loop: &a [*a]\n", "expands to more than"),  # a list that contains itself
    ("x: " + "[" * 70 + "]" * 70 + "\n", "more than 64 levels deep"),
    ("x: [unclosed\n", "is not valid YAML at line 2"),
    ("x: *undefined\n", "is not valid YAML"),
])
def test_documents_over_the_limits_are_refused(text: str, message: str) -> None:
    with pytest.raises(UsageError, match=message):
        load_yaml(text, "the document")


def test_files_are_capped_in_size_and_must_be_text(tmp_path: Path) -> None:
    big = tmp_path / "big.yaml"
    big.write_bytes(b"#" * (safeyaml.MAX_BYTES + 1))
    with pytest.raises(UsageError, match=r"config file '.*big.yaml' is larger than 1 MiB"):
        read_yaml_file(big, "config file")
    for name, content, message in (("bin.yaml", bytes(range(256)), "is a binary file"),
                                   ("u16.yaml", "a: 1\n".encode("utf-16-le"), "is a binary file"),
                                   ("latin.yaml", "a: caf\xe9\n".encode("latin-1"), r"is not UTF-8 text \(byte 6\)")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(UsageError, match=message):
            read_yaml_file(tmp_path / name, "config file")
    with pytest.raises(UsageError, match="cannot read config file"):
        read_yaml_file(tmp_path / "absent.yaml", "config file")


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_files_with_a_byte_order_mark_are_read(tmp_path: Path, encoding: str) -> None:
    path = tmp_path / "bom.yaml"
    path.write_bytes("train:\n  epochs: 2\nname: café\n".encode(encoding))  # Python writes the BOM for both
    assert read_yaml_file(path, "config file") == {"train": {"epochs": 2}, "name": "café"}
