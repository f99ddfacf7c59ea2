"""``retrainq completion bash``: a bash completion script drawn from the parser itself.

Every command path (``runs``, ``runs list``, ...) maps to the words that may follow it: its
subcommands and its long options (and ``-o``). The script walks the words typed so far to the
deepest known path and offers that path's words.
"""

from __future__ import annotations

import argparse
import shlex

ROOT = "_"


def command_words(parser: argparse.ArgumentParser) -> dict[str, list[str]]:
    """Words that may follow each command path (``_`` is ``retrainq`` itself)."""
    tree: dict[str, list[str]] = {}

    def walk(node: argparse.ArgumentParser, path: str) -> None:
        words = {
            option
            for action in node._actions
            for option in action.option_strings
            if option.startswith("--") or option == "-o"
        }
        for action in node._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, child in action.choices.items():
                    words.add(name)
                    walk(child, f"{path} {name}")
        tree[path] = sorted(words)

    walk(parser, ROOT)
    return tree


def bash_script(parser: argparse.ArgumentParser) -> str:
    """The completion script; ``eval "$(retrainq completion bash)"`` installs it."""
    entries = "\n".join(
        f"  [{shlex.quote(path)}]={shlex.quote(' '.join(words))}"
        for path, words in sorted(command_words(parser).items())
    )
    return f"""# bash completion for retrainq: eval "$(retrainq completion bash)"
declare -gA _retrainq_words=(
{entries}
)
_retrainq() {{
  local cur="${{COMP_WORDS[COMP_CWORD]}}" path="{ROOT}" word
  for word in "${{COMP_WORDS[@]:1:COMP_CWORD-1}}"; do
    if [[ "$word" != -* && -n "${{_retrainq_words["$path $word"]+set}}" ]]; then
      path="$path $word"
    fi
  done
  COMPREPLY=($(compgen -W "${{_retrainq_words[$path]}}" -- "$cur"))
}}
complete -o default -F _retrainq retrainq
"""
