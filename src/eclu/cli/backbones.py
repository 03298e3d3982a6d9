"""``eclu backbones``: list the backbone names."""

from __future__ import annotations

from ._common import print_table


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("backbones", help="list backbone names", description="List the registered backbones.")
    parser.set_defaults(handler=run)


def run(args) -> int:
    from ..backbones import list_backbones

    rows = [
        (spec.name, spec.timm_name, "offline (package)" if spec.package else "hub", spec.description)
        for spec in list_backbones()
    ]
    print_table(rows, ("name", "timm model", "weights", "description"))
    print("Any other timm model name works too; --weights FILE loads local weights.")
    return 0
