"""``python -m egsw.models NAME...``: prepare built-in models (convert or build once), print their folders."""

from __future__ import annotations

import sys

from egsw.models.registry import BUNDLED_SMOLLM2, ModelNotFoundError, resolve_model


def main(argv: list[str] | None = None) -> int:
    """``python -m egsw.models NAME...``: prepare models (convert/build once) and print their folders."""
    names = sys.argv[1:] if argv is None else argv
    for name in names or [BUNDLED_SMOLLM2]:
        try:
            print(resolve_model(name).path)
        except ModelNotFoundError as error:
            print(f"egsw.models: error: {error}", file=sys.stderr)
            return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
