from catalog_sync.feed.content_hash import content_hash

RECORD = {"sku": "MS-1", "name": "Camiseta Básica Algodão", "price": 19.9, "category_ids": [3, 7],
          "updated_at": "2026-01-01T00:00:00"}


def test_hash_is_pinned_across_versions():
    # A snapshot outlives library versions: this value must never change.
    assert content_hash(RECORD) == "e27996dcc4697cf6a258cd03f6d9fd82ec998035"


def test_updated_at_is_volatile_and_key_order_is_irrelevant():
    bumped = dict(reversed(list({**RECORD, "updated_at": "2031-05-05T10:00:00"}.items())))
    assert content_hash(bumped) == content_hash(RECORD)


def test_every_exported_field_counts():
    for key, value in [("name", "Camiseta"), ("price", 19.91), ("category_ids", [7, 3]), ("sku", "MS-2")]:
        assert content_hash({**RECORD, key: value}) != content_hash(RECORD), key
