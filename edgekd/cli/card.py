"""`edgekd card`: a bundle's model card (README.md): record a hand edit, or write it again from the manifest."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from edgekd.cli.app import app, err, friendly


@app.command()
@friendly
def card(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder.")],
    rehash: Annotated[bool, typer.Option("--rehash", help="Record the card as it is now (after editing it by "
                                                          "hand) in the manifest.")] = False,
    rewrite: Annotated[bool, typer.Option("--rewrite", help="Write the card again from the manifest (drops "
                                                            "hand edits).")] = False,
) -> None:
    """Show where a bundle's model card is, record a hand edit (--rehash) or write it again (--rewrite)."""
    from edgekd.card import rehash_card, write_card
    from runtime.errors import InputError

    if rehash and rewrite:
        raise InputError("give --rehash or --rewrite, not both")
    if rewrite:
        err(f"wrote {write_card(bundle)} from the manifest")
    elif rehash:
        changed = rehash_card(bundle)
        err(f"{bundle}/README.md " + ("recorded as edited" if changed else "was already as recorded"))
    else:
        typer.echo(bundle / "README.md")
