"""Units a reader can hold: no module over 450 lines and no line over 120 characters in the three packages, and a
README that is a front page (at most 300 lines; the rest lives in docs/)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("edgekd", "runtime", "exporters")


def test_modules_fit_in_a_head():
    too_long, too_wide = [], []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            lines = path.read_text(encoding="utf-8").splitlines()
            if len(lines) > 450:
                too_long.append(f"{path.relative_to(ROOT)} ({len(lines)} lines)")
            too_wide += [f"{path.relative_to(ROOT)}:{i}" for i, line in enumerate(lines, 1) if len(line) > 120]
    assert not too_long, f"modules over 450 lines: {too_long}"
    assert not too_wide, f"lines over 120 characters: {too_wide}"


def test_the_readme_is_a_front_page_with_the_two_commands_first():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    lines = text.splitlines()
    assert len(lines) <= 300, len(lines)
    assert "bash scripts/setup.sh && bash scripts/main_job.sh" in lines[1]
    assert "bash scripts/setup.sh && bash scripts/test.sh" in lines[2]
    for page in ("problem-types", "exit-rule", "distillation", "bundle-format", "numbers", "architecture"):
        assert f"docs/{page}.md" in text and (ROOT / "docs" / f"{page}.md").is_file(), page
