"""Client order ids derived from the opportunity (or exit) and the leg.

An id is `<group>-<leg>` where the group is `<prefix><sequence>` for an entry and
`<position id>X<n>` for the n-th exit of a position, and the leg says which order of the group
it is: `B`/`S` for the two legs, `RB1`/`RS1`... for retries, `UB1`/`US1`... for unwinds.
Sequences come from the ledger, so a restart continues them and nothing is ever reused.
Fits Binance's newClientOrderId (<= 36 of [A-Za-z0-9-_]) and Upbit's identifier.
"""

from __future__ import annotations


def entry_group(prefix: str, seq: int) -> str:
    return f"{prefix}{seq:07d}"


def exit_group(position_id: str, n: int) -> str:
    return f"{position_id}X{n}"


def client_order_id(group: str, leg: str) -> str:
    cid = f"{group}-{leg}"
    if len(cid) > 36:
        raise ValueError(f"client order id {cid!r} longer than 36 characters")
    return cid


def group_of(client_order_id: str) -> str:
    return client_order_id.rsplit("-", 1)[0]


def leg_of(client_order_id: str) -> str:
    return client_order_id.rsplit("-", 1)[1]
