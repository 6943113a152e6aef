"""``--help`` of the commands a user runs first: an example to copy, and every option's default
(or that it is required), so that nothing has to be looked up in the code."""
from __future__ import annotations

import re

import pytest

import create_binaural_wsj0mix
import separate


def help_text(main, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def option_entries(text: str) -> dict[str, str]:
    """Each ``--option``'s entry of the help (its line and the indented lines below it), one line."""
    entries, current = {}, None
    for line in text.splitlines():
        match = re.match(r"  (--\w+)", line)
        if match:
            current = match.group(1)
            entries[current] = line
        elif current and line.startswith("    "):
            entries[current] += " " + line.strip()
        else:
            current = None
    return entries


@pytest.mark.parametrize("command, main, example", [
    ("separate.py", separate.main, "python separate.py --experiment results/"),
    ("create_binaural_wsj0mix.py", create_binaural_wsj0mix.main, "python create_binaural_wsj0mix.py --wsj_root /data/wsj"),
])
def test_every_option_says_its_default_and_an_example_is_given(command, main, example, capsys):
    text = help_text(main, capsys)
    assert any(line.strip().startswith(example) for line in text.splitlines()), f"{command}: no example line"
    entries = option_entries(text)
    assert len(entries) >= 12, entries
    undocumented = [option for option, entry in entries.items()
                    if option != "--help" and "(default: " not in entry and "(required" not in entry]
    assert not undocumented, f"{command}: options whose help gives no default: {undocumented}"


def test_separate_help_says_what_is_required_and_that_streaming_needs_a_causal_model(capsys):
    entries = option_entries(help_text(separate.main, capsys))
    assert "required unless --hparams and --checkpoint" in entries["--experiment"]
    assert "causal model" in entries["--streaming"] and "demo-causal.yaml" in entries["--streaming"]
    assert "(default: 8.0)" in entries["--chunk_ms"] and "(default: torch)" in entries["--engine"]


def test_generator_help_gives_the_lists_defaults(capsys):
    entries = option_entries(help_text(create_binaural_wsj0mix.main, capsys))
    assert "(default: 2)" in entries["--n_spks"]
    assert "(default: ['8k', '16k'])" in entries["--freqs"] and "(default: ['min', 'max'])" in entries["--modes"]
    assert "(default: ['tr', 'cv', 'tt'])" in entries["--splits"]
    assert "(required)" in entries["--wsj_root"] and "default" not in entries["--wsj_root"]
