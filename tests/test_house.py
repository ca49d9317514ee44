"""House rules no linter checks: product modules stay small enough to read in one sitting, and comments
cite documents inside the repository (docs/), never the founding notes outside it."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
MAX_MODULE_LINES = 400


def product_modules() -> list[Path]:
    """Everything users run, not the developer tools (demo, sandbox) nor the generated migrations."""
    modules = [*ROOT.joinpath("bot").rglob("*.py"), *ROOT.joinpath("handlers").rglob("*.py")]
    skipped = (ROOT / "bot" / "devtools", ROOT / "bot" / "core" / "migrations")
    return sorted(m for m in modules if not any(m.is_relative_to(s) for s in skipped))


def test_no_product_module_is_over_400_lines() -> None:
    sizes = {m.relative_to(ROOT): len(m.read_text().splitlines()) for m in product_modules()}
    assert len(sizes) > 40  # the walk found the product
    assert {str(m): n for m, n in sizes.items() if n > MAX_MODULE_LINES} == {}


def test_comments_cite_documents_inside_the_repository() -> None:
    for path in [*product_modules(), *ROOT.joinpath("bot", "devtools").rglob("*.py")]:
        assert "DESIGN" not in path.read_text(), f"{path} cites the founding notes: link docs/ instead"
