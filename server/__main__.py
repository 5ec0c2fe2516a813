"""Entry point reserved for `heatline-lsp`; the server itself lands with its own issue."""
import sys


def main() -> int:
    print("heatline-lsp: the language server is not part of this release yet", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
