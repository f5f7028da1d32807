"""Loaded at start-up by the processes of `python -m lineage.mlflow_server` (on PYTHONPATH).

MLflow 3.17's server code names SQLAlchemy 2's top-level classes (sqlalchemy.Engine,
sqlalchemy.ColumnElement, ...) when its modules load; the lock keeps SQLAlchemy 1.4 for Airflow
2.10, where the same classes live in submodules. Naming them at the top level is all that
differs; with SQLAlchemy 2 this changes nothing.
"""

try:
    import sqlalchemy
    from sqlalchemy import engine as _engine
    from sqlalchemy.sql import expression as _expression
except ImportError:  # not this environment: nothing to adapt
    pass
else:
    for _name, _home in (
        ("Engine", _engine),
        ("Connection", _engine),
        ("Row", _engine),
        ("ColumnElement", _expression),
        ("BinaryExpression", _expression),
        ("Select", _expression),
        ("Update", _expression),
    ):
        if not hasattr(sqlalchemy, _name):
            setattr(sqlalchemy, _name, getattr(_home, _name))
