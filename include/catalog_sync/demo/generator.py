"""Deterministic demo catalog: a Magento 2.4 catalog database, generated.

``generate_demo_catalog`` fills the tables of ``catalog_sync.magento.schema``
with a shop that looks like a real one (Magento's own attribute ids, EAV value
tables, store views on two websites, configurables with children, bundles, grouped
products, related, up-sell and cross-sell links, localized option and attribute labels,
media gallery, Multi-Source Inventory stock, categories; from three store views on a b2b store view,
a second category tree for the second website, website prices and customer group prices) and then adds Magento's
changelog triggers. The same seed always gives the same rows: two ``random.Random``
streams seeded from it, drawn in product-id order, and fixed timestamps, never the clock.

Product types, by entity id (the count asked for is the count made: composites replace
simple products, they are not added):

- a configurable at 1, 11, 21, ... with its three variants (simple, not visible) right after it;
- a bundle at every 50th (from the variants of the configurable 9 before it);
- tier prices at 7, 27, 47, ... when that product is simple: 10% off from 5, and 15% off from 10
  (`catalog_product_entity_tier_price`, every customer group and website; group prices: see below);
- a grouped product at 45, 145, 245, ... (1 %): visible, no price or weight of its own
  (as in Magento), grouping 2 to 4 of the standalone simple products 35..40 (mod 100)
  before it as `catalog_product_link` rows of type 'super' (link_type_id 3), with
  `catalog_product_relation` rows as Magento saves them, and sold on its members' websites.
  Members' default quantities (`catalog_product_link_attribute_decimal`) are not generated;
- every other product simple.

Stock is MSI's, as a real MSI shop has it: source 'default' (Default Source) linked to
stock 1 'Default Stock', which website 'base' sells from; with two websites, also source
'eu_warehouse' linked to stock 2 'EU Stock', which website 'second' sells from (one
``inventory_stock_sales_channel`` row per website). Every simple product has one
``inventory_source_item`` per stock of its websites: about 10 % of them out of stock
(quantity 0, status 0), about 15 % of the others at a low quantity (1..5), and 3 % of the
'eu_warehouse' items with a quantity set out of stock by hand (status 0). The legacy
``cataloginventory_stock_item`` (stock_id 1) mirrors the 'default' source item, as MSI
keeps it: qty 0 and out of stock for a product without one (sold on 'second' only).
The demo has no stock index (``inventory_stock_<id>``), so the reader computes stock from
the source items. Configurables, bundles and grouped products have no source items of
their own (Magento keeps none for them), so at stock level the reader sees them out of
stock with qty null; their legacy stock item is in stock with qty 0.

Store views (``plan_stores``): view 1 'default' (en_US) on website 1 'base' (USD); from two views on,
view 2 'store_view_2' (fr_FR) on website 2 'second' (EUR, its base currency at websites scope). One and
two store views are the shop as it always was; the rest of this paragraph and the next one apply from
three on, the b2b shop. View 3 is 'b2b': en_US like 'default' (so the target's mapping makes it a product
layer over 'default'), on website 'base' in the same store group as 'default' (1 'main_website_store', root 2
"Default Category"), so both show the same category tree. The store group of website 'second' (2
'second_website_store') then has a second category tree as its root: 100 "Second Catalog" (level 1 under the
Root Catalog) with categories three levels deep below it (101..106, active, English only, url_keys from their
admin names); with one or two views it keeps root 2. Views 4, 5, ... are 'store_view_<i>', on website 'base'
(store group 1, root 2) when odd and 'second' (store group 2, root 100) when even, with locale
STORE_LOCALES[i - 3] (all distinct, none en_US). A b2b view of its own values: a name (the default one +
" (Wholesale Pack)") for products 5, 15, 25, ... and a description for 8, 33, 58, ... (what a layer carries),
visibility 1 (not visible individually) for 20, 70, 120, ... (what a layer cannot carry), all only for
products of website 'base'; the random store-view names never go to b2b. Every third product that is not a
variant (3, 6, 9, ...) is also in one category of the second tree, with a position. In the views of website
'second' only the second tree is below their store group's root, so products there are in no other category.

The b2b shop also sets `catalog/price/scope` 1 (website), and the price attributes' scope with it
(`catalog_eav_attribute.is_global` 2, as Magento's observer does): website 'second' then prices in its own
base currency, EUR. Simple products 6, 16, 26, ... sold there have a website price (92 % of the default),
kept as Magento keeps a website-scoped value: at every store view of the website. Magento's customer groups
(0 NOT LOGGED IN, 1 General, 2 Wholesale, 3 Retailer; tax class 3) are installed, and simple products 13, 33,
53, ... have a Wholesale group price: a tier price row for customer group 2 only (`all_groups` 0) at
quantity 1, 85 % of the price, for every website. None of this depends on the seed.

Own websites (``own_websites=True``, opt-in; the layout of Magento's performance-toolkit profiles, where
websites = store groups = store views): view i is on website i, in store group i, with a locale of its own:
view 1 'default' (en_US) on website 1 'base', view 2 'store_view_2' (fr_FR) on website 2 'second', views 3,
4, ... 'store_view_<i>' with STORE_LOCALES[i - 2] on website i 'website_<i>' ("Website <i>"). There is no b2b
view (every locale is distinct), so the shop is the one-or-two-view shop's otherwise: global price scope, every
store group on root 2, no customer groups. Each website past the first is treated as the second one is: its own
MSI stock and source (website 2: 'EU Stock' / 'eu_warehouse'; website i >= 3: stock i 'Website <i> Stock', source
'warehouse_<i>' in its locale's country) with its sales channel, and its own base and display currency at
websites scope (website 2 EUR; website i >= 3 LOCALE_CURRENCIES of its view's locale). As the toolkit's
``assign_entities_to_all_websites``, every product is on every website (so every simple product has one
source item per website). The default layout is unchanged by this option.

Products are generated and inserted chunk by chunk, so memory stays flat
from a hundred products to a few hundred thousand.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict, deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from slugify import slugify

from catalog_sync.demo import commerce_layout, triggers
from catalog_sync.magento import schema

BASE_TIME = datetime(2026, 1, 1)
EDITIONS = ("open_source", "commerce")  # generate_demo_catalog(edition=...): commerce is Adobe Commerce's staging layout
PRODUCTS_PER_CHUNK = 2500  # about 75k rows: large statements, bounded memory
CHILDREN_PER_CONFIGURABLE = 3
CONFIGURABLE_EVERY = 10
TIER_PRICE_EVERY = 20  # every 20th product (at 7, 27, ...) has tier prices
# The b2b shop's product rows (three store views or more), by entity id: (every, at).
B2B_WEBSITE = 1  # the b2b view's website (and store group: the website's own)
B2B_NAME_EVERY, B2B_NAME_AT = 10, 5  # a b2b name of its own: 5, 15, 25, ...
B2B_NAME_SUFFIX = " (Wholesale Pack)"
B2B_DESCRIPTION_EVERY, B2B_DESCRIPTION_AT = 25, 8  # a b2b description of its own: 8, 33, 58, ...
B2B_DESCRIPTION = "Sold to business customers in cases of 10, on invoice."
B2B_HIDDEN_EVERY, B2B_HIDDEN_AT = 50, 20  # not visible individually in b2b: 20, 70, 120, ...
SECOND_TREE_CATEGORY_EVERY = 3  # products 3, 6, 9, ... (not variants) are also in a category of the second tree
GROUP_PRICE_EVERY, GROUP_PRICE_AT = 20, 13  # a Wholesale group price: 13, 33, ... (when simple)
GROUP_PRICE_FACTOR = Decimal("0.85")
WEBSITE_PRICE_WEBSITE = 2  # website prices (price scope website) are the second website's, in EUR
WEBSITE_PRICE_EVERY, WEBSITE_PRICE_AT = 10, 6  # 6, 16, 26, ... (when simple and on website 2)
WEBSITE_PRICE_FACTOR = Decimal("0.92")

PRODUCT_TYPE_ID = 4  # eav_entity_type: catalog_product
CATEGORY_TYPE_ID = 3  # eav_entity_type: catalog_category
PRODUCT_SET_ID = 4  # eav_attribute_set "Default" of catalog_product
CATEGORY_SET_ID = 3
ROOT_CATEGORY_ID = 2  # "Default Category", root of every store group (but website 2's in the b2b shop)

# catalog_eav_attribute.is_global (Magento's ScopedAttributeInterface)
SCOPE_STORE, SCOPE_GLOBAL, SCOPE_WEBSITE = 0, 1, 2

VISIBILITY_NOT_VISIBLE, VISIBILITY_CATALOG, VISIBILITY_SEARCH, VISIBILITY_BOTH = 1, 2, 3, 4
STATUS_ENABLED, STATUS_DISABLED = 1, 2


@dataclass(frozen=True)
class DemoCatalogSummary:
    products: int  # rows in catalog_product_entity
    configurables: int
    store_views: int
    websites: int
    feed_records: int  # (product, store view) pairs where the product's website holds the store view
    bundles: int = 0
    grouped: int = 0
    source_items: int = 0  # rows in inventory_source_item


# --------------------------------------------------------------------------- attributes


@dataclass(frozen=True)
class AttributeDef:
    id: int
    code: str
    backend: str
    input: str
    label: str
    scope: int
    user_defined: bool = False
    required: bool = False
    searchable: bool = False
    filterable: bool = False
    in_listing: bool = False
    source_model: str | None = None
    entity_type_id: int = PRODUCT_TYPE_ID


def _a(*args, **kwargs) -> AttributeDef:
    return AttributeDef(*args, **kwargs)


# Ids, backends, inputs and scopes as in a stock Magento 2.4.8 (see the shared fixture);
# material and activity are user-defined attributes as a merchant would add them.
ATTRIBUTES: tuple[AttributeDef, ...] = (
    _a(45, "name", "varchar", "text", "Name", SCOPE_STORE, required=True, entity_type_id=CATEGORY_TYPE_ID),
    _a(46, "is_active", "int", "select", "Is Active", SCOPE_STORE, required=True, entity_type_id=CATEGORY_TYPE_ID),
    _a(47, "description", "text", "textarea", "Description", SCOPE_STORE, entity_type_id=CATEGORY_TYPE_ID),
    _a(119, "url_key", "varchar", "text", "URL Key", SCOPE_STORE, entity_type_id=CATEGORY_TYPE_ID),
    _a(73, "name", "varchar", "text", "Product Name", SCOPE_STORE, required=True, searchable=True, in_listing=True),
    _a(74, "sku", "static", "text", "SKU", SCOPE_GLOBAL, required=True, searchable=True),
    _a(75, "description", "text", "textarea", "Description", SCOPE_STORE, searchable=True),
    _a(76, "short_description", "text", "textarea", "Short Description", SCOPE_STORE, searchable=True, in_listing=True),
    _a(77, "price", "decimal", "price", "Price", SCOPE_GLOBAL, required=True, searchable=True, filterable=True,
       in_listing=True),
    _a(78, "special_price", "decimal", "price", "Special Price", SCOPE_GLOBAL, in_listing=True),
    _a(79, "special_from_date", "datetime", "date", "Special Price From Date", SCOPE_WEBSITE, in_listing=True),
    _a(80, "special_to_date", "datetime", "date", "Special Price To Date", SCOPE_WEBSITE, in_listing=True),
    _a(82, "weight", "decimal", "weight", "Weight", SCOPE_GLOBAL),
    _a(83, "manufacturer", "int", "select", "Manufacturer", SCOPE_GLOBAL, user_defined=True, searchable=True,
       filterable=True),
    _a(84, "meta_title", "varchar", "text", "Meta Title", SCOPE_STORE),
    _a(85, "meta_keyword", "text", "textarea", "Meta Keywords", SCOPE_STORE),
    _a(86, "meta_description", "varchar", "textarea", "Meta Description", SCOPE_STORE),
    _a(87, "image", "varchar", "media_image", "Base", SCOPE_STORE, in_listing=True),
    _a(88, "small_image", "varchar", "media_image", "Small", SCOPE_STORE, in_listing=True),
    _a(89, "thumbnail", "varchar", "media_image", "Thumbnail", SCOPE_STORE, in_listing=True),
    _a(90, "media_gallery", "static", "gallery", "Media Gallery", SCOPE_GLOBAL),
    _a(93, "color", "int", "select", "Color", SCOPE_GLOBAL, user_defined=True, searchable=True, filterable=True),
    _a(97, "status", "int", "select", "Enable Product", SCOPE_WEBSITE, searchable=True, in_listing=True,
       source_model="Magento\\Catalog\\Model\\Product\\Attribute\\Source\\Status"),
    _a(99, "visibility", "int", "select", "Visibility", SCOPE_STORE,
       source_model="Magento\\Catalog\\Model\\Product\\Visibility"),
    _a(121, "url_key", "varchar", "text", "URL Key", SCOPE_STORE, searchable=True, in_listing=True),
    _a(135, "swatch_image", "varchar", "media_image", "Swatch", SCOPE_STORE, in_listing=True),
    _a(137, "material", "varchar", "text", "Material", SCOPE_STORE, user_defined=True, searchable=True),
    _a(138, "activity", "varchar", "multiselect", "Activity", SCOPE_GLOBAL, user_defined=True, searchable=True,
       filterable=True, source_model="Magento\\Eav\\Model\\Entity\\Attribute\\Source\\Table"),
)
ATTR = {a.code: a.id for a in ATTRIBUTES if a.entity_type_id == PRODUCT_TYPE_ID}
_BACKEND = {a.code: a.backend for a in ATTRIBUTES if a.entity_type_id == PRODUCT_TYPE_ID}
CATEGORY_NAME_ATTR = 45
CATEGORY_IS_ACTIVE_ATTR, CATEGORY_DESCRIPTION_ATTR, CATEGORY_URL_KEY_ATTR = 46, 47, 119
# A category the demo keeps disabled (is_active 0): its products get no route into it.
INACTIVE_CATEGORIES = frozenset({14})

# --------------------------------------------------------------------------- vocabulary

LANGUAGES = ("en", "fr", "de", "es", "it", "pt")

LINK_TYPE_CODES = {1: "relation", 3: "super", 4: "up_sell", 5: "cross_sell"}
GROUPED_LINK_TYPE = 3  # "super": a grouped product's members
BUNDLE_EVERY = 50  # every 50th product (a simple one: 50 % CONFIGURABLE_EVERY == 0) is a bundle
# Products 45, 145, 245, ... are grouped: 1 % of the catalog. Each groups 2 to 4 of the six standalone
# simple products 35..40 (mod 100) before it, which are never configurable, variant, bundle or grouped.
GROUPED_EVERY, GROUPED_AT = 100, 45
GROUPED_CANDIDATES = range(-10, -4)  # offsets of the products a grouped product may group
GROUPED_MEMBERS = (2, 4)  # at least, at most
# (link type, every n-th product): it links to the product n // 2 before it.
LINKS = ((1, 7), (4, 11), (5, 13))

# Each entry: the word in LANGUAGES order.
ATTRIBUTE_LABELS = {
    "color": ("Color", "Couleur", "Farbe", "Color", "Colore", "Cor"),
    "manufacturer": ("Manufacturer", "Fabricant", "Hersteller", "Fabricante", "Produttore", "Fabricante"),
    "material": ("Material", "Matière", "Material", "Material", "Materiale", "Material"),
    "activity": ("Activity", "Activité", "Aktivität", "Actividad", "Attività", "Atividade"),
}
NOUNS = (
    ("T-Shirt", "T-shirt", "T-Shirt", "Camiseta", "Maglietta", "Camiseta"),
    ("Hoodie", "Sweat à capuche", "Kapuzenpullover", "Sudadera", "Felpa", "Moletom"),
    ("Jacket", "Veste", "Jacke", "Chaqueta", "Giacca", "Jaqueta"),
    ("Backpack", "Sac à dos", "Rucksack", "Mochila", "Zaino", "Mochila"),
    ("Water Bottle", "Gourde", "Trinkflasche", "Botella", "Borraccia", "Garrafa"),
    ("Running Shoe", "Chaussure de course", "Laufschuh", "Zapatilla", "Scarpa da corsa", "Tênis de Corrida"),
    ("Yoga Mat", "Tapis de yoga", "Yogamatte", "Esterilla de yoga", "Tappetino yoga", "Tapete de Yoga"),
    ("Shorts", "Short", "Shorts", "Pantalón corto", "Pantaloncini", "Bermuda"),
    ("Leggings", "Legging", "Leggings", "Mallas", "Leggings", "Legging"),
    ("Cap", "Casquette", "Kappe", "Gorra", "Cappellino", "Boné"),
)
ADJECTIVES = (
    ("Basic", "Basique", "Einfache", "Básica", "Basic", "Básica"),
    ("Light", "Légère", "Leichte", "Ligera", "Leggera", "Leve"),
    ("Classic", "Classique", "Klassische", "Clásica", "Classica", "Clássica"),
    ("Thermal", "Thermique", "Thermo", "Térmica", "Termica", "Térmica"),
    ("Waterproof", "Imperméable", "Wasserdichte", "Impermeable", "Impermeabile", "Impermeável"),
    ("Everyday", "Quotidienne", "Alltags", "Diaria", "Quotidiana", "Diária"),
)
MATERIALS = (
    ("Cotton", "Coton", "Baumwolle", "Algodón", "Cotone", "Algodão"),
    ("Wool", "Laine", "Wolle", "Lana", "Lana", "Lã"),
    ("Linen", "Lin", "Leinen", "Lino", "Lino", "Linho"),
    ("Bamboo", "Bambou", "Bambus", "Bambú", "Bambù", "Bambu"),
    ("Polyester", "Polyester", "Polyester", "Poliéster", "Poliestere", "Poliéster"),
    ("Recycled Nylon", "Nylon recyclé", "Recyceltes Nylon", "Nailon reciclado", "Nylon riciclato", "Náilon Reciclado"),
)
# Collection names are proper nouns: never translated, often accented.
COLLECTIONS = ("Aurora", "Montréal", "Zürich", "São Paulo", "Kraków", "Málaga", "Reykjavík", "Tromsø", "Lyon", "Porto")
# How a name is put together in each language.
NAME_TEMPLATES = {
    "en": "{collection} {adj} {material} {noun}",
    "fr": "{noun} {adj} en {material} {collection}",
    "de": "{adj} {noun} aus {material} {collection}",
    "es": "{noun} {adj} de {material} {collection}",
    "it": "{noun} {adj} in {material} {collection}",
    "pt": "{noun} {adj} {material}",  # e.g. "Camiseta Básica Algodão"
}
SENTENCES = (
    "Designed for long days outdoors and easy care at home.",
    "A relaxed fit that moves with you.",
    "Made in small batches by a family-run workshop.",
    "Breathable, durable and ready for every season.",
    "Pairs with everything in the collection.",
    "Tested on trails, streets and studios.",
)

COLORS = (
    ("Black", "Noir", "Schwarz", "Negro", "Nero", "Preto"),
    ("White", "Blanc", "Weiß", "Blanco", "Bianco", "Branco"),
    ("Red", "Rouge", "Rot", "Rojo", "Rosso", "Vermelho"),
    ("Blue", "Bleu", "Blau", "Azul", "Blu", "Azul"),
    ("Green", "Vert", "Grün", "Verde", "Verde", "Verde"),
    ("Gray", "Gris", "Grau", "Gris", "Grigio", "Cinza"),
    ("Yellow", "Jaune", "Gelb", "Amarillo", "Giallo", "Amarelo"),
    ("Orange", "Orange", "Orange", "Naranja", "Arancione", "Laranja"),
    ("Purple", "Violet", "Lila", "Morado", "Viola", "Roxo"),
    ("Brown", "Marron", "Braun", "Marrón", "Marrone", "Marrom"),
)
ACTIVITIES = (
    ("Running", "Course", "Laufen", "Correr", "Corsa", "Corrida"),
    ("Yoga", "Yoga", "Yoga", "Yoga", "Yoga", "Ioga"),
    ("Hiking", "Randonnée", "Wandern", "Senderismo", "Escursionismo", "Trilha"),
    ("Cycling", "Cyclisme", "Radfahren", "Ciclismo", "Ciclismo", "Ciclismo"),
    ("Gym", "Musculation", "Fitnessstudio", "Gimnasio", "Palestra", "Academia"),
    ("Swimming", "Natation", "Schwimmen", "Natación", "Nuoto", "Natação"),
)
# Brand names are not translated.
MANUFACTURERS = ("Acme Outdoor", "Nordlys", "Müller & Söhne", "Café Sport", "Łódź Textiles", "Åsa Design", "Pêra Verde")

# Locales of store views 2, 4, 5, ... (store view 1 uses the default en_US; view 3, b2b, too): view 2
# takes the first, view i >= 4 the (i - 2)th. All distinct, so b2b is the only view that shares a locale.
STORE_LOCALES = (
    "fr_FR", "de_DE", "es_ES", "it_IT", "pt_BR", "en_GB", "fr_CA", "de_AT", "es_MX", "pt_PT", "it_CH", "de_CH",
)
DEFAULT_LOCALE = "en_US"
MAX_STORE_VIEWS = len(STORE_LOCALES) + 2
# own_websites: view 1 en_US, view i >= 2 STORE_LOCALES[i - 2], each on a website of its own.
MAX_OWN_WEBSITE_VIEWS = len(STORE_LOCALES) + 1
# The base currency of a website past the second (own_websites), from its store view's locale.
LOCALE_CURRENCIES = {
    "fr_FR": "EUR", "de_DE": "EUR", "es_ES": "EUR", "it_IT": "EUR", "pt_BR": "BRL", "en_GB": "GBP", "fr_CA": "CAD",
    "de_AT": "EUR", "es_MX": "MXN", "pt_PT": "EUR", "it_CH": "CHF", "de_CH": "CHF",
}


def _word(entry: Sequence[str], lang: str) -> str:
    return entry[LANGUAGES.index(lang)]


# --------------------------------------------------------------------------- stores


@dataclass(frozen=True)
class StoreView:
    store_id: int
    code: str
    website_id: int
    locale: str

    @property
    def language(self) -> str:
        return self.locale[:2]

    @property
    def is_b2b(self) -> bool:
        return self.store_id == B2B_VIEW_ID and self.code == "b2b"  # own_websites' view 3 is not b2b


@dataclass(frozen=True)
class StoreLayout:
    websites: tuple[int, ...]
    views: tuple[StoreView, ...]
    own_websites: bool = False  # every view on a website (and store group) of its own; every product on every website

    def website(self, website_id: int) -> tuple[str, str]:
        """(code, name) of a website: WEBSITES', then 'website_<i>' for the further ones of own_websites."""
        return WEBSITES.get(website_id) or (f"website_{website_id}", f"Website {website_id}")

    def stock(self, website_id: int) -> MsiStock:
        """The MSI stock a website sells from, and its one source: MSI_STOCKS', then one per further website."""
        if website_id in MSI_STOCKS:
            return MSI_STOCKS[website_id]
        country = self.views_of([website_id])[0].locale[3:]
        return MsiStock(website_id, f"{self.website(website_id)[1]} Stock", f"warehouse_{website_id}",
                        f"Warehouse {website_id}", country, "00000")

    def base_currency(self, website_id: int) -> str:
        """A website's base (and display) currency: USD for the first, EUR for the second, then by locale."""
        if website_id in WEBSITE_CURRENCIES:
            return WEBSITE_CURRENCIES[website_id]
        return LOCALE_CURRENCIES[self.views_of([website_id])[0].locale]

    def views_of(self, website_ids: Sequence[int]) -> list[StoreView]:
        return [v for v in self.views if v.website_id in website_ids]

    @property
    def has_b2b(self) -> bool:
        """From three store views on: the b2b view (in website 1's store group, next to 'default'), the second
        category tree as the root of website 2's store group, website price scope with website prices, and
        customer groups with group prices."""
        return any(v.is_b2b for v in self.views)

    def root_category_id(self, website_id: int) -> int:
        """The root category of a website's store group (one per website, same id as the website)."""
        return SECOND_TREE_ROOT_ID if self.has_b2b and website_id == SECOND_TREE_WEBSITE else ROOT_CATEGORY_ID

    @property
    def price_scope(self) -> int:
        """catalog/price/scope: 0 global, 1 website (with the b2b shop)."""
        return PRICE_SCOPE_WEBSITE if self.has_b2b else PRICE_SCOPE_GLOBAL


WEBSITES = {1: ("base", "Main Website"), 2: ("second", "Second Website")}
WEBSITE_CURRENCIES = {1: "USD", 2: "EUR"}
# The b2b shop (three store views or more): store view 3 on website 1, in the website's own store group
# (root 2, like 'default'); website 2's store group gets a second category tree as its root.
B2B_VIEW_ID = 3
SECOND_TREE_ROOT_ID, SECOND_TREE_WEBSITE = 100, 2
PRICE_SCOPE_GLOBAL, PRICE_SCOPE_WEBSITE = 0, 1
# Magento_Customer's data patch: the groups of a fresh install (tax class 3, "Retail Customer").
CUSTOMER_GROUPS = ((0, "NOT LOGGED IN"), (1, "General"), (2, "Wholesale"), (3, "Retailer"))
CUSTOMER_TAX_CLASS_ID = 3
WHOLESALE_GROUP_ID = 2


@dataclass(frozen=True)
class MsiStock:
    """An MSI stock (magento/inventory) and the one source it draws on."""

    stock_id: int
    name: str
    source_code: str
    source_name: str
    country_id: str
    postcode: str


# website_id -> the stock it sells from (inventory_stock_sales_channel). Stock 1 and source 'default'
# are what MSI's data patches install; the second website's stock and source are a merchant's.
MSI_STOCKS = {
    1: MsiStock(1, "Default Stock", "default", "Default Source", "US", "00000"),
    2: MsiStock(2, "EU Stock", "eu_warehouse", "EU Warehouse", "DE", "10115"),
}
DEFAULT_SOURCE = MSI_STOCKS[1].source_code
SOURCE_ITEM_IN_STOCK, SOURCE_ITEM_OUT_OF_STOCK = 1, 0  # inventory_source_item.status
LOW_STOCK_SHARE, LOW_STOCK_MAX = 0.15, 5  # of the in-stock source items: quantity 1..5
# Of a non-default source's items that have a quantity: set out of stock by hand (status 0, quantity kept).
HELD_SHARE = 0.03


def plan_stores(store_views: int, *, own_websites: bool = False) -> StoreLayout:
    """Store view 1 is 'default' on website 'base'; with two or more views a second website
    takes the even-numbered views, so each website has at least one. View 3 is 'b2b': en_US like
    'default', on website 'base' (in its store group, like 'default'). Views 4, 5, ... are
    'store_view_<i>', on website 'base' when odd, and take STORE_LOCALES[i - 3].

    own_websites: view i on website i (store group i), no b2b view, view i >= 2 with STORE_LOCALES[i - 2]."""
    if own_websites:
        if not 1 <= store_views <= MAX_OWN_WEBSITE_VIEWS:
            raise ValueError(f"store_views must be between 1 and {MAX_OWN_WEBSITE_VIEWS} with own websites, got {store_views}")
        views = tuple(StoreView(i, "default" if i == 1 else f"store_view_{i}", i,
                                DEFAULT_LOCALE if i == 1 else STORE_LOCALES[i - 2]) for i in range(1, store_views + 1))
        return StoreLayout(tuple(range(1, store_views + 1)), views, own_websites=True)
    if not 1 <= store_views <= MAX_STORE_VIEWS:
        raise ValueError(f"store_views must be between 1 and {MAX_STORE_VIEWS}, got {store_views}")
    websites = (1,) if store_views == 1 else (1, 2)

    def view(i: int) -> StoreView:
        if i == B2B_VIEW_ID:
            return StoreView(i, "b2b", B2B_WEBSITE, DEFAULT_LOCALE)
        return StoreView(
            store_id=i,
            code="default" if i == 1 else f"store_view_{i}",
            website_id=1 if i % 2 else 2,
            locale=DEFAULT_LOCALE if i == 1 else STORE_LOCALES[i - 2 if i == 2 else i - 3],
        )

    return StoreLayout(websites, tuple(view(i) for i in range(1, store_views + 1)))


# --------------------------------------------------------------------------- products


@dataclass(frozen=True, slots=True)
class NameParts:
    noun: int
    adj: int
    material: int
    collection: int
    color: int | None = None  # variants carry their color in the name

    def render(self, lang: str) -> str:
        return _render_name(self, lang)


@lru_cache(maxsize=None)
def _render_name(parts: NameParts, lang: str) -> str:
    name = NAME_TEMPLATES[lang].format(
        noun=_word(NOUNS[parts.noun], lang),
        adj=_word(ADJECTIVES[parts.adj], lang),
        material=_word(MATERIALS[parts.material], lang),
        collection=COLLECTIONS[parts.collection],
    )
    if parts.color is not None:
        name += " - " + _word(COLORS[parts.color], lang)
    return name


@lru_cache(maxsize=None)
def _slug(name: str) -> str:
    # Transliterates like Magento's url_key ("Algodão" -> "algodao"). Naming the backend
    # skips slugify's failing import of the optional `unidecode` on every call.
    return slugify(name, backend="text-unidecode")


@dataclass(frozen=True, slots=True)
class SourceItem:
    source_code: str
    quantity: Decimal
    status: int


@dataclass(slots=True)
class ProductSpec:
    """Everything random about one product, drawn in one place so the order of draws is fixed."""

    entity_id: int
    type_id: str
    parent_id: int | None
    websites: tuple[int, ...]
    name: NameParts
    default_language: str
    name_store: StoreView | None  # the store view with a store-scoped name, if any
    status: int
    visibility: int
    price: Decimal
    special: tuple[Decimal, datetime, datetime] | None
    weight: Decimal
    manufacturer: int | None
    activities: tuple[int, ...]
    categories: tuple[int, ...]
    images: int
    qty: Decimal  # the 'default' source's quantity (simple products on website 1)
    sentences: tuple[int, int]
    updated_after: timedelta
    members: tuple[int, ...] = ()  # a grouped product's members (entity ids)
    sources: tuple[SourceItem, ...] = ()  # MSI source items, one per stock of its websites; none for composites

    @property
    def sku(self) -> str:
        return f"MS-{self.entity_id:07d}"

    @property
    def is_configurable(self) -> bool:
        return self.type_id == "configurable"


class ProductPlanner:
    """Draws ProductSpecs in entity-id order; children copy their parent's shared choices.

    `rng` draws every product as the first demo catalogs did; what came later (stock per MSI source,
    a grouped product's members) is drawn from `extra_rng`, so that those products stay what they were.
    Bundles and grouped products are drawn as simple products, then converted."""

    def __init__(self, rng: random.Random, extra_rng: random.Random, layout: StoreLayout, categories: Sequence[int]):
        self.rng = rng
        self.extra_rng = extra_rng
        self.layout = layout
        self.categories = list(categories)

    def plan(self, count: int) -> Iterator[ProductSpec]:
        recent: deque[ProductSpec] = deque(maxlen=-GROUPED_CANDIDATES[0])  # a grouped product's candidates
        entity_id = 1
        while entity_id <= count:
            family = entity_id % CONFIGURABLE_EVERY == 1 and entity_id + CHILDREN_PER_CONFIGURABLE <= count
            if family:
                parent = self._standalone(entity_id, "configurable")
                specs = [parent]
                colors = self.rng.sample(range(len(COLORS)), CHILDREN_PER_CONFIGURABLE)
                specs += [self._child(parent, entity_id + offset, color) for offset, color in enumerate(colors, start=1)]
                entity_id += 1 + CHILDREN_PER_CONFIGURABLE
            else:
                specs = [self._convert(self._standalone(entity_id, "simple"), recent)]
                entity_id += 1
            for spec in specs:
                if spec.type_id == "simple":
                    spec.sources = self._sources(spec)
                recent.append(spec)
                yield spec

    def _convert(self, p: ProductSpec, recent: Sequence[ProductSpec]) -> ProductSpec:
        """Every BUNDLE_EVERY-th product becomes a bundle, product GROUPED_AT of every GROUPED_EVERY a grouped one."""
        if p.entity_id % BUNDLE_EVERY == 0:
            p.type_id = "bundle"
        elif p.entity_id % GROUPED_EVERY == GROUPED_AT:
            candidates = [s for s in recent if s.entity_id - p.entity_id in GROUPED_CANDIDATES and s.type_id == "simple"
                          and s.parent_id is None]
            size = self.extra_rng.randint(GROUPED_MEMBERS[0], min(GROUPED_MEMBERS[1], len(candidates)))
            members = sorted(self.extra_rng.sample(candidates, size), key=lambda s: s.entity_id)
            p.type_id = "grouped"
            p.members = tuple(s.entity_id for s in members)
            # sold wherever one of its members is; named like a product line, without a color
            p.websites = tuple(sorted({w for s in members for w in s.websites}))
            p.name = NameParts(p.name.noun, p.name.adj, p.name.material, p.name.collection)
            p.visibility = VISIBILITY_BOTH
        return p

    def _sources(self, p: ProductSpec) -> tuple[SourceItem, ...]:
        """A source item in the source of each of its websites' stocks. The default source's quantity is
        the product's drawn qty (10 % out of stock); another source draws its own the same way."""
        rng, items = self.extra_rng, []
        for website_id in p.websites:
            source = self.layout.stock(website_id).source_code
            if source == DEFAULT_SOURCE:
                qty = p.qty
            else:
                qty = Decimal(0) if rng.random() < 0.1 else Decimal(rng.randrange(1, 500))
            if qty > 0 and rng.random() < LOW_STOCK_SHARE:
                qty = Decimal(rng.randint(1, LOW_STOCK_MAX))
            held = source != DEFAULT_SOURCE and qty > 0 and rng.random() < HELD_SHARE
            status = SOURCE_ITEM_IN_STOCK if qty > 0 and not held else SOURCE_ITEM_OUT_OF_STOCK
            items.append(SourceItem(source, qty, status))
        return tuple(items)

    def _websites(self) -> tuple[int, ...]:
        if len(self.layout.websites) == 1:
            return self.layout.websites
        r = self.rng.random()
        if self.layout.own_websites:  # as the toolkit's assign_entities_to_all_websites (the draw is kept all the same)
            return self.layout.websites
        return self.layout.websites if r < 0.85 else (1,) if r < 0.95 else (2,)

    def _name_store(self, websites: tuple[int, ...]) -> StoreView | None:
        """~30% of products get a name in one non-default store view, preferably one they are sold in."""
        others = [v for v in self.layout.views if v.store_id != 1 and not v.is_b2b]  # b2b's values are its own
        if not others or self.rng.random() >= 0.30:
            return None
        sold_in = [v for v in others if v.website_id in websites]
        return self.rng.choice(sold_in or others)

    def _standalone(self, entity_id: int, type_id: str) -> ProductSpec:
        rng = self.rng
        websites = self._websites()
        if type_id == "configurable":
            visibility = VISIBILITY_BOTH
        else:
            visibility = rng.choices((VISIBILITY_BOTH, VISIBILITY_CATALOG, VISIBILITY_SEARCH), (90, 5, 5))[0]
        price = Decimal(rng.randrange(499, 29999)).scaleb(-2)
        return ProductSpec(
            entity_id=entity_id,
            type_id=type_id,
            parent_id=None,
            websites=websites,
            name=NameParts(
                rng.randrange(len(NOUNS)), rng.randrange(len(ADJECTIVES)),
                rng.randrange(len(MATERIALS)), rng.randrange(len(COLLECTIONS)),
                # simple products have their own color ~70% of the time; configurables vary by it
                rng.randrange(len(COLORS)) if type_id == "simple" and rng.random() < 0.7 else None,
            ),
            default_language="pt" if rng.random() < 0.15 else "en",
            name_store=self._name_store(websites),
            status=STATUS_DISABLED if rng.random() < 0.03 else STATUS_ENABLED,
            visibility=visibility,
            price=price,
            special=self._special(price),
            weight=Decimal(rng.randrange(1, 500)).scaleb(-2),
            manufacturer=rng.randrange(len(MANUFACTURERS)) if rng.random() < 0.8 else None,
            activities=self._activities(),
            categories=tuple(sorted(rng.sample(self.categories, rng.randint(1, 3)))),
            images=rng.randint(1, 2),
            qty=Decimal(0) if rng.random() < 0.1 else Decimal(rng.randrange(1, 500)),
            sentences=(rng.randrange(len(SENTENCES)), rng.randrange(len(SENTENCES))),
            updated_after=timedelta(seconds=rng.randrange(30 * 86400)),
        )

    def _activities(self) -> tuple[int, ...]:
        if self.rng.random() >= 0.6:
            return ()
        return tuple(sorted(self.rng.sample(range(len(ACTIVITIES)), self.rng.randint(1, 3))))

    def _special(self, price: Decimal) -> tuple[Decimal, datetime, datetime] | None:
        if self.rng.random() >= 0.10:
            return None
        start = BASE_TIME + timedelta(days=self.rng.randrange(60))
        return (price * Decimal("0.8")).quantize(Decimal("0.01")), start, start + timedelta(days=30)

    def _child(self, parent: ProductSpec, entity_id: int, color: int) -> ProductSpec:
        rng = self.rng
        price = parent.price + Decimal(rng.randrange(0, 500, 100)).scaleb(-2)
        return ProductSpec(
            entity_id=entity_id,
            type_id="simple",
            parent_id=parent.entity_id,
            websites=parent.websites,
            name=NameParts(parent.name.noun, parent.name.adj, parent.name.material, parent.name.collection, color),
            default_language=parent.default_language,
            name_store=parent.name_store,
            status=STATUS_DISABLED if rng.random() < 0.03 else STATUS_ENABLED,
            visibility=VISIBILITY_NOT_VISIBLE,
            price=price,
            special=self._special(price),
            weight=parent.weight,
            manufacturer=parent.manufacturer,
            activities=parent.activities,
            categories=parent.categories,
            images=rng.randint(1, 2),
            qty=Decimal(0) if rng.random() < 0.1 else Decimal(rng.randrange(1, 500)),
            sentences=parent.sentences,
            updated_after=timedelta(seconds=rng.randrange(30 * 86400)),
        )


# --------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class OptionIds:
    """eav_attribute_option ids, assigned in a fixed order."""

    color: tuple[int, ...]
    manufacturer: tuple[int, ...]
    activity: tuple[int, ...]


def _option_ids() -> OptionIds:
    ids = itertools.count(1)
    return OptionIds(
        color=tuple(next(ids) for _ in COLORS),
        manufacturer=tuple(next(ids) for _ in MANUFACTURERS),
        activity=tuple(next(ids) for _ in ACTIVITIES),
    )


Rows = dict[sa.Table, list[dict]]


COMPOSITE_TYPES = ("configurable", "bundle", "grouped")


class RowWriter:
    """Turns ProductSpecs into table rows. Holds the running media-gallery and source-item ids.

    With a layout that has the b2b view (three store views or more), also the b2b shop's product rows:
    b2b's own values, website prices for website 2, group prices and the second category tree's products."""

    def __init__(self, options: OptionIds, layout: StoreLayout | None = None):
        self.options = options
        self.next_gallery_id = 1
        self.next_source_item_id = 1
        self.b2b = layout is not None and layout.has_b2b
        # With website price scope, Magento keeps a website's price at every store view of the website.
        self.website_price_stores = tuple(v.store_id for v in layout.views_of([WEBSITE_PRICE_WEBSITE])) if self.b2b else ()

    def rows(self, specs: Sequence[ProductSpec]) -> Rows:
        out: Rows = defaultdict(list)
        for spec in specs:
            self._product(out, spec)
        return out

    def _product(self, out: Rows, p: ProductSpec) -> None:
        created = BASE_TIME + timedelta(minutes=p.entity_id)
        out[schema.catalog_product_entity].append({
            "entity_id": p.entity_id, "attribute_set_id": PRODUCT_SET_ID, "type_id": p.type_id, "sku": p.sku,
            "has_options": int(p.is_configurable), "required_options": int(p.is_configurable),
            "created_at": created, "updated_at": created + p.updated_after,
        })
        self._texts(out, p)
        self._numbers(out, p)
        self._relations(out, p)
        self._media(out, p)

    def _value(self, out: Rows, code: str, p: ProductSpec, value: object, store_id: int = 0) -> None:
        out[schema.PRODUCT_VALUE_TABLES[_BACKEND[code]]].append(
            {"attribute_id": ATTR[code], "store_id": store_id, "entity_id": p.entity_id, "value": value}
        )

    def _texts(self, out: Rows, p: ProductSpec) -> None:
        name = p.name.render(p.default_language)
        noun = _word(NOUNS[p.name.noun], "en")
        material = _word(MATERIALS[p.name.material], "en")
        self._value(out, "name", p, name)
        self._value(out, "url_key", p, f"{_slug(name)}-{p.entity_id}")
        self._value(out, "meta_title", p, name)
        self._value(out, "meta_description", p, f"Buy {name} online.")
        self._value(out, "material", p, material)
        if p.activities:
            self._value(out, "activity", p, ",".join(str(self.options.activity[i]) for i in p.activities))
        if p.name_store is not None:
            local = p.name.render(p.name_store.language)
            self._value(out, "name", p, local, p.name_store.store_id)
            self._value(out, "url_key", p, f"{_slug(local)}-{p.entity_id}", p.name_store.store_id)
        first, second = (SENTENCES[i] for i in p.sentences)
        self._value(out, "description", p, f"<p>{name}. {first} {second}</p>")
        self._value(out, "short_description", p, f"{name}: {material.lower()} {noun.lower()}.")
        self._value(out, "meta_keyword", p, f"{noun}, {material}, {COLLECTIONS[p.name.collection]}")
        if self.b2b and B2B_WEBSITE in p.websites:  # b2b's own texts (a product layer carries them)
            if p.entity_id % B2B_NAME_EVERY == B2B_NAME_AT:
                self._value(out, "name", p, name + B2B_NAME_SUFFIX, B2B_VIEW_ID)
            if p.entity_id % B2B_DESCRIPTION_EVERY == B2B_DESCRIPTION_AT:
                self._value(out, "description", p, f"<p>{name}. {B2B_DESCRIPTION}</p>", B2B_VIEW_ID)

    def _numbers(self, out: Rows, p: ProductSpec) -> None:
        self._value(out, "status", p, p.status)
        self._value(out, "visibility", p, p.visibility)
        if self.b2b and B2B_WEBSITE in p.websites and p.entity_id % B2B_HIDDEN_EVERY == B2B_HIDDEN_AT:
            # not visible individually in b2b only: a product layer cannot say so
            self._value(out, "visibility", p, VISIBILITY_NOT_VISIBLE, B2B_VIEW_ID)
        if p.name.color is not None:
            self._value(out, "color", p, self.options.color[p.name.color])
        if p.manufacturer is not None:
            self._value(out, "manufacturer", p, self.options.manufacturer[p.manufacturer])
        if p.type_id in ("configurable", "grouped"):
            return  # like Magento: a configurable's price and weight come from its children, a grouped has none
        self._value(out, "price", p, p.price)
        self._value(out, "weight", p, p.weight)
        if p.entity_id % TIER_PRICE_EVERY == 7 and p.type_id == "simple":
            # Quantity discounts for every customer group and website: a price from 5, a percentage from 10.
            out[schema.catalog_product_entity_tier_price] += [
                {"entity_id": p.entity_id, "all_groups": 1, "customer_group_id": 0, "qty": 5,
                 "value": (p.price * Decimal("0.9")).quantize(Decimal("0.01")), "website_id": 0, "percentage_value": None},
                {"entity_id": p.entity_id, "all_groups": 1, "customer_group_id": 0, "qty": 10, "value": 0, "website_id": 0,
                 "percentage_value": Decimal(15)}]
        if self.b2b and p.entity_id % GROUP_PRICE_EVERY == GROUP_PRICE_AT and p.type_id == "simple":
            # Magento's group price: a tier at quantity 1 for one customer group, on every website.
            out[schema.catalog_product_entity_tier_price].append(
                {"entity_id": p.entity_id, "all_groups": 0, "customer_group_id": WHOLESALE_GROUP_ID, "qty": 1,
                 "value": (p.price * GROUP_PRICE_FACTOR).quantize(Decimal("0.01")), "website_id": 0,
                 "percentage_value": None})
        if (self.b2b and p.entity_id % WEBSITE_PRICE_EVERY == WEBSITE_PRICE_AT and p.type_id == "simple"
                and WEBSITE_PRICE_WEBSITE in p.websites):
            website_price = (p.price * WEBSITE_PRICE_FACTOR).quantize(Decimal("0.01"))
            for store_id in self.website_price_stores:
                self._value(out, "price", p, website_price, store_id)
        if p.special is not None:
            special_price, start, end = p.special
            self._value(out, "special_price", p, special_price)
            self._value(out, "special_from_date", p, start)
            self._value(out, "special_to_date", p, end)

    def _relations(self, out: Rows, p: ProductSpec) -> None:
        for website_id in p.websites:
            out[schema.catalog_product_website].append({"product_id": p.entity_id, "website_id": website_id})
        self._stock(out, p)
        for position, category_id in enumerate(p.categories):
            out[schema.catalog_category_product].append(
                {"category_id": category_id, "product_id": p.entity_id, "position": position}
            )
        if self.b2b and p.parent_id is None and p.entity_id % SECOND_TREE_CATEGORY_EVERY == 0:  # in the second tree too
            n = p.entity_id // SECOND_TREE_CATEGORY_EVERY
            out[schema.catalog_category_product].append(
                {"category_id": SECOND_TREE_PRODUCT_CATEGORIES[n % len(SECOND_TREE_PRODUCT_CATEGORIES)],
                 "product_id": p.entity_id, "position": n // len(SECOND_TREE_PRODUCT_CATEGORIES) + 1})
        if p.is_configurable:  # its variants differ by color (one option; its id: the configurable's)
            out[schema.catalog_product_super_attribute].append(
                {"product_super_attribute_id": p.entity_id, "product_id": p.entity_id, "attribute_id": ATTR["color"],
                 "position": 0})
            out[schema.catalog_product_super_attribute_label].append(
                {"product_super_attribute_id": p.entity_id, "store_id": 0, "use_default": 0, "value": "Color"})
        if p.type_id == "bundle":
            self._bundle(out, p)
        for member in p.members:  # a grouped product: its members, and their relation to it, as Magento saves them
            out[schema.catalog_product_link].append(
                {"product_id": p.entity_id, "linked_product_id": member, "link_type_id": GROUPED_LINK_TYPE})
            out[schema.catalog_product_relation].append({"parent_id": p.entity_id, "child_id": member})
        for link_type, step in LINKS:  # a few related, up-sell and cross-sell products, to earlier products
            if p.entity_id % step == 0 and p.entity_id > step:
                out[schema.catalog_product_link].append(
                    {"product_id": p.entity_id, "linked_product_id": p.entity_id - step // 2, "link_type_id": link_type})
        if p.parent_id is not None:
            out[schema.catalog_product_super_link].append({"product_id": p.entity_id, "parent_id": p.parent_id})
            out[schema.catalog_product_relation].append({"parent_id": p.parent_id, "child_id": p.entity_id})

    def _stock(self, out: Rows, p: ProductSpec) -> None:
        """MSI's source items, and the legacy stock item MSI mirrors from the default source: qty 0 and
        out of stock without a default source item. A composite has no source items; its legacy
        stock item is in stock with qty 0, as Magento saves one."""
        for item in p.sources:
            out[schema.inventory_source_item].append({
                "source_item_id": self.next_source_item_id, "source_code": item.source_code, "sku": p.sku,
                "quantity": item.quantity, "status": item.status})
            self.next_source_item_id += 1
        if p.type_id in COMPOSITE_TYPES:
            qty, in_stock = Decimal(0), 1
        else:
            default = next((i for i in p.sources if i.source_code == DEFAULT_SOURCE), None)
            qty, in_stock = (default.quantity, default.status) if default else (Decimal(0), 0)
        out[schema.cataloginventory_stock_item].append(
            {"product_id": p.entity_id, "stock_id": 1, "qty": qty, "is_in_stock": in_stock, "website_id": 0})

    @staticmethod
    def _bundle(out: Rows, p: ProductSpec) -> None:
        """Two options: pick one of the previous family's first two variants, and add its third if you like."""
        family = p.entity_id - CONFIGURABLE_EVERY + 1  # the configurable whose variants it offers
        pick, extra = 2 * p.entity_id, 2 * p.entity_id + 1
        out[schema.catalog_product_bundle_option] += [
            {"option_id": pick, "parent_id": p.entity_id, "required": 1, "position": 0, "type": "radio"},
            {"option_id": extra, "parent_id": p.entity_id, "required": 0, "position": 1, "type": "checkbox"}]
        out[schema.catalog_product_bundle_option_value] += [
            {"option_id": pick, "store_id": 0, "title": "Pick one", "parent_product_id": p.entity_id},
            {"option_id": extra, "store_id": 0, "title": "Add-on", "parent_product_id": p.entity_id}]
        out[schema.catalog_product_bundle_selection] += [
            {"option_id": option, "parent_product_id": p.entity_id, "product_id": family + offset, "position": position,
             "is_default": int(default), "selection_qty": qty, "selection_can_change_qty": int(can_change)}
            for option, offset, position, default, qty, can_change in (
                (pick, 1, 0, True, 1, False), (pick, 2, 1, False, 1, True), (extra, 3, 0, False, 2, False))]
        out[schema.catalog_product_relation] += [{"parent_id": p.entity_id, "child_id": family + offset} for offset in (1, 2, 3)]

    def _media(self, out: Rows, p: ProductSpec) -> None:
        sku = p.sku.lower()
        files = [f"/{sku[0]}/{sku[1]}/{sku}_{n}.jpg" for n in range(1, p.images + 1)]
        label = p.name.render(p.default_language)
        for position, path in enumerate(files, start=1):
            value_id = self.next_gallery_id
            self.next_gallery_id += 1
            out[schema.catalog_product_entity_media_gallery].append(
                {"value_id": value_id, "attribute_id": ATTR["media_gallery"], "value": path, "media_type": "image",
                 "disabled": 0}
            )
            out[schema.catalog_product_entity_media_gallery_value].append(
                {"value_id": value_id, "store_id": 0, "entity_id": p.entity_id, "label": label, "position": position,
                 "disabled": 0}
            )
            out[schema.catalog_product_entity_media_gallery_value_to_entity].append(
                {"value_id": value_id, "entity_id": p.entity_id}
            )
        for role in ("image", "small_image", "thumbnail"):
            self._value(out, role, p, files[0])
        if p.parent_id is not None:
            self._value(out, "swatch_image", p, files[0])



# --------------------------------------------------------------------------- shop setup rows

# (entity_id, parent_id, name in LANGUAGES order); ids 1 and 2 are Magento's root categories.
CATEGORIES = (
    (1, 0, ("Root Catalog",) * 6),
    (2, 1, ("Default Category",) * 6),
    (3, 2, ("Men", "Homme", "Herren", "Hombre", "Uomo", "Masculino")),
    (4, 2, ("Women", "Femme", "Damen", "Mujer", "Donna", "Feminino")),
    (5, 2, ("Gear", "Équipement", "Ausrüstung", "Equipo", "Attrezzatura", "Equipamentos")),
    (6, 2, ("Sale", "Soldes", "Sale", "Rebajas", "Saldi", "Promoções")),
    (7, 3, ("Tops", "Hauts", "Oberteile", "Camisetas", "Top", "Blusas")),
    (8, 3, ("Bottoms", "Bas", "Hosen", "Pantalones", "Pantaloni", "Calças")),
    (9, 4, ("Tops", "Hauts", "Oberteile", "Camisetas", "Top", "Blusas")),
    (10, 4, ("Bottoms", "Bas", "Hosen", "Pantalones", "Pantaloni", "Calças")),
    (11, 5, ("Bags", "Sacs", "Taschen", "Bolsas", "Borse", "Bolsas")),
    (12, 5, ("Fitness Equipment", "Matériel de fitness", "Fitnessgeräte", "Equipamiento fitness", "Attrezzi fitness",
             "Equipamentos de Ginástica")),
    (13, 5, ("Bottles", "Gourdes", "Flaschen", "Botellas", "Borracce", "Garrafas")),
    (14, 6, ("Outlet", "Déstockage", "Outlet", "Outlet", "Outlet", "Outlet")),
)
PRODUCT_CATEGORIES = tuple(c[0] for c in CATEGORIES if c[0] > ROOT_CATEGORY_ID)
# The second tree (the b2b shop): the root of website 2's store group (SECOND_TREE_ROOT_ID) and its
# categories, English only (no store-view names, also at website 2's fr_FR view).
SECOND_TREE_CATEGORIES = (
    (SECOND_TREE_ROOT_ID, 1, ("Second Catalog",)),
    (101, SECOND_TREE_ROOT_ID, ("Bulk Apparel",)),
    (102, SECOND_TREE_ROOT_ID, ("Team Equipment",)),
    (103, 101, ("Corporate Tops",)),
    (104, 101, ("Workwear",)),
    (105, 102, ("Gym Fit-Out",)),
    (106, 103, ("Printed Tees",)),
)
SECOND_TREE_PRODUCT_CATEGORIES = (102, 103, 104, 105, 106)  # a product of the second tree is in one of these
ROOT_CATEGORY_IDS = frozenset({1, ROOT_CATEGORY_ID, SECOND_TREE_ROOT_ID})  # no url_key, no products


def shop_categories(layout: StoreLayout) -> tuple[tuple[int, int, tuple[str, ...]], ...]:
    return CATEGORIES + SECOND_TREE_CATEGORIES if layout.has_b2b else CATEGORIES


def store_rows(layout: StoreLayout) -> Rows:
    rows: Rows = defaultdict(list)
    rows[schema.store_website].append(
        {"website_id": 0, "code": "admin", "name": "Admin", "sort_order": 0, "default_group_id": 0, "is_default": 0}
    )
    rows[schema.store_group].append(
        {"group_id": 0, "website_id": 0, "name": "Default", "root_category_id": 0, "default_store_id": 0,
         "code": "default"}
    )
    rows[schema.store].append(
        {"store_id": 0, "code": "admin", "website_id": 0, "group_id": 0, "name": "Admin", "sort_order": 0,
         "is_active": 1}
    )
    for website_id in layout.websites:
        code, name = layout.website(website_id)
        default_view = layout.views_of([website_id])[0]
        rows[schema.store_website].append({
            "website_id": website_id, "code": code, "name": name, "sort_order": website_id - 1,
            "default_group_id": website_id, "is_default": int(website_id == 1),
        })
        # one store group per website, same id as the website (website 2's on the second tree in the b2b shop)
        rows[schema.store_group].append({
            "group_id": website_id, "website_id": website_id, "name": f"{name} Store",
            "root_category_id": layout.root_category_id(website_id), "default_store_id": default_view.store_id,
            "code": "main_website_store" if website_id == 1 else f"{code}_website_store",
        })
    for view in layout.views:
        name = ("Default Store View" if view.store_id == 1 else "B2B Store View" if view.is_b2b
                else f"Store View {view.store_id} ({view.locale})")
        rows[schema.store].append({
            "store_id": view.store_id, "code": view.code, "website_id": view.website_id,
            "group_id": view.website_id, "name": name, "sort_order": view.store_id - 1, "is_active": 1,
        })
    return rows


def config_rows(layout: StoreLayout) -> list[dict]:
    def row(path: str, value: str, scope: str = "default", scope_id: int = 0) -> dict:
        return {"scope": scope, "scope_id": scope_id, "path": path, "value": value}

    rows = [
        row("general/locale/code", DEFAULT_LOCALE),
        row("general/locale/timezone", "UTC"),
        row("general/locale/weight_unit", "kgs"),
        row("web/unsecure/base_url", "http://demo-shop.example/"),
        row("web/secure/base_url", "https://demo-shop.example/"),
        row("currency/options/base", "USD"),
        row("currency/options/default", "USD"),
        row("currency/options/allow", "USD"),
        row("catalog/price/scope", str(layout.price_scope)),  # 0 global, 1 website (the b2b shop)
    ]
    for website_id in layout.websites[1:]:  # each further website in its own currency (the second: EUR)
        currency = layout.base_currency(website_id)
        rows += [
            row("currency/options/base", currency, "websites", website_id),
            row("currency/options/default", currency, "websites", website_id),
            row("currency/options/allow", currency, "websites", website_id),
        ]
    rows += [
        row("general/locale/code", v.locale, "stores", v.store_id) for v in layout.views if v.locale != DEFAULT_LOCALE
    ]
    return rows


def customer_group_rows() -> list[dict]:
    return [{"customer_group_id": group_id, "customer_group_code": code, "tax_class_id": CUSTOMER_TAX_CLASS_ID}
            for group_id, code in CUSTOMER_GROUPS]


def eav_rows(price_scope: int = PRICE_SCOPE_GLOBAL) -> Rows:
    rows: Rows = defaultdict(list)
    rows[schema.eav_entity_type] += [
        {"entity_type_id": CATEGORY_TYPE_ID, "entity_type_code": schema.CATEGORY_ENTITY_TYPE_CODE,
         "entity_model": "Magento\\Catalog\\Model\\ResourceModel\\Category", "entity_table": "catalog_category_entity",
         "default_attribute_set_id": CATEGORY_SET_ID},
        {"entity_type_id": PRODUCT_TYPE_ID, "entity_type_code": schema.PRODUCT_ENTITY_TYPE_CODE,
         "entity_model": "Magento\\Catalog\\Model\\ResourceModel\\Product", "entity_table": "catalog_product_entity",
         "default_attribute_set_id": PRODUCT_SET_ID},
    ]
    rows[schema.eav_attribute_set] += [
        {"attribute_set_id": set_id, "entity_type_id": type_id, "attribute_set_name": "Default", "sort_order": 1}
        for set_id, type_id in ((CATEGORY_SET_ID, CATEGORY_TYPE_ID), (PRODUCT_SET_ID, PRODUCT_TYPE_ID))
    ]
    for a in ATTRIBUTES:
        rows[schema.eav_attribute].append({
            "attribute_id": a.id, "entity_type_id": a.entity_type_id, "attribute_code": a.code,
            "backend_type": a.backend, "frontend_input": a.input, "frontend_label": a.label,
            "source_model": a.source_model, "is_required": int(a.required), "is_user_defined": int(a.user_defined),
        })
        # Magento sets the price attributes' scope from catalog/price/scope (SwitchPriceAttributeScopeOnConfigChange).
        scope = SCOPE_WEBSITE if price_scope == PRICE_SCOPE_WEBSITE and a.input == "price" else a.scope
        rows[schema.catalog_eav_attribute].append({
            "attribute_id": a.id, "is_global": scope, "is_visible": 1, "is_searchable": int(a.searchable),
            "is_filterable": int(a.filterable), "used_in_product_listing": int(a.in_listing),
        })
    return rows


def option_rows(layout: StoreLayout, options: OptionIds) -> Rows:
    """Admin labels at store 0; colors and activities also translated for store views in other languages."""
    rows: Rows = defaultdict(list)
    translated_views = [v for v in layout.views if v.language != "en"]
    groups = (
        ("color", options.color, COLORS, True),
        ("manufacturer", options.manufacturer, [(m,) for m in MANUFACTURERS], False),
        ("activity", options.activity, ACTIVITIES, True),
    )
    for code, ids, labels, translate in groups:
        for sort_order, (option_id, words) in enumerate(zip(ids, labels)):
            rows[schema.eav_attribute_option].append(
                {"option_id": option_id, "attribute_id": ATTR[code], "sort_order": sort_order}
            )
            rows[schema.eav_attribute_option_value].append({"option_id": option_id, "store_id": 0, "value": words[0]})
            for view in translated_views if translate else ():
                rows[schema.eav_attribute_option_value].append(
                    {"option_id": option_id, "store_id": view.store_id, "value": _word(words, view.language)}
                )
    for code, words in ATTRIBUTE_LABELS.items():  # the storefront labels of the custom attributes
        for view in translated_views:
            rows[schema.eav_attribute_label].append(
                {"attribute_id": ATTR[code], "store_id": view.store_id, "value": _word(words, view.language)})
    return rows


def category_rows(layout: StoreLayout) -> Rows:
    rows: Rows = defaultdict(list)
    categories = shop_categories(layout)
    parents = {cid: parent for cid, parent, _ in categories}

    def path(cid: int) -> list[int]:
        return path(parents[cid]) + [cid] if cid else []

    translated_views = [v for v in layout.views if v.language != "en"]
    for cid, parent, names in categories:
        ancestry = path(cid)
        position = [c for c, p in parents.items() if p == parent].index(cid) + 1 if parent else 0
        descendants = sum(1 for other in parents if cid in path(other)[:-1])
        stamp = BASE_TIME - timedelta(days=30) + timedelta(hours=cid)
        rows[schema.catalog_category_entity].append({
            "entity_id": cid, "attribute_set_id": CATEGORY_SET_ID, "parent_id": parent, "created_at": stamp,
            "updated_at": stamp, "path": "/".join(map(str, ancestry)), "position": position,
            "level": len(ancestry) - 1, "children_count": descendants,
        })
        rows[schema.catalog_category_entity_varchar].append(
            {"attribute_id": CATEGORY_NAME_ATTR, "store_id": 0, "entity_id": cid, "value": names[0]}
        )
        rows[schema.catalog_category_entity_int].append(
            {"attribute_id": CATEGORY_IS_ACTIVE_ATTR, "store_id": 0, "entity_id": cid,
             "value": int(cid not in INACTIVE_CATEGORIES)}
        )
        if cid in ROOT_CATEGORY_IDS:
            continue
        # Magento makes a category's url_key from its admin name; its description is a store-view text.
        rows[schema.catalog_category_entity_varchar].append(
            {"attribute_id": CATEGORY_URL_KEY_ATTR, "store_id": 0, "entity_id": cid, "value": slugify(names[0])}
        )
        if parent in (ROOT_CATEGORY_ID, SECOND_TREE_ROOT_ID):
            rows[schema.catalog_category_entity_text].append(
                {"attribute_id": CATEGORY_DESCRIPTION_ATTR, "store_id": 0, "entity_id": cid,
                 "value": f"Everything in {names[0]}."}
            )
        for view in translated_views if len(names) > 1 else ():  # the second tree is English only
            rows[schema.catalog_category_entity_varchar].append(
                {"attribute_id": CATEGORY_NAME_ATTR, "store_id": view.store_id, "entity_id": cid,
                 "value": _word(names, view.language)}
            )
    return rows


def link_type_rows() -> list[dict]:
    """Magento's product link types (Magento_Catalog's and Magento_GroupedProduct's data patches)."""
    return [{"link_type_id": i, "code": code} for i, code in LINK_TYPE_CODES.items()]


def msi_rows(layout: StoreLayout) -> Rows:
    """MSI's sources and stocks (InventoryCatalog's data patches install source 'default' and stock 1,
    InventorySales's sells the base website from it), and one more of each per further website."""
    rows: Rows = defaultdict(list)
    for link_id, website_id in enumerate(layout.websites, start=1):
        stock = layout.stock(website_id)
        rows[schema.inventory_source].append({
            "source_code": stock.source_code, "name": stock.source_name, "enabled": 1,
            "country_id": stock.country_id, "postcode": stock.postcode})
        rows[schema.inventory_stock].append({"stock_id": stock.stock_id, "name": stock.name})
        rows[schema.inventory_source_stock_link].append(
            {"link_id": link_id, "stock_id": stock.stock_id, "source_code": stock.source_code, "priority": 1})
        rows[schema.inventory_stock_sales_channel].append(
            {"type": "website", "code": layout.website(website_id)[0], "stock_id": stock.stock_id})
    return rows


def mview_rows() -> list[dict]:
    # What Magento shows for indexers on "Update by Schedule" that have not consumed anything yet.
    return [
        {"view_id": view_id, "mode": "enabled", "status": "idle", "updated": BASE_TIME, "version_id": 0}
        for view_id in triggers.MVIEW_VIEW_IDS
    ]


# --------------------------------------------------------------------------- loading


def _engine(db_url: str) -> sa.Engine:
    url = sa.make_url(db_url)
    if url.get_backend_name() != "sqlite":
        return sa.create_engine(url)
    if not url.database or url.database == ":memory:":
        # the catalog would vanish with the engine at the end of this call
        raise ValueError(f"the demo catalog needs a SQLite file, not {db_url!r}")
    Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url)

    @sa.event.listens_for(engine, "connect")
    def _fast_load(dbapi_conn, _record) -> None:
        # A demo database is rebuilt, not recovered: skip fsyncs. WAL stays on afterwards,
        # so the demo shop can be read while it is being changed.
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=OFF")
        cursor.close()

    return engine


def _insert(conn: sa.Connection, rows: Rows) -> None:
    for table in schema.metadata.sorted_tables:
        if rows.get(table):
            conn.execute(table.insert(), rows[table])


def _insert_customer_groups(conn: sa.Connection) -> None:
    """customer_group_id is AUTO_INCREMENT: on MySQL/MariaDB, group 0 (NOT LOGGED IN) keeps its id only with
    NO_AUTO_VALUE_ON_ZERO, which Magento's setup sets too (startSetup)."""
    mysql = conn.dialect.name in ("mysql", "mariadb")
    if mysql:
        mode = conn.exec_driver_sql("SELECT @@SESSION.sql_mode").scalar()
        conn.exec_driver_sql("SET SESSION sql_mode = CONCAT_WS(',', @@SESSION.sql_mode, 'NO_AUTO_VALUE_ON_ZERO')")
    _insert(conn, {schema.customer_group: customer_group_rows()})
    if mysql:
        conn.exec_driver_sql("SET SESSION sql_mode = %s", (mode,))


def _insert_chunk(engine: sa.Engine, rows: Rows) -> None:
    with engine.begin() as conn:  # a transaction per chunk keeps the WAL / undo log small
        _insert(conn, rows)


def _prepare_tables(engine: sa.Engine, drop_existing: bool) -> None:
    if drop_existing:
        schema.metadata.drop_all(engine)
        schema.metadata.create_all(engine)
        return
    schema.metadata.create_all(engine)  # creates only what is missing
    with engine.connect() as conn:
        if conn.scalar(sa.select(sa.func.count()).select_from(schema.catalog_product_entity)):
            raise ValueError(
                f"{engine.url.render_as_string(hide_password=True)} already holds a catalog; "
                "pass drop_existing=True to replace it"
            )


def _chunks(items: Iterator[ProductSpec], size: int) -> Iterator[list[ProductSpec]]:
    while chunk := list(itertools.islice(items, size)):
        yield chunk


@dataclass
class _Counts:
    configurables: int = 0
    bundles: int = 0
    grouped: int = 0
    source_items: int = 0
    feed_records: int = 0


def _load_products(engine: sa.Engine, specs: Iterator[ProductSpec], writer: RowWriter, layout: StoreLayout) -> _Counts:
    """Insert the products chunk by chunk; count what the summary reports."""
    views_per_website = {w: len(layout.views_of([w])) for w in layout.websites}
    counts = _Counts()
    with ThreadPoolExecutor(max_workers=1) as loader:
        # Build chunk n+1 while the database stores chunk n (the driver releases the GIL
        # while it waits for the server). A single writer thread keeps the inserts in order.
        pending: Future | None = None
        for chunk in _chunks(specs, PRODUCTS_PER_CHUNK):
            rows = writer.rows(chunk)
            for p in chunk:
                counts.configurables += p.type_id == "configurable"
                counts.bundles += p.type_id == "bundle"
                counts.grouped += p.type_id == "grouped"
                counts.source_items += len(p.sources)
                counts.feed_records += sum(views_per_website[w] for w in p.websites)
            if pending is not None:
                pending.result()
            pending = loader.submit(_insert_chunk, engine, rows)
        if pending is not None:
            pending.result()
    return counts


def generate_demo_catalog(
    db_url: str, products: int, store_views: int = 2, seed: int = 42, *, drop_existing: bool = True,
    edition: str = "open_source", own_websites: bool = False,
) -> DemoCatalogSummary:
    """Create the Magento catalog tables at db_url and fill them with a deterministic demo shop.

    Changelog triggers are created after the bulk load, so the changelogs start empty. edition "commerce"
    converts the loaded shop to Adobe Commerce's content-staging layout (commerce_layout) before the
    triggers, which then take Adobe Commerce's shape. own_websites puts every store view on a website and
    store group of its own, every product on every website (Magento's performance-toolkit profiles; see the
    module docstring); off, the layout is the default one.
    """
    if edition not in EDITIONS:
        raise ValueError(f"edition must be one of {', '.join(EDITIONS)}, got {edition!r}")
    if products < 1:
        raise ValueError(f"products must be at least 1, got {products}")
    layout = plan_stores(store_views, own_websites=own_websites)
    options = _option_ids()
    engine = _engine(db_url)
    try:
        _prepare_tables(engine, drop_existing)
        with engine.begin() as conn:
            _insert(conn, store_rows(layout))
            _insert(conn, {schema.core_config_data: config_rows(layout)})
            _insert(conn, eav_rows(layout.price_scope))
            _insert(conn, option_rows(layout, options))
            _insert(conn, category_rows(layout))
            _insert(conn, {schema.mview_state: mview_rows(), schema.catalog_product_link_type: link_type_rows()})
            _insert(conn, msi_rows(layout))
            if layout.has_b2b:
                _insert_customer_groups(conn)

        planner = ProductPlanner(random.Random(seed), random.Random(f"{seed}/extra"), layout, PRODUCT_CATEGORIES)
        counts = _load_products(engine, planner.plan(products), RowWriter(options, layout), layout)
        if edition == "commerce":
            commerce_layout.derive_commerce_layout(engine)
            triggers.create_commerce_changelog_triggers(engine)
        else:
            triggers.create_changelog_triggers(engine)
    finally:
        engine.dispose()
    return DemoCatalogSummary(
        products=products,
        configurables=counts.configurables,
        store_views=store_views,
        websites=len(layout.websites),
        feed_records=counts.feed_records,
        bundles=counts.bundles,
        grouped=counts.grouped,
        source_items=counts.source_items,
    )
