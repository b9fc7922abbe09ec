/* lib/mw-store.c - placeholder until implemented */
typedef int mw_placeholder_mw_store;
