"""The categories feed and the product routes into it, from the real Magento 2.4.8 fixture to the validating
reference receiver; and the contract's category delete (it takes the children) and restore (within a week).

The fixture's tree, read by hand from the dump (catalog_category_entity, _varchar, _int; store_group):
- store view `default` (store 1, locale pt_BR) is in store group 1, whose root_category_id is 2 ("Default category");
- under it, all active (is_active, attribute 46, is 1 at store 0), each with url_key (119) and url_path (120):
  3 Lançamentos `lancamentos` (position 5), 4 Roupas `roupas` (1), 5 Calçados `calcados` (2), 6 Bolsas `bolsas` (3),
  7 Acessórios `acessorios` (4);
- catalog_category_product (every position 0): 4 <- 1-5, 21-23; 5 <- 16-20; 6 <- 6-10; 7 <- 11-15;
  3 <- 2, 7, 11, 13, 15, 17, 21, 22, 23.
No trigger of the fixture watches a category table: a category change logs no product change.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from catalog_sync import clock
from catalog_sync.receiver.store import RESTORE_WINDOW_S, ReceiverStore
from receiver_helpers import ThreadedReceiver, accepted, accepted_since, receiver_state
from sync_helpers import SyncEnv, key_text, mapped_source, pinned_env_and_receiver, product_key

TOKEN = "test-token-123"
PT = {"locale": "pt-BR"}
NAME, IS_ACTIVE, DESCRIPTION, META_TITLE = 45, 46, 47, 49  # catalog_category attributes

# sku by product id (catalog_product_entity)
SKUS = {
    1: "Camiseta Básica Algodão", 2: "Jaqueta Jeans Feminina", 3: "Vestido Midi Estampado", 4: "Calça Skinny Masculina",
    5: "Blusa de Tricô Oversized", 6: "Bolsa Tiracolo de Couro", 7: "Mochila Casual Unissex", 8: "Bolsa Shopper Média",
    9: "Bolsa Clutch de Festa", 10: "Bolsa Tote de Lona", 11: "Relógio Analógico Clássico", 12: "Óculos de Sol Retrô",
    13: "Cinto de Couro Masculino", 14: "Pulseira de Couro Trançado", 15: "Chapéu Fedora Feminino",
    16: "Tênis Casual Branco", 17: "Bota Cano Curto Feminina", 18: "Sandália Rasteira Feminina", 19: "Sapatênis Masculino",
    20: "Mocassim Couro Marrom", 21: "Camiseta Básica Algodão-azul", 22: "Camiseta Básica Algodão-preto",
    23: "Camiseta Básica Algodão-branco",
}
NEW_IN = {2, 7, 11, 13, 15, 17, 21, 22, 23}  # category 3, lancamentos
IN_CATEGORY = {4: {1, 2, 3, 4, 5, 21, 22, 23}, 5: {16, 17, 18, 19, 20}, 6: {6, 7, 8, 9, 10}, 7: {11, 12, 13, 14, 15}}
SLUGS = {3: "lancamentos", 4: "roupas", 5: "calcados", 6: "bolsas", 7: "acessorios"}


def category(slug: str, name: str) -> dict:
    return {"slug": slug, "source": PT, "name": name}


FIXTURE_TREE = {
    "lancamentos": category("lancamentos", "Lançamentos"),
    "roupas": category("roupas", "Roupas"),
    "calcados": category("calcados", "Calçados"),
    "bolsas": category("bolsas", "Bolsas"),
    "acessorios": category("acessorios", "Acessórios"),
}


def expected_routes(slugs: dict[int, str]) -> dict[str, list[str]]:
    """Each product's route paths, from the assignments above and the slugs each category has."""
    assigned = {3: NEW_IN, **IN_CATEGORY}
    return {sku: sorted(slugs[c] for c, members in assigned.items() if pid in members and c in slugs)
            for pid, sku in SKUS.items()}


class Shop:
    def __init__(self, env: SyncEnv, receiver: ThreadedReceiver, capsys):
        self.env, self.receiver, self.capsys = env, receiver, capsys

    def sync(self) -> dict:
        return self.env.sync(self.capsys, "--target-url", self.receiver.target)

    def state(self) -> dict:
        return receiver_state(self.receiver.root)

    def categories(self) -> dict[str, dict]:
        return {body["slug"]: body for body in self.state().get("categories", {}).values()}

    def routes(self) -> dict[str, list[str]]:
        products = self.state()["products"]
        return {sku: [r["path"] for r in products[product_key(sku, "pt-BR")].get("routes", [])] for sku in SKUS.values()}

    @property
    def store(self) -> ReceiverStore:
        return self.receiver.server.config.app.state.receiver.store

    def next_run(self) -> tuple[dict, dict, dict]:
        """The next run's summary, what the receiver accepted in it, and which of its items changed (feed -> keys)."""
        before_counts, before = accepted(self.receiver.root), self.state()
        summary = self.sync()
        after = self.state()
        changed = {feed: sorted(k for k in before.get(feed, {}).keys() | after.get(feed, {}).keys()
                                if before.get(feed, {}).get(k) != after.get(feed, {}).get(k))
                   for feed in before.keys() | after.keys()}
        return summary, accepted_since(before_counts, accepted(self.receiver.root)), {f: k for f, k in changed.items() if k}

    def converged(self) -> bool:
        return self.state() == mapped_source(self.env.source_url)


def products(*ids: int) -> list[str]:
    return sorted(product_key(SKUS[i], "pt-BR") for i in ids)


def categories(*slugs: str) -> list[str]:
    return sorted(key_text({"slug": s, "source": PT}) for s in slugs)


def open_shop(magento_fixture_url, tmp_path, capsys, monkeypatch, *setup: str) -> Shop:
    env, receiver = pinned_env_and_receiver(magento_fixture_url, tmp_path, monkeypatch, TOKEN)
    if setup:
        env.execute(*setup)
    shop = Shop(env, receiver, capsys)
    assert shop.sync()["mode"] == "full"
    return shop


@pytest.fixture
def shop(magento_fixture_url, tmp_path, capsys, monkeypatch):
    shop = open_shop(magento_fixture_url, tmp_path, capsys, monkeypatch)
    yield shop
    shop.receiver.stop()


# ---- fidelity -----------------------------------------------------------------------------------


@pytest.mark.mariadb
def test_the_category_tree_and_the_routes_into_it(shop):
    # The store's root (2) and the tree's root (1) are no storefront categories: not sent.
    assert shop.categories() == FIXTURE_TREE
    assert shop.routes() == expected_routes(SLUGS)
    assert shop.routes()[SKUS[2]] == ["lancamentos", "roupas"]
    # Every route names a category the target holds, in the product's locale.
    held = {(c["slug"], c["source"]["locale"]) for c in shop.categories().values()}
    for body in shop.state()["products"].values():
        assert all((r["path"], body["source"]["locale"]) in held for r in body.get("routes", []))
    assert shop.converged()


ANOTHER_ROOT = (
    # A second store's root tree (root 8, "Outra Loja", with child 9) that store view `default` does not show,
    # an inactive category under our root (10), an active child of it (11), and a store-view name and url_key
    # for Roupas (store 1 over store 0). Product 1 is assigned to 9, 10 and 11 as well; product 3 to 11.
    "INSERT INTO catalog_category_entity (entity_id, attribute_set_id, parent_id, path, position, level, children_count) "
    "VALUES (8, 3, 1, '1/8', 2, 1, 1), (9, 3, 8, '1/8/9', 1, 2, 0), (10, 3, 2, '1/2/10', 6, 2, 1), "
    "(11, 3, 10, '1/2/10/11', 1, 3, 0)",
    f"INSERT INTO catalog_category_entity_varchar (attribute_id, store_id, entity_id, value) VALUES "
    f"({NAME}, 0, 8, 'Outra Loja'), ({NAME}, 0, 9, 'Ofertas'), (119, 0, 9, 'ofertas'), ({NAME}, 0, 10, 'Inverno'), "
    f"(119, 0, 10, 'inverno'), ({NAME}, 0, 11, 'Casacos'), (119, 0, 11, 'casacos'), "
    f"({NAME}, 1, 4, 'Roupas e Moda'), (119, 1, 4, 'moda')",
    f"INSERT INTO catalog_category_entity_int (attribute_id, store_id, entity_id, value) VALUES "
    f"({IS_ACTIVE}, 0, 8, 1), ({IS_ACTIVE}, 0, 9, 1), ({IS_ACTIVE}, 0, 10, 0), ({IS_ACTIVE}, 0, 11, 1)",
    "INSERT INTO catalog_category_product (category_id, product_id, position) VALUES (9, 1, 0), (10, 1, 0), (11, 1, 0), "
    "(11, 3, 0)",
)


@pytest.mark.mariadb
def test_only_the_stores_own_active_tree_in_the_views_language(magento_fixture_url, tmp_path, capsys, monkeypatch):
    shop = open_shop(magento_fixture_url, tmp_path, capsys, monkeypatch, *ANOTHER_ROOT)
    try:
        # No `ofertas` (another store's root), no `inverno` (inactive) nor its active child `inverno/casacos`;
        # Roupas by its store view's name and url_key.
        tree = shop.categories()
        assert sorted(tree) == ["acessorios", "bolsas", "calcados", "lancamentos", "moda"]
        assert tree["moda"] == category("moda", "Roupas e Moda")
        routes = shop.routes()
        assert routes[SKUS[1]] == ["moda"] and routes[SKUS[3]] == ["moda"]
        assert routes == expected_routes({**SLUGS, 4: "moda"})
        assert shop.converged()
    finally:
        shop.receiver.stop()


# ---- every change is seen, and nothing else is sent -----------------------------------------------


@pytest.mark.mariadb
def test_a_category_rename_sends_the_category_only(shop):
    shop.env.execute(f"UPDATE catalog_category_entity_varchar SET value = 'Bolsas e Mochilas' "
                     f"WHERE entity_id = 6 AND attribute_id = {NAME} AND store_id = 0")
    summary, sent, changed = shop.next_run()
    assert summary["mode"] == "incremental"
    assert sent == {"categories": {"update": 1}}  # a PATCH: the contract's POST creates, its PATCH updates
    assert changed == {"categories": categories("bolsas")}
    assert shop.categories()["bolsas"] == category("bolsas", "Bolsas e Mochilas")
    assert shop.converged()

    summary, sent, changed = shop.next_run()
    assert sent == {} and changed == {}


@pytest.mark.mariadb
def test_an_update_that_takes_a_field_away_clears_it_at_the_target(shop):
    # Bolsas (6) gets a description (attribute 47, text) and a meta title (49), then loses both: the dump holds
    # both rows at store 0 with a NULL value.
    shop.env.execute(f"UPDATE catalog_category_entity_text SET value = 'Bolsas de couro e de lona.' "
                     f"WHERE entity_id = 6 AND attribute_id = {DESCRIPTION} AND store_id = 0",
                     f"UPDATE catalog_category_entity_varchar SET value = 'Bolsas femininas' "
                     f"WHERE entity_id = 6 AND attribute_id = {META_TITLE} AND store_id = 0")
    summary, sent, _ = shop.next_run()
    assert sent == {"categories": {"update": 1}}
    assert shop.categories()["bolsas"] == {**category("bolsas", "Bolsas"), "description": "Bolsas de couro e de lona.",
                                          "metaTags": {"title": "Bolsas femininas"}}

    shop.env.execute(f"UPDATE catalog_category_entity_text SET value = NULL WHERE entity_id = 6 AND attribute_id = {DESCRIPTION}",
                     f"UPDATE catalog_category_entity_varchar SET value = NULL WHERE entity_id = 6 AND attribute_id = {META_TITLE}")
    summary, sent, _ = shop.next_run()
    assert sent == {"categories": {"update": 1}}
    # The PATCH sends the description as null (removed) and the meta title empty: FeedCategoryUpdate's
    # metaTags fields cannot be null, and the contract merges objects, so an absent field would keep it.
    assert shop.categories()["bolsas"] == {**category("bolsas", "Bolsas"), "metaTags": {"title": ""}}


@pytest.mark.mariadb
def test_two_categories_that_swap_url_keys_in_one_hour_swap_their_products_routes(shop):
    # Bolsas (6) and Acessórios (7) trade url_keys (attribute 119) and url_paths (120): each slug is the other's now.
    shop.env.execute("UPDATE catalog_category_entity_varchar SET value = CASE entity_id WHEN 6 THEN 'acessorios' "
                     "ELSE 'bolsas' END WHERE entity_id IN (6, 7) AND attribute_id IN (119, 120) AND store_id = 0")
    summary, sent, changed = shop.next_run()
    assert summary["mode"] == "incremental"
    assert sent == {"categories": {"update": 2}, "products": {"upsert": 10}}
    assert changed == {"categories": categories("acessorios", "bolsas"), "products": products(*range(6, 16))}
    assert shop.categories()["acessorios"] == category("acessorios", "Bolsas")
    assert shop.routes() == expected_routes({**SLUGS, 6: "acessorios", 7: "bolsas"})
    assert shop.converged()

    summary, sent, changed = shop.next_run()
    assert sent == {} and changed == {}


@pytest.mark.mariadb
def test_a_products_position_in_a_category_is_its_routes_position(shop):
    # The jacket (2) moved to third place in roupas (4): catalog_category_product.position, 0 in the dump.
    shop.env.execute("UPDATE catalog_category_product SET position = 3 WHERE category_id = 4 AND product_id = 2")
    summary, sent, changed = shop.next_run()
    assert summary["mode"] == "incremental" and sent == {"products": {"upsert": 1}}
    jacket = shop.state()["products"][product_key("Jaqueta Jeans Feminina", "pt-BR")]
    assert jacket["routes"] == [{"path": "lancamentos", "position": 0}, {"path": "roupas", "position": 3}]
    assert shop.converged()


@pytest.mark.mariadb
def test_a_category_move_sends_its_new_slug_its_products_and_the_old_slugs_delete(shop):
    # Calçados (5) moves under Roupas (4), as Magento's move writes it (url_path regenerated).
    shop.env.execute("UPDATE catalog_category_entity SET parent_id = 4, path = '1/2/4/5', level = 3, position = 1 "
                     "WHERE entity_id = 5",
                     "UPDATE catalog_category_entity_varchar SET value = 'roupas/calcados' "
                     "WHERE entity_id = 5 AND attribute_id = 120 AND store_id = 0")
    summary, sent, changed = shop.next_run()
    assert summary["mode"] == "incremental"
    assert sent == {"categories": {"upsert": 1, "delete": 1}, "products": {"upsert": 5}}
    assert changed == {"categories": categories("calcados", "roupas/calcados"), "products": products(16, 17, 18, 19, 20)}
    assert shop.categories()["roupas/calcados"] == category("roupas/calcados", "Calçados")
    assert shop.routes()[SKUS[17]] == ["lancamentos", "roupas/calcados"]
    assert shop.routes() == expected_routes({**SLUGS, 5: "roupas/calcados"})
    assert shop.converged()

    summary, sent, changed = shop.next_run()
    assert sent == {} and changed == {}


@pytest.mark.mariadb
def test_a_category_disable_deletes_it_and_drops_the_routes(shop):
    shop.env.execute(f"UPDATE catalog_category_entity_int SET value = 0 WHERE entity_id = 7 AND attribute_id = {IS_ACTIVE} "
                     "AND store_id = 0")
    summary, sent, changed = shop.next_run()
    assert summary["mode"] == "incremental"
    assert sent == {"categories": {"delete": 1}, "products": {"upsert": 5}}
    assert changed == {"categories": categories("acessorios"), "products": products(11, 12, 13, 14, 15)}
    assert "acessorios" not in shop.categories()
    assert shop.routes()[SKUS[11]] == ["lancamentos"] and shop.routes()[SKUS[12]] == []
    assert shop.converged()

    # Disabled in the store view only (a store 1 value over the default): the same.
    shop.env.execute(f"INSERT INTO catalog_category_entity_int (attribute_id, store_id, entity_id, value) "
                     f"VALUES ({IS_ACTIVE}, 1, 6, 0)")
    summary, sent, changed = shop.next_run()
    assert sent == {"categories": {"delete": 1}, "products": {"upsert": 5}}
    assert changed == {"categories": categories("bolsas"), "products": products(6, 7, 8, 9, 10)}

    # Enabled again: the category and its products' routes come back.
    shop.env.execute("DELETE FROM catalog_category_entity_int WHERE entity_id = 6 AND store_id = 1",
                     f"UPDATE catalog_category_entity_int SET value = 1 WHERE entity_id = 7 AND attribute_id = {IS_ACTIVE}")
    summary, sent, changed = shop.next_run()
    assert sent == {"categories": {"upsert": 2}, "products": {"upsert": 10}}
    assert changed == {"categories": categories("acessorios", "bolsas"), "products": products(*range(6, 16))}
    assert shop.routes() == expected_routes(SLUGS) and shop.converged()


NESTED = (  # Calçados (5) under Roupas (4) from the start
    "UPDATE catalog_category_entity SET parent_id = 4, path = '1/2/4/5', level = 3 WHERE entity_id = 5",
    "UPDATE catalog_category_entity_varchar SET value = 'roupas/calcados' WHERE entity_id = 5 AND attribute_id = 120",
)


@pytest.mark.mariadb
def test_a_parent_disabled_and_enabled_again_leaves_nothing_stale(magento_fixture_url, tmp_path, capsys, monkeypatch):
    shop = open_shop(magento_fixture_url, tmp_path, capsys, monkeypatch, *NESTED)
    try:
        assert shop.categories()["roupas/calcados"] == category("roupas/calcados", "Calçados")
        shop.env.execute(f"UPDATE catalog_category_entity_int SET value = 0 WHERE entity_id = 4 AND attribute_id = {IS_ACTIVE}")
        summary, sent, changed = shop.next_run()
        # Both deleted, the child by its own request before its parent's: two tombstones, not one branch.
        assert sent == {"categories": {"delete": 2}, "products": {"upsert": 13}}
        assert changed == {"categories": categories("roupas", "roupas/calcados"),
                           "products": products(1, 2, 3, 4, 5, 21, 22, 23, 16, 17, 18, 19, 20)}
        assert shop.store.tombstones() == {"roupas/calcados|pt-BR": ["roupas/calcados"], "roupas|pt-BR": ["roupas"]}
        assert shop.converged()

        # The child is disabled too, then the parent enabled again: re-creating `roupas` must not bring back
        # `roupas/calcados` (it would, had the parent's delete taken it).
        shop.env.execute(f"UPDATE catalog_category_entity_int SET value = 0 WHERE entity_id = 5 AND attribute_id = {IS_ACTIVE}",
                         f"UPDATE catalog_category_entity_int SET value = 1 WHERE entity_id = 4 AND attribute_id = {IS_ACTIVE}")
        summary, sent, changed = shop.next_run()
        assert sent == {"categories": {"upsert": 1}, "products": {"upsert": 8}}
        assert changed == {"categories": categories("roupas"), "products": products(1, 2, 3, 4, 5, 21, 22, 23)}
        assert "roupas/calcados" not in shop.categories()
        assert shop.converged()
    finally:
        shop.receiver.stop()


# ---- the reference receiver: the contract's delete and restore ------------------------------------


def test_the_receiver_deletes_a_category_with_its_children_and_restores_them_within_a_week():
    store = ReceiverStore()
    start = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)
    men, clothing, pants = (category("men", "Men"), category("men/clothing", "Clothing"),
                            category("men/clothing/pants", "Pants"))
    women, menswear = category("women", "Women"), category("menswear", "Menswear")
    with clock.use(clock.FakeClock(start)) as fake:
        store.upsert("categories", [men, clothing, pants, women, menswear])
        assert store.delete("categories", [{"slug": "men", "source": PT}]) == 3
        assert sorted(b["slug"] for b in store.all("categories").values()) == ["menswear", "women"]  # not `menswear`'s prefix

        fake.advance(RESTORE_WINDOW_S - 60)  # six days, 23 h 59 min later: re-creating the top restores the branch
        store.upsert("categories", [category("men", "Men again")])
        assert {b["slug"]: b["name"] for b in store.all("categories").values()} == {
            "men": "Men again", "men/clothing": "Clothing", "men/clothing/pants": "Pants", "women": "Women",
            "menswear": "Menswear"}
        assert store.tombstones() == {}

        # A child deleted by its own request is its own tombstone: re-creating the parent does not bring it back.
        store.delete("categories", [{"slug": "men/clothing/pants", "source": PT}])
        store.delete("categories", [{"slug": "men", "source": PT}])
        store.upsert("categories", [category("men", "Men")])
        assert sorted(b["slug"] for b in store.all("categories").values()) == ["men", "men/clothing", "menswear", "women"]

        # After a week, nothing is restored.
        store.delete("categories", [{"slug": "men", "source": PT}])
        fake.advance(RESTORE_WINDOW_S + 1)
        store.upsert("categories", [category("men", "Men")])
        assert sorted(b["slug"] for b in store.all("categories").values()) == ["men", "menswear", "women"]
        # Another locale's categories are another tree.
        store.upsert("categories", [{"slug": "men/shoes", "source": {"locale": "en-US"}, "name": "Shoes"}])
        store.delete("categories", [{"slug": "men", "source": PT}])
        assert sorted(store.all("categories")) == ["men/shoes|en-US", "menswear|pt-BR", "women|pt-BR"]
