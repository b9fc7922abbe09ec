/* lib/mw-addr.c - placeholder until implemented */
typedef int mw_placeholder_mw_addr;
