"""Magento 2 catalog tables, as SQLAlchemy Core metadata.

Only the tables and columns that Catalog Sync reads (and that the demo
generator writes) are declared; names and types follow Magento 2.4's
declarative schema so the same queries run on a real shop database.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import (
    Column,
    Date,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

# MariaDB/MySQL: store text as utf8mb4 so 4-byte characters survive.
_MYSQL = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_general_ci", "mysql_engine": "InnoDB"}

PRODUCT_ENTITY_TYPE_CODE = "catalog_product"
CATEGORY_ENTITY_TYPE_CODE = "catalog_category"
ADMIN_STORE_ID = 0

store_website = Table(
    "store_website", metadata,
    Column("website_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("code", String(32), unique=True),
    Column("name", String(64)),
    Column("sort_order", SmallInteger, nullable=False, default=0),
    Column("default_group_id", SmallInteger, nullable=False, default=0),
    Column("is_default", SmallInteger, default=0),
    **_MYSQL,
)

store_group = Table(
    "store_group", metadata,
    Column("group_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("website_id", SmallInteger, nullable=False, default=0),
    Column("name", String(255), nullable=False),
    Column("root_category_id", Integer, nullable=False, default=0),
    Column("default_store_id", SmallInteger, nullable=False, default=0),
    Column("code", String(32), unique=True),
    **_MYSQL,
)

store = Table(
    "store", metadata,
    Column("store_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("code", String(32), unique=True),
    Column("website_id", SmallInteger, nullable=False, default=0),
    Column("group_id", SmallInteger, nullable=False, default=0),
    Column("name", String(255), nullable=False),
    Column("sort_order", SmallInteger, nullable=False, default=0),
    Column("is_active", SmallInteger, nullable=False, default=0),
    **_MYSQL,
)

core_config_data = Table(
    "core_config_data", metadata,
    Column("config_id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(8), nullable=False, default="default"),
    Column("scope_id", Integer, nullable=False, default=0),
    Column("path", String(255), nullable=False, default="general"),
    Column("value", Text),
    UniqueConstraint("scope", "scope_id", "path", name="CORE_CONFIG_DATA_SCOPE_SCOPE_ID_PATH"),
    **_MYSQL,
)

eav_entity_type = Table(
    "eav_entity_type", metadata,
    Column("entity_type_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("entity_type_code", String(50), nullable=False),
    Column("entity_model", String(255), nullable=False),
    Column("entity_table", String(255)),
    Column("default_attribute_set_id", SmallInteger, nullable=False, default=0),
    **_MYSQL,
)

eav_attribute_set = Table(
    "eav_attribute_set", metadata,
    Column("attribute_set_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("entity_type_id", SmallInteger, nullable=False, default=0),
    Column("attribute_set_name", String(255)),
    Column("sort_order", SmallInteger, nullable=False, default=0),
    **_MYSQL,
)

eav_attribute = Table(
    "eav_attribute", metadata,
    Column("attribute_id", SmallInteger, primary_key=True, autoincrement=False),
    Column("entity_type_id", SmallInteger, nullable=False, default=0),
    Column("attribute_code", String(255), nullable=False),
    Column("backend_type", String(8), nullable=False, default="static"),
    Column("frontend_input", String(50)),
    Column("frontend_label", String(255)),
    Column("source_model", String(255)),
    Column("is_required", SmallInteger, nullable=False, default=0),
    Column("is_user_defined", SmallInteger, nullable=False, default=0),
    UniqueConstraint("entity_type_id", "attribute_code", name="EAV_ATTRIBUTE_ENTITY_TYPE_ID_ATTRIBUTE_CODE"),
    **_MYSQL,
)

catalog_eav_attribute = Table(
    "catalog_eav_attribute", metadata,
    Column("attribute_id", SmallInteger, primary_key=True, autoincrement=False),
    # 0 = store view, 1 = global, 2 = website (Magento's ScopedAttributeInterface)
    Column("is_global", SmallInteger, nullable=False, default=1),
    Column("is_visible", SmallInteger, nullable=False, default=1),
    Column("is_searchable", SmallInteger, nullable=False, default=0),
    Column("is_filterable", SmallInteger, nullable=False, default=0),  # 0 no, 1 with results, 2 also without
    Column("used_in_product_listing", SmallInteger, nullable=False, default=0),
    # Storefront properties the metadata feed maps (Magento_Catalog's db_schema.xml)
    Column("is_comparable", SmallInteger, nullable=False, default=0),
    Column("is_visible_on_front", SmallInteger, nullable=False, default=0),
    Column("is_filterable_in_search", SmallInteger, nullable=False, default=0),
    Column("used_for_sort_by", SmallInteger, nullable=False, default=0),
    Column("search_weight", Float, nullable=False, default=1),
    Column("additional_data", Text),  # JSON; swatch_input_type (visual, text) makes an attribute a swatch
    **_MYSQL,
)

# An attribute's label per store view (Magento_Eav's db_schema.xml); store 0's is eav_attribute.frontend_label.
eav_attribute_label = Table(
    "eav_attribute_label", metadata,
    Column("attribute_label_id", Integer, primary_key=True, autoincrement=True),
    Column("attribute_id", SmallInteger, nullable=False, default=0),
    Column("store_id", SmallInteger, nullable=False, default=0),
    Column("value", String(255)),
    Index("EAV_ATTRIBUTE_LABEL_ATTRIBUTE_ID_STORE_ID", "attribute_id", "store_id"),
    **_MYSQL,
)

eav_attribute_option = Table(
    "eav_attribute_option", metadata,
    Column("option_id", Integer, primary_key=True, autoincrement=False),
    Column("attribute_id", SmallInteger, nullable=False, default=0),
    Column("sort_order", SmallInteger, nullable=False, default=0),
    **_MYSQL,
)

eav_attribute_option_value = Table(
    "eav_attribute_option_value", metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=True),
    Column("option_id", Integer, nullable=False, default=0),
    Column("store_id", SmallInteger, nullable=False, default=0),
    Column("value", String(255)),
    UniqueConstraint("store_id", "option_id", name="EAV_ATTRIBUTE_OPTION_VALUE_STORE_ID_OPTION_ID"),
    **_MYSQL,
)

catalog_product_entity = Table(
    "catalog_product_entity", metadata,
    Column("entity_id", Integer, primary_key=True, autoincrement=True),
    Column("attribute_set_id", SmallInteger, nullable=False, default=0),
    Column("type_id", String(32), nullable=False, default="simple"),
    Column("sku", String(64), nullable=False),
    Column("has_options", SmallInteger, nullable=False, default=0),
    Column("required_options", SmallInteger, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Index("CATALOG_PRODUCT_ENTITY_SKU", "sku"),
    Index("CATALOG_PRODUCT_ENTITY_UPDATED_AT", "updated_at"),
    **_MYSQL,
)

# EAV backend type -> value column type, as in Magento's declarative schema.
BACKEND_VALUE_TYPES = {
    "varchar": String(255),
    "int": Integer,
    "decimal": Numeric(20, 6),
    "text": Text,
    "datetime": DateTime,
}


def _value_table(prefix: str, backend: str) -> Table:
    name = f"{prefix}_{backend}"
    return Table(
        name, metadata,
        Column("value_id", Integer, primary_key=True, autoincrement=True),
        Column("attribute_id", SmallInteger, nullable=False, default=0),
        Column("store_id", SmallInteger, nullable=False, default=0),
        Column("entity_id", Integer, nullable=False, default=0),
        Column("value", BACKEND_VALUE_TYPES[backend]),
        UniqueConstraint("entity_id", "attribute_id", "store_id", name=f"{name.upper()}_ENTITY_ID_ATTRIBUTE_ID_STORE_ID"),
        **_MYSQL,
    )


PRODUCT_VALUE_TABLES: dict[str, Table] = {
    backend: _value_table("catalog_product_entity", backend) for backend in BACKEND_VALUE_TYPES
}

# Tier prices (Magento_Catalog's db_schema.xml; columns as in the fixture's dump).
catalog_product_entity_tier_price = Table(
    "catalog_product_entity_tier_price", metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=True),
    Column("entity_id", Integer, nullable=False, default=0),
    Column("all_groups", SmallInteger, nullable=False, default=1),
    Column("customer_group_id", Integer, nullable=False, default=0),
    Column("qty", Numeric(12, 4), nullable=False, default=1),
    Column("value", Numeric(20, 6), nullable=False, default=0),
    Column("website_id", SmallInteger, nullable=False),
    Column("percentage_value", Numeric(5, 2)),
    UniqueConstraint("entity_id", "all_groups", "customer_group_id", "qty", "website_id",
                     name="UNQ_E8AB433B9ACB00343ABB312AD2FAB087"),
    **_MYSQL,
)

# Customer groups (Magento_Customer's db_schema.xml): 0 is NOT LOGGED IN, the guest.
customer_group = Table(
    "customer_group", metadata,
    Column("customer_group_id", Integer, primary_key=True, autoincrement=True),
    Column("customer_group_code", String(32), nullable=False),
    Column("tax_class_id", Integer, nullable=False, default=0),
    **_MYSQL,
)

# Magento_CatalogRule's price index (its db_schema.xml): a price per day, website, customer group and
# product, for the days around today, rebuilt by the indexer. Read only to count it (magento/not_carried); the
# fixture has no such table, so its columns are those of Magento 2.4's declaration as we know it: only product_id is read.
catalogrule_product_price = Table(
    "catalogrule_product_price", metadata,
    Column("rule_product_price_id", Integer, primary_key=True, autoincrement=True),
    Column("rule_date", Date, nullable=False),
    Column("customer_group_id", Integer),
    Column("product_id", Integer, nullable=False),
    Column("rule_price", Numeric(20, 6), nullable=False, default=0),
    Column("website_id", SmallInteger, nullable=False),
    Column("latest_start_date", Date),
    Column("earliest_end_date", Date),
    **_MYSQL,
)

catalog_product_website = Table(
    "catalog_product_website", metadata,
    Column("product_id", Integer, primary_key=True, autoincrement=False),
    Column("website_id", SmallInteger, primary_key=True, autoincrement=False),
    Index("CATALOG_PRODUCT_WEBSITE_WEBSITE_ID", "website_id"),
    **_MYSQL,
)

cataloginventory_stock_item = Table(
    "cataloginventory_stock_item", metadata,
    Column("item_id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, nullable=False, default=0),
    Column("stock_id", SmallInteger, nullable=False, default=0),
    Column("qty", Numeric(12, 4)),
    Column("is_in_stock", SmallInteger, nullable=False, default=0),
    Column("website_id", SmallInteger, nullable=False, default=0),
    UniqueConstraint("product_id", "stock_id", name="CATALOGINVENTORY_STOCK_ITEM_PRODUCT_ID_STOCK_ID"),
    **_MYSQL,
)

# Multi-Source Inventory (magento/inventory): Inventory/etc/db_schema.xml declares the sources, their
# items, the stocks and the links between them; InventorySales/etc/db_schema.xml the sales channels
# (a website's stock). Columns are the ones Catalog Sync reads.
inventory_source = Table(
    "inventory_source", metadata,
    Column("source_code", String(255), primary_key=True),
    Column("name", String(255), nullable=False),
    Column("enabled", SmallInteger, nullable=False, default=1),
    Column("country_id", String(2), nullable=False, default="US"),
    Column("postcode", String(255), nullable=False, default=""),
    **_MYSQL,
)

inventory_source_item = Table(
    "inventory_source_item", metadata,
    Column("source_item_id", Integer, primary_key=True, autoincrement=True),
    Column("source_code", String(255), nullable=False),
    Column("sku", String(64), nullable=False),
    Column("quantity", Numeric(12, 4), nullable=False, default=0),
    Column("status", SmallInteger, nullable=False, default=0),
    UniqueConstraint("source_code", "sku", name="INVENTORY_SOURCE_ITEM_SOURCE_CODE_SKU"),
    Index("INVENTORY_SOURCE_ITEM_SKU_SOURCE_CODE_QUANTITY", "sku", "source_code", "quantity"),
    **_MYSQL,
)

inventory_stock = Table(
    "inventory_stock", metadata,
    Column("stock_id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(255), nullable=False),
    **_MYSQL,
)

inventory_source_stock_link = Table(
    "inventory_source_stock_link", metadata,
    Column("link_id", Integer, primary_key=True, autoincrement=True),
    Column("stock_id", Integer, nullable=False),
    Column("source_code", String(255), nullable=False),
    Column("priority", SmallInteger, nullable=False, default=0),
    UniqueConstraint("stock_id", "source_code", name="INVENTORY_SOURCE_STOCK_LINK_STOCK_ID_SOURCE_CODE"),
    **_MYSQL,
)

inventory_stock_sales_channel = Table(
    "inventory_stock_sales_channel", metadata,
    Column("type", String(64), primary_key=True),
    Column("code", String(64), primary_key=True),
    Column("stock_id", Integer, nullable=False),
    **_MYSQL,
)


def inventory_stock_index(stock_id: int) -> Table:
    """MSI's index of one stock, `inventory_stock_<id>` (InventoryIndexer's IndexStructure: sku, quantity,
    is_salable). The default stock's is a view over the legacy `cataloginventory_stock_status`
    (InventoryCatalog's CreateLegacyStockStatusView patch). Not in `metadata`: the indexer creates them."""
    return sa.table(f"inventory_stock_{int(stock_id)}", sa.column("sku"), sa.column("quantity"), sa.column("is_salable"))

catalog_category_entity = Table(
    "catalog_category_entity", metadata,
    Column("entity_id", Integer, primary_key=True, autoincrement=True),
    Column("attribute_set_id", SmallInteger, nullable=False, default=0),
    Column("parent_id", Integer, nullable=False, default=0),
    Column("created_at", DateTime, nullable=False),
    Column("updated_at", DateTime, nullable=False),
    Column("path", String(255), nullable=False),
    Column("position", Integer, nullable=False),
    Column("level", Integer, nullable=False, default=0),
    Column("children_count", Integer, nullable=False),
    **_MYSQL,
)

catalog_category_entity_varchar = _value_table("catalog_category_entity", "varchar")

catalog_category_product = Table(
    "catalog_category_product", metadata,
    Column("entity_id", Integer, primary_key=True, autoincrement=True),
    Column("category_id", Integer, nullable=False, default=0),
    Column("product_id", Integer, nullable=False, default=0),
    Column("position", Integer, nullable=False, default=0),
    UniqueConstraint("category_id", "product_id", name="CATALOG_CATEGORY_PRODUCT_CATEGORY_ID_PRODUCT_ID"),
    Index("CATALOG_CATEGORY_PRODUCT_PRODUCT_ID", "product_id"),
    **_MYSQL,
)

# Related, up-sell and cross-sell products, and a grouped product's members (Magento_Catalog's db_schema.xml).
catalog_product_link_type = Table(
    "catalog_product_link_type", metadata,
    Column("link_type_id", SmallInteger, primary_key=True, autoincrement=True),
    Column("code", String(32)),  # relation, super (grouped), up_sell, cross_sell
    **_MYSQL,
)

catalog_product_link = Table(
    "catalog_product_link", metadata,
    Column("link_id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, nullable=False, default=0),
    Column("linked_product_id", Integer, nullable=False, default=0),
    Column("link_type_id", SmallInteger, nullable=False, default=0),
    UniqueConstraint("link_type_id", "product_id", "linked_product_id",
                     name="CATALOG_PRODUCT_LINK_LINK_TYPE_ID_PRODUCT_ID_LINKED_PRODUCT_ID"),
    Index("CATALOG_PRODUCT_LINK_PRODUCT_ID", "product_id"),
    Index("CATALOG_PRODUCT_LINK_LINKED_PRODUCT_ID", "linked_product_id"),
    **_MYSQL,
)

# A bundle's options, their titles per store view, and the products each offers (Magento_Bundle's db_schema.xml).
catalog_product_bundle_option = Table(
    "catalog_product_bundle_option", metadata,
    Column("option_id", Integer, primary_key=True, autoincrement=True),
    Column("parent_id", Integer, nullable=False),
    Column("required", SmallInteger, nullable=False, default=0),
    Column("position", Integer, nullable=False, default=0),
    Column("type", String(255)),  # select, radio, checkbox, multi
    Index("CATALOG_PRODUCT_BUNDLE_OPTION_PARENT_ID", "parent_id"),
    **_MYSQL,
)

catalog_product_bundle_option_value = Table(
    "catalog_product_bundle_option_value", metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=True),
    Column("option_id", Integer, nullable=False),
    Column("store_id", SmallInteger, nullable=False),
    Column("title", String(255)),
    Column("parent_product_id", Integer, nullable=False),
    UniqueConstraint("option_id", "parent_product_id", "store_id",
                     name="CAT_PRD_BNDL_OPT_VAL_OPT_ID_PARENT_PRD_ID_STORE_ID"),
    **_MYSQL,
)

catalog_product_bundle_selection = Table(
    "catalog_product_bundle_selection", metadata,
    Column("selection_id", Integer, primary_key=True, autoincrement=True),
    Column("option_id", Integer, nullable=False),
    Column("parent_product_id", Integer, nullable=False),
    Column("product_id", Integer, nullable=False),
    Column("position", Integer, nullable=False, default=0),
    Column("is_default", SmallInteger, nullable=False, default=0),
    Column("selection_price_type", SmallInteger, nullable=False, default=0),
    Column("selection_price_value", Numeric(12, 4), nullable=False, default=0),
    Column("selection_qty", Numeric(12, 4)),
    Column("selection_can_change_qty", SmallInteger, nullable=False, default=0),
    Index("CATALOG_PRODUCT_BUNDLE_SELECTION_OPTION_ID", "option_id"),
    Index("CATALOG_PRODUCT_BUNDLE_SELECTION_PRODUCT_ID", "product_id"),
    **_MYSQL,
)

# A configurable's options: which attributes its variants differ by (Magento_ConfigurableProduct's db_schema.xml).
catalog_product_super_attribute = Table(
    "catalog_product_super_attribute", metadata,
    Column("product_super_attribute_id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, nullable=False, default=0),
    Column("attribute_id", SmallInteger, nullable=False, default=0),
    Column("position", SmallInteger, nullable=False, default=0),
    UniqueConstraint("product_id", "attribute_id", name="CATALOG_PRODUCT_SUPER_ATTRIBUTE_PRODUCT_ID_ATTRIBUTE_ID"),
    **_MYSQL,
)

# The option's label on the configurable, per store view (use_default: the attribute's own label).
catalog_product_super_attribute_label = Table(
    "catalog_product_super_attribute_label", metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=True),
    Column("product_super_attribute_id", Integer, nullable=False, default=0),
    Column("store_id", SmallInteger, nullable=False, default=0),
    Column("use_default", SmallInteger, default=0),
    Column("value", String(255)),
    UniqueConstraint("product_super_attribute_id", "store_id", name="CAT_PRD_SPR_ATTR_LBL_PRD_SPR_ATTR_ID_STORE_ID"),
    **_MYSQL,
)

catalog_product_super_link = Table(
    "catalog_product_super_link", metadata,
    Column("link_id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, nullable=False, default=0),
    Column("parent_id", Integer, nullable=False, default=0),
    UniqueConstraint("product_id", "parent_id", name="CATALOG_PRODUCT_SUPER_LINK_PRODUCT_ID_PARENT_ID"),
    Index("CATALOG_PRODUCT_SUPER_LINK_PARENT_ID", "parent_id"),
    **_MYSQL,
)

catalog_product_relation = Table(
    "catalog_product_relation", metadata,
    Column("parent_id", Integer, primary_key=True, autoincrement=False),
    Column("child_id", Integer, primary_key=True, autoincrement=False),
    Index("CATALOG_PRODUCT_RELATION_CHILD_ID", "child_id"),
    **_MYSQL,
)

catalog_product_entity_media_gallery = Table(
    "catalog_product_entity_media_gallery", metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=True),
    Column("attribute_id", SmallInteger, nullable=False, default=0),
    Column("value", String(255)),
    Column("media_type", String(32), nullable=False, default="image"),
    Column("disabled", SmallInteger, nullable=False, default=0),
    **_MYSQL,
)

catalog_product_entity_media_gallery_value = Table(
    "catalog_product_entity_media_gallery_value", metadata,
    Column("record_id", Integer, primary_key=True, autoincrement=True),
    Column("value_id", Integer, nullable=False, default=0),
    Column("store_id", SmallInteger, nullable=False, default=0),
    Column("entity_id", Integer, nullable=False, default=0),
    Column("label", String(255)),
    Column("position", Integer),
    Column("disabled", SmallInteger, nullable=False, default=0),
    # Magento's indexes; without them every chunk's gallery read scans the whole table.
    Index("CATALOG_PRODUCT_ENTITY_MEDIA_GALLERY_VALUE_STORE_ID", "store_id"),
    Index("CATALOG_PRODUCT_ENTITY_MEDIA_GALLERY_VALUE_VALUE_ID", "value_id"),
    Index("CAT_PRD_ENTT_MDA_GLR_VAL_ENTT_ID_VAL_ID_STORE_ID", "entity_id", "value_id", "store_id"),
    **_MYSQL,
)

catalog_product_entity_media_gallery_value_to_entity = Table(
    "catalog_product_entity_media_gallery_value_to_entity", metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=False),
    Column("entity_id", Integer, primary_key=True, autoincrement=False),
    Index("CAT_PRD_ENTT_MDA_GLR_VAL_TO_ENTT_ENTT_ID_CAT_PRD_ENTT_ENTT_ID", "entity_id"),
    **_MYSQL,
)

# Magento's mview changelogs that matter for the product feed. Each has
# version_id (auto increment) and entity_id; triggers fill them.
CHANGELOG_TABLE_NAMES = (
    "catalogsearch_fulltext_cl",
    "catalog_product_price_cl",
    "cataloginventory_stock_cl",
    "catalog_product_category_cl",
    "catalog_product_attribute_cl",
    # MSI's (InventoryIndexer/etc/mview.xml): its entity_id is inventory_source_item.source_item_id.
    "inventory_cl",
)


def _changelog_table(name: str) -> Table:
    return Table(
        name, metadata,
        Column("version_id", Integer, primary_key=True, autoincrement=True),
        Column("entity_id", Integer, nullable=False, default=0),
        # Never reuse a version id after rows are deleted, as MySQL's AUTO_INCREMENT does.
        sqlite_autoincrement=True,
        **_MYSQL,
    )


CHANGELOG_TABLES: dict[str, Table] = {name: _changelog_table(name) for name in CHANGELOG_TABLE_NAMES}

# Declared so the demo catalog looks like a shop; Catalog Sync never writes it.
mview_state = Table(
    "mview_state", metadata,
    Column("state_id", Integer, primary_key=True, autoincrement=True),
    Column("view_id", String(255)),
    Column("mode", String(16), default="disabled"),
    Column("status", String(16), default="idle"),
    Column("updated", DateTime),
    Column("version_id", Integer),
    **_MYSQL,
)

# ---- Data the ingestion contract cannot carry (read only to count it: magento/not_carried.py) ----------------

# A product's custom options (Magento_Catalog's db_schema.xml). Shape as in the 2.4.8 fixture dump.
catalog_product_option = Table(
    "catalog_product_option", metadata,
    Column("option_id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, nullable=False, default=0),
    Column("type", String(50)),
    Column("is_require", SmallInteger, nullable=False, default=1),
    Column("sku", String(64)),
    Column("max_characters", Integer),
    Column("file_extension", String(50)),
    Column("image_size_x", SmallInteger),
    Column("image_size_y", SmallInteger),
    Column("sort_order", Integer, nullable=False, default=0),
    Index("CATALOG_PRODUCT_OPTION_PRODUCT_ID", "product_id"),
    **_MYSQL,
)

# A link's attributes (position of related/up-sell/cross-sell/grouped links, a grouped member's default
# qty) and their decimal values (Magento_Catalog's db_schema.xml). Shapes as in the 2.4.8 fixture dump,
# whose catalog_product_link_attribute rows are (5, link type 3 `super`, 'qty', 'decimal') and the positions.
catalog_product_link_attribute = Table(
    "catalog_product_link_attribute", metadata,
    Column("product_link_attribute_id", SmallInteger, primary_key=True, autoincrement=True),
    Column("link_type_id", SmallInteger, nullable=False, default=0),
    Column("product_link_attribute_code", String(32)),
    Column("data_type", String(32)),
    Index("CATALOG_PRODUCT_LINK_ATTRIBUTE_LINK_TYPE_ID", "link_type_id"),
    **_MYSQL,
)

catalog_product_link_attribute_decimal = Table(
    "catalog_product_link_attribute_decimal", metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=True),
    Column("product_link_attribute_id", SmallInteger),
    Column("link_id", Integer, nullable=False),
    Column("value", Numeric(20, 6), nullable=False, default=0),
    UniqueConstraint("product_link_attribute_id", "link_id", name="CAT_PRD_LNK_ATTR_DEC_PRD_LNK_ATTR_ID_LNK_ID"),
    Index("CATALOG_PRODUCT_LINK_ATTRIBUTE_DECIMAL_LINK_ID", "link_id"),
    **_MYSQL,
)

# A downloadable product's links and samples. Not in the fixture dump: the shapes are Magento_Downloadable's
# db_schema.xml as the issue describes them (the columns and types; the indexes are left out).
downloadable_link = Table(
    "downloadable_link", metadata,
    Column("link_id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, nullable=False, default=0),
    Column("sort_order", Integer),
    Column("number_of_downloads", Integer),
    Column("is_shareable", SmallInteger),
    Column("link_url", String(255)),
    Column("link_file", String(255)),
    Column("link_type", String(20)),
    Column("sample_url", String(255)),
    Column("sample_file", String(255)),
    Column("sample_type", String(20)),
    **_MYSQL,
)

downloadable_sample = Table(
    "downloadable_sample", metadata,
    Column("sample_id", Integer, primary_key=True, autoincrement=True),
    Column("product_id", Integer, nullable=False, default=0),
    Column("sample_url", String(255)),
    Column("sample_file", String(255)),
    Column("sample_type", String(20)),
    Column("sort_order", Integer),
    **_MYSQL,
)

# Adobe Commerce only (Magento_GiftCard, absent on Open Source): a gift card's fixed amounts. Kept out of
# `metadata`, so the demo catalog (an Open Source shop) does not get it. Not in the fixture dump: the shape
# is Magento_GiftCard's db_schema.xml as the issue describes it, with one assumption: Adobe Commerce keys
# it by `row_id` (catalog_product_entity's row version, its content staging), which this declaration names
# `entity_id`, the Open Source-shaped key the tests write. not_carried.py reads whichever of the two the
# shop's table has.
adobe_commerce_metadata = MetaData()

magento_giftcard_amount = Table(
    "magento_giftcard_amount", adobe_commerce_metadata,
    Column("value_id", Integer, primary_key=True, autoincrement=True),
    Column("website_id", SmallInteger),
    Column("value", Numeric(12, 4)),
    Column("attribute_id", SmallInteger),
    Column("entity_id", Integer),  # Adobe Commerce: row_id
    **_MYSQL,
)

# Category EAV values beyond names (is_active, include_in_menu: int; description, meta_keywords, meta_description: text).
catalog_category_entity_int = _value_table("catalog_category_entity", "int")
catalog_category_entity_text = _value_table("catalog_category_entity", "text")


# Tables only the demo generator writes: Magento has them, and the sync reads none of them.
WRITTEN_ONLY = frozenset({"eav_attribute_option", "eav_attribute_set", "inventory_stock"})


# Tables of modules a shop may not have (or a dump may leave out): the sync reads them where they exist.
OPTIONAL_TABLES = frozenset({
    *CHANGELOG_TABLE_NAMES, "catalog_product_bundle_option", "catalog_product_bundle_option_value",
    "catalog_product_bundle_selection", "catalogrule_product_price", "customer_group", "downloadable_link",
    "downloadable_sample", "inventory_source", "inventory_source_item", "inventory_source_stock_link",
    "inventory_stock_sales_channel", "magento_giftcard_amount",
})


def present_tables(bind: sa.Engine | sa.Connection) -> set[str]:
    """The tables and views of the shop the database user may see, by their names here (without the shop's
    table prefix). MySQL lists none the user may not read
    (and answers a DESCRIBE of one with an error), so such a table counts as absent: plan warns of each
    (MagentoCatalogReader.verify_schema)."""
    from catalog_sync.magento import layout

    inspector = sa.inspect(bind)
    return layout.of(bind).unprefixed({*inspector.get_table_names(), *inspector.get_view_names()})


def read_tables() -> list[str]:
    """Every table the sync may read (those a shop lacks are skipped), for its database user's grants
    (README, "Database grants") and plan's check of them. MSI's stock indexes, `inventory_stock_<id>`, come on top."""
    return sorted((set(metadata.tables) | set(adobe_commerce_metadata.tables)) - WRITTEN_ONLY)
