"""The one way a benchmark script shows and keeps its result: the Markdown on stdout, <out>.md and <out>.json."""
import json
import os
import sys
from typing import Optional


def print_and_save(markdown_text: str, data: dict, out: Optional[str]) -> None:
    """Print the table; with out, also write out.md (the same text) and out.json (the numbers behind it)."""
    print(markdown_text)
    if not out:
        return
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".md", "w") as f:
        f.write(markdown_text)
    with open(out + ".json", "w") as f:
        json.dump(data, f, indent=1)
    print(f"written: {out}.md, {out}.json", file=sys.stderr)
