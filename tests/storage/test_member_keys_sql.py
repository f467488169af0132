"""The member keys' SQL store on SQLite: a batch's keys looked up with one statement."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from loyaltykit.sql import SQLStorage


def test_ids_of_many_keys_is_one_statement_on_sqlite(tmp_path: Path) -> None:
    # due work looks up a batch's keys (a thousand) twice: as IN lists of 500
    # parameters each that was two statements, each rendered anew by SQLAlchemy
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'keys.db'}")
    SQLStorage(engine).create_schema()
    with engine.begin() as conn:  # the mappings alone (no members: keys are opaque here)
        conn.exec_driver_sql("PRAGMA foreign_keys = OFF")
        conn.exec_driver_sql(
            "INSERT INTO lk_member_ids (program_id, external_id, member_id) VALUES (?, ?, ?)",
            [("p", f"shop-{i}", f"k{i:05d}") for i in range(1200)]
            + [("other", "shop-x", "k00001")])
    storage = SQLStorage(engine)
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "lk_member_ids" in statement:
            statements.append(statement)

    sa.event.listen(engine, "before_cursor_execute", seen)
    keys = [f"k{i:05d}" for i in range(0, 1300, 1)] + ["k00007", "k'\"x"]
    with storage.unit_of_work("p") as uow:
        found = uow.members.ids_of(keys)
    sa.event.remove(engine, "before_cursor_execute", seen)
    engine.dispose()
    assert {f"k{i:05d}": f"shop-{i}" for i in range(1200)} == found
    assert 1 == len(statements)
