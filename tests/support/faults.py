"""Real rows with one fault each: what the data gate must catch (and the schema command name)."""

from models import features

ROWS_KEPT = 8  # every 8th row of the bundled sample: about 800 rows


def drop_product(rows):
    return [{k: v for k, v in row.items() if k != "product"} for row in rows]


def blank_some_labels(rows):
    return [{**row, features.LABEL_KEY: ""} if i % 10 == 0 else row for i, row in enumerate(rows)]


def label_out_of_domain(rows):
    return [{**row, features.LABEL_KEY: "2"} if i % 10 == 0 else row for i, row in enumerate(rows)]


def label_as_words(rows):
    return [
        {**row, features.LABEL_KEY: "Yes" if row[features.LABEL_KEY] == "1" else "No"}
        for row in rows
    ]


def unknown_product(rows):
    return [
        {**row, "product": "Crypto wallet"} if i % 5 == 0 else row for i, row in enumerate(rows)
    ]
