"""Read a list of sample ids from a file: Parquet or CSV with an ``id`` column, else one id per line."""

from __future__ import annotations

from curate.errors import CurateError
from curate.io.fs import CAP_ID_LIST, check_user_file, locate, read_user_file
from curate.io.tables import read_table


def read_ids(path: str, what: str = "--labeled") -> list[str]:
    """Ids in file order (duplicates dropped); a clear error when the file or its ``id`` column is missing,
    or when it is not a regular file of at most ``CAP_ID_LIST`` bytes (``what`` names the option)."""
    loc = locate(path)
    if not loc.exists():
        raise CurateError(f"id list {path!r} not found")
    check_user_file(loc, what=what, max_bytes=CAP_ID_LIST)
    lower = loc.path.lower()
    if lower.endswith(".parquet") or lower.endswith(".csv"):
        if lower.endswith(".parquet"):
            table = read_table(loc)
        else:
            import io

            import pyarrow.csv as pacsv

            table = pacsv.read_csv(io.BytesIO(read_user_file(loc, what=what, max_bytes=CAP_ID_LIST)),
                                   convert_options=pacsv.ConvertOptions(column_types={"id": "string"}))
        if "id" not in table.column_names:
            raise CurateError(f"{path}: no 'id' column (columns: {', '.join(table.column_names)})")
        ids = [str(v) for v in table.column("id").to_pylist() if v is not None]
    else:
        try:
            text = read_user_file(loc, what=what, max_bytes=CAP_ID_LIST).decode("utf-8")
        except UnicodeDecodeError:
            raise CurateError(f"{path}: not a UTF-8 text file of ids (or use .parquet / .csv)") from None
        ids = [line.strip() for line in text.splitlines() if line.strip()]
    return list(dict.fromkeys(ids))
