"""The README matches the code: hooks documented, commands real."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any

from vectorstore import hookspecs

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def test_every_hook_is_documented_and_tested() -> None:
    hooks = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("vectorstore_")]
    assert hooks
    tests = (ROOT / "tests" / "test_plugins.py").read_text()
    for hook in hooks:
        assert hook in README, f"{hook} is not documented in the README"
        assert f"def {hook}" in tests, f"{hook} has no test in tests/test_plugins.py"


def test_readme_set_up_commands_are_the_ci_commands() -> None:
    ci = (ROOT / ".ci" / "run").read_text()
    assert 'python3 -m pip install "tox>=4.11" && python3 -m tox' in README
    assert "tox>=4.11" in ci and "python3 -m tox" in ci
    assert "vectorstore demo" in README


def test_documented_env_variables_exist_in_code() -> None:
    code = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.py"))
    code += "\n".join(p.read_text() for p in (ROOT / "backends").rglob("*.py"))
    for var in set(re.findall(r"\b(VECTORSTORE_[A-Z_]+|DB_[A-Z_]+)\b", README)):
        if var.startswith("VECTORSTORE_PG_IMAGE"):
            continue
        assert var in code, f"README mentions {var}, which the code never reads"


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_readme_python_examples_run(tmp_path: Path, monkeypatch: Any) -> None:
    """Every Python example in the README runs as written (in a scratch directory)."""
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks(README)
    assert len(blocks) >= 6
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"README.md python block {i}", "exec"), {"__name__": f"readme_block_{i}"})
        except Exception as exc:  # name the block in the failure
            raise AssertionError(f"README python block {i} failed: {exc!r}\n{block}") from exc


def test_the_readme_lists_every_error_class() -> None:
    """The README's error list names every exception vectorstore exports, and nothing else."""
    import vectorstore

    exported = {name for name in vectorstore.__all__
                if isinstance(getattr(vectorstore, name), type) and issubclass(getattr(vectorstore, name), Exception)}
    section = README[README.index("- **Errors**"):]
    section = section[:min(i for i in (section.find("\n- **", 1), section.find("\n\n")) if i > 0)]
    listed = set(re.findall(r"`([A-Z][A-Za-z]+)`", section)) - {"VectorStoreError"}
    assert listed == exported - {"VectorStoreError"}, (sorted(exported - listed), sorted(listed - exported))
