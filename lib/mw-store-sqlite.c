/* lib/mw-store-sqlite.c - placeholder until implemented */
typedef int mw_placeholder_mw_store_sqlite;
